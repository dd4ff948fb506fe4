//! `skillbox init`: a new skill that validates and runs as written, declaring the least it
//! can (no reads beyond the system directories, no writes, no network, no new processes,
//! small limits), so that a person starts from a skill that asks for nothing and adds what
//! it needs, each addition a visible line.
//!
//! The files are made with `O_EXCL` (never over an existing file) and checked by loading them
//! with the same registry that `validate` uses before the scaffold is reported done.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// Which kind of skill to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaffoldKind {
    /// A JSON command skill in `<workspace>/.skillbox/skills/NAME.json`.
    Json,
    /// An Agent Skill directory `<workspace>/.agents/skills/NAME/` with `SKILL.md` and one
    /// script, `scripts/main.py`.
    AgentSkill,
}

/// What [`scaffold`] made.
#[derive(Debug, Clone)]
pub struct Scaffolded {
    /// The files written, in the order written.
    pub files: Vec<PathBuf>,
    /// The skill to run to try it (for an Agent Skill, its script's skill).
    pub run_name: String,
    /// Parameters that make a first run succeed.
    pub example_params: Value,
}

/// Why a skill could not be made. Nothing is left behind on error but the directories made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name breaks the rule for this kind of skill.
    #[error("skill name {name}: {reason}")]
    Name {
        /// The name, escaped for one line.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A file or directory of the scaffold is already there.
    #[error("{} already exists; choose another name or remove it first", crate::audit_log::text::path(.0))]
    Exists(PathBuf),
    /// A file could not be written.
    #[error("cannot write {}: {source}", crate::audit_log::text::path(path))]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The files were written but do not load: a bug in the templates, reported, not hidden.
    #[error("the new skill does not validate (a bug in skillbox's template): {0}")]
    Invalid(String),
}

/// The longest name whose MCP tool name fits the 64 characters agents allow, with the
/// `mcp__skillbox__` prefix (15 characters) Claude Code puts before it.
pub const MCP_FRIENDLY_NAME_LEN: usize = 64 - "mcp__skillbox__".len();

/// Makes a new skill named `name` of `kind` in `workspace`.
pub fn scaffold(
    workspace: &Path,
    name: &str,
    kind: ScaffoldKind,
) -> Result<Scaffolded, ScaffoldError> {
    let bad = |reason: String| ScaffoldError::Name {
        name: crate::audit_log::text::one_line(name, 80),
        reason,
    };
    // The Agent Skills rule for both kinds: lowercase, digits and single hyphens, which every
    // agent accepts as a tool name; the JSON format allows more, but a new skill need not.
    crate::agent::check_agent_name(name).map_err(bad)?;
    if name.len() > MCP_FRIENDLY_NAME_LEN {
        return Err(bad(format!(
            "at most {MCP_FRIENDLY_NAME_LEN} characters, so that its MCP tool name \
             (mcp__skillbox__{name}) stays within the 64 agents allow"
        )));
    }
    let made = match kind {
        ScaffoldKind::Json => json_skill(workspace, name)?,
        ScaffoldKind::AgentSkill => agent_skill(workspace, name)?,
    };
    let reg = crate::Registry::load_paths(&[match kind {
        ScaffoldKind::Json => made.files[0].clone(),
        ScaffoldKind::AgentSkill => workspace.join(".agents/skills").join(name),
    }]);
    if let Some(d) = reg.problems().first() {
        return Err(ScaffoldError::Invalid(d.to_string()));
    }
    if reg.get(&made.run_name).is_err() {
        return Err(ScaffoldError::Invalid(format!("no skill {} was loaded", made.run_name)));
    }
    Ok(made)
}

fn json_skill(workspace: &Path, name: &str) -> Result<Scaffolded, ScaffoldError> {
    let dir = workspace.join(".skillbox/skills");
    let path = dir.join(format!("{name}.json"));
    let def = json!({
        "name": name,
        "description": format!("Say what {name} does and when a model should use it"),
        "version": "0.1.0",
        "type": "command",
        "command": "echo",
        "args": ["{message}"],
        "parameters": [{
            "name": "message",
            "type": "string",
            "required": true,
            "description": "What to print",
            "pattern": "[A-Za-z0-9 ,.!?-]{1,200}"
        }],
        "timeout": 10,
        "security": {
            "permissions": {
                "file_read": [],
                "file_write": [],
                "network_access": false,
                "process_spawn": "none"
            },
            "resource_limits": {"max_memory_mb": 64, "max_execution_time": 10}
        }
    });
    let mut text = serde_json::to_string_pretty(&def).unwrap_or_default();
    text.push('\n');
    mkdirs(&dir)?;
    create(&path, text.as_bytes(), false)?;
    Ok(Scaffolded {
        files: vec![path],
        run_name: name.to_string(),
        example_params: json!({"message": "hello"}),
    })
}

fn agent_skill(workspace: &Path, name: &str) -> Result<Scaffolded, ScaffoldError> {
    let dir = workspace.join(".agents/skills").join(name);
    if dir.symlink_metadata().is_ok() {
        return Err(ScaffoldError::Exists(dir));
    }
    let skill_md = format!(
        "---\n\
         name: {name}\n\
         description: Say what {name} does and when a model should use it.\n\
         skillbox:\n  \
         permissions:\n    \
         file_read: []\n    \
         file_write: []\n    \
         network_access: false\n    \
         process_spawn: none\n  \
         resource_limits:\n    \
         max_execution_time: 10\n    \
         max_memory_mb: 64\n\
         ---\n\
         \n\
         # {name}\n\
         \n\
         Run the `main` script (the tool `{name}--main`) with the words to count:\n\
         \n    \
         scripts/main.py some words here\n\
         \n\
         It prints how many words it was given, and each one.\n"
    );
    let script = "#!/usr/bin/env python3\n\
                  \"\"\"Prints how many arguments it was given, and each one.\"\"\"\n\
                  import sys\n\
                  \n\
                  words = sys.argv[1:]\n\
                  print(f\"{len(words)} word(s)\")\n\
                  for w in words:\n    \
                  print(w)\n";
    mkdirs(&dir.join("scripts"))?;
    let md = dir.join("SKILL.md");
    let py = dir.join("scripts/main.py");
    create(&md, skill_md.as_bytes(), false)?;
    create(&py, script.as_bytes(), true)?;
    Ok(Scaffolded {
        files: vec![md, py],
        run_name: format!("{name}--main"),
        example_params: json!({"args": "hello world"}),
    })
}

fn mkdirs(dir: &Path) -> Result<(), ScaffoldError> {
    std::fs::create_dir_all(dir).map_err(|source| ScaffoldError::Io { path: dir.into(), source })
}

/// Writes a new file, never over an existing one (`O_EXCL`, no link followed).
fn create(path: &Path, bytes: &[u8], executable: bool) -> Result<(), ScaffoldError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(
            |source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => ScaffoldError::Exists(path.into()),
                _ => ScaffoldError::Io { path: path.into(), source },
            },
        )?;
    f.write_all(bytes).map_err(|source| ScaffoldError::Io { path: path.into(), source })
}
