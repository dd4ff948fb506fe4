//! `skillbox run` from a cold process, end to end, against running the program directly:
//! repeated runs in the manner of hyperfine, interleaved.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fixture::INSTALLED_SKILLS;
use crate::stats::{fmt_ms, print_time_table, Samples};
use crate::Bench;

/// A `skillbox` command against the fixture's workspace and home, output discarded.
pub fn skillbox(b: &Bench, args: &[&str]) -> Command {
    let mut c = Command::new(&b.skillbox);
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
pub fn cold(b: &mut Bench) {
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
    let variants: Vec<(&str, Vec<&str>)> = vec![
        ("`/bin/true` run directly (baseline)", vec![]),
        ("`skillbox run bench-true` (user-verified, its default)", vec!["run", "bench-true"]),
        (
            "`skillbox run bench-true --trust untrusted`",
            vec!["run", "bench-true", "--trust", "untrusted"],
        ),
        ("`skillbox list` (start, load 100 skills, print; nothing run)", vec!["list"]),
        ("`skillbox --version` (process start and exit only)", vec!["--version"]),
    ];
    let mut samples: Vec<Samples> = variants.iter().map(|(l, _)| Samples::new(*l)).collect();
    for i in 0..n {
        for k in 0..variants.len() {
            let j = (i + k) % variants.len();
            let (label, args) = &variants[j];
            let cmd = if args.is_empty() {
                let mut c = Command::new("/bin/true");
                c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
                c
            } else {
                skillbox(b, args)
            };
            samples[j].times.push(time(cmd, label));
        }
    }
    let rows: Vec<&Samples> = samples.iter().collect();
    print_time_table("Cold process, end to end", &rows, 0);
    let m = samples[1].median_ms();
    b.verdicts.add(
        format!("cold `skillbox run` of a trivial skill < 3 ms median with {INSTALLED_SKILLS} skills installed"),
        format!("{} median (direct `/bin/true` {})", fmt_ms(m), fmt_ms(samples[0].median_ms())),
        m < 3.0,
    );
}
