//! `skillbox-bench`: the benchmark suite of issue 9. Every figure is measured side by side
//! with its baseline in the same run, interleaved, and printed as markdown tables with the
//! median, the p95 and the ratio, followed by each target of the issue set against what
//! this run measured.
//!
//! ```text
//! skillbox-bench [--quick] [--only SECTION,...] [--skillbox PATH] [--skillbox-dynamic PATH]
//! skillbox-bench --profile-loop bare|sandbox|limits|skill[@1g] N   # one variant in a loop, for perf
//! skillbox-bench --probe-cost N   # the host probe (scripts/bench-hosts.py)
//! ```
//!
//! Sections: `overhead`, `sporadic`, `alternatives`, `cold`, `registry`, `audit`, `parallel`,
//! `flood`, `egress`, `sessions`.
//! `scripts/bench.sh` builds in release mode (`skillbox` as a static PIE, and the default
//! dynamically linked build beside it for the cold section), installs bwrap and firejail,
//! and runs this.

use std::path::PathBuf;

use anyhow::{bail, Context};

mod audit;
mod cold;
mod egress;
mod fixture;
mod mem;
mod overhead;
mod parallel;
mod registry;
mod sessions;
mod stats;

/// Everything a section needs: the fixture, the async runtime, the options, and the
/// verdicts collected so far.
pub struct Bench {
    /// Fewer iterations, for a check in about a minute.
    pub quick: bool,
    /// The workspace, skills and runtime the runs use.
    pub fixture: fixture::Fixture,
    /// The multi-threaded runtime skills run on, as in an agent.
    pub rt: tokio::runtime::Runtime,
    /// Worker threads of `rt`.
    pub workers: usize,
    /// The `skillbox` binary for cold runs.
    pub skillbox: PathBuf,
    /// A second `skillbox` binary (the default, dynamically linked build) whose start the
    /// cold section times beside the first, if given.
    pub skillbox_dynamic: Option<PathBuf>,
    /// Targets and what was measured.
    pub verdicts: stats::Verdicts,
}

impl Bench {
    /// Rounds of alternating blocks in the overhead section. Short blocks and many rounds:
    /// the machine's speed drifts within seconds, and the 1 GiB target compares two medians
    /// taken in different blocks whose difference is now a tenth of a millisecond.
    pub fn rounds(&self) -> usize {
        if self.quick {
            2
        } else {
            16
        }
    }
}

/// Sections in the order they run.
const SECTIONS: [&str; 10] = [
    "overhead",
    "sporadic",
    "alternatives",
    "cold",
    "registry",
    "audit",
    "parallel",
    "flood",
    "egress",
    "sessions",
];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__audit-append") {
        // A worker of the 8-process audit benchmark.
        let path = args.get(1).context("log path")?;
        let n: u64 = args.get(2).context("count")?.parse()?;
        audit::append_n(path.as_ref(), n, skillbox_audit::Durability::Write);
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("--probe-cost") {
        // What finding out the host's mechanisms costs, once per process (see
        // skillbox_sandbox::HostSupport::probe: it makes a user namespace to know).
        let n: usize = args.get(1).context("--probe-cost needs a count")?.parse()?;
        let mut times: Vec<f64> = (0..n)
            .map(|_| {
                let t = std::time::Instant::now();
                std::hint::black_box(skillbox_sandbox::HostSupport::probe());
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let p95 = times[(n * 95 / 100).min(n - 1)];
        println!("HostSupport::probe: n={n} median {:.3} ms p95 {p95:.3} ms", times[n / 2]);
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("__cold-steps") {
        // A fresh process timing the steps of a cold run (see `cold::steps`).
        let ws = args.get(1).context("workspace")?;
        let log = args.get(2).context("audit log")?;
        cold::steps_worker(ws.as_ref(), log.as_ref());
        return Ok(());
    }
    let mut quick = false;
    let mut only: Vec<String> = SECTIONS.iter().map(|s| s.to_string()).collect();
    let mut skillbox = std::env::current_exe()?.with_file_name("skillbox");
    let mut skillbox_dynamic = None;
    let mut profile_loop: Option<(String, usize)> = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--only" => {
                let list = it.next().context("--only needs a list of sections")?;
                only = list.split(',').map(str::to_string).collect();
                if let Some(bad) = only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    bail!("unknown section `{bad}`; sections: {}", SECTIONS.join(", "));
                }
            }
            "--skillbox" => skillbox = it.next().context("--skillbox needs a path")?.into(),
            "--skillbox-dynamic" => {
                skillbox_dynamic =
                    Some(it.next().context("--skillbox-dynamic needs a path")?.into());
            }
            "--profile-loop" => {
                let what = it.next().context("--profile-loop needs a variant")?;
                let n = it.next().context("--profile-loop needs a count")?.parse()?;
                profile_loop = Some((what, n));
            }
            "-h" | "--help" => {
                println!(
                    "skillbox-bench [--quick] [--only SECTION,...] [--skillbox PATH] \
                     [--skillbox-dynamic PATH]\n\
                     skillbox-bench --profile-loop bare|sandbox|limits|skill[@1g] N   (for perf)\n\
                     sections: {}",
                    SECTIONS.join(", ")
                );
                return Ok(());
            }
            other => bail!("unknown argument `{other}` (see --help)"),
        }
    }
    raise_open_files();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let mut b = Bench {
        quick,
        fixture: fixture::Fixture::new(),
        rt,
        workers,
        skillbox,
        skillbox_dynamic,
        verdicts: stats::Verdicts::default(),
    };
    print_machine(&b);
    // One unmeasured run of each skill, so that caches (seccomp programs, the system part of
    // the Landlock ruleset, the page cache) are warm for every variant alike.
    for p in [fixture::TRUE, fixture::PYTHON_PASS] {
        for level in skillbox_skills::TrustLevel::ALL {
            let r = b.rt.block_on(b.fixture.tool(p.skill, level).execute(&serde_json::json!({})));
            if !r.is_success() {
                bail!("warm-up run of {} at {level} failed: {:?} {}", p.skill, r.message, r.stderr);
            }
        }
    }
    if let Some((what, n)) = profile_loop {
        return overhead::profile_loop(&b, &what, n);
    }
    for s in SECTIONS.iter().filter(|s| only.iter().any(|o| o == *s)) {
        match *s {
            "overhead" => overhead::overhead(&mut b),
            "sporadic" => overhead::sporadic(&mut b),
            "alternatives" => overhead::alternatives(&mut b),
            "cold" => cold::cold(&mut b),
            "registry" => registry::registry(&mut b),
            "audit" => audit::audit(&mut b),
            "parallel" => parallel::parallel(&mut b),
            "flood" => parallel::flood(&mut b),
            "egress" => egress::egress(&mut b),
            "sessions" => sessions::sessions(&mut b),
            _ => unreachable!("checked above"),
        }
    }
    b.verdicts.print();
    Ok(())
}

/// The machine and its load, printed before the tables.
fn print_machine(b: &Bench) {
    let sh = |cmd: &str| {
        std::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    println!("## skillbox-bench{}\n", if b.quick { " (quick)" } else { "" });
    println!("- date: {}", sh("date -u '+%Y-%m-%d %H:%M UTC'"));
    println!("- kernel: {} (`uname -r`), {} CPUs (`nproc`)", sh("uname -r"), sh("nproc"));
    println!("- Landlock ABI {}, running as {}", skillbox_sandbox::landlock_abi(), sh("id -un"));
    println!("- load before the run: {}", sh("cat /proc/loadavg"));
    println!("- commit: {}", sh("git rev-parse --short HEAD 2>/dev/null || echo unknown"));
    let v = |p: &str| match sh(&format!("{p} --version 2>/dev/null | head -n1")) {
        v if v.is_empty() => format!("{p}: no version (not installed, or it refuses this user)"),
        v => v,
    };
    println!("- {}; {}; python3 {}", v("bwrap"), v("firejail"), v(fixture::PYTHON));
    println!("- skillbox: `{}` ({})", b.skillbox.display(), linking(&b.skillbox));
    if let Some(d) = &b.skillbox_dynamic {
        println!("- skillbox, default build: `{}` ({})", d.display(), linking(d));
    }
}

/// How an executable is linked: an ELF with a `PT_INTERP` program header asks for the
/// dynamic loader. Read by hand, since `file` is not on a clean machine.
fn linking(path: &std::path::Path) -> &'static str {
    const PT_INTERP: u32 = 3;
    let Ok(elf) = std::fs::read(path) else { return "unreadable" };
    let num = |at: usize, len: usize| -> Option<u64> {
        let b = elf.get(at..at + len)?;
        Some(b.iter().rev().fold(0, |n, &x| n << 8 | u64::from(x)))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (num(0x20, 8), num(0x36, 2), num(0x38, 2))
    else {
        return "not a 64-bit ELF";
    };
    let interp = (0..phnum).any(|i| {
        let at = (phoff + i * phentsize) as usize;
        num(at, 4) == Some(u64::from(PT_INTERP))
    });
    if interp {
        "dynamically linked"
    } else {
        "statically linked"
    }
}

/// More descriptors for 64 runs at once (each holds pipes, a pidfd and cgroup files).
fn raise_open_files() {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into `l`, on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } == 0 {
        l.rlim_cur = l.rlim_max;
        // SAFETY: setrlimit reads one rlimit from `l`, on this stack.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) };
    }
}
