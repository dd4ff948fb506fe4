//! `scripts/install.sh`, `skillbox completions` and `skillbox man`, checked by what they
//! leave and what the installed pieces do: the binary runs from the prefix, bash's completion
//! completes commands and flags from the installed script, every manual page renders with
//! groff without a warning and names its command's flags, and `--uninstall` removes exactly
//! what was installed.

mod support;
use support::bin;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every file beneath `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// What bash's completion for skillbox offers for the words `line` (the last one being
/// completed), from the script at `script`.
fn complete(script: &Path, line: &[&str]) -> Vec<String> {
    let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         _skillbox skillbox '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words.join(" "),
        line.len() - 1,
        line.join(" "),
        line[line.len() - 1],
        line[line.len() - 2],
    );
    let out = Command::new("bash").args(["--norc", "-c", &program]).output().unwrap();
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn install_puts_a_working_binary_completions_and_pages_under_the_prefix() {
    let groff = Command::new("groff").arg("--version").output();
    assert!(
        groff.is_ok_and(|o| o.status.success()),
        "groff is not installed: run scripts/install-test-deps.sh (Debian: apt-get install \
         groff-base); the manual pages cannot be checked without it"
    );
    let d = tempfile::tempdir().unwrap();
    let prefix = d.path().join("pre fix"); // a space: the script must quote
    let out = Command::new(repo().join("scripts/install.sh"))
        .args(["--prefix", prefix.to_str().unwrap(), "--bin", &bin()])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}{}", String::from_utf8_lossy(&out.stderr));

    let installed = files(&prefix);
    for f in [
        "bin/skillbox",
        "share/bash-completion/completions/skillbox",
        "share/zsh/site-functions/_skillbox",
        "share/fish/vendor_completions.d/skillbox.fish",
        "share/man/man1/skillbox.1",
        "share/man/man1/skillbox-run.1",
        "share/man/man1/skillbox-audit-verify.1",
    ] {
        assert!(installed.contains(&PathBuf::from(f)), "{f} not installed: {installed:?}");
        assert!(printed.contains(prefix.join(f).to_str().unwrap()), "{f} not printed: {printed}");
    }
    assert!(installed.iter().all(|f| f.starts_with("bin") || f.starts_with("share")));

    // The installed binary runs.
    let sb = prefix.join("bin/skillbox");
    let v = Command::new(&sb).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("skillbox "), "{v:?}");

    // bash completes commands, a command's flags, and a flag's values from the script.
    let script = prefix.join("share/bash-completion/completions/skillbox");
    let got = complete(&script, &["skillbox", "au"]);
    assert_eq!(got, ["audit"], "{got:?}");
    let got = complete(&script, &["skillbox", "run", "--all"]);
    assert_eq!(got, ["--allow-weaker-isolation"], "{got:?}");
    let got = complete(&script, &["skillbox", "completions", "z"]);
    assert_eq!(got, ["zsh"], "{got:?}");
    // zsh and fish scripts name the commands too.
    for f in ["share/zsh/site-functions/_skillbox", "share/fish/vendor_completions.d/skillbox.fish"]
    {
        let text = std::fs::read_to_string(prefix.join(f)).unwrap();
        assert!(text.contains("allow-weaker-isolation") && text.contains("audit"), "{f}");
    }

    // Each page renders without a warning and names its command's options.
    let pages: Vec<&PathBuf> =
        installed.iter().filter(|f| f.starts_with("share/man/man1")).collect();
    assert!(pages.len() >= 12, "{pages:?}");
    for page in &pages {
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(prefix.join(page))
            .output()
            .unwrap();
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && warnings.is_empty(), "{page:?}: {warnings}");
    }
    let run = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(prefix.join("share/man/man1/skillbox-run.1"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    for flag in ["--params", "--trust", "--allow-weaker-isolation"] {
        assert!(text.contains(flag), "skillbox-run.1 lacks {flag}");
    }

    // --uninstall removes exactly what was installed.
    let out = Command::new(repo().join("scripts/install.sh"))
        .args(["--prefix", prefix.to_str().unwrap(), "--uninstall"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(files(&prefix), Vec::<PathBuf>::new());
}

#[test]
fn completions_and_man_go_to_stdout_and_a_closed_pipe_is_no_error() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(bin()).args(["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("skillbox"), "{shell}");
    }
    let out = Command::new(bin()).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
    let out = Command::new(bin()).arg("man").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH skillbox 1"));
    // stdout a pipe whose reader is gone (`skillbox man | head -1` once head has left): exit
    // 7, nothing on stderr, for both commands.
    for args in [&["man"][..], &["completions", "bash"][..]] {
        let out = Command::new(bin()).args(args).stdout(closed_pipe()).output().unwrap();
        assert_eq!(out.status.code(), Some(7), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The writing end of a pipe whose reading end is already closed: every write fails with
/// `EPIPE` (the child ignores `SIGPIPE`, as every Rust program does).
fn closed_pipe() -> std::process::Stdio {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
    // SAFETY: fds[0] was just returned by pipe(2) and is owned by nothing else.
    drop(unsafe { OwnedFd::from_raw_fd(fds[0]) });
    // SAFETY: fds[1] was just returned by pipe(2) and is owned by nothing else.
    std::process::Stdio::from(unsafe { OwnedFd::from_raw_fd(fds[1]) })
}
