//! Per-execution overhead: a bare spawn against the same program run through `SkillTool`
//! at each trust level, from a small embedding process and from one holding 1 GiB; and the
//! same program confined by bwrap and by firejail.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use skillbox_sandbox::{ChildSpec, ExitStatus, Policy};
use skillbox_skills::{SkillTool, Tool, TrustLevel};

use crate::fixture::{Program, PYTHON_PASS, TRUE};
use crate::stats::{fmt_ms, print_time_table, Samples};
use crate::Bench;

/// One way of running a program.
#[derive(Debug, Clone)]
enum Variant {
    /// `Command::output()`: stdin `/dev/null`, stdout and stderr captured (the baseline).
    BareOutput,
    /// `Command::status()`: nothing captured.
    BareStatus,
    /// `Command` with an empty `pre_exec`, which makes std fork the parent.
    ForkPath,
    /// `skillbox_sandbox::run` with the strict policy and a PID namespace: the kernel
    /// confinement alone, without the skills layer (no cgroup, no audit, no private dir).
    SandboxOnly,
    /// [`Variant::SandboxOnly`] plus the memory and CPU limits of `untrusted` (64 MiB, 25%),
    /// which create a cgroup per run where skillbox can (as root).
    SandboxLimits,
    /// `SkillTool::invoke` at a trust level: every layer, audit events written.
    Skill(TrustLevel),
    /// `bwrap` with comparable confinement.
    Bwrap,
    /// `firejail` with comparable confinement.
    Firejail,
}

impl Variant {
    fn label(&self) -> String {
        match self {
            Self::BareOutput => "bare spawn: `Command::output()` (baseline)".into(),
            Self::BareStatus => "bare spawn: `Command::status()`, nothing captured".into(),
            Self::ForkPath => "`Command` + empty `pre_exec` (std forks the parent)".into(),
            Self::SandboxOnly => {
                "`skillbox_sandbox::run`, strict policy + PID ns (no skills layer)".into()
            }
            Self::SandboxLimits => {
                "`skillbox_sandbox::run`, as above + memory and CPU limits (cgroups as root)".into()
            }
            Self::Skill(l) => format!("skillbox `SkillTool::invoke`, {l}"),
            Self::Bwrap => {
                "bwrap (user, PID, net, IPC, UTS, cgroup ns; ro binds; caps dropped)".into()
            }
            Self::Firejail => {
                "firejail (net none, seccomp, caps dropped, nonewprivs, private /dev)".into()
            }
        }
    }
}

/// Runs `prog` once as `variant` and returns the wall time. Panics when the run fails: a
/// figure of a failed run would be meaningless.
fn run_once(b: &Bench, prog: &Program, variant: &Variant, tools: &[SkillTool; 3]) -> Duration {
    let bare = |mut c: std::process::Command| {
        let t = Instant::now();
        let st = c.stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
        let d = t.elapsed();
        assert!(st.success(), "{variant:?} of {} failed: {st}", prog.label);
        d
    };
    match variant {
        Variant::BareOutput => {
            let t = Instant::now();
            let out = prog.command().output().unwrap();
            let d = t.elapsed();
            assert!(out.status.success());
            d
        }
        Variant::BareStatus => bare(prog.command()),
        Variant::ForkPath => {
            let mut c = prog.command();
            // SAFETY: the closure does nothing, so it is async-signal-safe in the forked child.
            unsafe {
                c.pre_exec(|| Ok(()));
            }
            bare(c)
        }
        Variant::SandboxOnly | Variant::SandboxLimits => {
            let mut spec = ChildSpec::new(prog.path, &b.fixture.workspace);
            spec.args = prog.args.iter().map(Into::into).collect();
            spec.env = vec![("PATH".into(), skillbox_skills::DEFAULT_PATH.into())];
            spec.policy = Policy::strict();
            spec.policy.read = vec![b.fixture.workspace.clone()];
            spec.policy.pid_namespace = true;
            if matches!(variant, Variant::SandboxLimits) {
                spec.policy.rlimits.memory = Some(64 << 20);
                spec.policy.rlimits.cpu_percent = Some(25);
            }
            let t = Instant::now();
            let o = b.rt.block_on(skillbox_sandbox::run(&spec)).unwrap();
            let d = t.elapsed();
            assert_eq!(o.status, ExitStatus::Exited(0), "{:?}", o.stderr.to_text());
            d
        }
        Variant::Skill(level) => {
            let tool = &tools[TrustLevel::ALL.iter().position(|l| l == level).unwrap()];
            let t = Instant::now();
            let r = b.rt.block_on(tool.invoke(serde_json::json!({})));
            let d = t.elapsed();
            assert!(!r.is_error, "{} at {level}: {}", prog.label, r.text);
            d
        }
        Variant::Bwrap => bare(bwrap_command(b, prog)),
        Variant::Firejail => bare(firejail_command(b, prog)),
    }
}

/// bwrap confining `prog` about as a skill at `untrusted` is confined: every namespace it
/// offers (so no network), system directories and the workspace read-only, a private `/tmp`,
/// a minimal `/dev`, a new session, no capabilities, a clean environment. bwrap installs no
/// seccomp filter unless given a compiled one.
pub(crate) fn bwrap_command(b: &Bench, prog: &Program) -> std::process::Command {
    let ws = b.fixture.workspace.to_str().unwrap();
    let mut c = std::process::Command::new("bwrap");
    c.args(["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"])
        .args(["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin"])
        .args(["--symlink", "usr/sbin", "/sbin", "--symlink", "usr/lib", "/lib"])
        .args(["--symlink", "usr/lib64", "/lib64", "--ro-bind", "/etc", "/etc"])
        .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
        .args(["--ro-bind", ws, ws, "--chdir", ws, "--clearenv"])
        .args(["--setenv", "PATH", skillbox_skills::DEFAULT_PATH, "--"])
        .arg(prog.path)
        .args(prog.args)
        .stdin(Stdio::null());
    c
}

/// firejail confining `prog`: no network, its default seccomp filter, no capabilities,
/// `no_new_privs`, a private `/dev`, the workspace read-only, no profile.
pub(crate) fn firejail_command(b: &Bench, prog: &Program) -> std::process::Command {
    let mut c = std::process::Command::new("firejail");
    c.args(["--quiet", "--noprofile", "--net=none", "--caps.drop=all", "--nonewprivs"])
        .args(["--seccomp", "--private-dev"])
        .arg(format!("--read-only={}", b.fixture.workspace.display()))
        .arg("--")
        .arg(prog.path)
        .args(prog.args)
        .current_dir(&b.fixture.workspace)
        .stdin(Stdio::null());
    c
}

/// True when `program` can be found in `PATH`.
/// Why `c` does not run successfully, from its status and the first line of its stderr;
/// `None` when it does.
fn refusal(mut c: std::process::Command) -> Option<String> {
    match c.stdin(Stdio::null()).stdout(Stdio::null()).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            Some(format!("{}: {}", out.status, err.lines().next().unwrap_or("no message")))
        }
        Err(e) => Some(e.to_string()),
    }
}

pub(crate) fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Samples of every variant for one program, in the order given.
struct Series {
    variants: Vec<Variant>,
    samples: Vec<Samples>,
}

impl Series {
    fn new(variants: Vec<Variant>, suffix: &str) -> Self {
        let samples = variants.iter().map(|v| Samples::new(v.label() + suffix)).collect();
        Self { variants, samples }
    }

    fn find(&self, v: &Variant) -> &Samples {
        let i = self.variants.iter().position(|x| x.label() == v.label()).unwrap();
        &self.samples[i]
    }

    /// Median overhead of `v` over the baseline (index 0), in ms.
    fn overhead(&self, v: &Variant) -> f64 {
        self.find(v).median_ms() - self.samples[0].median_ms()
    }

    fn print(&self, title: &str) {
        let rows: Vec<&Samples> = self.samples.iter().collect();
        print_time_table(title, &rows, 0);
    }
}

/// Runs `iterations` of every variant of `series`, interleaved: each iteration runs each
/// variant once, starting from a different one each time, so that drift of the machine
/// hits them alike. The fork path runs after the others, once per `fork_every` iterations
/// (it is slow from a large parent): a fork write-protects every page of the parent until
/// they are written again, so the runs that followed it in the rotation paid copy-on-write
/// faults in the parent that belong to the fork, not to them (0.05 to 0.1 ms on the
/// `SkillTool` rows of the 1 GiB blocks, which touch more of the parent's pages).
fn interleave(
    b: &Bench,
    prog: &Program,
    series: &mut Series,
    iterations: usize,
    fork_every: usize,
    idle: Duration,
) {
    let tools = [
        b.fixture.tool(prog.skill, TrustLevel::Untrusted),
        b.fixture.tool(prog.skill, TrustLevel::UserVerified),
        b.fixture.tool(prog.skill, TrustLevel::SystemTrusted),
    ];
    let n = series.variants.len();
    let fork = |v: &Variant| matches!(v, Variant::ForkPath);
    for i in 0..iterations {
        for k in 0..n {
            let j = (i + k) % n;
            if fork(&series.variants[j]) {
                continue;
            }
            if !idle.is_zero() {
                std::thread::sleep(idle);
            }
            let d = run_once(b, prog, &series.variants[j], &tools);
            series.samples[j].times.push(d);
        }
    }
    if let Some(j) = series.variants.iter().position(fork) {
        for _ in 0..iterations.div_ceil(fork_every) {
            if !idle.is_zero() {
                std::thread::sleep(idle);
            }
            let d = run_once(b, prog, &series.variants[j], &tools);
            series.samples[j].times.push(d);
        }
    }
}

/// 1 GiB, every page touched, as an embedding agent might hold.
struct Ballast {
    _held: Vec<u8>,
}

impl Ballast {
    fn new(bytes: usize) -> Self {
        let mut v = vec![0u8; bytes];
        for i in (0..bytes).step_by(4096) {
            v[i] = 1;
        }
        std::hint::black_box(&mut v);
        Self { _held: v }
    }
}

fn skill_variants() -> Vec<Variant> {
    let mut v = vec![
        Variant::BareOutput,
        Variant::BareStatus,
        Variant::ForkPath,
        Variant::SandboxOnly,
        Variant::SandboxLimits,
    ];
    v.extend(TrustLevel::ALL.iter().map(|l| Variant::Skill(*l)));
    v
}

/// The overhead section: `/bin/true` and `python3 -c pass`, bare and through `SkillTool` at
/// each level, from a small parent and from a parent holding 1 GiB, in alternating blocks.
pub(crate) fn overhead(b: &mut Bench) {
    println!("\n### Per-execution overhead through `SkillTool`\n");
    println!(
        "Each iteration runs every variant once, in rotating order. Blocks with and without \
         1 GiB of touched memory in the embedding process alternate ({} rounds). The tokio \
         runtime is multi-threaded ({} workers), as an agent's usually is. The skills here \
         declare no network; a networked run's own network namespace and proxy are measured \
         in the `egress` section.",
        b.rounds(),
        b.workers
    );
    let (iter_true, iter_py) = if b.quick { (40, 6) } else { (38, 7) };
    let progs = [(TRUE, iter_true), (PYTHON_PASS, iter_py)];
    let mut small: Vec<Series> = progs.iter().map(|_| Series::new(skill_variants(), "")).collect();
    let mut large: Vec<Series> = progs.iter().map(|_| Series::new(skill_variants(), "")).collect();
    let mut rss_held = 0;
    for _round in 0..b.rounds() {
        for (p, (prog, it)) in progs.iter().enumerate() {
            interleave(b, prog, &mut small[p], *it, 1, Duration::ZERO);
        }
        let ballast = Ballast::new(1 << 30);
        rss_held = rss_held.max(crate::mem::status_kib("VmRSS"));
        for (p, (prog, it)) in progs.iter().enumerate() {
            interleave(b, prog, &mut large[p], *it, 5, Duration::ZERO);
        }
        drop(ballast);
    }
    for (p, (prog, _)) in progs.iter().enumerate() {
        small[p].print(&format!("{}, embedding process small", prog.label));
        large[p].print(&format!(
            "{}, embedding process holding 1 GiB (RSS {} MiB)",
            prog.label,
            rss_held >> 10
        ));
    }

    println!("\n#### Overhead over the bare spawn: small parent against 1 GiB parent\n");
    println!("| program | variant | overhead, small | overhead, 1 GiB | change |");
    println!("|---|---|---:|---:|---:|");
    for (p, (prog, _)) in progs.iter().enumerate() {
        for v in skill_variants().iter().skip(1) {
            let (o0, o1) = (small[p].overhead(v), large[p].overhead(v));
            println!(
                "| {} | {} | {} | {} | {:+.0}% |",
                prog.label,
                v.label(),
                fmt_ms(o0),
                fmt_ms(o1),
                (o1 - o0) / o0.abs() * 100.0
            );
        }
    }
    let t = &small[0];
    for level in TrustLevel::ALL {
        let o = t.overhead(&Variant::Skill(level));
        b.verdicts.add(
            format!("median overhead per execution <= 0.25 ms over the bare spawn (`/bin/true`, {level})"),
            format!("{} (bare {}, skill {})", fmt_ms(o), fmt_ms(t.samples[0].median_ms()), fmt_ms(t.find(&Variant::Skill(level)).median_ms())),
            o <= 0.25,
        );
    }
    for level in TrustLevel::ALL {
        let v = Variant::Skill(level);
        let (o0, o1) = (small[0].overhead(&v), large[0].overhead(&v));
        let change = (o1 - o0) / o0.abs();
        b.verdicts.add(
            format!("overhead with a 1 GiB embedding process no more than 10% above the small parent's (`/bin/true`, {level})"),
            format!("{} against {} ({:+.1}%)", fmt_ms(o1), fmt_ms(o0), change * 100.0),
            change <= 0.10,
        );
    }
    components(b);
}

/// Parts of a skill run that happen outside the child's spawn, timed alone (interleaved):
/// the run's private directory as `skillbox-skills` makes it (`skillbox-run-XXXX/{home,tmp}`
/// in the system temp directory, removed afterwards), and the two audit events of a run.
fn components(b: &Bench) {
    use std::os::unix::fs::PermissionsExt;
    let n = if b.quick { 200 } else { 1000 };
    let dir = tempfile::Builder::new().prefix("skillbox-bench-parts-").tempdir().unwrap();
    let log =
        skillbox_audit::AuditLog::open(skillbox_audit::LogConfig::new(dir.path().join("l.jsonl")))
            .unwrap();
    let draft = crate::audit::draft();
    let mut private = Samples::new(format!(
        "private directory: create `{}/skillbox-run-XXXX/{{home,tmp}}`, then remove it (paid \
         only after a run that changed its directory, off the run's path: removed after the \
         result, the next made ahead; a directory left as made serves the next run instead)",
        std::env::temp_dir().display()
    ));
    let mut audit =
        Samples::new("two audit events appended (opening and closing, about 1 KB each)");
    for _ in 0..n {
        let t = Instant::now();
        let d = tempfile::Builder::new().prefix("skillbox-run-").tempdir().unwrap();
        for sub in ["home", "tmp"] {
            std::fs::create_dir(d.path().join(sub)).unwrap();
            std::fs::set_permissions(d.path().join(sub), std::fs::Permissions::from_mode(0o700))
                .unwrap();
        }
        drop(d);
        private.times.push(t.elapsed());
        let t = Instant::now();
        log.append(&draft).unwrap();
        log.append(&draft).unwrap();
        audit.times.push(t.elapsed());
    }
    println!("\n#### Parts of a skill run outside the spawn, timed alone\n");
    println!("| part | n | median | p95 |");
    println!("|---|---:|---:|---:|");
    for s in [&private, &audit] {
        println!(
            "| {} | {} | {} | {} |",
            s.label,
            s.times.len(),
            fmt_ms(s.median_ms()),
            fmt_ms(s.p95_ms())
        );
    }
}

/// bwrap and firejail running the same programs, interleaved with the bare spawn and with
/// skillbox at `untrusted` (the level whose confinement is closest to theirs).
pub(crate) fn alternatives(b: &mut Bench) {
    println!("\n### Side by side with bwrap and firejail\n");
    let mut variants =
        vec![Variant::BareOutput, Variant::SandboxOnly, Variant::Skill(TrustLevel::Untrusted)];
    for (tool, v) in [("bwrap", Variant::Bwrap), ("firejail", Variant::Firejail)] {
        if !have(tool) {
            println!(
                "{tool} is not installed: its rows are missing (scripts/bench.sh installs it).\n"
            );
            continue;
        }
        // Installed is not enough: firejail refuses users missing from firejail.users, and
        // bwrap fails where user namespaces are off. Said here, not hidden in a panic.
        let trial = match v {
            Variant::Bwrap => bwrap_command(b, &TRUE),
            _ => firejail_command(b, &TRUE),
        };
        match refusal(trial) {
            None => variants.push(v),
            Some(why) => println!(
                "{tool} is installed but does not run `/bin/true` here ({why}): its rows are \
                 missing.\n"
            ),
        }
    }
    println!(
        "Commands: `{:?}` and `{:?}` (shown for `/bin/true`).",
        bwrap_command(b, &TRUE),
        firejail_command(b, &TRUE)
    );
    let (iter_true, iter_py) = if b.quick { (30, 6) } else { (150, 25) };
    let mut true_series = Series::new(variants.clone(), "");
    interleave(b, &TRUE, &mut true_series, iter_true, 1, Duration::ZERO);
    true_series.print("`/bin/true`: skillbox at untrusted, bwrap and firejail");
    let mut py_series = Series::new(variants.clone(), "");
    interleave(b, &PYTHON_PASS, &mut py_series, iter_py, 1, Duration::ZERO);
    py_series.print("`python3 -c pass`: skillbox at untrusted, bwrap and firejail");

    let ours = true_series.overhead(&Variant::Skill(TrustLevel::Untrusted));
    if variants.iter().any(|v| matches!(v, Variant::Bwrap)) {
        let theirs = true_series.overhead(&Variant::Bwrap);
        b.verdicts.add(
            "at least 10 times less overhead than bwrap (`/bin/true`, untrusted)",
            format!(
                "bwrap {} over bare, skillbox {}: {:.1}x less",
                fmt_ms(theirs),
                fmt_ms(ours),
                theirs / ours
            ),
            theirs / ours >= 10.0,
        );
    }
}

/// Runs as an agent makes them: one now and then, not back to back. Each run follows 50 ms
/// in which the bench does nothing (not timed). Joining a cgroup through `cgroup.procs`
/// takes a lock whose first writer after a quiet spell waits for an RCU grace period, which
/// back-to-back loops never see; this section shows what a sporadic run pays.
pub(crate) fn sporadic(b: &mut Bench) {
    let idle = Duration::from_millis(50);
    println!("\n### Sporadic runs (50 ms idle before each)\n");
    println!(
        "The same `/bin/true` comparison, but every run (bare ones too) follows {} ms in which \
         the embedding process is idle, as between an agent's tool calls. Moving a process \
         into a cgroup through `cgroup.procs` takes `cgroup_threadgroup_rwsem` for writing, \
         and the first writer after a quiet spell waits for an RCU grace period (12 ms here); \
         back-to-back loops never pay it. On cgroup v1 the child therefore joins through \
         `tasks` (a thread moving itself skips that lock).",
        idle.as_millis()
    );
    let mut variants = vec![Variant::BareOutput, Variant::SandboxOnly, Variant::SandboxLimits];
    variants.extend(TrustLevel::ALL.iter().map(|l| Variant::Skill(*l)));
    let mut series = Series::new(variants, "");
    interleave(b, &TRUE, &mut series, if b.quick { 10 } else { 40 }, 1, idle);
    series.print("`/bin/true`, each run after 50 ms idle");
    for level in TrustLevel::ALL {
        let o = series.overhead(&Variant::Skill(level));
        b.verdicts.add(
            format!("median overhead <= 0.25 ms over the bare spawn, sporadic runs (`/bin/true`, {level}, 50 ms idle before each)"),
            fmt_ms(o),
            o <= 0.25,
        );
    }
}

/// Runs `/bin/true` `n` times as `what` (`bare`, `sandbox`, `limits` or `skill`, the last at
/// untrusted; with `@1g` appended, from a process holding 1 GiB) and prints the median: a loop to put under `perf record`, for finding where
/// one layer's time goes (`skillbox-bench --profile-loop skill 5000`).
pub(crate) fn profile_loop(b: &Bench, what: &str, n: usize) -> anyhow::Result<()> {
    // `VARIANT@1g`: the same, with 1 GiB of touched memory held by the process.
    let (what, _ballast) = match what.strip_suffix("@1g") {
        Some(w) => (w, Some(Ballast::new(1 << 30))),
        None => (what, None),
    };
    let variant = match what {
        "bare" => Variant::BareOutput,
        "sandbox" => Variant::SandboxOnly,
        "limits" => Variant::SandboxLimits,
        "skill" => Variant::Skill(TrustLevel::Untrusted),
        other => anyhow::bail!(
            "--profile-loop: unknown variant `{other}` (bare, sandbox, limits, skill)"
        ),
    };
    let tools = TrustLevel::ALL.map(|l| b.fixture.tool(TRUE.skill, l));
    let mut s = Samples::new(variant.label());
    for _ in 0..n {
        s.times.push(run_once(b, &TRUE, &variant, &tools));
    }
    println!("{}: n={n} median {} p95 {}", s.label, fmt_ms(s.median_ms()), fmt_ms(s.p95_ms()));
    Ok(())
}
