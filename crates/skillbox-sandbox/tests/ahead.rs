//! The base of a Landlock ruleset (handled rights and system rules) is built ahead, on
//! tokio's blocking pool, for the next run of a process. A run on a base built ahead must be
//! confined exactly like a run whose ruleset was built in full on its own path: several runs
//! one after another in one process (the first ones build in full, the later ones take a
//! base built ahead) are each allowed the file inside their grant and denied the one outside.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use skillbox_sandbox::{run, ChildSpec, ExitStatus};

#[test]
fn runs_on_a_ruleset_built_ahead_are_confined_like_the_first() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let granted = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    // World-readable, so that as any user only the sandbox stands between the child and
    // the file outside its grant.
    for (dir, text) in [(&granted, "inside"), (&outside, "outside-secret")] {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, format!("{text}\n")).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut spec = ChildSpec::new("/bin/sh", granted.path());
    // Shell built-ins only: the strict policy denies creating processes.
    spec.args = vec![
        "-c".into(),
        "if read -r l < \"$1\"; then echo \"ALLOWED $l\"; fi; \
         if read -r l < \"$2\"; then echo \"LEAKED $l\"; fi; exit 0"
            .into(),
        "sh".into(),
        granted.path().join("f").into(),
        outside.path().join("f").into(),
    ];
    spec.env = vec![("PATH".into(), "/usr/bin:/bin".into())];
    spec.policy.read = vec![granted.path().to_path_buf()];
    for i in 0..6 {
        let o = rt.block_on(run(&spec)).unwrap();
        let out = o.stdout.to_text();
        assert_eq!(o.status, ExitStatus::Exited(0), "run {i}: {out} {}", o.stderr.to_text());
        assert!(out.contains("ALLOWED inside"), "run {i}: the granted file: {out}");
        assert!(!out.contains("LEAKED") && !out.contains("outside-secret"), "run {i}: {out}");
        // Leave the blocking pool time to build the next base.
        std::thread::sleep(Duration::from_millis(30));
    }
}
