//! Parameter validation and placeholder substitution, trust-level defaults and the
//! declaration check, then real runs through `Runtime::run` and the `Tool` trait.
//!
//! Runs as root and again as `nobody`: every write goes to a fresh temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use skillbox_skills::format::{NetworkLevel, ProcessSpawn};
use skillbox_skills::params::{
    self, build_args, substitute, ParamProblem, Params, MAX_PARAM_BYTES,
};
use skillbox_skills::security::{normalize, EnvPolicy, FileScope, Permission};
use skillbox_skills::{
    parse_skill, Denial, Registry, Runtime, SecurityContext, SkillDef, SkillTool, Status, Tool,
    TrustLevel,
};

fn def(v: Value) -> SkillDef {
    parse_skill(Path::new("test.json"), v.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{v} should load: {e:#?}"))
}

/// A command skill with the given parameters and `extra` fields.
fn skill_with(params: Value, extra: Value) -> SkillDef {
    let mut v = json!({"name": "t", "type": "command", "command": "true", "parameters": params});
    let (Value::Object(m), Value::Object(e)) = (&mut v, extra) else { unreachable!() };
    m.extend(e);
    def(v)
}

fn typed() -> SkillDef {
    skill_with(
        json!([
            {"name": "s", "type": "string", "required": true, "pattern": "[a-z]+"},
            {"name": "n", "type": "number"},
            {"name": "b", "type": "boolean"},
            {"name": "e", "type": "enum", "values": ["low", "high"]}
        ]),
        json!({}),
    )
}

fn problems(skill: &SkillDef, input: Value) -> Vec<ParamProblem> {
    match params::validate(skill, &input) {
        Ok(p) => panic!("{input} should be refused, got {p:?}"),
        Err(ps) => {
            assert!(!ps.is_empty());
            ps
        }
    }
}

fn accepted(skill: &SkillDef, input: Value) -> Params {
    params::validate(skill, &input).unwrap_or_else(|e| panic!("{input} refused: {e:#?}"))
}

/// The single problem with `input`, which must concern `param`.
fn problem(skill: &SkillDef, input: Value, param: &str) -> ParamProblem {
    let ps = problems(skill, input);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert_eq!(ps[0].parameter, param, "{ps:#?}");
    ps.into_iter().next().unwrap()
}

// ---------------------------------------------------------------- params::validate

#[test]
fn values_of_each_type_are_accepted_and_rendered() {
    let p = accepted(&typed(), json!({"s": "abc", "n": 2.5, "b": true, "e": "high"}));
    assert_eq!(p.get("s"), Some("abc"));
    assert_eq!(p.get("n"), Some("2.5"));
    assert_eq!(p.get("b"), Some("true"));
    assert_eq!(p.get("e"), Some("high"));
    let p = accepted(&typed(), json!({"s": "x", "n": -3, "b": false}));
    assert_eq!(p.get("n"), Some("-3"));
    assert_eq!(p.get("b"), Some("false"));
    assert_eq!(p.get("e"), None);
    assert_eq!(p.iter().count(), 3);
}

#[test]
fn wrong_types_are_refused() {
    let t = typed();
    let r = problem(&t, json!({"s": 5}), "s").reason;
    assert!(r.contains("must be a string") && r.contains("number"), "{r}");
    let r = problem(&t, json!({"s": "a", "n": "3"}), "n").reason;
    assert!(r.contains("must be a number"), "{r}");
    let r = problem(&t, json!({"s": "a", "b": "true"}), "b").reason;
    assert!(r.contains("true or false"), "{r}");
    let r = problem(&t, json!({"s": "a", "e": 1}), "e").reason;
    assert!(r.contains("must be a string"), "{r}");
    problem(&t, json!({"s": ["a"]}), "s");
    problem(&t, json!({"s": {"a": 1}}), "s");
    problem(&t, json!({"s": null}), "s");
}

#[test]
fn required_enum_and_pattern_rules_hold() {
    let t = typed();
    let p = problem(&t, json!({"n": 1}), "s");
    assert!(p.reason.contains("required"), "{p}");
    assert_eq!(p.to_string(), format!("parameter `s`: {}", p.reason));

    let r = problem(&t, json!({"s": "a", "e": "medium"}), "e").reason;
    assert!(r.contains("medium") && r.contains("low, high"), "{r}");
    problem(&t, json!({"s": "a", "e": "LOW"}), "e");

    // The pattern must match the whole value.
    for bad in ["abc;rm", "abc\n", "ABC", "", " abc", "abc def", "$(touch x)"] {
        let r = problem(&t, json!({ "s": bad }), "s").reason;
        assert!(r.contains("does not match the pattern"), "{bad:?}: {r}");
    }
    accepted(&t, json!({"s": "abc"}));
    // An alternation is anchored as a whole too.
    let alt = skill_with(json!([{"name": "x", "type": "string", "pattern": "a|b"}]), json!({}));
    accepted(&alt, json!({"x": "a"}));
    problem(&alt, json!({"x": "ab"}), "x");
    problem(&alt, json!({"x": "xa"}), "x");
}

// Found by the fuzz target `params` (fuzz/): the refusal listed the skill file's enum
// values as written, a NUL, an escape sequence or a newline in one included.
#[test]
fn enum_values_of_the_skill_file_are_listed_escaped_in_a_refusal() {
    let t = skill_with(
        json!([{"name": "e", "type": "enum", "values": ["TO\u{0}DO", "\u{1b}[2Jx", "a\nb"]}]),
        json!({}),
    );
    let p = problem(&t, json!({"e": "TODO"}), "e");
    let shown = p.to_string();
    assert_eq!(
        shown, "parameter `e`: \"TODO\" is not one of: TO\\u{0}DO, \\u{1b}[2Jx, a\\nb",
        "one line, control characters escaped"
    );
}

#[test]
fn undeclared_parameters_are_refused_by_name() {
    let p = problem(&typed(), json!({"s": "a", "evil": "1"}), "evil");
    assert!(p.reason.contains("not declared") && p.reason.contains("s, n, b, e"), "{p}");
    let none = skill_with(json!([]), json!({}));
    let p = problem(&none, json!({"x": 1}), "x");
    assert!(p.reason.contains("takes no parameters"), "{p}");
    // A hostile key is shown escaped.
    let p = problem(&none, json!({"a\nb\u{0}": 1}), "a\\nb\\0");
    assert!(!p.to_string().contains('\n'));
}

#[test]
fn the_input_must_be_an_object_and_null_means_empty() {
    let none = skill_with(json!([]), json!({}));
    for bad in [json!([1]), json!("s"), json!(1), json!(true)] {
        let ps = problems(&none, bad.clone());
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].parameter, "", "{bad}");
        assert!(ps[0].reason.contains("must be a JSON object"), "{}", ps[0]);
    }
    assert_eq!(accepted(&none, Value::Null), Params::default());
    assert_eq!(accepted(&none, json!({})), Params::default());
    // null is {}: a required parameter is still missing.
    problem(&typed(), Value::Null, "s");
}

#[test]
fn nul_bytes_and_oversized_values_are_refused() {
    let s = skill_with(json!([{"name": "v", "type": "string"}]), json!({}));
    let r = problem(&s, json!({"v": "a\u{0}b"}), "v").reason;
    assert!(r.contains("NUL"), "{r}");
    accepted(&s, json!({ "v": "x".repeat(MAX_PARAM_BYTES) }));
    let r = problem(&s, json!({ "v": "x".repeat(MAX_PARAM_BYTES + 1) }), "v").reason;
    assert!(r.contains(&MAX_PARAM_BYTES.to_string()), "{r}");

    // The total is bounded too.
    let many: Vec<Value> =
        (0..10).map(|i| json!({"name": format!("p{i}"), "type": "string"})).collect();
    let s = skill_with(Value::Array(many), json!({}));
    let input: serde_json::Map<String, Value> =
        (0..10).map(|i| (format!("p{i}"), json!("y".repeat(60 * 1024)))).collect();
    let ps = problems(&s, Value::Object(input));
    assert!(ps.iter().any(|p| p.parameter.is_empty() && p.reason.contains("total")), "{ps:#?}");
}

#[test]
fn all_problems_are_collected() {
    let ps = problems(&typed(), json!({"n": "x", "b": 1, "e": "no", "evil": 0}));
    let mut names: Vec<&str> = ps.iter().map(|p| p.parameter.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["b", "e", "evil", "n", "s"], "{ps:#?}");
}

// ---------------------------------------------------------------- substitution

fn subst_skill() -> SkillDef {
    skill_with(
        json!([
            {"name": "ext", "type": "string"},
            {"name": "v", "type": "string"},
            {"name": "opt", "type": "string"},
            {"name": "n", "type": "number"}
        ]),
        json!({}),
    )
}

#[test]
fn placeholders_are_replaced_inside_one_element() {
    let s = subst_skill();
    let p = accepted(&s, json!({"ext": "py", "v": "two words; rm -rf ~", "n": 3}));
    let args: Vec<String> =
        ["--include=*.{ext}", "{v}", "-n{n}", "{ext}{ext}"].map(String::from).into();
    assert_eq!(build_args(&args, &s, &p), ["--include=*.py", "two words; rm -rf ~", "-n3", "pypy"]);
    assert_eq!(substitute("find . -name '*.{ext}'", &s, &p), "find . -name '*.py'");
}

#[test]
fn unknown_placeholders_stay_literal() {
    let s = subst_skill();
    let p = accepted(&s, json!({"ext": "py"}));
    let args: Vec<String> =
        ["{}", "{x}", "awk '{print $1}'", "{ ext }", "{", "}", "{ext", "{{ext}"]
            .map(String::from)
            .into();
    assert_eq!(
        build_args(&args, &s, &p),
        ["{}", "{x}", "awk '{print $1}'", "{ ext }", "{", "}", "{ext", "{py"]
    );
    assert_eq!(substitute(r#"{"json": {x}}"#, &s, &p), r#"{"json": {x}}"#);
}

#[test]
fn values_are_never_expanded_again() {
    let s = subst_skill();
    let p = accepted(&s, json!({"ext": "py", "v": "{ext} and {v} and {opt}"}));
    let args: Vec<String> = ["{v}", "x={v}"].map(String::from).into();
    assert_eq!(build_args(&args, &s, &p), ["{ext} and {v} and {opt}", "x={ext} and {v} and {opt}"]);
    assert_eq!(substitute("<{v}>", &s, &p), "<{ext} and {v} and {opt}>");
}

#[test]
fn an_absent_optional_parameter_is_dropped_as_an_element_and_empty_inside_one() {
    let s = subst_skill();
    let p = accepted(&s, json!({"ext": "py"}));
    let args: Vec<String> =
        ["a", "{opt}", "--opt={opt}", "{ext}", "pre{opt}post"].map(String::from).into();
    assert_eq!(build_args(&args, &s, &p), ["a", "--opt=", "py", "prepost"]);
    // A given but empty value is kept as an (empty) element.
    let p = accepted(&s, json!({"opt": ""}));
    assert_eq!(build_args(&["{opt}".to_string()], &s, &p), [""]);
    assert_eq!(substitute("[{opt}]", &s, &accepted(&s, json!({}))), "[]");
}

// ---------------------------------------------------------------- trust-level defaults

#[test]
fn defaults_follow_the_reference_trust_table() {
    use FileScope::*;
    struct Row {
        level: TrustLevel,
        read: Vec<FileScope>,
        write: Vec<FileScope>,
        net: NetworkLevel,
        spawn: ProcessSpawn,
        secs: u64,
        mem: u64,
        cpu: u32,
        disk: u64,
        procs: u64,
        files: u64,
        env: EnvPolicy,
    }
    let rows = [
        Row {
            level: TrustLevel::Untrusted,
            read: vec![Workspace, PrivateTemp],
            write: vec![PrivateTemp],
            net: NetworkLevel::None,
            spawn: ProcessSpawn::None,
            secs: 10,
            mem: 64,
            cpu: 25,
            disk: 10,
            procs: 1,
            files: 10,
            env: EnvPolicy::Clean,
        },
        Row {
            level: TrustLevel::UserVerified,
            read: vec![Workspace, PrivateTemp],
            write: vec![Workspace, PrivateTemp],
            net: NetworkLevel::HttpsOnly,
            spawn: ProcessSpawn::Limited,
            secs: 60,
            mem: 256,
            cpu: 50,
            disk: 100,
            procs: 5,
            files: 50,
            env: EnvPolicy::Clean,
        },
        Row {
            level: TrustLevel::SystemTrusted,
            read: vec![Everything],
            write: vec![Everything],
            net: NetworkLevel::Full,
            spawn: ProcessSpawn::Full,
            secs: 300,
            mem: 1024,
            cpu: 80,
            disk: 1000,
            procs: 100,
            files: 1000,
            env: EnvPolicy::Inherit,
        },
    ];
    for r in rows {
        let c = SecurityContext::for_trust_level(r.level, "/w");
        assert_eq!(c.trust_level, r.level);
        assert_eq!(c.workspace, Path::new("/w"));
        assert!(!c.allow_weaker_isolation);
        assert_eq!(c.permissions.file_read, r.read, "{}", r.level);
        assert_eq!(c.permissions.file_write, r.write, "{}", r.level);
        assert_eq!(c.permissions.network_access, r.net, "{}", r.level);
        assert_eq!(c.permissions.process_spawn, r.spawn, "{}", r.level);
        let l = &c.resource_limits;
        assert_eq!(l.max_execution_time, Duration::from_secs(r.secs), "{}", r.level);
        assert_eq!(l.max_memory_mb, r.mem, "{}", r.level);
        assert_eq!(l.max_cpu_percent, r.cpu, "{}", r.level);
        assert_eq!(l.max_disk_io_mb, r.disk, "{}", r.level);
        assert_eq!(l.max_processes, r.procs, "{}", r.level);
        assert_eq!(l.max_open_files, r.files, "{}", r.level);
        assert_eq!(c.environment, r.env, "{}", r.level);
    }
    assert!(TrustLevel::Untrusted < TrustLevel::UserVerified);
    assert!(TrustLevel::UserVerified < TrustLevel::SystemTrusted);
}

// ---------------------------------------------------------------- validate_execution

const WS: &str = "/work/ws";

fn ctx(level: TrustLevel) -> SecurityContext {
    SecurityContext::for_trust_level(level, WS)
}

fn asking(perms: Value) -> SkillDef {
    skill_with(json!([]), json!({"name": "asker", "security": {"permissions": perms}}))
}

fn denied(level: TrustLevel, perms: Value) -> Denial {
    match ctx(level).validate_execution(&asking(perms.clone())) {
        Ok(g) => panic!("{perms} at {level} should be denied, granted {g:?}"),
        Err(d) => {
            assert_eq!(d.skill, "asker");
            assert_eq!(d.trust_level, level);
            assert_eq!(d.to_string(), d.message());
            assert!(!d.message().contains('\n'));
            d
        }
    }
}

#[test]
fn untrusted_network_is_denied_with_the_field_and_the_fix() {
    let d = denied(TrustLevel::Untrusted, json!({"network_access": true}));
    assert_eq!(d.permission, Permission::Network);
    assert_eq!(d.fix, Some(TrustLevel::UserVerified));
    let m = d.message();
    assert!(m.contains("security.permissions.network_access"), "{m}");
    assert!(m.contains("--trust user-verified"), "{m}");
    assert!(m.contains("asker") && m.contains("untrusted"), "{m}");
    // The old spelling asks for the same.
    let d = denied(TrustLevel::Untrusted, json!({"allow_network": true}));
    assert_eq!((d.permission, d.fix), (Permission::Network, Some(TrustLevel::UserVerified)));
}

#[test]
fn a_domain_list_never_widens_the_network_granted() {
    // The same denial as without the list: a list is not a way around the level.
    let list = json!({"network_access": "http", "allowed_domains": ["api.example.com"]});
    let d = denied(TrustLevel::Untrusted, list.clone());
    assert_eq!((d.permission, d.fix), (Permission::Network, Some(TrustLevel::UserVerified)));
    assert_eq!(d.asked, "https-only");
    // Granted, it is the level of `true`, with the list recorded beside it.
    let g = ctx(TrustLevel::UserVerified).validate_execution(&asking(list)).unwrap();
    assert_eq!(g.network, NetworkLevel::HttpsOnly);
    let shown: Vec<String> = g.allowed_domains.unwrap().iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["api.example.com"]);
    let g = ctx(TrustLevel::UserVerified)
        .validate_execution(&asking(json!({"network_access": true})))
        .unwrap();
    assert_eq!(g.allowed_domains, None);
}

#[test]
fn full_network_needs_system_trusted() {
    let d = denied(TrustLevel::UserVerified, json!({"network_access": "full"}));
    assert_eq!(d.permission, Permission::Network);
    assert_eq!(d.fix, Some(TrustLevel::SystemTrusted));
    assert!(d.message().contains("--trust system-trusted"), "{}", d.message());
    let d = denied(TrustLevel::Untrusted, json!({"network_access": "full"}));
    assert_eq!(d.fix, Some(TrustLevel::SystemTrusted));
}

#[test]
fn reads_outside_the_workspace_are_denied() {
    let d = denied(TrustLevel::UserVerified, json!({"file_read": ["src", "/etc/passwd"]}));
    assert_eq!(d.permission, Permission::FileRead);
    assert_eq!(d.fix, Some(TrustLevel::SystemTrusted));
    assert!(d.message().contains("/etc/passwd"), "{}", d.message());
    assert!(d.message().contains("security.permissions.file_read"), "{}", d.message());

    // `..` escapes the workspace lexically, and the message shows where it lands.
    let d = denied(TrustLevel::UserVerified, json!({"file_read": ["../outside"]}));
    assert_eq!(d.permission, Permission::FileRead);
    assert!(d.asked.contains("../outside") && d.asked.contains("/work/outside"), "{}", d.asked);
    assert_eq!(d.fix, Some(TrustLevel::SystemTrusted));
    let d = denied(TrustLevel::Untrusted, json!({"file_read": ["a/../../ws2"]}));
    assert_eq!(d.permission, Permission::FileRead);
    // The old spelling is a read too.
    let d = denied(TrustLevel::UserVerified, json!({"allowed_paths": ["/home"]}));
    assert_eq!(d.permission, Permission::FileRead);
}

#[test]
fn writes_are_denied_to_untrusted_and_outside_the_workspace() {
    let d = denied(TrustLevel::Untrusted, json!({"file_write": ["out"]}));
    assert_eq!(d.permission, Permission::FileWrite);
    assert_eq!(d.fix, Some(TrustLevel::UserVerified));
    assert!(d.message().contains("security.permissions.file_write"), "{}", d.message());
    let d = denied(TrustLevel::UserVerified, json!({"file_write": ["/tmp/x"]}));
    assert_eq!((d.permission, d.fix), (Permission::FileWrite, Some(TrustLevel::SystemTrusted)));
    let d =
        denied(TrustLevel::Untrusted, json!({"allowed_paths": ["data"], "allow_file_write": true}));
    assert_eq!(d.permission, Permission::FileWrite);
}

#[test]
fn process_spawn_beyond_the_level_is_denied() {
    let d = denied(TrustLevel::UserVerified, json!({"process_spawn": "full"}));
    assert_eq!((d.permission, d.fix), (Permission::ProcessSpawn, Some(TrustLevel::SystemTrusted)));
    let d = denied(TrustLevel::Untrusted, json!({"process_spawn": "limited"}));
    assert_eq!(d.fix, Some(TrustLevel::UserVerified));
}

#[test]
fn within_the_level_everything_declared_is_granted() {
    let ws = PathBuf::from(WS);
    let g = ctx(TrustLevel::UserVerified)
        .validate_execution(&asking(json!({
            "file_read": ["src", "./docs/../docs"], "file_write": ["out"],
            "network_access": true, "process_spawn": "limited"
        })))
        .unwrap();
    assert_eq!(g.file_read, [ws.join("src"), ws.join("docs")]);
    assert_eq!(g.file_write, [ws.join("out")]);
    assert_eq!(g.network, NetworkLevel::HttpsOnly);
    assert_eq!(g.process_spawn, ProcessSpawn::Limited);

    // Untrusted may read the workspace.
    let g = ctx(TrustLevel::Untrusted)
        .validate_execution(&asking(json!({"file_read": ["src"]})))
        .unwrap();
    assert_eq!(g.file_read, [ws.join("src")]);
    assert!(g.file_write.is_empty());
    assert_eq!(g.network, NetworkLevel::None);
    assert_eq!(g.process_spawn, ProcessSpawn::None);
}

#[test]
fn system_trusted_passes_everything() {
    for perms in [
        json!({"network_access": "full"}),
        json!({"file_read": ["/etc/passwd", "../outside"], "file_write": ["/tmp/x", "out"]}),
        json!({"process_spawn": "full", "allow_network": true}),
        json!({"allowed_paths": ["/"], "allow_file_write": true}),
    ] {
        let g = ctx(TrustLevel::SystemTrusted).validate_execution(&asking(perms.clone()));
        assert!(g.is_ok(), "{perms}: {g:?}");
    }
}

#[test]
fn undeclared_reads_default_to_the_workspace_and_network_to_none() {
    for level in TrustLevel::ALL {
        let g = ctx(level).validate_execution(&asking(json!({}))).unwrap();
        assert_eq!(g.file_read, [PathBuf::from(WS)], "{level}");
        assert!(g.file_write.is_empty());
        assert_eq!(g.network, NetworkLevel::None, "{level}");
    }
    // A relative or dotted workspace is normalized the same way.
    let c = SecurityContext::for_trust_level(TrustLevel::UserVerified, "/work/./ws/sub/..");
    let g = c.validate_execution(&asking(json!({}))).unwrap();
    assert_eq!(g.file_read, [normalize(Path::new(WS))]);
}

#[test]
fn declared_limits_are_capped_by_the_level() {
    let limited = |limits: Value, timeout: Option<f64>| {
        let mut extra = json!({"security": {"resource_limits": limits}});
        if let Some(t) = timeout {
            extra["timeout"] = json!(t);
        }
        skill_with(json!([]), extra)
    };
    let u = ctx(TrustLevel::Untrusted);
    let s = limited(
        json!({"max_memory_mb": 10000, "max_cpu_percent": 100, "max_processes": 1000,
               "max_open_files": 100000, "max_disk_io_mb": 100000}),
        Some(1000.0),
    );
    let g = u.validate_execution(&s).unwrap();
    assert_eq!(g.limits, u.resource_limits, "everything capped at the untrusted level");
    assert_eq!(g.limits.max_memory_mb, 64);
    assert_eq!(g.limits.max_execution_time, Duration::from_secs(10));

    let s = limited(
        json!({"max_memory_mb": 32, "max_cpu_percent": 5, "max_processes": 1,
               "max_open_files": 8, "max_disk_io_mb": 2}),
        Some(3.0),
    );
    let l = u.effective_limits(&s);
    assert_eq!(l.max_memory_mb, 32);
    assert_eq!(l.max_cpu_percent, 5);
    assert_eq!(l.max_processes, 1);
    assert_eq!(l.max_open_files, 8);
    assert_eq!(l.max_disk_io_mb, 2);
    assert_eq!(l.max_execution_time, Duration::from_secs(3));

    // Timeout capped per level, whichever spelling set it.
    let t = limited(json!({"max_execution_time": 120}), None);
    assert_eq!(u.effective_limits(&t).max_execution_time, Duration::from_secs(10));
    assert_eq!(
        ctx(TrustLevel::UserVerified).effective_limits(&t).max_execution_time,
        Duration::from_secs(60)
    );
    assert_eq!(
        ctx(TrustLevel::SystemTrusted).effective_limits(&t).max_execution_time,
        Duration::from_secs(120)
    );
    // Nothing declared: the level's limits.
    let none = limited(json!({}), None);
    for level in TrustLevel::ALL {
        assert_eq!(ctx(level).effective_limits(&none), ctx(level).resource_limits);
    }
}

// ---------------------------------------------------------------- real runs

struct Ws {
    dir: tempfile::TempDir,
    _skills: tempfile::TempDir,
    runtime: Arc<Runtime>,
}

impl Ws {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A workspace holding only an empty `out/`, and the test skills in a directory of their own
/// loaded with `load_paths`. (Runs cannot create new entries at the top of a workspace, so
/// the writing skills write into `out/`.)
fn workspace() -> Ws {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("out")).unwrap();
    let skills_dir = tempfile::tempdir().unwrap();
    let skills = skills_dir.path().to_path_buf();
    let files = [
        json!({
            "name": "argv", "type": "command", "command": "python3",
            "description": "Print the arguments",
            "aliases": ["show-argv"],
            "args": ["-c", "import sys; print(repr(sys.argv[1:]))", "{v}"],
            "parameters": [{"name": "v", "type": "string", "required": true}]
        }),
        json!({
            "name": "net-marker", "type": "command", "command": "touch", "args": ["out/marker-net"],
            "security": {"permissions": {"network_access": "full", "file_write": ["out"]}}
        }),
        json!({
            "name": "writer", "type": "command", "command": "touch", "args": ["out/{file}"],
            "parameters": [{"name": "file", "type": "string", "required": true,
                            "pattern": "marker-[a-z]+"}],
            "security": {"permissions": {"file_write": ["out"]}}
        }),
        json!({
            "name": "schema", "type": "prompt_inline", "prompt": "{s} {n} {b} {e}",
            "parameters": [
                {"name": "s", "type": "string", "required": true, "pattern": "[a-z]+",
                 "description": "a word"},
                {"name": "n", "type": "number"},
                {"name": "b", "type": "boolean"},
                {"name": "e", "type": "enum", "values": ["x", "y"], "required": true}
            ]
        }),
    ];
    for f in &files {
        fs::write(skills.join(format!("{}.json", f["name"].as_str().unwrap())), f.to_string())
            .unwrap();
    }
    let reg = Registry::load_paths(&[skills]);
    assert!(reg.problems().is_empty(), "{:#?}", reg.problems());
    let runtime = Arc::new(Runtime::with_registry(reg, dir.path()).unwrap());
    Ws { dir, _skills: skills_dir, runtime }
}

#[tokio::test]
async fn a_hostile_value_reaches_the_program_as_one_literal_argument() {
    let ws = workspace();
    let value = "$(touch pwned); rm -rf ~";
    let r = ws.runtime.run("argv", &json!({ "v": value }), None).await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    assert_eq!(r.skill, "argv");
    assert_eq!(r.trust_level, Some(TrustLevel::UserVerified), "workspace skills default");
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(r.stdout.trim(), "['$(touch pwned); rm -rf ~']", "{r:#?}");
    assert!(!ws.path().join("pwned").exists(), "the value was run by a shell");
    assert_eq!(fs::read_dir(ws.path()).unwrap().count(), 1, "the workspace is unchanged");
    assert_eq!(fs::read_dir(ws.path().join("out")).unwrap().count(), 0, "out/ is unchanged");

    // Braces in a value stay text, and an alias runs the same skill.
    let r = ws.runtime.run("show-argv", &json!({"v": "{v} {}"}), None).await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    assert_eq!(r.skill, "argv");
    assert_eq!(r.stdout.trim(), "['{v} {}']");
}

#[tokio::test]
async fn bad_parameters_and_names_are_invalid_and_nothing_runs() {
    let ws = workspace();
    let r = ws.runtime.run("argv", &json!({"v": 5}), None).await;
    assert_eq!(r.status, Status::Invalid, "{r:#?}");
    assert_eq!(r.problems.len(), 1);
    assert_eq!(r.problems[0].parameter, "v");
    assert!(r.message.as_deref().is_some_and(|m| m.contains("parameter `v`")), "{r:#?}");
    assert!(r.stdout.is_empty() && r.exit_code.is_none());

    let r = ws.runtime.run("argv", &json!({}), None).await;
    assert_eq!(r.status, Status::Invalid);
    let r = ws.runtime.run("argv", &json!({"v": "a", "evil": "b"}), None).await;
    assert_eq!(r.status, Status::Invalid);
    assert!(r.problems.iter().any(|p| p.parameter == "evil"), "{r:#?}");

    // The pattern is checked before the program could create anything. Loading only
    // checked it; the run compiles it on first use and enforces it.
    let writer = ws.runtime.registry().get("writer").unwrap();
    let pattern = writer.def.parameter("file").unwrap().pattern.as_ref().unwrap();
    assert!(!pattern.is_compiled(), "not compiled at load");
    let r = ws.runtime.run("writer", &json!({"file": "marker-a/../../x"}), None).await;
    assert_eq!(r.status, Status::Invalid, "{r:#?}");
    assert!(r.problems.iter().any(|p| p.reason.contains("does not match the pattern")), "{r:#?}");
    assert!(pattern.is_compiled(), "compiled by the first run that needed it");

    let r = ws.runtime.run("no-such-skill", &json!({}), None).await;
    assert_eq!(r.status, Status::Invalid);
    let r = ws.runtime.run("../x", &json!({}), None).await;
    assert_eq!(r.status, Status::Invalid);
    assert!(r.message.as_deref().is_some_and(|m| m.contains("not a valid skill name")));
}

#[tokio::test]
async fn an_over_asking_skill_is_denied_and_does_not_run() {
    let ws = workspace();
    let r = ws.runtime.run("net-marker", &Value::Null, None).await;
    assert_eq!(r.status, Status::Denied, "{r:#?}");
    let d = r.denial.as_ref().expect("denial");
    assert_eq!((d.permission, d.fix), (Permission::Network, Some(TrustLevel::SystemTrusted)));
    assert_eq!(r.message.as_deref(), Some(d.message().as_str()));
    assert!(r.exit_code.is_none() && r.grant.is_none());
    assert!(!ws.path().join("out/marker-net").exists(), "a denied skill ran");

    // The writer, at untrusted, is denied and writes nothing...
    let r = ws
        .runtime
        .run("writer", &json!({"file": "marker-denied"}), Some(TrustLevel::Untrusted))
        .await;
    assert_eq!(r.status, Status::Denied, "{r:#?}");
    assert_eq!(r.denial.as_ref().unwrap().permission, Permission::FileWrite);
    assert!(!ws.path().join("out/marker-denied").exists(), "a denied skill ran");

    // ...while at its default level the same command does create the file, so the check above
    // would have seen it.
    let r = ws.runtime.run("writer", &json!({"file": "marker-allowed"}), None).await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    assert!(ws.path().join("out/marker-allowed").is_file());
}

// ---------------------------------------------------------------- the Tool trait

#[tokio::test]
async fn a_skill_tool_has_a_name_a_schema_and_runs_through_the_runtime() {
    let ws = workspace();
    assert!(SkillTool::new(ws.runtime.clone(), "no-such-skill", None).is_none());
    assert!(SkillTool::new(ws.runtime.clone(), "../x", None).is_none());

    let tool = SkillTool::new(ws.runtime.clone(), "show-argv", None).expect("tool by alias");
    assert_eq!(tool.name(), "argv");
    assert_eq!(tool.description(), "Print the arguments");
    let schema = tool.input_schema();
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], json!(["v"]));
    assert_eq!(schema["properties"]["v"]["type"], "string");

    let out = tool.invoke(json!({"v": "hello world"})).await;
    assert!(!out.is_error, "{out:#?}");
    assert_eq!(out.text, "['hello world']\n");
    assert_eq!(out.structured["status"], "success");
    assert_eq!(out.structured["skill"], "argv");
    assert_eq!(out.structured["stdout"], "['hello world']\n");

    let out = tool.invoke(json!({"v": 1})).await;
    assert!(out.is_error);
    assert_eq!(out.structured["status"], "invalid");
    assert!(out.text.contains("parameter `v`"), "{}", out.text);

    let names: Vec<String> = ws.runtime.tools().iter().map(|t| t.name().to_string()).collect();
    assert_eq!(names, ["argv", "net-marker", "schema", "writer"]);
}

#[tokio::test]
async fn the_input_schema_mirrors_the_declaration() {
    let ws = workspace();
    let tool = SkillTool::new(ws.runtime.clone(), "schema", None).unwrap();
    let s = tool.input_schema();
    assert_eq!(s["type"], "object");
    assert_eq!(s["additionalProperties"], false);
    let mut required: Vec<String> =
        serde_json::from_value(s["required"].clone()).expect("required is a list");
    required.sort();
    assert_eq!(required, ["e", "s"]);
    let props = s["properties"].as_object().unwrap();
    assert_eq!(props.len(), 4);
    assert_eq!(props["s"]["type"], "string");
    assert_eq!(props["s"]["pattern"], "^(?:[a-z]+)$", "anchored like the validator");
    assert_eq!(props["s"]["description"], "a word");
    assert_eq!(props["n"]["type"], "number");
    assert_eq!(props["b"]["type"], "boolean");
    assert_eq!(props["e"]["type"], "string");
    assert_eq!(props["e"]["enum"], json!(["x", "y"]));
    assert_eq!(tool.description(), "Run the skill `schema`");

    let out = tool.invoke(json!({"s": "hi", "n": 2, "b": false, "e": "y"})).await;
    assert!(!out.is_error, "{out:#?}");
    assert_eq!(out.text, "hi 2 false y");
    let out = tool.invoke(json!({"s": "hi", "e": "z"})).await;
    assert!(out.is_error);
    assert_eq!(out.structured["status"], "invalid");
}

#[tokio::test]
async fn a_denied_tool_call_is_an_error_with_the_denial_message() {
    let ws = workspace();
    let tool = SkillTool::new(ws.runtime.clone(), "net-marker", None).unwrap();
    let out = tool.invoke(json!({})).await;
    assert!(out.is_error, "{out:#?}");
    assert_eq!(out.structured["status"], "denied");
    assert_eq!(out.structured["denial"]["permission"], "network");
    // The result keeps the message for people; the text is worded for the model, which can
    // neither pass `--trust` nor grant anything itself.
    let msg = out.structured["message"].as_str().unwrap();
    assert!(msg.starts_with("permission denied"), "{msg}");
    assert!(msg.contains("--trust system-trusted"), "{msg}");
    let text = &out.text;
    assert!(text.starts_with("permission denied: skill `net-marker`"), "{text}");
    assert!(text.contains("you cannot grant this yourself"), "{text}");
    assert!(text.contains("skillbox trust net-marker --level system-trusted"), "{text}");
    assert!(!text.contains("--trust"), "{text}");
    assert!(!ws.path().join("out/marker-net").exists());

    // Raised explicitly for the tool, the same skill runs.
    let tool =
        SkillTool::new(ws.runtime.clone(), "net-marker", Some(TrustLevel::SystemTrusted)).unwrap();
    let out = tool.invoke(Value::Null).await;
    assert!(!out.is_error, "{out:#?}");
    assert_eq!(out.structured["status"], "success");
    assert_eq!(out.structured["trust_level"], "system-trusted");
    assert!(ws.path().join("out/marker-net").is_file());
}

#[test]
fn thousands_of_undeclared_parameters_give_a_bounded_list_of_problems() {
    let skill = typed();
    let mut input: serde_json::Map<String, Value> =
        (0..10_000).map(|i| (format!("k{i}"), json!(i))).collect();
    input.insert("s".into(), json!("given"));
    let found = problems(&skill, Value::Object(input));
    assert_eq!(found.len(), skillbox_skills::params::MAX_NAMED_PROBLEMS + 1, "{found:?}");
    assert!(found.last().unwrap().reason.contains("and 9980 more"), "{found:?}");
}
