//! Parameter validation and `{name}` placeholder substitution.
//!
//! Parameters come from a model that may have been prompt-injected. They are checked against
//! the skill's declaration (type, required, enum values, whole-value regex), undeclared ones
//! are refused, and accepted values are only ever placed *inside* one argv element or the
//! prompt text. Nothing here involves a shell, so `$(touch x); rm -rf ~` stays text.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::format::{ParamType, SkillDef};
use crate::name::quote;
use skillbox_audit::text::Lines;

/// Longest accepted value of one parameter, in bytes.
pub const MAX_PARAM_BYTES: usize = 64 * 1024;
/// Longest accepted total of all parameter values, in bytes (well under `ARG_MAX`).
pub const MAX_PARAMS_TOTAL_BYTES: usize = 512 * 1024;
/// Most undeclared parameters named one by one in the problems (the rest are counted).
pub const MAX_NAMED_PROBLEMS: usize = 20;

/// Accepted parameters, each rendered as the text that replaces its placeholder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// The text of parameter `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Iterates over the given parameters.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One problem with the parameters of a call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParamProblem {
    /// The parameter concerned (empty when the input as a whole is wrong).
    pub parameter: String,
    /// Why it is refused.
    pub reason: String,
}

impl std::fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.parameter.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "parameter `{}`: {}", self.parameter, self.reason)
        }
    }
}

/// The JSON value of parameter `key` of `skill` given as text (`-p key=value` on the command
/// line, an MCP prompt argument, which are strings by definition): a number or a boolean
/// where the skill declares `key` so and the text is one, else the text as a string. A value
/// that does not fit the declared type stays a string, which [`validate`] then refuses with
/// the parameter's name.
pub fn typed_value(skill: &SkillDef, key: &str, text: &str) -> Value {
    let declared = skill.parameters.iter().find(|p| p.spec.name == key);
    match declared.map(|p| &p.spec.param_type) {
        Some(ParamType::Number) => match serde_json::from_str::<Value>(text) {
            Ok(n @ Value::Number(_)) => n,
            _ => Value::String(text.to_string()),
        },
        Some(ParamType::Boolean) => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.to_string()),
        },
        _ => Value::String(text.to_string()),
    }
}

/// Checks `input` against the parameters `skill` declares. Collects every problem.
pub fn validate(skill: &SkillDef, input: &Value) -> Result<Params, Vec<ParamProblem>> {
    let empty = serde_json::Map::new();
    let obj = match input {
        Value::Null => &empty,
        Value::Object(o) => o,
        other => {
            return Err(vec![ParamProblem {
                parameter: String::new(),
                reason: format!("parameters must be a JSON object, not {}", kind(other)),
            }])
        }
    };
    let mut problems = Vec::new();
    let mut bad = |p: &str, r: String| {
        problems.push(ParamProblem { parameter: sanitize_key(p), reason: r });
    };

    // Undeclared keys are named one by one up to a bound, then counted: a caller may send
    // thousands, and each problem goes into the result and the audit log.
    let undeclared: Vec<&String> = obj.keys().filter(|k| skill.parameter(k).is_none()).collect();
    if !undeclared.is_empty() {
        let declared: Vec<&str> = skill.parameters.iter().map(|p| p.spec.name.as_str()).collect();
        let hint = if declared.is_empty() {
            "this skill takes no parameters".to_string()
        } else {
            format!("this skill declares: {}", declared.join(", "))
        };
        for key in undeclared.iter().take(MAX_NAMED_PROBLEMS) {
            bad(key, format!("is not declared by skill `{}`; {hint}", skill.name));
        }
        if undeclared.len() > MAX_NAMED_PROBLEMS {
            let more = undeclared.len() - MAX_NAMED_PROBLEMS;
            bad("", format!("and {more} more parameters the skill does not declare"));
        }
    }

    let mut values = BTreeMap::new();
    let mut total = 0usize;
    for p in &skill.parameters {
        let name = &p.spec.name;
        let Some(v) = obj.get(name) else {
            if p.spec.required {
                bad(name, "is required".into());
            }
            continue;
        };
        let text = match (p.spec.param_type, v) {
            (ParamType::String, Value::String(s)) => s.clone(),
            (ParamType::Number, Value::Number(n)) => n.to_string(),
            (ParamType::Boolean, Value::Bool(b)) => b.to_string(),
            (ParamType::Enum, Value::String(s)) => {
                let allowed = p.spec.values.as_deref().unwrap_or(&[]);
                if !allowed.iter().any(|a| a == s) {
                    // The values come from the skill file, which may hold any character.
                    let shown: Vec<String> = allowed
                        .iter()
                        .map(|a| skillbox_audit::text::escape_controls(a, Lines::Escape))
                        .collect();
                    bad(name, format!("{} is not one of: {}", quote(s), shown.join(", ")));
                    continue;
                }
                s.clone()
            }
            (t, other) => {
                let want = match t {
                    ParamType::String | ParamType::Enum => "a string",
                    ParamType::Number => "a number",
                    ParamType::Boolean => "true or false",
                };
                bad(name, format!("must be {want}, not {}", kind(other)));
                continue;
            }
        };
        if text.contains('\0') {
            bad(name, "contains a NUL byte, which cannot be passed to a program".into());
            continue;
        }
        if text.len() > MAX_PARAM_BYTES {
            bad(name, format!("is {} bytes; at most {MAX_PARAM_BYTES} are allowed", text.len()));
            continue;
        }
        if let Some(re) = &p.pattern {
            // Compiled here on first use; loading only checked it (see `crate::pattern`).
            match re.is_match(&text) {
                Ok(true) => {}
                Ok(false) => {
                    let pat = p.spec.pattern.as_deref().unwrap_or("");
                    bad(
                        name,
                        format!("{} does not match the pattern {}", quote(&text), quote(pat)),
                    );
                    continue;
                }
                Err(e) => {
                    bad(name, e.to_string());
                    continue;
                }
            }
        }
        let word_list = format!("{{{name}*}}");
        if skill.args.contains(&word_list) {
            if let Err(e) = shell_words::split(&text) {
                bad(name, format!("cannot be split into arguments: {e}"));
                continue;
            }
        }
        total += text.len();
        values.insert(name.clone(), text);
    }
    if total > MAX_PARAMS_TOTAL_BYTES {
        bad("", format!("parameters total {total} bytes; at most {MAX_PARAMS_TOTAL_BYTES}"));
    }
    if problems.is_empty() {
        Ok(Params { values })
    } else {
        Err(problems)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Keys come from the caller; keep them printable and short in messages.
fn sanitize_key(k: &str) -> String {
    let q = quote(k);
    q[1..q.len() - 1].to_string()
}

/// Replaces `{name}` placeholders of *declared* parameters in `text`, in one pass.
///
/// A placeholder of a declared parameter that was not given becomes empty. Braces that do not
/// name a declared parameter (`{}` in an awk script, `{x}` in JSON) stay as written. Values are
/// inserted once and never scanned again, so a value containing `{other}` stays literal.
pub fn substitute(text: &str, skill: &SkillDef, params: &Params) -> String {
    let mut out = String::with_capacity(text.len());
    scan(text, skill, params, &mut |piece| out.push_str(piece));
    out
}

/// The length in bytes of [`substitute`]'s result, without building it: what a template or
/// an argument would expand to is known before any memory is spent on it.
pub fn substituted_len(text: &str, skill: &SkillDef, params: &Params) -> usize {
    let mut n = 0usize;
    scan(text, skill, params, &mut |piece| n = n.saturating_add(piece.len()));
    n
}

/// The one reading of placeholders, for [`substitute`] and [`substituted_len`]: hands each
/// piece of the result to `emit`, in order.
fn scan(text: &str, skill: &SkillDef, params: &Params, emit: &mut impl FnMut(&str)) {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        emit(&rest[..open]);
        let after = &rest[open + 1..];
        let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        match end {
            Some(len) if len > 0 && after[len..].starts_with('}') => {
                let name = &after[..len];
                if skill.parameter(name).is_some() {
                    emit(params.get(name).unwrap_or(""));
                } else {
                    emit("{");
                    emit(name);
                    emit("}");
                }
                rest = &after[len + 1..];
            }
            _ => {
                emit("{");
                rest = after;
            }
        }
    }
    emit(rest);
}

/// Most bytes one argument of a command may expand to: the kernel's limit on one argv
/// element (`MAX_ARG_STRLEN`, 128 KiB, less its NUL).
pub const MAX_ARG_BYTES: usize = 128 * 1024 - 1;
/// Most bytes all the arguments of one command line may expand to (the kernel takes about
/// 2 MiB of arguments and environment together).
pub const MAX_ARGS_BYTES: usize = 1024 * 1024;
/// Most bytes a rendered prompt may have, context files included.
pub const MAX_RENDERED_BYTES: usize = 4 * 1024 * 1024;

/// Refuses, before anything is built, parameters that the skill's arguments or template
/// would repeat into more than skillbox will build: a value of at most 64 KiB written
/// 200,000 times in a template would otherwise be rendered in skillbox's own memory. Says
/// what would be too large and by how much.
pub fn check_expansion(skill: &SkillDef, params: &Params) -> Result<(), String> {
    let mut lines: Vec<&[String]> = vec![&skill.args];
    lines.extend(skill.resilience.fallback_commands.iter().flatten().map(|f| f.args.as_slice()));
    for args in lines {
        let mut total = 0usize;
        for (i, a) in args.iter().enumerate() {
            let n = substituted_len(a, skill, params);
            if n > MAX_ARG_BYTES {
                return Err(format!(
                    "argument {} of the command would be {n} bytes with these parameters; at \
                     most {MAX_ARG_BYTES} bytes per argument (the skill repeats a parameter in it)",
                    i + 1
                ));
            }
            total = total.saturating_add(n);
        }
        if total > MAX_ARGS_BYTES {
            return Err(format!(
                "the command's arguments would be {total} bytes with these parameters; at most \
                 {MAX_ARGS_BYTES} bytes in all"
            ));
        }
    }
    if let Some(t) = &skill.prompt_template {
        let n = substituted_len(t, skill, params);
        if n > MAX_RENDERED_BYTES {
            return Err(format!(
                "the prompt would be {n} bytes with these parameters; at most \
                 {MAX_RENDERED_BYTES} bytes (the skill repeats a parameter in its template)"
            ));
        }
    }
    Ok(())
}

/// Builds argv elements from `args`: each element is substituted on its own, and an element
/// that is exactly one placeholder of a parameter that was not given is left out (so an
/// optional flag value does not become an empty argument).
///
/// An element that is exactly `{name*}` (a *word list*) becomes the words of the parameter's
/// value, split as a shell would split them, quotes included, but without any expansion and
/// without running a shell: `a "b c"` gives the two arguments `a` and `b c`. Agent Skill
/// scripts take their arguments this way. [`validate`] refuses a value that cannot be split.
pub fn build_args(args: &[String], skill: &SkillDef, params: &Params) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        if let Some(n) = word_list_param(a, skill) {
            if let Some(v) = params.get(n) {
                out.extend(shell_words::split(v).unwrap_or_default());
            }
            continue;
        }
        let inner = a.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        if matches!(inner, Some(n) if skill.parameter(n).is_some() && params.get(n).is_none()) {
            continue;
        }
        out.push(substitute(a, skill, params));
    }
    out
}

/// The declared parameter an argv element `{name*}` names, if it is one.
fn word_list_param<'a>(arg: &'a str, skill: &SkillDef) -> Option<&'a str> {
    let n = arg.strip_prefix('{')?.strip_suffix("*}")?;
    skill.parameter(n).map(|_| n)
}
