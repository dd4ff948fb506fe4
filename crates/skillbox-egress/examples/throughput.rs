//! Proxied against direct throughput on loopback: a server sends `MIB` MiB (default 1024)
//! to each connection; the client reads it directly, then through the egress proxy
//! (CONNECT to a listed name that the test-only resolver override points at the server).
//!
//! `cargo run --release -p skillbox-egress --example throughput [MIB]`

use std::time::Instant;

use skillbox_egress::{serve, Allowlist, HostPattern, Resolver, Rules};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn drain(mut s: TcpStream) -> Result<u64, Error> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let mib: u64 = std::env::args().nth(1).map_or(Ok(1024), |a| a.parse())?;
    let bytes = mib * 1024 * 1024;
    let origin = TcpListener::bind("127.0.0.1:0").await?;
    let port = origin.local_addr()?.port();
    tokio::spawn(async move {
        let block = vec![7u8; 256 * 1024];
        while let Ok((mut s, _)) = origin.accept().await {
            let block = block.clone();
            tokio::spawn(async move {
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(block.len() as u64) as usize;
                    if s.write_all(&block[..n]).await.is_err() {
                        return;
                    }
                    left -= n as u64;
                }
            });
        }
    });

    let t = Instant::now();
    let got = drain(TcpStream::connect(("127.0.0.1", port)).await?).await?;
    let direct = t.elapsed().as_secs_f64();
    assert_eq!(got, bytes);

    let patterns = [format!("bench.skillbox.test:{port}"), format!("127.0.0.1:{port}")];
    let list = Allowlist::new(patterns.iter().filter_map(|p| HostPattern::parse(p).ok()), false);
    let rules = Rules { list: Some(list), plain_http: false, hint: String::new() };
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let paddr = listener.local_addr()?;
    let proxy = serve(listener, rules, Resolver::with_overrides("bench.skillbox.test=127.0.0.1")?)?;
    let t = Instant::now();
    let mut c = TcpStream::connect(paddr).await?;
    c.write_all(format!("CONNECT bench.skillbox.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).await?;
    let mut head = [0u8; 39];
    c.read_exact(&mut head).await?;
    let got = drain(c).await?;
    let proxied = t.elapsed().as_secs_f64();
    assert_eq!(got, bytes);
    let recs = proxy.finish().await;
    let gib = bytes as f64 / (1u64 << 30) as f64;
    println!(
        "{mib} MiB: direct {direct:.3} s ({:.2} GiB/s), proxied {proxied:.3} s ({:.2} GiB/s): {:.0}% of direct; record: {} bytes down",
        gib / direct,
        gib / proxied,
        100.0 * direct / proxied,
        recs.first().map_or(0, |r| r.bytes_down)
    );
    Ok(())
}
