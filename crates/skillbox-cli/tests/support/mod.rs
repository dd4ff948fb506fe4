//! What the CLI's test files share.

#![allow(dead_code)] // each test binary uses some of it

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `skillbox` binary under test: the one cargo built for these tests, or the one
/// `SKILLBOX_TEST_BIN` names. `scripts/test.sh` runs these tests a second time that way,
/// against the static build of `scripts/build-static.sh`, so that the binary the benchmarks
/// time is also the one the tests check.
pub(crate) fn bin() -> String {
    match std::env::var("SKILLBOX_TEST_BIN") {
        Ok(path) if !path.is_empty() => path,
        _ => env!("CARGO_BIN_EXE_skillbox").to_string(),
    }
}

/// The Python interpreter that has the official MCP SDK: `SKILLBOX_TEST_PYTHON`, else the
/// virtual environment scripts/install-test-deps.sh creates.
pub(crate) fn sdk_python() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("SKILLBOX_TEST_PYTHON") {
        candidates.push(p.into());
    }
    candidates.push("/opt/skillbox-test-venv/bin/python".into());
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cache/skillbox-test-venv/bin/python"));
    }
    for c in &candidates {
        let ok = Command::new(c)
            .args(["-c", "import mcp, anyio"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return c.clone();
        }
    }
    panic!(
        "THE OFFICIAL MCP PYTHON SDK IS NOT INSTALLED, so the MCP client tests cannot run. \
         Run scripts/install-test-deps.sh (it creates /opt/skillbox-test-venv as root, or \
         ~/.cache/skillbox-test-venv otherwise), or point SKILLBOX_TEST_PYTHON at a Python \
         with `pip install mcp==2.3.0`. Looked in: {candidates:?}"
    );
}
