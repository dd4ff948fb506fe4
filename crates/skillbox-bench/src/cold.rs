//! `skillbox run` from a cold process, end to end, against running the program directly:
//! repeated runs in the manner of hyperfine, interleaved.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fixture::INSTALLED_SKILLS;
use crate::stats::{fmt_ms, print_time_table, Samples};
use crate::Bench;

/// A `skillbox` command against the fixture's workspace and home, output discarded.
pub(crate) fn skillbox(b: &Bench, args: &[&str]) -> Command {
    skillbox_at(b, &b.skillbox, args)
}

/// Like [`skillbox`], with the binary at `bin`.
fn skillbox_at(b: &Bench, bin: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.arg("--workspace")
        .arg(&b.fixture.workspace)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &b.fixture.home)
        .env("SKILLBOX_HOME", &b.fixture.home)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn time(mut c: Command, what: &str) -> Duration {
    let t = Instant::now();
    let st = c.status().unwrap();
    let d = t.elapsed();
    assert!(st.success(), "{what}: {st}");
    d
}

/// The cold-run section.
pub(crate) fn cold(b: &mut Bench) {
    println!("\n### Cold `skillbox run`, end to end\n");
    assert!(
        Path::new(&b.skillbox).is_file(),
        "{} not found: build it with `cargo build --release -p skillbox-cli`",
        b.skillbox.display()
    );
    println!(
        "A new `skillbox` process per run (`{} --workspace WS run bench-true`), with {} skills \
         installed in the workspace and the audit log in `$SKILLBOX_HOME`; waited for with \
         output discarded, like hyperfine. Interleaved with running `/bin/true` directly.",
        b.skillbox.display(),
        INSTALLED_SKILLS
    );
    let n = if b.quick { 60 } else { 300 };
    let mut variants: Vec<(String, Option<&Path>, Vec<&str>)> = vec![
        ("`/bin/true` run directly (baseline)".into(), None, vec![]),
        (
            "`skillbox run bench-true` (user-verified, its default)".into(),
            Some(&b.skillbox),
            vec!["run", "bench-true"],
        ),
        (
            "`skillbox run bench-true --trust untrusted`".into(),
            Some(&b.skillbox),
            vec!["run", "bench-true", "--trust", "untrusted"],
        ),
        (
            "`skillbox list` (start, load 100 skills, print; nothing run)".into(),
            Some(&b.skillbox),
            vec!["list"],
        ),
        (
            "`skillbox --version` (process start and exit only)".into(),
            Some(&b.skillbox),
            vec!["--version"],
        ),
    ];
    if let Some(d) = &b.skillbox_dynamic {
        variants.push((
            "`skillbox run bench-true`, the default dynamically linked build".into(),
            Some(d),
            vec!["run", "bench-true"],
        ));
        variants.push((
            "`skillbox --version`, the default dynamically linked build".into(),
            Some(d),
            vec!["--version"],
        ));
    }
    let mut samples: Vec<Samples> = variants.iter().map(|(l, _, _)| Samples::new(l)).collect();
    for i in 0..n {
        for k in 0..variants.len() {
            let j = (i + k) % variants.len();
            let (label, bin, args) = &variants[j];
            let cmd = match bin {
                None => {
                    let mut c = Command::new("/bin/true");
                    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
                    c
                }
                Some(bin) => skillbox_at(b, bin, args),
            };
            samples[j].times.push(time(cmd, label));
        }
    }
    let rows: Vec<&Samples> = samples.iter().collect();
    print_time_table("Cold process, end to end", &rows, 0);
    steps(b, if b.quick { 20 } else { 60 });
    let m = samples[1].median_ms();
    b.verdicts.add(
        format!("cold `skillbox run` of a trivial skill < 3 ms median with {INSTALLED_SKILLS} skills installed"),
        format!("{} median (direct `/bin/true` {})", fmt_ms(m), fmt_ms(samples[0].median_ms())),
        m < 3.0,
    );
}

/// In a fresh process: opens the runtime over `workspace` (registry, audit log), then runs
/// `bench-true` at untrusted twice, printing the time of each step in µs on one line:
/// `open first second`.
pub(crate) fn steps_worker(workspace: &Path, log: &Path) {
    use skillbox_skills::{Runtime, TrustLevel};
    let t = Instant::now();
    let rt = std::sync::Arc::new(
        Runtime::open_with_audit(workspace, skillbox_skills::audit_log::LogConfig::new(log))
            .unwrap(),
    );
    let open = t.elapsed();
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let t = Instant::now();
        let r = tokio.block_on(rt.run(
            "bench-true",
            &serde_json::json!({}),
            Some(TrustLevel::Untrusted),
        ));
        runs.push(t.elapsed());
        assert!(r.is_success(), "{:?}", r.message);
    }
    println!("{} {} {}", open.as_micros(), runs[0].as_micros(), runs[1].as_micros());
}

/// Where a cold run's time goes: fresh processes each open the runtime and run the skill
/// twice; the first run pays what a process does once (probing the host, compiling the
/// seccomp program and redaction regexes, opening the system paths of the Landlock
/// ruleset), the second shows a warm run in the same process.
fn steps(b: &Bench, n: usize) {
    let log = b.fixture.home.join("logs/steps.jsonl");
    let mut cols: [Samples; 3] = [
        Samples::new("open the runtime: load 100 skills, open the audit log"),
        Samples::new("first run in the process (untrusted)"),
        Samples::new("second run in the same process"),
    ];
    for _ in 0..n {
        let out = Command::new(std::env::current_exe().unwrap())
            .arg("__cold-steps")
            .arg(&b.fixture.workspace)
            .arg(&log)
            .env("HOME", &b.fixture.home)
            .env("SKILLBOX_HOME", &b.fixture.home)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        for (col, v) in cols.iter_mut().zip(text.split_whitespace()) {
            col.times.push(Duration::from_micros(v.parse().unwrap()));
        }
    }
    println!("\n#### Steps of a cold run, timed inside fresh processes\n");
    println!("| step | n | median | p95 |");
    println!("|---|---:|---:|---:|");
    for c in &cols {
        println!(
            "| {} | {} | {} | {} |",
            c.label,
            c.times.len(),
            fmt_ms(c.median_ms()),
            fmt_ms(c.p95_ms())
        );
    }
}
