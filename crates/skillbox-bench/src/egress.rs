//! What network egress through skillbox's proxy costs (issue 22): the per-run overhead of a
//! networked skill (its own network namespace, the listener passed back, the proxy started
//! and finished) against the same skill without network, and the throughput of a 1 GiB
//! download from a loopback server through the proxy against the same download direct.

use std::time::{Duration, Instant};

use skillbox_egress::{Allowlist, HostPattern, Resolver, Rules};
use skillbox_sandbox::{ChildSpec, ExitStatus, ListenerSink, NetworkAccess, Policy};
use skillbox_skills::{SkillTool, Tool, TrustLevel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixture::{TRUE, TRUE_NET};
use crate::stats::{fmt_ms, print_time_table, Samples};
use crate::Bench;

/// Bytes of the download.
const DOWNLOAD: u64 = 1 << 30;

/// The egress section.
pub(crate) fn egress(b: &mut Bench) {
    println!("\n### Network egress through the proxy (issue 22)\n");
    per_run(b);
    throughput(b);
}

/// `/bin/true` without and with network, through the sandbox alone and through `SkillTool`
/// at `user-verified`, interleaved.
fn per_run(b: &mut Bench) {
    let n = if b.quick { 60 } else { 400 };
    let mut rows = [
        Samples::new("sandbox: network `none` (baseline)"),
        Samples::new("sandbox: own network namespace, listener passed back and closed"),
        Samples::new("`SkillTool` at user-verified: no network"),
        Samples::new("`SkillTool` at user-verified: `network_access: true` (namespace + proxy)"),
    ];
    let plain = b.fixture.tool(TRUE.skill, TrustLevel::UserVerified);
    let net = b.fixture.tool(TRUE_NET.skill, TrustLevel::UserVerified);
    for i in 0..n {
        for k in 0..rows.len() {
            let j = (i + k) % rows.len();
            let d = match j {
                0 => sandbox_once(b, NetworkAccess::None),
                1 => sandbox_once(b, NetworkAccess::Loopback { port: 3128 }),
                2 => skill_once(b, &plain),
                _ => skill_once(b, &net),
            };
            rows[j].times.push(d);
        }
    }
    println!(
        "Each iteration runs the four variants once, in rotating order ({n} iterations). The \
         sandbox rows run `/bin/true` with the strict policy and a PID namespace; the \
         `SkillTool` rows run the same program as a skill, every layer included (audit events \
         written; the networked one starts the proxy on the run's listener and finishes it)."
    );
    print_time_table("Per-run cost of a network namespace and the proxy", &rows.each_ref(), 0);
    let sandbox = rows[1].median_ms() - rows[0].median_ms();
    let skill = rows[3].median_ms() - rows[2].median_ms();
    println!(
        "\nNetworked minus un-networked, medians: sandbox {}, skill {}.",
        fmt_ms(sandbox),
        fmt_ms(skill)
    );
    b.verdicts.add(
        "a networked skill's per-run overhead within 0.3 ms of an un-networked one",
        format!("{} (skill), {} (sandbox alone)", fmt_ms(skill), fmt_ms(sandbox)),
        skill <= 0.3,
    );
}

fn sandbox_once(b: &Bench, network: NetworkAccess) -> Duration {
    let mut spec = ChildSpec::new(TRUE.path, &b.fixture.workspace);
    spec.policy = Policy::strict();
    spec.policy.read = vec![b.fixture.workspace.clone()];
    spec.policy.pid_namespace = true;
    spec.policy.network = network;
    if matches!(network, NetworkAccess::Loopback { .. }) {
        spec.listener = Some(ListenerSink::new(drop));
    }
    let t = Instant::now();
    let o = b.rt.block_on(skillbox_sandbox::run(&spec)).unwrap();
    let d = t.elapsed();
    assert_eq!(o.status, ExitStatus::Exited(0), "{:?}", o.stderr.to_text());
    d
}

fn skill_once(b: &Bench, tool: &SkillTool) -> Duration {
    let t = Instant::now();
    let r = b.rt.block_on(tool.invoke(serde_json::json!({})));
    let d = t.elapsed();
    assert!(!r.is_error, "{}", r.text);
    d
}

/// 1 GiB from a server on loopback, read direct and through the proxy (a `CONNECT` tunnel,
/// the address listed), alternating.
fn throughput(b: &mut Bench) {
    let rounds = if b.quick { 2 } else { 5 };
    let (direct, proxied) = b.rt.block_on(async {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = server.local_addr().unwrap();
        tokio::spawn(async move {
            let chunk = vec![0u8; 1 << 20];
            while let Ok((mut c, _)) = server.accept().await {
                let chunk = chunk.clone();
                tokio::spawn(async move {
                    for _ in 0..DOWNLOAD / chunk.len() as u64 {
                        if c.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_addr = listener.local_addr().unwrap();
        let pattern = HostPattern::parse(&origin.to_string()).unwrap();
        let rules = Rules {
            list: Some(Allowlist::new([pattern], false)),
            plain_http: false,
            hint: String::new(),
        };
        let proxy = skillbox_egress::serve(listener, rules, Resolver::system()).unwrap();
        let (mut direct, mut proxied) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            direct.push(download(origin, None).await);
            proxied.push(download(proxy_addr, Some(origin)).await);
        }
        let records = proxy.finish().await;
        assert_eq!(records.len(), rounds, "{records:?}");
        assert!(records.iter().all(|r| r.allowed && r.bytes_down == DOWNLOAD), "{records:?}");
        (direct, proxied)
    });
    let rate = |d: &Duration| DOWNLOAD as f64 / d.as_secs_f64() / (1 << 20) as f64;
    let median = |v: &[Duration]| {
        let mut r: Vec<f64> = v.iter().map(rate).collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let (d, p) = (median(&direct), median(&proxied));
    println!("\n#### 1 GiB from a loopback server, direct and through the proxy\n");
    println!("| path | rounds | median throughput | ratio |");
    println!("|---|---:|---:|---:|");
    println!("| direct TCP (baseline) | {rounds} | {d:.0} MiB/s | 1.00 |");
    println!("| through the proxy (`CONNECT`, tokio `copy_bidirectional`) | {rounds} | {p:.0} MiB/s | {:.2} |", p / d);
    b.verdicts.add(
        "proxied throughput of a 1 GiB download at least 50% of direct",
        format!("{:.0}% ({p:.0} against {d:.0} MiB/s)", 100.0 * p / d),
        p / d >= 0.5,
    );
}

/// Reads [`DOWNLOAD`] bytes from `addr`, through a `CONNECT` to `via` when given; the time.
async fn download(addr: std::net::SocketAddr, via: Option<std::net::SocketAddr>) -> Duration {
    let t = Instant::now();
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    if let Some(target) = via {
        let head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
        c.write_all(head.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            assert_eq!(c.read(&mut byte).await.unwrap(), 1, "the proxy closed");
            got.push(byte[0]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    while total < DOWNLOAD {
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0, "the download ended at {total} bytes");
        total += n as u64;
    }
    t.elapsed()
}
