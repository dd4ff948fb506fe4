//! The files the suite runs against: a workspace with the measured skills and filler skills,
//! a skillbox home with the audit log, and skill files for the registry benchmark.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use skillbox_skills::audit_log::{AuditLog, LogConfig};
use skillbox_skills::{Locations, Registry, Runtime, SkillTool, TrustLevel};

use crate::sessions;

/// The `python3` every comparison runs: the system's, not a version manager's shim.
pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// Bytes the output-flood skill writes.
pub(crate) const FLOOD_BYTES: u64 = 1 << 30;

/// A program a comparison runs, bare and as a skill.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Program {
    /// Short label for tables.
    pub label: &'static str,
    /// The skill that runs it.
    pub skill: &'static str,
    /// Absolute path of the program.
    pub path: &'static str,
    /// Its arguments.
    pub args: &'static [&'static str],
}

/// `/bin/true`, the spawn floor.
pub(crate) const TRUE: Program =
    Program { label: "/bin/true", skill: "bench-true", path: "/bin/true", args: &[] };

/// `/bin/true` as a skill that declares network (`network_access: true`): its own network
/// namespace and the egress proxy.
pub(crate) const TRUE_NET: Program = Program {
    label: "/bin/true, networked",
    skill: "bench-true-net",
    path: "/bin/true",
    args: &[],
};

/// `python3 -c pass`, an interpreter start.
pub(crate) const PYTHON_PASS: Program = Program {
    label: "python3 -c pass",
    skill: "bench-python",
    path: PYTHON,
    args: &["-c", "pass"],
};

impl Program {
    /// A `std::process::Command` for a bare run.
    pub(crate) fn command(&self) -> std::process::Command {
        let mut c = std::process::Command::new(self.path);
        c.args(self.args).stdin(std::process::Stdio::null());
        c
    }
}

/// A command skill that declares nothing beyond what `untrusted` grants, so that it runs at
/// every level.
fn command_skill(name: &str, command: &str, args: &[&str], description: &str) -> Value {
    json!({
        "name": name,
        "description": description,
        "version": "1.0.0",
        "type": "command",
        "command": command,
        "args": args,
        "parameters": [],
        "timeout": 10,
        "security": {
            "permissions": {"network_access": false, "process_spawn": "none"},
            "resource_limits": {"max_memory_mb": 64, "max_execution_time": 10}
        }
    })
}

/// A `code_session` skill of `python3` with the limits of [`command_skill`].
fn session_skill(name: &str) -> Value {
    let mut s = command_skill(name, PYTHON, &[], "A Python session");
    s["type"] = json!("code_session");
    s["args"] = json!([]);
    s
}

/// [`command_skill`] declaring `network_access: true` (which `untrusted` does not grant).
fn net_skill(name: &str, command: &str, description: &str) -> Value {
    let mut s = command_skill(name, command, &[], description);
    s["security"]["permissions"]["network_access"] = json!(true);
    s
}

/// Filler skill number `i`, of one of three shapes seen in real skill directories: a command
/// with a validated parameter, a prompt, and a command with an enum and an alias.
pub(crate) fn filler_skill(i: usize) -> Value {
    let name = format!("filler-{i:05}");
    match i % 3 {
        0 => json!({
            "name": name,
            "description": "Count the lines of a file in the workspace",
            "version": "1.0.0",
            "type": "command",
            "command": "wc",
            "args": ["-l", "{path}"],
            "parameters": [{
                "name": "path", "type": "string", "required": true,
                "pattern": "(?:[A-Za-z0-9_][A-Za-z0-9_.-]*/)*[A-Za-z0-9_][A-Za-z0-9_.-]*",
                "description": "A relative path inside the workspace"
            }],
            "timeout": 5,
            "security": {
                "permissions": {"file_read": ["."], "network_access": false, "process_spawn": "none"},
                "resource_limits": {"max_memory_mb": 64, "max_execution_time": 5}
            }
        }),
        1 => json!({
            "name": name,
            "description": "Prompt for a conventional commit message from a change summary",
            "version": "1.0.0",
            "type": "prompt_inline",
            "prompt": "Write a conventional commit message of type `{kind}` for this change.\n\n{summary}",
            "parameters": [
                {"name": "kind", "type": "enum", "values": ["feat", "fix", "docs", "refactor", "test"], "required": true},
                {"name": "summary", "type": "string", "required": true}
            ]
        }),
        _ => json!({
            "name": name,
            "description": "List markers in the workspace's source files",
            "version": "1.1.0",
            "type": "command",
            "command": "grep",
            "args": ["-rn", "{marker}", "src"],
            "aliases": [format!("todo-{i:05}")],
            "parameters": [{"name": "marker", "type": "enum", "values": ["TODO", "FIXME", "XXX"], "required": true}],
            "timeout": 10,
            "security": {"permissions": {"file_read": ["src"], "network_access": false, "process_spawn": "none"}}
        }),
    }
}

/// Writes `n` filler skill files into `dir`.
pub(crate) fn write_fillers(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let text = serde_json::to_string_pretty(&filler_skill(i)).unwrap();
        std::fs::write(dir.join(format!("filler-{i:05}.json")), text).unwrap();
    }
}

/// Writes `n` filler skill files into `dir`, only of the two shapes without a `pattern`
/// (no regex to compile).
pub(crate) fn write_fillers_without_patterns(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for j in 0..n {
        let i = 3 * (j / 2) + 1 + j % 2;
        let text = serde_json::to_string_pretty(&filler_skill(i)).unwrap();
        std::fs::write(dir.join(format!("filler-{i:05}.json")), text).unwrap();
    }
}

/// A workspace with the measured skills and filler skills (100 in all), and a skillbox home
/// holding the audit log, both removed on drop.
pub struct Fixture {
    /// Holds the workspace directory.
    _ws: tempfile::TempDir,
    /// Holds the skillbox home.
    _home: tempfile::TempDir,
    /// The workspace (canonical).
    pub workspace: PathBuf,
    /// `SKILLBOX_HOME` for `skillbox` processes.
    pub home: PathBuf,
    /// The runtime over the workspace, with the audit log.
    pub runtime: Arc<Runtime>,
}

/// Skills installed in the fixture's workspace in all.
pub(crate) const INSTALLED_SKILLS: usize = 100;

impl Fixture {
    /// Creates the workspace and opens a runtime over it.
    pub fn new() -> Self {
        let ws = tempfile::Builder::new().prefix("skillbox-bench-ws-").tempdir().unwrap();
        let home = tempfile::Builder::new().prefix("skillbox-bench-home-").tempdir().unwrap();
        let workspace = ws.path().canonicalize().unwrap();
        std::fs::create_dir_all(workspace.join("src")).unwrap();
        std::fs::write(workspace.join("src/main.py"), "# TODO: nothing\nprint('hi')\n").unwrap();
        let skills = workspace.join(".skillbox/skills");
        let measured = [
            command_skill(TRUE.skill, TRUE.path, TRUE.args, "Run /bin/true"),
            net_skill(TRUE_NET.skill, TRUE_NET.path, "Run /bin/true with network declared"),
            command_skill(PYTHON_PASS.skill, PYTHON, PYTHON_PASS.args, "Start python3 and exit"),
            session_skill(sessions::SESSION_SKILL),
            command_skill(
                sessions::INLINE_SKILL,
                PYTHON,
                &["-I", "-c", sessions::CODE],
                "The session benchmark's code in a fresh interpreter",
            ),
            command_skill(
                "bench-flood",
                "head",
                &["-c", &FLOOD_BYTES.to_string(), "/dev/zero"],
                "Write 1 GiB of zeros to stdout",
            ),
        ];
        write_fillers(&skills, INSTALLED_SKILLS - measured.len());
        for s in &measured {
            let name = s["name"].as_str().unwrap();
            std::fs::write(skills.join(format!("{name}.json")), s.to_string()).unwrap();
        }
        let home_path = home.path().canonicalize().unwrap();
        let audit_path = home_path.join("logs/embedded.jsonl");
        let locations = Locations {
            global: Vec::new(),
            workspace: vec![skills.clone()],
            builtins: true,
            ..Locations::default()
        };
        let registry = Registry::load(&locations);
        assert!(registry.problems().is_empty(), "fixture skills: {:?}", registry.problems());
        let log = AuditLog::open(LogConfig::new(&audit_path)).unwrap();
        let runtime = Arc::new(
            Runtime::with_registry(registry, &workspace).unwrap().with_audit(Arc::new(log)),
        );
        Self { _ws: ws, _home: home, workspace, home: home_path, runtime }
    }

    /// The tool for `skill` at `trust`.
    pub fn tool(&self, skill: &str, trust: TrustLevel) -> SkillTool {
        SkillTool::new(self.runtime.clone(), skill, Some(trust)).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_skills_parse() {
        let dir = tempfile::tempdir().unwrap();
        write_fillers(dir.path(), 6);
        let reg = Registry::load(&Locations {
            global: Vec::new(),
            workspace: vec![dir.path().to_path_buf()],
            builtins: false,
            ..Locations::default()
        });
        assert!(reg.problems().is_empty(), "{:?}", reg.problems());
        assert_eq!(reg.len(), 6);
    }
}
