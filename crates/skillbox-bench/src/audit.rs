//! Audit log appends from one process and from 8 in parallel, at the documented durability,
//! and `audit verify`, in events per second.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;
use skillbox_audit::{
    verify, ActionTaken, AuditLog, Durability, EventDraft, EventType, LogConfig, RiskLevel,
};

use crate::stats::{fmt_ms, thousands, Samples};
use crate::Bench;

/// An event shaped like the one that closes a successful run (about 1 KB on disk).
pub(crate) fn draft() -> EventDraft {
    EventDraft {
        event_type: EventType::SkillExecutionCompleted,
        skill_name: "count-lines".into(),
        skill_trust_level: Some("user-verified".into()),
        risk_level: RiskLevel::Low,
        action_taken: ActionTaken::Allowed,
        execution_id: Some("0b5c7f1e-2f7e-4c3e-9d7a-1f1b2c3d4e5f".into()),
        attempt: Some(1),
        details: json!({
            "status": "success", "message": null, "attempts": 1, "fallback": null,
            "limit": null, "exit_code": 0, "signal": null, "duration_ms": 3,
            "usage": {"wall_ms": 3, "cpu_ms": 1, "max_rss_kib": 2048, "processes_peak": 1},
            "grant": {"file_read": ["/home/user/project"], "file_write": [],
                      "network": "none", "process_spawn": "none",
                      "limits": {"max_execution_time": 5.0, "max_memory_mb": 64,
                                 "max_cpu_percent": 50, "max_disk_io_mb": 100,
                                 "max_processes": 5, "max_open_files": 50}},
            "denial": null, "problems": [], "stdout_bytes": 12, "stderr_bytes": 0,
            "not_enforced": []
        }),
    }
}

/// Appends `n` events to the log at `path` (the 8-process worker, and the one-process run).
pub(crate) fn append_n(path: &Path, n: u64, durability: Durability) {
    let mut config = LogConfig::new(path);
    config.durability = durability;
    config.max_bytes = u64::MAX;
    let log = AuditLog::open(config).unwrap();
    let d = draft();
    for _ in 0..n {
        log.append(&d).unwrap();
    }
}

fn rate(events: u64, secs: f64) -> String {
    format!("{} events/s", thousands(events as f64 / secs))
}

/// User and system CPU time this thread has used so far, in seconds.
fn thread_cpu() -> (f64, f64) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` is a writable rusage buffer of the right size; RUSAGE_THREAD only reads
    // the calling thread's counters.
    let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()) };
    assert_eq!(r, 0, "getrusage: {}", std::io::Error::last_os_error());
    // SAFETY: zero-initialized above and filled by a successful getrusage.
    let ru = unsafe { ru.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// The audit section.
///
/// Appends are measured in rounds that alternate with a bare `write(2)` of the same lines,
/// so that each figure has a median and a p95 and a floor measured beside it: on a shared
/// VM the speed of the whole machine drifts by tens of percent within minutes, and one long
/// timing says more about that minute than about the log.
pub(crate) fn audit(b: &mut Bench) {
    println!("\n### Audit log\n");
    let rounds: usize = if b.quick { 4 } else { 10 };
    let dir = tempfile::Builder::new().prefix("skillbox-bench-audit-").tempdir().unwrap();
    let appends = Appends::measure(dir.path(), rounds, 20_000);
    let one_path = dir.path().join("one.jsonl");
    let eight = dir.path().join("eight.jsonl");
    let n = rounds as u64 * appends.per_round;
    let mut verify_lib = [Samples::new("one"), Samples::new("eight")];
    for _ in 0..5 {
        for (s, path) in verify_lib.iter_mut().zip([&one_path, &eight]) {
            let t = Instant::now();
            let r = verify(path).unwrap();
            s.times.push(t.elapsed());
            assert!(r.ok(), "{:?}", r.problems.first());
            assert_eq!(r.events, n);
        }
    }
    let mut verify_cli = Samples::new("cli");
    for _ in 0..3 {
        let t = Instant::now();
        let st = Command::new(&b.skillbox)
            .args(["audit", "verify", "--log"])
            .arg(&one_path)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        verify_cli.times.push(t.elapsed());
        assert!(st.success());
    }
    appends.print(n);
    let r1 = per_sec(appends.per_round, appends.samples[1].median_ms());
    println!("\n#### Verify\n");
    println!(
        "| what | events | n | median | p95 | events/s (median) | ratio vs 1-process append |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let vrow = |what: &str, s: &Samples| {
        let m = s.median_ms();
        println!(
            "| {what} | {} | {} | {} | {} | {} | {:.2}x |",
            thousands(n as f64),
            s.times.len(),
            fmt_ms(m),
            fmt_ms(s.p95_ms()),
            thousands(per_sec(n, m)),
            per_sec(n, m) / r1
        );
    };
    vrow("`verify` (library), 1-process log", &verify_lib[0]);
    vrow("`verify` (library), 8-process log", &verify_lib[1]);
    vrow("`skillbox audit verify --log` (new process), 1-process log", &verify_cli);

    let s1 = &appends.samples[1];
    b.verdicts.add(
        ">= 100,000 audit events/s from one process",
        format!(
            "{} (median of {rounds} rounds of {}; p95 round {}; bare `write(2)` of the same \
             lines {})",
            rate(appends.per_round, s1.median_ms() / 1e3),
            thousands(appends.per_round as f64),
            rate(appends.per_round, s1.p95_ms() / 1e3),
            rate(appends.per_round, appends.samples[0].median_ms() / 1e3),
        ),
        r1 >= 100_000.0,
    );
    let vr = per_sec(n, verify_lib[0].median_ms());
    b.verdicts.add(
        "`audit verify` >= 500,000 events/s",
        rate(n, verify_lib[0].median_ms() / 1e3),
        vr >= 500_000.0,
    );
}

/// Events per second of `ev` events in `ms` milliseconds.
fn per_sec(ev: u64, ms: f64) -> f64 {
    ev as f64 / (ms / 1e3)
}

/// The appends measured: one sample per variant, the events of one round of each, and the
/// CPU of the one-process appends.
struct Appends {
    per_round: u64,
    events: [u64; 4],
    samples: Vec<Samples>,
    user: f64,
    sys: f64,
}

impl Appends {
    /// `rounds` rounds of `per_round` events per variant into logs under `dir`, the variants
    /// alternating round by round.
    fn measure(dir: &Path, rounds: usize, per_round: u64) -> Self {
        let per_fsync_round = per_round / 100;
        // The line skillbox writes for this draft, for the bare-write baseline.
        let sample = dir.join("size.jsonl");
        append_n(&sample, 1, Durability::Write);
        let line = std::fs::read(&sample).unwrap();
        println!(
            "Events shaped like a run's closing event ({} bytes a line). Default durability \
             (`Durability::Write`, the documented one: one `write(2)` per event under an \
             `flock`, no fsync); `Durability::Fsync` for comparison. Rotation is off so that \
             each log is one file. {rounds} rounds of {} events (fsync: {}) per variant, the \
             variants alternating round by round, each log growing across its rounds. The \
             baseline writes the same line with one `write(2)` per event to an `O_APPEND` \
             file: no lock, chain, head, redaction or rendering.",
            line.len(),
            thousands(per_round as f64),
            thousands(per_fsync_round as f64),
        );
        let open = |name: &str, durability| {
            let mut config = LogConfig::new(dir.join(name));
            config.durability = durability;
            config.max_bytes = u64::MAX;
            AuditLog::open(config).unwrap()
        };
        let one = open("one.jsonl", Durability::Write);
        let fsync = open("fsync.jsonl", Durability::Fsync);
        let eight = dir.join("eight.jsonl");
        let bare = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join("bare.jsonl"))
            .unwrap();
        let d = draft();
        let labels = [
            "bare `write(2)` of the same line, 1 process (baseline)",
            "append, 1 process, default durability",
            "append, 8 processes at once, default durability",
            "append, 1 process, `Durability::Fsync`",
        ];
        let mut samples: Vec<Samples> = labels.iter().map(|l| Samples::new(*l)).collect();
        let (mut user, mut sys) = (0.0, 0.0);
        for r in 0..rounds {
            for k in 0..labels.len() {
                let j = (r + k) % labels.len();
                let t = Instant::now();
                match j {
                    0 => (0..per_round).for_each(|_| (&bare).write_all(&line).unwrap()),
                    1 => {
                        let (u0, s0) = thread_cpu();
                        for _ in 0..per_round {
                            one.append(&d).unwrap();
                        }
                        let (u1, s1) = thread_cpu();
                        (user, sys) = (user + u1 - u0, sys + s1 - s0);
                    }
                    2 => append_from_8_processes(&eight, per_round),
                    _ => {
                        for _ in 0..per_fsync_round {
                            fsync.append(&d).unwrap();
                        }
                    }
                }
                samples[j].times.push(t.elapsed());
            }
        }
        let events = [per_round, per_round, per_round, per_fsync_round];
        Appends { per_round, events, samples, user, sys }
    }

    /// The appends table, and the CPU per event over the `n` one-process appends.
    fn print(&self, n: u64) {
        let base = per_sec(self.per_round, self.samples[0].median_ms());
        println!("\n#### Appends\n");
        println!(
            "| what | rounds x events | median round | p95 round | events/s (median round) | \
             events/s (p95 round) | ratio vs baseline |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (s, ev) in self.samples.iter().zip(self.events) {
            let (m, p) = (s.median_ms(), s.p95_ms());
            println!(
                "| {} | {} x {} | {} | {} | {} | {} | {:.2}x |",
                s.label,
                s.times.len(),
                thousands(ev as f64),
                fmt_ms(m),
                fmt_ms(p),
                thousands(per_sec(ev, m)),
                thousands(per_sec(ev, p)),
                per_sec(ev, m) / base
            );
        }
        let per_event = |secs: f64| secs * 1e6 / n as f64;
        println!(
            "\nCPU of the 1-process appends (`getrusage` of the appending thread, all rounds): \
             {:.2} µs user and {:.2} µs system per event.",
            per_event(self.user),
            per_event(self.sys)
        );
    }
}

/// `per_round` events appended to `log` by 8 processes at once (this binary's
/// `__audit-append` worker).
fn append_from_8_processes(log: &Path, per_round: u64) {
    let workers: Vec<_> = (0..8)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .arg("__audit-append")
                .arg(log)
                .arg((per_round / 8).to_string())
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut w in workers {
        assert!(w.wait().unwrap().success());
    }
}
