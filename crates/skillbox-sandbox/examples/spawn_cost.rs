//! Side-by-side cost of starting `/bin/true`: bare `std::process::Command` against
//! `skillbox_sandbox::run` with the strict and the permissive policy, and strict with a PID
//! namespace (what skills get), in one run.
//!
//! `cargo run --release -p skillbox-sandbox --example spawn_cost [N]`
//!
//! Prints the median and p95 of each, and the ratio of medians to the bare spawn. The full
//! benchmark suite (with bwrap, an embedding process holding 1 GiB, and so on) is separate;
//! this is the quick check that confinement stays near the kernel's floor.

use std::time::{Duration, Instant};

use skillbox_sandbox::{run, ChildSpec, Policy};

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 95 / 100])
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let cwd = std::env::temp_dir();
    let strict = ChildSpec::new("/bin/true", &cwd);
    let mut permissive = strict.clone();
    permissive.policy = Policy::permissive();
    let mut pidns = strict.clone();
    pidns.policy.pid_namespace = true;

    let (mut bare, mut conf, mut perm, mut ns) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Interleaved, so that drift of the machine affects all three alike.
    for _ in 0..n {
        let t = Instant::now();
        let st = std::process::Command::new("/bin/true").status().expect("spawn");
        assert!(st.success());
        bare.push(t.elapsed());

        let t = Instant::now();
        let o = rt.block_on(run(&strict)).expect("run strict");
        assert_eq!(o.status, skillbox_sandbox::ExitStatus::Exited(0));
        conf.push(t.elapsed());

        let t = Instant::now();
        rt.block_on(run(&permissive)).expect("run permissive");
        perm.push(t.elapsed());

        let t = Instant::now();
        rt.block_on(run(&pidns)).expect("run with a pid namespace");
        ns.push(t.elapsed());
    }
    let (b50, b95) = stats(bare);
    println!(
        "{:<40} {:>10} {:>10} {:>8}",
        "what (n = ".to_string() + &n.to_string() + ")",
        "median",
        "p95",
        "ratio"
    );
    for (name, v) in [
        ("bare std::process::Command", (b50, b95)),
        ("sandbox, strict policy", stats(conf)),
        ("sandbox, permissive policy", stats(perm)),
        ("sandbox, strict + PID namespace", stats(ns)),
    ] {
        println!(
            "{:<40} {:>8.3}ms {:>8.3}ms {:>7.2}x",
            name,
            v.0.as_secs_f64() * 1e3,
            v.1.as_secs_f64() * 1e3,
            v.0.as_secs_f64() / b50.as_secs_f64()
        );
    }
}
