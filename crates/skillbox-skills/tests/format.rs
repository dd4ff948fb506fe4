//! `parse_skill`: every type and every field and spelling of the existing skill format loads,
//! unknown keys are kept, and every refusal names the file, the field and a reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use skillbox_skills::format::{NetworkLevel, ParamType, MAX_SKILL_FILE_BYTES};
use skillbox_skills::{parse_skill, Diagnostic, SkillDef, SkillType};

const FILE: &str = "skills/test-skill.json";

fn path() -> PathBuf {
    PathBuf::from(FILE)
}

fn parse(v: &Value) -> Result<SkillDef, Vec<Diagnostic>> {
    parse_skill(&path(), v.to_string().as_bytes())
}

fn ok(v: Value) -> SkillDef {
    match parse(&v) {
        Ok(d) => d,
        Err(ds) => panic!("expected {v} to load, got: {ds:#?}"),
    }
}

fn errs(v: Value) -> Vec<Diagnostic> {
    match parse(&v) {
        Ok(d) => panic!("expected {v} to be refused, it loaded as {d:#?}"),
        Err(ds) => {
            assert!(!ds.is_empty(), "an Err never holds an empty list");
            ds
        }
    }
}

fn bytes_errs(bytes: &[u8]) -> Vec<Diagnostic> {
    match parse_skill(&path(), bytes) {
        Ok(d) => panic!("expected a refusal, loaded {d:#?}"),
        Err(ds) => {
            assert!(!ds.is_empty());
            ds
        }
    }
}

/// Exactly one diagnostic, about `field`, naming the file and giving a reason.
fn one_field_error(v: Value, field: &str) -> Diagnostic {
    let ds = errs(v);
    assert_eq!(ds.len(), 1, "expected one diagnostic, got {ds:#?}");
    let d = ds.into_iter().next().unwrap();
    assert_field(&d, field);
    d
}

fn assert_field(d: &Diagnostic, field: &str) {
    assert_eq!(d.path, path(), "{d:?}");
    assert_eq!(d.field.as_deref(), Some(field), "{d:?}");
    assert!(!d.reason.trim().is_empty(), "{d:?}");
    let line = d.to_string();
    assert_eq!(line, format!("{FILE}: field `{field}`: {}", d.reason));
    assert!(!line.contains('\n'), "{line:?}");
}

/// A minimal valid command skill with `extra` merged in.
fn cmd(extra: Value) -> Value {
    let mut base = json!({"name": "t", "type": "command", "command": "ls"});
    let (Value::Object(b), Value::Object(e)) = (&mut base, extra) else { unreachable!() };
    b.extend(e);
    base
}

// ---------------------------------------------------------------- the five types

#[test]
fn command_skill_loads() {
    let d = ok(json!({
        "name": "list", "type": "command", "command": "ls", "args": ["-l", "{path}"],
        "parameters": [{"name": "path", "type": "string"}]
    }));
    assert_eq!(d.name, "list");
    assert_eq!(d.skill_type, SkillType::Command);
    assert_eq!(d.command.as_deref(), Some("ls"));
    assert_eq!(d.args, ["-l", "{path}"]);
    assert_eq!(d.description, "");
    assert!(d.skill_type.runs_process());
}

#[test]
fn code_inline_skill_loads() {
    let d = ok(json!({
        "name": "py", "type": "code_inline", "command": "python3 -I",
        "args": ["-c", "print({n} * 2)"],
        "parameters": [{"name": "n", "type": "number", "required": true}]
    }));
    assert_eq!(d.skill_type, SkillType::CodeInline);
    assert_eq!(d.command.as_deref(), Some("python3 -I"));
    assert_eq!(d.args, ["-c", "print({n} * 2)"]);
    assert_eq!(d.parameters[0].spec.param_type, ParamType::Number);
    assert!(d.parameters[0].spec.required);
}

#[test]
fn code_session_skill_loads_with_its_session_config() {
    let d = ok(json!({
        "name": "repl", "type": "code_session", "command": "python3",
        "session_config": {"session_timeout": 600, "max_sessions": 2, "cleanup_on_exit": true}
    }));
    assert_eq!(d.skill_type, SkillType::CodeSession);
    let sc = d.session_config.expect("session_config");
    assert_eq!(sc.session_timeout, Some(600.0));
    assert_eq!(sc.max_sessions, Some(2));
    assert_eq!(sc.cleanup_on_exit, Some(true));
}

#[test]
fn conversation_skill_loads_with_its_context_files() {
    let d = ok(json!({
        "name": "review", "type": "conversation",
        "prompt_template": "Review {focus}:\n{context_files}",
        "parameters": [{"name": "focus", "type": "enum", "values": ["style", "bugs"]}],
        "context_files": {
            "patterns": ["src/**/*.rs"], "max_files": 5, "max_file_size_kb": 50,
            "exclude_patterns": ["target/**"]
        }
    }));
    assert_eq!(d.skill_type, SkillType::Conversation);
    assert_eq!(d.prompt_template.as_deref(), Some("Review {focus}:\n{context_files}"));
    assert!(!d.skill_type.runs_process());
    let cf = d.context_files.expect("context_files");
    assert_eq!(cf.patterns, ["src/**/*.rs"]);
    assert_eq!(cf.max_files, Some(5));
    assert_eq!(cf.max_file_size_kb, Some(50));
    assert_eq!(cf.exclude_patterns, ["target/**"]);
}

#[test]
fn prompt_inline_skill_loads_with_either_spelling_of_the_template() {
    let d = ok(json!({"name": "hi", "type": "prompt_inline", "prompt_template": "Hi {who}"}));
    assert_eq!(d.skill_type, SkillType::PromptInline);
    assert_eq!(d.prompt_template.as_deref(), Some("Hi {who}"));

    // `prompt` is an alias of `prompt_template`.
    let d = ok(json!({"name": "hi", "type": "prompt_inline", "prompt": "Hello {who}"}));
    assert_eq!(d.prompt_template.as_deref(), Some("Hello {who}"));
    let d = ok(json!({"name": "c", "type": "conversation", "prompt": "Chat"}));
    assert_eq!(d.prompt_template.as_deref(), Some("Chat"));
}

#[test]
fn each_type_refuses_a_missing_required_field() {
    for t in ["command", "code_inline", "code_session"] {
        let d = one_field_error(json!({"name": "x", "type": t}), "command");
        assert!(d.reason.contains("required"), "{d}");
        assert!(d.reason.contains(t), "{d}");
    }
    for t in ["conversation", "prompt_inline"] {
        let d = one_field_error(json!({"name": "x", "type": t}), "prompt_template");
        assert!(d.reason.contains("required"), "{d}");
    }
    let d = one_field_error(cmd(json!({"command": "   "})), "command");
    assert!(d.reason.contains("empty"), "{d}");
    let d = one_field_error(cmd(json!({"command": "ls 'unterminated"})), "command");
    assert!(d.reason.contains("split"), "{d}");
}

// ---------------------------------------------------------------- every field and spelling

fn everything() -> Value {
    json!({
        "name": "everything",
        "description": "Uses every field of the format",
        "version": "1.2.3",
        "type": "command",
        "command": "git",
        "args": ["log", "--grep={query}", "-n", "{count}"],
        "timeout": 30,
        "prompt_template": "unused for a command, but allowed",
        "parameters": [
            {"name": "query", "type": "string", "required": true, "pattern": "[a-z]+",
             "description": "What to look for"},
            {"name": "count", "type": "number", "required": false},
            {"name": "verbose", "type": "boolean"},
            {"name": "level", "type": "enum", "values": ["low", "high"], "required": true}
        ],
        "security": {
            "permissions": {
                "file_read": ["src"],
                "file_write": ["out"],
                "network_access": false,
                "allow_network": true,
                "allow_file_write": true,
                "allowed_paths": ["shared"]
            },
            "resource_limits": {
                "max_memory_mb": 128,
                "max_execution_time": 20,
                "max_cpu_percent": 40,
                "max_processes": 3,
                "max_open_files": 30,
                "max_disk_io_mb": 5
            }
        },
        "sandbox": {
            "allow_network": false,
            "allow_file_write": true,
            "allowed_paths": ["sandboxed"]
        },
        "resilience": {
            "retry_attempts": 2,
            "timeout": 10,
            "fallback_command": "git log --oneline",
            "fallback_commands": [
                {"command": "git", "args": ["log", "-1"]},
                {"command": "true"}
            ],
            "error_classification": {
                "transient_patterns": ["timed? ?out", "EAGAIN"],
                "permanent_patterns": ["^fatal:"]
            }
        },
        "retry_config": {
            "max_attempts": 3,
            "backoff_strategy": "exponential",
            "retry_on": ["timeout", "resource_limit", "network_error"]
        },
        "circuit_breaker": {"failure_threshold": 5, "recovery_timeout": 60},
        "session_config": {"session_timeout": 300, "max_sessions": 1, "cleanup_on_exit": false},
        "context_files": {"patterns": ["*.md"], "max_files": 3, "max_file_size_kb": 10,
                          "exclude_patterns": ["secret*"]},
        "environment": {"GIT_PAGER": "cat", "_LANG_2": "C"},
        "aliases": ["all", "every-field"],
        "requires_worktree": true,
        "author": "A. Person",
        "license": "MIT",
        "homepage": "https://example.com/skills",
        "dependencies": ["git"],
        "metadata": {"category": "vcs", "tags": ["x"]},
        "scope": "workspace"
    })
}

#[test]
fn a_file_with_every_field_and_spelling_loads_and_lands_where_expected() {
    let d = ok(everything());
    assert_eq!(d.name, "everything");
    assert_eq!(d.description, "Uses every field of the format");
    assert_eq!(d.version.as_deref(), Some("1.2.3"));
    assert_eq!(d.skill_type, SkillType::Command);
    assert_eq!(d.command.as_deref(), Some("git"));
    assert_eq!(d.args, ["log", "--grep={query}", "-n", "{count}"]);
    assert_eq!(d.prompt_template.as_deref(), Some("unused for a command, but allowed"));

    // Parameters.
    let types: Vec<_> = d.parameters.iter().map(|p| p.spec.param_type).collect();
    assert_eq!(types, [ParamType::String, ParamType::Number, ParamType::Boolean, ParamType::Enum]);
    let q = d.parameter("query").unwrap();
    assert!(q.spec.required);
    assert_eq!(q.spec.pattern.as_deref(), Some("[a-z]+"));
    assert_eq!(q.spec.description.as_deref(), Some("What to look for"));
    let re = q.pattern.as_ref().expect("checked pattern");
    assert_eq!(re.as_str(), "^(?:[a-z]+)$");
    assert!(!re.is_compiled(), "compiled on first use, not at load");
    assert_eq!(re.is_match("abc"), Ok(true));
    assert_eq!(re.is_match("abc;rm"), Ok(false), "the pattern is anchored");
    assert!(!d.parameter("count").unwrap().spec.required);
    assert!(!d.parameter("verbose").unwrap().spec.required, "required defaults to false");
    let level = d.parameter("level").unwrap();
    assert_eq!(level.spec.values.as_deref(), Some(&["low".to_string(), "high".to_string()][..]));

    // Permissions: both sections and both spellings merged.
    let p = &d.permissions;
    let read = p.file_read.clone().expect("file_read declared");
    for want in ["src", "shared", "sandboxed"] {
        assert!(read.iter().any(|r| r == want), "{want} readable: {read:?}");
    }
    for want in ["out", "shared", "sandboxed"] {
        assert!(p.file_write.iter().any(|w| w == want), "{want} writable: {:?}", p.file_write);
    }
    assert!(!p.file_write.iter().any(|w| w == "src"), "file_read paths are not writable");
    // `network_access: false` wins over `allow_network` in the same section; the union with
    // the sandbox section (`allow_network: false`) is still none.
    assert_eq!(p.network, Some(NetworkLevel::None));

    // Limits.
    let l = &d.limits;
    assert_eq!(l.max_memory_mb, Some(128));
    assert_eq!(l.max_execution_time, Some(20.0));
    assert_eq!(l.max_cpu_percent, Some(40));
    assert_eq!(l.max_processes, Some(3));
    assert_eq!(l.max_open_files, Some(30));
    assert_eq!(l.max_disk_io_mb, Some(5));
    // `timeout` wins over max_execution_time and resilience.timeout.
    assert_eq!(d.timeout, Some(Duration::from_secs(30)));

    // Resilience, with the top-level global forms folded in.
    let r = &d.resilience;
    assert_eq!(r.retry_attempts, Some(2));
    assert_eq!(r.timeout, Some(10.0));
    assert_eq!(r.fallback_command.as_deref(), Some("git log --oneline"));
    let fcs = r.fallback_commands.as_ref().expect("fallback_commands");
    assert_eq!(fcs.len(), 2);
    assert_eq!(fcs[0].command, "git");
    assert_eq!(fcs[0].args, ["log", "-1"]);
    assert_eq!(fcs[1].command, "true");
    assert!(fcs[1].args.is_empty());
    let ec = r.error_classification.as_ref().expect("error_classification");
    assert_eq!(ec.transient_patterns, ["timed? ?out", "EAGAIN"]);
    assert_eq!(ec.permanent_patterns, ["^fatal:"]);
    let rc = r.retry_config.as_ref().expect("retry_config folded into resilience");
    assert_eq!(rc.max_attempts, Some(3));
    assert_eq!(rc.backoff_strategy.as_deref(), Some("exponential"));
    assert_eq!(rc.retry_on, ["timeout", "resource_limit", "network_error"]);
    let cb = r.circuit_breaker.as_ref().expect("circuit_breaker folded into resilience");
    assert_eq!(cb.failure_threshold, 5);
    assert_eq!(cb.recovery_timeout, 60.0);

    // The rest.
    let sc = d.session_config.as_ref().expect("session_config");
    assert_eq!(
        (sc.session_timeout, sc.max_sessions, sc.cleanup_on_exit),
        (Some(300.0), Some(1), Some(false))
    );
    let cf = d.context_files.as_ref().expect("context_files");
    assert_eq!(cf.patterns, ["*.md"]);
    assert_eq!(cf.exclude_patterns, ["secret*"]);
    assert_eq!(d.environment.get("GIT_PAGER").map(String::as_str), Some("cat"));
    assert_eq!(d.environment.get("_LANG_2").map(String::as_str), Some("C"));
    assert_eq!(d.aliases, ["all", "every-field"]);
    assert_eq!(d.metadata.get("requires_worktree"), Some(&json!(true)));
    assert_eq!(d.metadata.get("author"), Some(&json!("A. Person")));
    assert_eq!(d.metadata.get("license"), Some(&json!("MIT")));
    assert_eq!(d.metadata.get("homepage"), Some(&json!("https://example.com/skills")));
    assert_eq!(d.metadata.get("dependencies"), Some(&json!(["git"])));
    assert_eq!(d.metadata.get("metadata"), Some(&json!({"category": "vcs", "tags": ["x"]})));
    assert_eq!(d.metadata.get("scope"), Some(&json!("workspace")));
    assert!(d.extra.is_empty(), "every key above is known: {:?}", d.extra);
    assert_eq!(d.raw, everything());
}

#[test]
fn resilience_values_of_their_own_take_precedence_over_top_level_forms() {
    let d = ok(cmd(json!({
        "resilience": {"retry_config": {"max_attempts": 1},
                       "circuit_breaker": {"failure_threshold": 2, "recovery_timeout": 5}},
        "retry_config": {"max_attempts": 9},
        "circuit_breaker": {"failure_threshold": 9, "recovery_timeout": 9}
    })));
    assert_eq!(d.resilience.retry_config.as_ref().unwrap().max_attempts, Some(1));
    assert_eq!(d.resilience.circuit_breaker.as_ref().unwrap().failure_threshold, 2);
}

#[test]
fn allowed_paths_with_allow_file_write_are_readable_and_writable() {
    for section in ["security", "sandbox"] {
        let perms = json!({"allowed_paths": ["data", "logs/app"], "allow_file_write": true});
        let v = if section == "security" {
            cmd(json!({"security": {"permissions": perms}}))
        } else {
            cmd(json!({"sandbox": perms}))
        };
        let d = ok(v);
        assert_eq!(
            d.permissions.file_read.as_deref(),
            Some(&["data".to_string(), "logs/app".to_string()][..]),
            "{section}"
        );
        assert_eq!(d.permissions.file_write, ["data", "logs/app"], "{section}");
    }
    // Without allow_file_write they are only readable.
    let d = ok(cmd(json!({"sandbox": {"allowed_paths": ["data"]}})));
    assert_eq!(d.permissions.file_read.as_deref(), Some(&["data".to_string()][..]));
    assert!(d.permissions.file_write.is_empty());
    let d = ok(cmd(json!({"sandbox": {"allowed_paths": ["data"], "allow_file_write": false}})));
    assert!(d.permissions.file_write.is_empty());
}

#[test]
fn network_spellings_map_to_levels() {
    let net =
        |perms: Value| ok(cmd(json!({"security": {"permissions": perms}}))).permissions.network;
    assert_eq!(net(json!({"allow_network": true})), Some(NetworkLevel::HttpsOnly));
    assert_eq!(net(json!({"allow_network": false})), Some(NetworkLevel::None));
    assert_eq!(net(json!({"network_access": true})), Some(NetworkLevel::HttpsOnly));
    assert_eq!(net(json!({"network_access": false})), Some(NetworkLevel::None));
    assert_eq!(net(json!({"network_access": "full"})), Some(NetworkLevel::Full));
    assert_eq!(net(json!({"network_access": "https-only"})), Some(NetworkLevel::HttpsOnly));
    assert_eq!(net(json!({"network_access": "none"})), Some(NetworkLevel::None));
    assert_eq!(net(json!({})), None, "undeclared stays undeclared");
    let d = ok(cmd(json!({"sandbox": {"allow_network": true}})));
    assert_eq!(d.permissions.network, Some(NetworkLevel::HttpsOnly));
    // Asking in both places asks for the union (the most).
    let d = ok(cmd(json!({
        "security": {"permissions": {"network_access": false}},
        "sandbox": {"allow_network": true}
    })));
    assert_eq!(d.permissions.network, Some(NetworkLevel::HttpsOnly));
    // An unknown level is refused with its field.
    let d = one_field_error(
        cmd(json!({"security": {"permissions": {"network_access": "lan"}}})),
        "security.permissions.network_access",
    );
    assert!(d.reason.contains("lan"), "{d}");
}

#[test]
fn network_access_http_is_https_only_plus_a_declared_port_80() {
    let d = ok(cmd(json!({"security": {"permissions": {"network_access": "http"}}})));
    assert_eq!(d.permissions.network, Some(NetworkLevel::HttpsOnly), "no more network than true");
    assert!(d.permissions.plain_http);
    let d = ok(cmd(json!({"security": {"permissions": {"network_access": true}}})));
    assert!(!d.permissions.plain_http);
    let d = one_field_error(
        cmd(json!({"security": {"permissions": {"network_access": "HTTP/1.1"}}})),
        "security.permissions.network_access",
    );
    assert!(d.reason.contains("\"http\""), "{d}");
}

#[test]
fn allowed_domains_are_normalised_once_and_deduplicated() {
    let d = ok(cmd(json!({"security": {"permissions": {
        "network_access": true,
        "allowed_domains": ["API.Example.COM.", "api.example.com", "*.Bücher.example:8443", "[2001:DB8::1]"]
    }}})));
    let shown: Vec<String> =
        d.permissions.allowed_domains.unwrap().iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["api.example.com", "*.xn--bcher-kva.example:8443", "[2001:db8::1]"]);
    // Both spellings of the section: the union, each entry once.
    let d = ok(cmd(json!({
        "security": {"permissions": {"network_access": "http", "allowed_domains": ["a.example"]}},
        "sandbox": {"allowed_domains": ["b.example", "A.example"]}
    })));
    let shown: Vec<String> =
        d.permissions.allowed_domains.unwrap().iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["a.example", "b.example"]);
    assert_eq!(ok(cmd(json!({}))).permissions.allowed_domains, None);
}

#[test]
fn allowed_domains_refusals_name_the_entry_and_the_reason() {
    let perms = |list: Value| {
        cmd(json!({"security": {"permissions": {"network_access": true, "allowed_domains": list}}}))
    };
    for (entry, why) in [
        ("evil.com\u{0}.example.com", "NUL"),
        ("example.com%2F", "percent"),
        ("user@example.com", "userinfo"),
        ("a..example.com", "empty label"),
        ("*", "bare `*`"),
        ("a.*.example.com", "leftmost"),
        ("*.com", "top-level"),
        ("example.com:0", "port"),
        ("127.1", "numeric"),
        ("exa\nmple.com", "control"),
    ] {
        let d = one_field_error(
            perms(json!(["ok.example", entry])),
            "security.permissions.allowed_domains[1]",
        );
        assert!(d.reason.contains(why), "{entry:?}: {d}");
    }
    let d = one_field_error(perms(json!([])), "security.permissions.allowed_domains");
    assert!(d.reason.contains("empty"), "{d}");
    let d = one_field_error(perms(json!("example.com")), "security.permissions.allowed_domains");
    assert!(d.reason.contains("sequence"), "{d}");
}

#[test]
fn allowed_domains_never_ask_for_network_themselves() {
    for (net, why) in [
        (None, "not declared"),
        (Some(json!(false)), "false"),
        (Some(json!("none")), "false"),
        (Some(json!("full")), "\"full\""),
    ] {
        let mut perms = json!({"allowed_domains": ["example.com"]});
        if let Some(n) = net {
            perms["network_access"] = n;
        }
        let d = one_field_error(
            cmd(json!({"security": {"permissions": perms}})),
            "security.permissions.allowed_domains",
        );
        assert!(d.reason.contains(why) && d.reason.contains("network_access"), "{d}");
    }
    // The older spelling counts as declaring HTTPS.
    let d =
        ok(cmd(json!({"sandbox": {"allow_network": true, "allowed_domains": ["example.com"]}})));
    assert_eq!(d.permissions.network, Some(NetworkLevel::HttpsOnly));
}

#[test]
fn undeclared_file_read_is_none_and_declared_empty_is_some() {
    assert_eq!(ok(cmd(json!({}))).permissions.file_read, None);
    let d = ok(cmd(json!({"security": {"permissions": {"file_read": []}}})));
    assert_eq!(d.permissions.file_read, Some(vec![]));
}

#[test]
fn timeout_precedence_is_timeout_then_max_execution_time_then_resilience() {
    let all = json!({
        "timeout": 7,
        "security": {"resource_limits": {"max_execution_time": 8}},
        "resilience": {"timeout": 9}
    });
    assert_eq!(ok(cmd(all)).timeout, Some(Duration::from_secs(7)));
    let two = json!({
        "security": {"resource_limits": {"max_execution_time": 8}},
        "resilience": {"timeout": 9}
    });
    assert_eq!(ok(cmd(two)).timeout, Some(Duration::from_secs(8)));
    assert_eq!(
        ok(cmd(json!({"resilience": {"timeout": 9}}))).timeout,
        Some(Duration::from_secs(9))
    );
    assert_eq!(ok(cmd(json!({"timeout": 0.5}))).timeout, Some(Duration::from_millis(500)));
    assert_eq!(ok(cmd(json!({}))).timeout, None);
}

// ---------------------------------------------------------------- unknown keys are kept

#[test]
fn unknown_keys_are_kept_at_top_level_and_nested() {
    let v = cmd(json!({
        "x-team": {"owner": "ops", "n": [1, 2]},
        "legacy_flag": true,
        "security": {"permissions": {"file_read": ["."]}},
        "parameters": [{"name": "p", "type": "string", "ui_hint": "textarea"}]
    }));
    let d = ok(v.clone());
    assert_eq!(d.extra.get("x-team"), Some(&json!({"owner": "ops", "n": [1, 2]})));
    assert_eq!(d.extra.get("legacy_flag"), Some(&json!(true)));
    assert_eq!(d.extra.len(), 2, "known keys are not in extra: {:?}", d.extra);
    assert_eq!(d.raw["parameters"][0]["ui_hint"], json!("textarea"));
    assert_eq!(d.raw, v);
    // Except inside `security`: a key there that skillbox does not know is a permission or
    // a limit it would not honour, so the skill is refused rather than run without it.
    for security in [
        json!({"permissions": {"file_read": ["."], "future_permission": "yes"}}),
        json!({"audit": {"level": "high"}}),
    ] {
        let ds = errs(cmd(json!({"security": security})));
        assert!(ds[0].to_string().contains("unknown field"), "{:?}", ds[0]);
    }
}

// ---------------------------------------------------------------- refusals

#[test]
fn a_diagnostic_displays_as_one_line_with_file_field_and_reason() {
    let d = one_field_error(cmd(json!({"timeout": 0})), "timeout");
    assert!(d.reason.contains("positive"), "{d}");
    assert_eq!(d.to_string(), format!("{FILE}: field `timeout`: {}", d.reason));

    // A file-level problem has no field.
    let d = &bytes_errs(b"{not json")[0];
    assert_eq!(d.field, None);
    assert_eq!(d.to_string(), format!("{FILE}: {}", d.reason));
}

#[test]
fn a_file_with_three_problems_yields_three_diagnostics() {
    let ds = errs(json!({
        "name": "t", "type": "command", "command": "ls",
        "version": "1.x",
        "timeout": -1,
        "parameters": [{"name": "e", "type": "enum"}]
    }));
    let mut fields: Vec<_> = ds.iter().map(|d| d.field.clone().unwrap_or_default()).collect();
    fields.sort();
    assert_eq!(fields, ["parameters[0].values", "timeout", "version"], "{ds:#?}");
    for d in &ds {
        assert_eq!(d.path, path());
        assert!(!d.to_string().contains('\n'));
    }
}

#[test]
fn bad_names_are_refused_with_the_name_field() {
    for bad in ["", "has space", "../x", "a/b", "é", "a\u{0}b"] {
        let d = one_field_error(json!({"name": bad, "type": "command", "command": "ls"}), "name");
        assert!(d.reason.contains("not a valid skill name"), "{d}");
        assert!(!d.to_string().contains('\0') && !d.to_string().contains('\n'));
    }
    let d = one_field_error(
        json!({"name": "x".repeat(129), "type": "command", "command": "ls"}),
        "name",
    );
    assert!(d.reason.contains("129"), "{d}");
}

#[test]
fn a_missing_or_mistyped_field_is_named() {
    let ds = errs(json!({"type": "command", "command": "ls"}));
    assert_eq!(ds.len(), 1);
    assert!(ds[0].reason.contains("name"), "{ds:?}");
    assert_eq!(ds[0].path, path());

    let d = one_field_error(cmd(json!({"timeout": "ten"})), "timeout");
    assert!(d.reason.contains("invalid type"), "{d}");
    let d = one_field_error(json!({"name": "t", "type": "shell", "command": "ls"}), "type");
    assert!(d.reason.contains("shell"), "{d}");
    let d = one_field_error(
        cmd(
            json!({"parameters": [{"name": "a", "type": "string"}, {"name": "b", "type": "list"}]}),
        ),
        "parameters[1].type",
    );
    assert!(d.reason.contains("list"), "{d}");
    one_field_error(cmd(json!({"args": "-l"})), "args");
}

#[test]
fn invalid_json_is_refused_for_the_file() {
    let d = &bytes_errs(b"{\"name\": \"x\",")[0];
    assert_eq!(d.path, path());
    assert_eq!(d.field, None);
    assert!(d.reason.contains("not valid JSON"), "{d}");
    let d = &bytes_errs(b"")[0];
    assert!(d.reason.contains("not valid JSON"), "{d}");
}

#[test]
fn invalid_utf8_is_refused_with_an_offset() {
    let d = &bytes_errs(b"{\"name\": \"\xff\xfe\"}")[0];
    assert_eq!(d.field, None);
    assert!(d.reason.contains("UTF-8"), "{d}");
    assert!(d.reason.contains("offset 10"), "{d}");
}

#[test]
fn a_json_array_or_scalar_is_not_a_skill() {
    for text in [&b"[{\"name\": \"x\"}]"[..], b"\"skill\"", b"null", b"42"] {
        let d = &bytes_errs(text)[0];
        assert_eq!(d.field, None);
        assert!(d.reason.contains("one JSON object"), "{d}");
    }
}

#[test]
fn a_huge_buffer_is_refused_by_size_before_parsing() {
    // 50 MB of garbage: if it were parsed the message would be about JSON.
    let big = vec![b'x'; 50 * 1024 * 1024];
    let ds = bytes_errs(&big);
    assert_eq!(ds.len(), 1);
    let d = &ds[0];
    assert_eq!(d.field, None);
    assert!(d.reason.contains(&MAX_SKILL_FILE_BYTES.to_string()), "names the limit: {d}");
    assert!(d.reason.contains(&big.len().to_string()), "names the size: {d}");
    assert!(!d.reason.contains("JSON"), "refused before parsing: {d}");

    // Exactly at the limit is still parsed (and here refused as JSON, not by size).
    let at = vec![b' '; MAX_SKILL_FILE_BYTES as usize];
    let d = &bytes_errs(&at)[0];
    assert!(d.reason.contains("not valid JSON"), "{d}");
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(100_000);
    let d = &bytes_errs(deep.as_bytes())[0];
    assert_eq!(d.field, None);
    assert!(d.reason.contains("not valid JSON"), "{d}");

    let mut nested =
        String::from("{\"name\": \"t\", \"type\": \"command\", \"command\": \"ls\", \"x\": ");
    nested.push_str(&"{\"a\": ".repeat(100_000));
    nested.push('1');
    nested.push_str(&"}".repeat(100_001));
    let d = &bytes_errs(nested.as_bytes())[0];
    assert!(d.reason.contains("not valid JSON"), "{d}");
}

#[test]
fn prompt_and_prompt_template_together_are_refused() {
    let d = one_field_error(
        json!({"name": "p", "type": "prompt_inline", "prompt": "a", "prompt_template": "b"}),
        "prompt",
    );
    assert!(d.reason.contains("prompt_template"), "{d}");
}

#[test]
fn parameter_declarations_are_checked() {
    let d = one_field_error(
        cmd(json!({"parameters": [{"name": "e", "type": "enum"}]})),
        "parameters[0].values",
    );
    assert!(d.reason.contains("needs `values`"), "{d}");
    let d = one_field_error(
        cmd(json!({"parameters": [{"name": "e", "type": "enum", "values": []}]})),
        "parameters[0].values",
    );
    assert!(d.reason.contains("at least one"), "{d}");
    let d = one_field_error(
        cmd(json!({"parameters": [{"name": "s", "type": "string", "values": ["a"]}]})),
        "parameters[0].values",
    );
    assert!(d.reason.contains("only `enum`"), "{d}");
    let d = one_field_error(
        cmd(json!({"parameters": [
            {"name": "s", "type": "string"},
            {"name": "n", "type": "number", "pattern": "[0-9]+"}
        ]})),
        "parameters[1].pattern",
    );
    assert!(d.reason.contains("only `string`"), "{d}");
    let d = one_field_error(
        cmd(json!({"parameters": [{"name": "s", "type": "string", "pattern": "(unclosed"}]})),
        "parameters[0].pattern",
    );
    assert!(d.reason.contains("invalid regex"), "{d}");
    let d = one_field_error(
        cmd(json!({"parameters": [
            {"name": "dup", "type": "string"},
            {"name": "dup", "type": "number"}
        ]})),
        "parameters[1].name",
    );
    assert!(d.reason.contains("twice"), "{d}");
    let d = one_field_error(
        cmd(json!({"parameters": [{"name": "a b", "type": "string"}]})),
        "parameters[0].name",
    );
    assert!(d.reason.contains("not a valid parameter name"), "{d}");
}

#[test]
fn bad_versions_are_refused() {
    for bad in ["1.x", "", "1..0", "v1", "1.0.0-beta", ".1"] {
        let d = one_field_error(cmd(json!({ "version": bad })), "version");
        assert!(d.reason.contains("dotted integers"), "{bad}: {d}");
    }
    for good in ["1", "1.0", "10.20.30.40"] {
        assert_eq!(ok(cmd(json!({ "version": good }))).version.as_deref(), Some(good));
    }
}

#[test]
fn bad_timeouts_are_refused_in_every_spelling() {
    for bad in [json!(0), json!(-1), json!(1e12), json!(-0.0)] {
        one_field_error(cmd(json!({ "timeout": bad })), "timeout");
        one_field_error(
            cmd(json!({"security": {"resource_limits": {"max_execution_time": bad}}})),
            "security.resource_limits.max_execution_time",
        );
        one_field_error(cmd(json!({"resilience": {"timeout": bad}})), "resilience.timeout");
    }
    let d = one_field_error(cmd(json!({"timeout": 1e12})), "timeout");
    assert!(d.reason.contains("maximum"), "{d}");
    // The largest accepted value is one day.
    assert_eq!(ok(cmd(json!({"timeout": 86400}))).timeout, Some(Duration::from_secs(86400)));
}

#[test]
fn bad_aliases_are_refused() {
    let d = one_field_error(cmd(json!({"aliases": ["ok", "not ok"]})), "aliases[1]");
    assert!(d.reason.contains("not a valid name"), "{d}");
    let d = one_field_error(cmd(json!({"aliases": ["../up"]})), "aliases[0]");
    assert!(d.reason.contains("not a valid name"), "{d}");
    let d = one_field_error(cmd(json!({"aliases": ["t"]})), "aliases[0]");
    assert!(d.reason.contains("differ"), "{d}");
}

#[test]
fn bad_environment_names_are_refused() {
    for bad in ["1ABC", "A-B", "", "A B", "A=B"] {
        let d = one_field_error(cmd(json!({"environment": { bad: "v" }})), "environment");
        assert!(d.reason.contains("not a valid variable name"), "{bad}: {d}");
    }
    let d = one_field_error(cmd(json!({"environment": {"OK": "a\u{0}b"}})), "environment.OK");
    assert!(d.reason.contains("NUL"), "{d}");
}

#[test]
fn resilience_settings_are_checked() {
    let d = one_field_error(
        cmd(json!({"retry_config": {"retry_on": ["timeout", "disk_full"]}})),
        "retry_config.retry_on[1]",
    );
    assert!(d.reason.contains("disk_full"), "{d}");
    let d = one_field_error(
        cmd(json!({"retry_config": {"backoff_strategy": "random"}})),
        "retry_config.backoff_strategy",
    );
    assert!(d.reason.contains("random"), "{d}");
    let d = one_field_error(
        cmd(json!({"circuit_breaker": {"failure_threshold": 0, "recovery_timeout": 30}})),
        "circuit_breaker.failure_threshold",
    );
    assert!(d.reason.contains("at least 1"), "{d}");
    one_field_error(
        cmd(json!({"circuit_breaker": {"failure_threshold": 1, "recovery_timeout": 0}})),
        "circuit_breaker.recovery_timeout",
    );
    one_field_error(
        cmd(json!({"resilience": {"error_classification": {"transient_patterns": ["("]}}})),
        "resilience.error_classification.transient_patterns[0]",
    );
    one_field_error(
        cmd(json!({"resilience": {"fallback_commands": [{"command": " "}]}})),
        "resilience.fallback_commands[0].command",
    );
    one_field_error(
        cmd(json!({"resilience": {"fallback_command": ""}})),
        "resilience.fallback_command",
    );
    one_field_error(
        cmd(json!({"resilience": {"retry_attempts": 1000}})),
        "resilience.retry_attempts",
    );
}

#[test]
fn other_semantic_checks_name_their_field() {
    one_field_error(
        cmd(json!({"security": {"resource_limits": {"max_cpu_percent": 0}}})),
        "security.resource_limits.max_cpu_percent",
    );
    one_field_error(
        cmd(json!({"security": {"resource_limits": {"max_memory_mb": 0}}})),
        "security.resource_limits.max_memory_mb",
    );
    one_field_error(
        cmd(json!({"security": {"permissions": {"file_read": [""]}}})),
        "security.permissions.file_read",
    );
    one_field_error(
        cmd(json!({"security": {"permissions": {"file_write": ["a\u{0}b"]}}})),
        "security.permissions.file_write",
    );
    one_field_error(cmd(json!({"args": ["ok", "a\u{0}"]})), "args[1]");
    one_field_error(
        json!({"name": "c", "type": "conversation", "prompt": "x",
               "context_files": {"patterns": ["a[b"]}}),
        "context_files.patterns[0]",
    );
}

#[test]
fn control_characters_in_reasons_do_not_break_the_line() {
    let d = one_field_error(cmd(json!({"version": "1\n2"})), "version");
    let line = d.to_string();
    assert!(!line.contains('\n'), "{line:?}");
}

#[test]
fn the_path_given_is_the_path_reported() {
    let p = Path::new("/some/where/odd name.json");
    let ds = parse_skill(p, b"[]").unwrap_err();
    assert_eq!(ds[0].path, p);
    assert!(ds[0].to_string().starts_with("/some/where/odd name.json: "));
}

#[test]
fn control_characters_in_field_names_do_not_break_the_line() {
    // Map keys come from the file and end up in field paths.
    for v in
        [cmd(json!({"environment": {"A\nB": "x\u{0}"}})), cmd(json!({"environment": {"A\nB": 5}}))]
    {
        for d in errs(v) {
            let line = d.to_string();
            assert!(!line.contains('\n') && !line.contains('\0'), "{line:?}");
            assert!(d.field.as_deref().is_some_and(|f| f.starts_with("environment")), "{d:?}");
        }
    }
    let d = one_field_error(cmd(json!({"environment": {"A\nB": 5}})), "environment.A\\nB");
    assert!(d.reason.contains("invalid type"), "{d}");
}

/// A typo inside `security` changes what a skill may do: it is refused, naming the field,
/// with the key it is close to. The same key elsewhere (another tool's) is kept.
#[test]
fn an_unknown_key_in_security_is_refused_with_a_suggestion() {
    for (security, field, suggestion) in [
        (json!({"permissions": {"file_wirte": ["out"]}}), "security.permissions", "file_write"),
        (json!({"permissions": {"network_acess": true}}), "security.permissions", "network_access"),
        (
            json!({"resource_limits": {"max_memroy_mb": 64}}),
            "security.resource_limits",
            "max_memory_mb",
        ),
        (json!({"permisions": {}}), "security", "permissions"),
    ] {
        let ds =
            errs(json!({"name": "t", "type": "command", "command": "true", "security": security}));
        let msg = ds[0].to_string();
        assert!(msg.contains(field), "{field}: {msg}");
        assert!(msg.contains(&format!("did you mean `{suggestion}`?")), "{msg}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
    }
    // The design-doc `sandbox` object is permissions too.
    let ds = errs(json!({"name": "t", "type": "command", "command": "true",
        "sandbox": {"allow_netwrok": true}}));
    assert!(ds[0].to_string().contains("did you mean `allow_network`?"), "{:?}", ds[0]);
    // Far from every known key: refused, without a guess.
    let ds = errs(json!({"name": "t", "type": "command", "command": "true",
        "security": {"permissions": {"gpu": true}}}));
    let msg = ds[0].to_string();
    assert!(msg.contains("unknown field `gpu`") && !msg.contains("did you mean"), "{msg}");
}

/// Elsewhere a key the format does not define is kept (other tools' files must load), and
/// one close to a known key is named as a likely typo.
#[test]
fn a_top_level_or_parameter_key_close_to_a_known_one_is_warned_of() {
    let d = ok(json!({"name": "t", "type": "command", "command": "echo", "args": ["{a}"],
        "paramters": [], "x-other-tool": 1,
        "parameters": [{"name": "a", "type": "string", "requried": true, "descripton": "d",
                        "ui-hint": "wide"}]}));
    let w = d.typo_warnings();
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(w[0].contains("\"paramters\"") && w[0].contains("did you mean `parameters`?"), "{w:?}");
    assert!(w.iter().any(|l| l.starts_with("parameters[0]") && l.contains("`required`")), "{w:?}");
    assert!(w.iter().any(|l| l.contains("`description`")), "{w:?}");
    assert!(d.extra.contains_key("x-other-tool") && d.extra.contains_key("paramters"));
    // A file without typos has no warning.
    let d = ok(json!({"name": "t", "type": "command", "command": "true", "x-other-tool": 1}));
    assert!(d.typo_warnings().is_empty());
    // A hostile key is escaped.
    let d = ok(json!({"name": "t", "type": "command", "command": "true", "nam\u{1b}e": 1}));
    let w = d.typo_warnings();
    assert!(w.iter().all(|l| !l.contains('\u{1b}')), "{w:?}");
}
