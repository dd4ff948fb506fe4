//! 64 skill runs at once against 64 bare spawns at once, with skillbox's memory; and an
//! output flood: skillbox's peak memory while a skill writes 1 GiB.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use skillbox_skills::{Tool, TrustLevel};

use crate::fixture::{FLOOD_BYTES, TRUE};
use crate::mem::{mib, reset_peak, status_kib};
use crate::stats::{fmt_ms, print_time_table, Samples};
use crate::Bench;

const AT_ONCE: usize = 64;

/// The parallel section.
pub(crate) fn parallel(b: &mut Bench) {
    println!("\n### {AT_ONCE} runs at once\n");
    println!(
        "{AT_ONCE} tasks on the multi-threaded tokio runtime ({} workers), each running \
         `/bin/true`: bare (`tokio::process::Command::output()`) or through `SkillTool` at \
         untrusted. Batches alternate. Memory is the bench process's peak resident memory \
         (`VmHWM`, reset before each batch).",
        b.workers
    );
    let rounds = if b.quick { 5 } else { 25 };
    let tool = b.fixture.tool(TRUE.skill, TrustLevel::Untrusted);
    let mut bare = Samples::new(format!("{AT_ONCE} bare spawns at once (baseline)"));
    let mut skill = Samples::new(format!("{AT_ONCE} `SkillTool` runs at once, untrusted"));
    let (mut peak_bare, mut peak_skill) = (0, 0);
    let rss_before = status_kib("VmRSS");
    for round in 0..rounds {
        for k in 0..2 {
            let which = (round + k) % 2;
            reset_peak();
            let t = Instant::now();
            if which == 0 {
                b.rt.block_on(async {
                    let tasks: Vec<_> = (0..AT_ONCE)
                        .map(|_| {
                            tokio::spawn(async {
                                tokio::process::Command::new(TRUE.path)
                                    .stdin(Stdio::null())
                                    .output()
                                    .await
                                    .unwrap()
                            })
                        })
                        .collect();
                    for task in tasks {
                        assert!(task.await.unwrap().status.success());
                    }
                });
                bare.times.push(t.elapsed());
                peak_bare = peak_bare.max(status_kib("VmHWM"));
            } else {
                b.rt.block_on(async {
                    let tasks: Vec<_> = (0..AT_ONCE)
                        .map(|_| {
                            let tool = tool.clone();
                            tokio::spawn(async move { tool.invoke(serde_json::json!({})).await })
                        })
                        .collect();
                    for task in tasks {
                        let r = task.await.unwrap();
                        assert!(!r.is_error, "{}", r.text);
                    }
                });
                skill.times.push(t.elapsed());
                peak_skill = peak_skill.max(status_kib("VmHWM"));
            }
        }
    }
    print_time_table(&format!("Wall time of a batch of {AT_ONCE}"), &[&bare, &skill], 0);
    let thr = |s: &Samples| AT_ONCE as f64 / (s.median_ms() / 1e3);
    println!("\n| | runs/s (median batch) | per run | peak RSS of the bench process |");
    println!("|---|---:|---:|---:|");
    println!(
        "| bare | {:.0} | {} | {} |",
        thr(&bare),
        fmt_ms(bare.median_ms() / AT_ONCE as f64),
        mib(peak_bare)
    );
    println!(
        "| skillbox | {:.0} | {} | {} |",
        thr(&skill),
        fmt_ms(skill.median_ms() / AT_ONCE as f64),
        mib(peak_skill)
    );
    println!(
        "\nThroughput ratio skillbox/bare: {:.2}. Resident memory before the batches: {}; \
         peak during skillbox batches {} above it.",
        thr(&skill) / thr(&bare),
        mib(rss_before),
        mib(peak_skill.saturating_sub(rss_before))
    );
}

/// Reads `r` to its end in 64 KiB chunks, keeping nothing; returns the byte count.
fn discard(mut r: impl Read) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Runs `cmd` to its end and returns its wall time and its peak resident memory in KiB:
/// `VmHWM` of `/proc/PID/status`, read every 200 µs until the process exits (the last
/// reading is at most that old). `ru_maxrss` from `wait4` cannot serve: a child started
/// with vfork (as std does) inherits its parent's high-water mark at `execve`.
fn run_with_peak(mut cmd: std::process::Command) -> (Duration, u64) {
    let t = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(v) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(v);
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let d = t.elapsed();
    assert!(st.success(), "{cmd:?}: {st}");
    (d, peak)
}

/// The output-flood section.
pub(crate) fn flood(b: &mut Bench) {
    println!("\n### Output flood\n");
    println!(
        "The skill `bench-flood` runs `head -c {FLOOD_BYTES} /dev/zero` (1 GiB to stdout). \
         skillbox keeps 1 MiB of each stream (head and tail) and counts the rest. Peak memory \
         of a new `skillbox run` process is its `VmHWM`, polled every 200 µs until it exits \
         (the skill's own memory is not included); of the embedding process, the growth of \
         its `VmHWM`, reset before the run."
    );
    let reps = if b.quick { 1 } else { 3 };
    let mut direct =
        Samples::new("`head -c 1GiB /dev/zero`, stdout read and discarded by the bench (baseline)");
    let mut embedded = Samples::new("`SkillTool` run of `bench-flood` (user-verified), embedded");
    let mut cli = Samples::new("`skillbox run bench-flood` (new process)");
    let mut trivial = Samples::new("`skillbox run bench-true` (new process), for its memory");
    let (mut rss_cli, mut rss_trivial, mut hwm_embedded, mut rss_before) = (0, 0, 0, 0);
    let tool = b.fixture.tool("bench-flood", TrustLevel::UserVerified);
    for _ in 0..reps {
        let t = Instant::now();
        let mut child = std::process::Command::new("head")
            .args(["-c", &FLOOD_BYTES.to_string(), "/dev/zero"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let n = discard(child.stdout.take().unwrap());
        assert!(child.wait().unwrap().success());
        direct.times.push(t.elapsed());
        assert_eq!(n, FLOOD_BYTES);

        rss_before = status_kib("VmRSS");
        reset_peak();
        let t = Instant::now();
        let r = b.rt.block_on(tool.execute(&serde_json::json!({})));
        embedded.times.push(t.elapsed());
        assert!(r.is_success(), "{:?}", r.message);
        assert!(r.stdout_truncated);
        hwm_embedded = hwm_embedded.max(status_kib("VmHWM"));

        let (d, rss) = run_with_peak(crate::cold::skillbox(b, &["run", "bench-flood"]));
        cli.times.push(d);
        rss_cli = rss_cli.max(rss);
        let (d, rss) = run_with_peak(crate::cold::skillbox(b, &["run", "bench-true"]));
        trivial.times.push(d);
        rss_trivial = rss_trivial.max(rss);
    }
    print_time_table("Wall time of the 1 GiB flood", &[&direct, &embedded, &cli], 0);
    println!("\n| process | peak resident memory | against a trivial run |");
    println!("|---|---:|---:|");
    println!("| `skillbox run bench-true` (nothing written) | {} | 1.00x |", mib(rss_trivial));
    println!(
        "| `skillbox run bench-flood` (1 GiB written) | {} | {:.2}x |",
        mib(rss_cli),
        rss_cli as f64 / rss_trivial as f64
    );
    println!(
        "| embedding process: growth of its peak during the flood | {} (peak {}, before {}) | |",
        mib(hwm_embedded.saturating_sub(rss_before)),
        mib(hwm_embedded),
        mib(rss_before)
    );
    let worst = rss_cli.max(hwm_embedded.saturating_sub(rss_before));
    b.verdicts.add(
        "skillbox's own memory flat (< 50 MiB) while a skill writes 1 GiB",
        format!(
            "`skillbox run` peak {} ({} for a trivial run); embedded growth {}",
            mib(rss_cli),
            mib(rss_trivial),
            mib(hwm_embedded.saturating_sub(rss_before))
        ),
        worst < 50 * 1024,
    );
}
