//! Agent Skills: the directory format most skills are published in today.
//!
//! An Agent Skill is a directory holding `SKILL.md`: YAML front matter (`name`,
//! `description` and optional fields) and Markdown instructions for a model, with
//! `scripts/`, `references/` and `assets/` beside it. Agents read the instructions and run the
//! scripts with whatever rights the agent has; skillbox runs each script as a skill of its
//! own, confined like any other.
//!
//! One directory becomes several registry entries:
//!
//! * `NAME`: a prompt skill whose output is the instructions (the body of `SKILL.md`), so
//!   that a model reads them only when it asks (progressive disclosure);
//! * `NAME--SCRIPT` for each runnable file `scripts/SCRIPT.EXT`: a command skill that runs
//!   the script with the interpreter its extension names, taking one string parameter,
//!   `args`, split into words like a shell would (no shell runs). `--` cannot occur in an
//!   Agent Skill name, so the two parts never clash.
//!
//! Permissions come from where skills already declare them: a `skillbox` block in the front
//! matter (the JSON format's `security` object: `permissions`, `resource_limits`), else the
//! `permissions` of Codex's `agents/openai.yaml` (`network`, `fs_read`, `fs_write`, paths
//! relative to the skill's directory). Nothing declared means nothing beyond the defaults:
//! read the workspace, no writes, no network. A script may always read its own skill's
//! directory (its interpreter has to open it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::diag::Diagnostic;
use crate::format::{parse_skill, SkillDef};

/// The file that makes a directory an Agent Skill.
pub const SKILL_FILE: &str = "SKILL.md";
/// Longest `name`, in characters (the specification's limit).
pub const MAX_NAME_CHARS: usize = 64;
/// Longest `description`, in characters (the specification's limit).
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Longest `compatibility`, in characters (the specification's limit).
pub const MAX_COMPATIBILITY_CHARS: usize = 500;
/// Separator between a skill's name and a script's name in the script's skill name.
pub const SCRIPT_SEPARATOR: &str = "--";
/// Most scripts taken from one `scripts/` directory.
const MAX_SCRIPTS: usize = 256;
/// Largest YAML text parsed: `SKILL.md`'s front matter, or `agents/openai.yaml`. Both hold a
/// few short fields; the bound keeps the parser's worst case (see
/// [`MAX_YAML_FLOW_OPENERS`]) to milliseconds.
pub const MAX_YAML_BYTES: usize = 64 * 1024;
/// Most `[` and `{` a YAML text may hold. The YAML scanner takes time proportional to its
/// tokens times the depth of flow nesting (libyaml keeps a possible "simple key" per flow
/// level and walks them all at every token), so a front matter of 64 KiB of `[` took
/// seconds, and the 1 MiB a `SKILL.md` may have would have taken hours, in every command and
/// MCP session that loads the skill. Every `[` and `{` counts, in a quoted string or a
/// comment too: only the scanner itself knows which ones open a collection.
pub const MAX_YAML_FLOW_OPENERS: usize = 256;

/// What an Agent Skill's `SKILL.md` says about it, and where it is.
#[derive(Debug, Clone, Serialize)]
pub struct AgentSkill {
    /// `name`: 1 to 64 of `a-z0-9-`, equal to the directory's name.
    pub name: String,
    /// `description`: what it does and when to use it, 1 to 1024 characters.
    pub description: String,
    /// `license`, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// `compatibility`: environment requirements, at most 500 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<String>,
    /// `metadata`: string keys to string values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// `allowed-tools`: tools the skill expects the agent to allow (informative here;
    /// skillbox grants by permissions, not by agent tools).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<String>,
    /// The skill's directory.
    #[serde(serialize_with = "skillbox_audit::text::serde_path::one")]
    pub dir: PathBuf,
    /// The Markdown body: the instructions for a model.
    #[serde(skip)]
    pub instructions: String,
    /// Names of the script skills made from `scripts/`.
    pub scripts: Vec<String>,
    /// Where the permissions came from: `SKILL.md skillbox block`, `agents/openai.yaml`, or
    /// `none declared`.
    pub permissions_from: String,
}

/// What [`load`] gives: the skill, its definitions, and problems with single scripts.
pub(crate) type Loaded = (Arc<AgentSkill>, Vec<SkillDef>, Vec<Diagnostic>);

/// Loads the Agent Skill in `dir`: its metadata, and the skill definitions it contributes
/// (the instructions, then one per script). Problems with single scripts are returned beside
/// the skill; a problem with `SKILL.md` itself rejects the whole directory.
pub(crate) fn load(
    dir: &Path,
    read: impl Fn(&Path) -> Result<Vec<u8>, Diagnostic>,
) -> Result<Loaded, Vec<Diagnostic>> {
    load_at(dir, dir, read)
}

/// Loads the Agent Skill installed in `origin` from its sealed copy `sealed` (see
/// `crate::seal`): every file, the definitions and the scripts come from the copy; the name
/// check and the paths `agents/openai.yaml` declares relative to the skill are taken from
/// where it is installed.
pub(crate) fn load_sealed(
    sealed: &Path,
    origin: &Path,
    read: impl Fn(&Path) -> Result<Vec<u8>, Diagnostic>,
) -> Result<Loaded, Vec<Diagnostic>> {
    load_at(sealed, origin, read)
}

/// Loads the Agent Skill whose files are in `files` and which is installed in `origin` (the
/// same directory, except for a sealed copy).
fn load_at(
    files: &Path,
    origin: &Path,
    read: impl Fn(&Path) -> Result<Vec<u8>, Diagnostic>,
) -> Result<Loaded, Vec<Diagnostic>> {
    let dir_name = origin.file_name().and_then(|d| d.to_str()).unwrap_or_default().to_string();
    // Resolved once, here: the kernel grant of the directory refuses symlinks in the path.
    let canonical = origin.canonicalize().unwrap_or_else(|_| origin.to_path_buf());
    let origin = canonical.as_path();
    let files_canonical = files.canonicalize().unwrap_or_else(|_| files.to_path_buf());
    let dir = files_canonical.as_path();
    let file = dir.join(SKILL_FILE);
    let bytes = read(&file).map_err(|d| vec![d])?;
    let (front, body) = split_skill_md(&file, &bytes)?;
    let front = FrontMatter::check(&front, &file, &dir_name)?;

    let (security, permissions_from) = match &front.security {
        Some(s) => (s.clone(), "SKILL.md skillbox block".to_string()),
        None => match codex_permissions(dir, origin, &read) {
            Ok(Some(s)) => (s, "agents/openai.yaml".to_string()),
            Ok(None) => (json!({}), "none declared".to_string()),
            Err(d) => return Err(vec![d]),
        },
    };
    let mut script_problems = Vec::new();
    let mut script_skills = Vec::new();
    let scripts =
        script_defs(&file, &front, &security, dir, &mut script_skills, &mut script_problems);
    let mut defs = vec![instructions_def(&file, &front, body, dir, &script_skills)?];
    defs.extend(script_skills);
    let skill = AgentSkill {
        name: front.name,
        description: front.description,
        license: front.license,
        compatibility: front.compatibility,
        metadata: front.metadata,
        allowed_tools: front.allowed_tools,
        dir: origin.to_path_buf(),
        instructions: body.to_string(),
        scripts,
        permissions_from,
    };
    Ok((Arc::new(skill), defs, script_problems))
}

/// `SKILL.md`'s front matter as a mapping, and its body.
fn split_skill_md<'a>(
    file: &Path,
    bytes: &'a [u8],
) -> Result<(Map<String, Value>, &'a str), Vec<Diagnostic>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| vec![Diagnostic::file(file, format!("not UTF-8: {e}"))])?;
    let (front, body) = split_front_matter(text).ok_or_else(|| {
        vec![Diagnostic::file(
            file,
            "must start with YAML front matter between two `---` lines (name and description)",
        )]
    })?;
    if let Some(why) = yaml_too_costly(front.as_bytes()) {
        return Err(vec![Diagnostic::file(file, format!("front matter {why}"))]);
    }
    let front: Value = yaml_serde::from_str(front).map_err(|e| {
        vec![Diagnostic::file(file, format!("front matter is not valid YAML: {e}"))]
    })?;
    let Value::Object(front) = front else {
        return Err(vec![Diagnostic::file(file, "front matter must be a mapping of fields")]);
    };
    Ok((front, body))
}

/// The fields of `SKILL.md`'s front matter, checked against the specification.
struct FrontMatter {
    name: String,
    description: String,
    license: Option<String>,
    compatibility: Option<String>,
    allowed_tools: Option<String>,
    metadata: BTreeMap<String, String>,
    /// The `skillbox` block: the JSON format's `security` object.
    security: Option<Value>,
    /// `version`, as written.
    version: Option<Value>,
}

impl FrontMatter {
    /// Reads and checks every field of `front` (from `file`, in the directory `dir_name`);
    /// every problem found, if any.
    fn check(
        front: &Map<String, Value>,
        file: &Path,
        dir_name: &str,
    ) -> Result<Self, Vec<Diagnostic>> {
        let mut problems = Vec::new();
        let name = required_string(front, "name", file, &mut problems);
        let description = required_string(front, "description", file, &mut problems);
        if let Some(n) = &name {
            if let Err(reason) = check_agent_name(n) {
                problems.push(Diagnostic::field(file, "name", reason));
            }
            if n != dir_name {
                problems.push(Diagnostic::field(
                    file,
                    "name",
                    format!("is {n:?} but the directory is {dir_name:?}; they must be equal"),
                ));
            }
        }
        if let Some(d) = &description {
            let chars = d.chars().count();
            if d.trim().is_empty() || chars > MAX_DESCRIPTION_CHARS {
                problems.push(Diagnostic::field(
                    file,
                    "description",
                    format!("must be 1 to {MAX_DESCRIPTION_CHARS} characters (it has {chars})"),
                ));
            }
        }
        let license = optional_string(front, "license", file, &mut problems);
        let compatibility = optional_string(front, "compatibility", file, &mut problems);
        if let Some(c) = &compatibility {
            let chars = c.chars().count();
            if chars == 0 || chars > MAX_COMPATIBILITY_CHARS {
                problems.push(Diagnostic::field(
                    file,
                    "compatibility",
                    format!("must be 1 to {MAX_COMPATIBILITY_CHARS} characters (it has {chars})"),
                ));
            }
        }
        let allowed_tools = optional_string(front, "allowed-tools", file, &mut problems);
        let metadata = string_map(front, "metadata", file, &mut problems);
        let security = skillbox_block(front, file, &mut problems);
        let (Some(name), Some(description)) = (name, description) else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let version = front.get("version").cloned();
        Ok(Self {
            name,
            description,
            license,
            compatibility,
            allowed_tools,
            metadata,
            security,
            version,
        })
    }
}

/// `key` of `front` as a mapping of strings to strings (none when absent).
fn string_map(
    front: &Map<String, Value>,
    key: &str,
    file: &Path,
    problems: &mut Vec<Diagnostic>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match front.get(key) {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match v {
                    Value::String(s) => {
                        out.insert(k.clone(), s.clone());
                    }
                    _ => problems.push(Diagnostic::field(
                        file,
                        format!("{key}.{k}"),
                        "must be a string",
                    )),
                }
            }
        }
        Some(_) => {
            problems.push(Diagnostic::field(file, key, "must be a mapping of strings to strings"))
        }
    }
    out
}

/// The front matter's `skillbox` block, when it is a mapping.
fn skillbox_block(
    front: &Map<String, Value>,
    file: &Path,
    problems: &mut Vec<Diagnostic>,
) -> Option<Value> {
    match front.get("skillbox") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => {
            problems.push(Diagnostic::field(
                file,
                "skillbox",
                "must be a mapping with `permissions` and `resource_limits`, as in a JSON \
                 skill's `security` object",
            ));
            None
        }
    }
}

/// The prompt skill whose output is the instructions (the body of `SKILL.md`), followed,
/// when the skill has scripts, by the names of the tools that run them: instructions say
/// "run the `summarise` script", and a model that reads them through skillbox must learn
/// that the tool for it is `csv-summary--summarise`.
fn instructions_def(
    file: &Path,
    front: &FrontMatter,
    body: &str,
    dir: &Path,
    scripts: &[SkillDef],
) -> Result<SkillDef, Vec<Diagnostic>> {
    let mut template = body.to_string();
    if !scripts.is_empty() {
        if !template.ends_with('\n') {
            template.push('\n');
        }
        template.push_str(
            "\n---\nThrough skillbox, each script of this skill is a tool of its own; pass the \
             script's command-line arguments as one string in `args` (split into words as a \
             shell would, but no shell runs):\n",
        );
        for d in scripts {
            // The script is the first argument of its interpreter, or the program itself.
            let path = match d.args.first() {
                Some(a) if a != "{args*}" => a.as_str(),
                _ => d.command.as_deref().unwrap_or_default(),
            };
            let script = path.rsplit('/').next().unwrap_or(path);
            template.push_str(&format!("- `{}` runs scripts/{script}\n", d.name));
        }
    }
    let mut def = json!({
        "name": front.name,
        "description": front.description,
        "type": "prompt_inline",
        "prompt_template": template,
    });
    if let Some(v) = &front.version {
        def["metadata"] = json!({ "agent_skill_version": v });
    }
    synthetic(file, def, dir)
}

/// One command skill per runnable file of `scripts/`, each with the skill's `security`,
/// added to `defs`; returns their names. A script that cannot be offered is a problem of its
/// own, not of the skill.
fn script_defs(
    file: &Path,
    front: &FrontMatter,
    security: &Value,
    dir: &Path,
    defs: &mut Vec<SkillDef>,
    problems: &mut Vec<Diagnostic>,
) -> Vec<String> {
    let (name, description) = (&front.name, &front.description);
    let mut scripts = Vec::new();
    for (path, stem) in script_files(dir, problems) {
        let Some(command) = interpreter(&path) else {
            problems.push(Diagnostic::file(
                &path,
                "not runnable: no known interpreter for its extension (.py, .sh, .bash, .js, \
                 .mjs, .rb, .pl) and not executable",
            ));
            continue;
        };
        let script_name = format!("{name}{SCRIPT_SEPARATOR}{stem}");
        let script = path.to_string_lossy().into_owned();
        let mut args = Vec::new();
        let program = if command == "." { script.clone() } else { command.to_string() };
        if command != "." {
            args.push(script.clone());
        }
        args.push("{args*}".to_string());
        let file_name = path.file_name().map(|f| f.to_string_lossy().into_owned());
        let def = json!({
            "name": script_name,
            "description": format!(
                "Runs scripts/{} of the Agent Skill `{name}`: {description}",
                file_name.unwrap_or_default()
            ),
            "type": "command",
            "command": program,
            "args": args,
            "parameters": [{
                "name": "args",
                "type": "string",
                "required": false,
                "description": "Arguments for the script, split into words as a shell would \
                                split them (no shell runs)"
            }],
            "security": security,
        });
        match synthetic(file, def, dir) {
            Ok(d) => {
                scripts.push(script_name);
                defs.push(d);
            }
            Err(ds) => problems.extend(ds),
        }
    }
    scripts
}

/// The specification's name rule: 1 to 64 of `a-z0-9-`, no leading, trailing or doubled
/// hyphen.
pub fn check_agent_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(format!("must be 1 to {MAX_NAME_CHARS} characters (it has {chars})"));
    }
    if let Some(c) =
        name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!("contains {c:?}; only lowercase letters, digits and '-' are allowed"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("must not start or end with '-'".into());
    }
    if name.contains("--") {
        return Err("must not contain \"--\"".into());
    }
    Ok(())
}

/// Splits `---\nYAML\n---\nbody`. `None` if the text does not open with front matter.
/// Why `yaml` is not handed to the YAML parser (it would take too long), if it is not.
fn yaml_too_costly(yaml: &[u8]) -> Option<String> {
    if yaml.len() > MAX_YAML_BYTES {
        return Some(format!("is {} bytes; YAML is read up to {MAX_YAML_BYTES} bytes", yaml.len()));
    }
    let openers = yaml.iter().filter(|b| matches!(b, b'[' | b'{')).count();
    if openers > MAX_YAML_FLOW_OPENERS {
        return Some(format!(
            "holds {openers} `[` and `{{`; YAML is read with at most {MAX_YAML_FLOW_OPENERS} \
             (nested collections cost the parser time by the square of their depth)"
        ));
    }
    None
}

fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n"))?;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == "---" {
            let front = &rest[..offset];
            let body = &rest[offset + line.len()..];
            return Some((front, body.trim_start_matches(['\n', '\r'])));
        }
        offset += line.len();
    }
    None
}

fn required_string(
    front: &Map<String, Value>,
    key: &str,
    file: &Path,
    problems: &mut Vec<Diagnostic>,
) -> Option<String> {
    if matches!(front.get(key), None | Some(Value::Null)) {
        problems.push(Diagnostic::field(file, key, "is required"));
        return None;
    }
    optional_string(front, key, file, problems)
}

fn optional_string(
    front: &Map<String, Value>,
    key: &str,
    file: &Path,
    problems: &mut Vec<Diagnostic>,
) -> Option<String> {
    match front.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            problems.push(Diagnostic::field(file, key, "must be a string"));
            None
        }
    }
}

/// The `security` object made from `agents/openai.yaml`'s `permissions`, if the file
/// declares any. Its paths are relative to the skill's directory, as Codex reads them.
fn codex_permissions(
    dir: &Path,
    origin: &Path,
    read: &impl Fn(&Path) -> Result<Vec<u8>, Diagnostic>,
) -> Result<Option<Value>, Diagnostic> {
    let file = dir.join("agents").join("openai.yaml");
    if !file.exists() {
        return Ok(None);
    }
    let bytes = read(&file)?;
    if let Some(why) = yaml_too_costly(&bytes) {
        return Err(Diagnostic::file(&file, format!("file {why}")));
    }
    let doc: Value = yaml_serde::from_slice(&bytes)
        .map_err(|e| Diagnostic::file(&file, format!("not valid YAML: {e}")))?;
    let Some(p) = doc.get("permissions") else { return Ok(None) };
    let Value::Object(p) = p else {
        return Err(Diagnostic::field(&file, "permissions", "must be a mapping"));
    };
    let paths = |key: &str| -> Result<Option<Vec<String>>, Diagnostic> {
        match p.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(resolve(origin, s)),
                    _ => Err(Diagnostic::field(
                        &file,
                        format!("permissions.{key}"),
                        "must be a list of paths",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Diagnostic::field(
                &file,
                format!("permissions.{key}"),
                "must be a list of paths",
            )),
        }
    };
    let mut perms = Map::new();
    match p.get("network") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => {
            perms.insert("network_access".into(), json!(b));
        }
        Some(_) => {
            return Err(Diagnostic::field(&file, "permissions.network", "must be true or false"))
        }
    }
    if let Some(r) = paths("fs_read")? {
        perms.insert("file_read".into(), json!(r));
    }
    if let Some(w) = paths("fs_write")? {
        perms.insert("file_write".into(), json!(w));
    }
    Ok(Some(json!({ "permissions": perms })))
}

/// `rel` against the skill's directory, as an absolute path string.
fn resolve(dir: &Path, rel: &str) -> String {
    crate::security::normalize(&dir.join(rel)).to_string_lossy().into_owned()
}

/// Regular files directly in `scripts/`, sorted, with valid stems.
fn script_files(dir: &Path, problems: &mut Vec<Diagnostic>) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(dir.join("scripts")) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let Some(file_name) = path.file_name().and_then(|f| f.to_str()) else { continue };
        if file_name.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        if stem.is_empty()
            || stem.contains(SCRIPT_SEPARATOR)
            || !stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            problems.push(Diagnostic::file(
                &path,
                "script name must be letters, digits, '_' and '-' without \"--\"; not offered",
            ));
            continue;
        }
        out.push((path, stem));
    }
    out.sort();
    if out.len() > MAX_SCRIPTS {
        problems.push(Diagnostic::file(
            &dir.join("scripts"),
            format!("more than {MAX_SCRIPTS} scripts; the rest are not offered"),
        ));
        out.truncate(MAX_SCRIPTS);
    }
    out
}

/// The program that runs `path`: by extension, or the file itself (`.`) when it is
/// executable and has no known extension.
fn interpreter(path: &Path) -> Option<&'static str> {
    use std::os::unix::fs::PermissionsExt;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    match ext {
        "py" => Some("python3"),
        "sh" => Some("sh"),
        "bash" => Some("bash"),
        "js" | "mjs" | "cjs" => Some("node"),
        "rb" => Some("ruby"),
        "pl" => Some("perl"),
        _ => {
            let exec = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            exec.then_some(".")
        }
    }
}

/// Parses a definition made from an Agent Skill with the JSON format's own parser, so that
/// every rule (limits, permissions, parameters) is checked the same way. Problems name
/// `SKILL.md`, with the JSON format's `security` spelled as the front matter's `skillbox`.
fn synthetic(file: &Path, def: Value, dir: &Path) -> Result<SkillDef, Vec<Diagnostic>> {
    let bytes = serde_json::to_vec(&def)
        .map_err(|e| vec![Diagnostic::file(file, format!("cannot build the definition: {e}"))])?;
    let mut parsed = parse_skill(file, &bytes).map_err(|ds| {
        ds.into_iter()
            .map(|mut d| {
                d.field = d.field.map(|f| match f.strip_prefix("security") {
                    Some(rest) => format!("skillbox{rest}"),
                    None => f,
                });
                d
            })
            .collect::<Vec<_>>()
    })?;
    parsed.own_dir = Some(dir.to_path_buf());
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems of loading a skill directory `fuzz-skill` holding `files`.
    fn problems_of(files: &[(&str, &[u8])]) -> Vec<String> {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("fuzz-skill");
        for (name, bytes) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(path, bytes).expect("write");
        }
        let read = |p: &Path| std::fs::read(p).map_err(|e| Diagnostic::file(p, e.to_string()));
        match load(&dir, read) {
            Ok((_, _, problems)) => problems.iter().map(ToString::to_string).collect(),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    // Found by fuzzing `agent_skill` (fuzz/) with longer inputs: libyaml's scanner walks every
    // open flow level at every token, so 60 KiB of `[` in the front matter took seconds
    // (in a debug build; 1 MiB, the largest SKILL.md read, hours) before it was refused.
    #[test]
    fn deeply_nested_or_huge_yaml_is_refused_before_it_is_parsed() {
        let deep =
            format!("---\nname: fuzz-skill\ndescription: d\nx: {}\n---\n", "[".repeat(60_000));
        let started = std::time::Instant::now();
        let got = problems_of(&[("SKILL.md", deep.as_bytes())]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("SKILL.md: front matter holds 60000 `[` and `{`"), "{got:?}");
        assert!(started.elapsed().as_secs() < 2, "took {:?}", started.elapsed());

        let big =
            format!("---\nname: fuzz-skill\ndescription: d\nx: '{}'\n---\n", "a".repeat(70_000));
        let got = problems_of(&[("SKILL.md", big.as_bytes())]);
        assert!(
            got[0].contains("front matter is 70038 bytes; YAML is read up to 65536"),
            "{got:?}"
        );

        let yaml = format!("permissions:\n  fs_read: {}\n", "{a: ".repeat(5_000));
        let got = problems_of(&[
            ("SKILL.md", b"---\nname: fuzz-skill\ndescription: d\n---\nbody\n"),
            ("agents/openai.yaml", yaml.as_bytes()),
        ]);
        assert!(got[0].contains("agents/openai.yaml: file holds 5000 `[` and `{`"), "{got:?}");

        // What a skill really writes is far below both bounds.
        let fine = "---\nname: fuzz-skill\ndescription: d\nskillbox: {permissions: {file_read: [data, src]}}\n---\n";
        assert_eq!(problems_of(&[("SKILL.md", fine.as_bytes())]), Vec::<String>::new());
    }

    #[test]
    fn the_specification_name_rules() {
        for good in ["a", "pdf-tools", "x1-2y", &"a".repeat(64)] {
            assert!(check_agent_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "a--b", "A", "a_b", "a.b", "ä", &"a".repeat(65)] {
            assert!(check_agent_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn front_matter_is_split_from_the_body() {
        let (f, b) = split_front_matter("---\nname: x\n---\n\n# Hi\n").unwrap();
        assert_eq!(f, "name: x\n");
        assert_eq!(b, "# Hi\n");
        assert!(split_front_matter("name: x\n---\n").is_none());
        assert!(split_front_matter("---\nname: x\n").is_none(), "unterminated");
        let (f, _) = split_front_matter("\u{feff}---\r\nname: x\r\n---\r\nbody").unwrap();
        assert_eq!(f, "name: x\r\n");
    }
}
