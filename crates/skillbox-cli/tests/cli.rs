//! End-to-end tests of the `skillbox` binary: each test runs the real program with
//! `std::process::Command` against copies of `examples/workspace` and `examples/broken` in a
//! fresh temporary directory, and checks what it printed and what it did (or did not do) to
//! the files around it.
//!
//! Isolation: every command gets `HOME`, `SKILLBOX_HOME` and `XDG_CONFIG_HOME` inside the
//! test's own temporary directory and an otherwise empty environment, so neither the
//! machine's skills nor its audit log take part. Nothing is written into the repository, and
//! nothing needs root: the tests also pass when run as `nobody`.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::bin;

/// Longest any single command may take before the test kills it and fails.
const DEFAULT_LIMIT: Duration = Duration::from_secs(60);

fn example(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/")).join(name)
}

/// Copies the tree `from` into `to` (which must exist): directories and regular files.
fn copy_tree(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else if kind.is_file() {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// What one run of `skillbox` gave.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Out {
    /// The only JSON object on stdout.
    fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one line of JSON expected on stdout:\n{}", self.stdout);
        serde_json::from_str(lines[0])
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "skillbox panicked:\n{}",
            self.stderr
        );
    }
}

/// Runs `cmd` with captured output; kills it and fails the test if it has not ended after
/// `limit` (a hang must fail the test, not stall the suite).
fn run_bounded(mut cmd: Command, limit: Duration) -> Out {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("cannot start skillbox");
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("skillbox did not finish within {limit:?}: {cmd:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    Out { code: status.code(), stdout, stderr, elapsed }
}

/// A private world for one test: `home/`, `sb/` (`SKILLBOX_HOME`), `xdg/`
/// (`XDG_CONFIG_HOME`), `ws/` (the workspace) and `cwd/` (an unrelated current directory).
struct World {
    dir: tempfile::TempDir,
}

impl World {
    /// An empty workspace.
    fn empty() -> Self {
        let dir = tempfile::Builder::new().prefix("skillbox-cli-test-").tempdir_in("/tmp").unwrap();
        for sub in ["home", "xdg", "ws", "cwd"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        World { dir }
    }

    /// A copy of `examples/<name>` as the workspace.
    fn with(name: &str) -> Self {
        let w = Self::empty();
        copy_tree(&example(name), &w.ws());
        w
    }

    fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }
    fn home(&self) -> PathBuf {
        self.root().join("home")
    }
    fn sb(&self) -> PathBuf {
        self.root().join("sb")
    }
    fn xdg(&self) -> PathBuf {
        self.root().join("xdg")
    }
    fn ws(&self) -> PathBuf {
        self.root().join("ws")
    }
    fn cwd(&self) -> PathBuf {
        self.root().join("cwd")
    }
    fn ws_str(&self) -> String {
        self.ws().to_str().unwrap().to_string()
    }

    /// Writes a skill file into the workspace's `.q-skills/`.
    fn add_skill(&self, file: &str, def: &Value) -> PathBuf {
        let dir = self.ws().join(".q-skills");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        fs::write(&path, serde_json::to_string_pretty(def).unwrap()).unwrap();
        path
    }

    /// `skillbox ARGS` with the isolated environment, run in the workspace.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.home())
            .env("SKILLBOX_HOME", self.sb())
            .env("XDG_CONFIG_HOME", self.xdg())
            .env("SKILLBOX_RETRY_BASE_MS", "10")
            .current_dir(self.ws());
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = run_bounded(self.command(args), DEFAULT_LIMIT);
        out.assert_no_panic();
        out
    }

    /// `skillbox ARGS` run from `cwd/`, with `--workspace` naming the workspace.
    fn run_elsewhere(&self, args: &[&str]) -> Out {
        let ws = self.ws_str();
        let mut all = vec!["--workspace", ws.as_str()];
        all.extend_from_slice(args);
        let mut c = self.command(&all);
        c.current_dir(self.cwd());
        let out = run_bounded(c, DEFAULT_LIMIT);
        out.assert_no_panic();
        out
    }
}

/// (name, type, file) of every skill file shipped in `examples/workspace`.
fn example_skills() -> Vec<(String, String, PathBuf)> {
    let mut found = Vec::new();
    for dir in [".q-skills", ".skillbox/skills"] {
        for entry in fs::read_dir(example("workspace").join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let v: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
                let rel = path.strip_prefix(example("workspace")).unwrap().to_path_buf();
                found.push((
                    v["name"].as_str().unwrap().to_string(),
                    v["type"].as_str().unwrap().to_string(),
                    rel,
                ));
            }
        }
    }
    assert!(found.len() >= 8, "the examples shrank: {found:?}");
    found
}

/// The first column of a `skillbox list` table, header excluded.
fn listed_names(table: &str) -> BTreeSet<String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or("");
    assert!(header.starts_with("NAME"), "no table header:\n{table}");
    lines.filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

fn params(v: Value) -> String {
    v.to_string()
}

// ---------------------------------------------------------------------------------------
// list
// ---------------------------------------------------------------------------------------

#[test]
fn list_shows_exactly_the_example_skills_and_the_builtins() {
    let w = World::with("workspace");
    let out = w.run(&["list"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut expected: BTreeSet<String> = example_skills().into_iter().map(|s| s.0).collect();
    expected.extend(["echo".to_string(), "explain-denial".to_string()]);
    // The Agent Skill in .agents/skills: its instructions, and its one script.
    expected.extend(AGENT_SKILL_ENTRIES.iter().map(|s| s.to_string()));
    assert_eq!(listed_names(&out.stdout), expected, "{}", out.stdout);
    assert!(!out.stderr.contains("error"), "no problem expected:\n{}", out.stderr);
}

#[test]
fn list_json_describes_each_skill_and_reports_no_problem() {
    let w = World::with("workspace");
    let out = w.run(&["list", "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = out.json();
    assert_eq!(v["problems"], json!([]), "{v}");
    assert_eq!(v["shadowed"], json!([]), "{v}");
    assert_eq!(v["workspace"], json!(w.ws()), "{v}");
    let skills = v["skills"].as_array().unwrap();
    for s in skills {
        for field in ["name", "type", "source", "path", "trust_level"] {
            assert!(s[field].is_string(), "{field} missing in {s}");
        }
    }
    for (name, ty, rel) in example_skills() {
        let s = skills
            .iter()
            .find(|s| s["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing from {v}"));
        assert_eq!(s["type"], ty.as_str(), "{s}");
        assert_eq!(s["source"], "workspace", "{s}");
        assert_eq!(s["trust_level"], "user-verified", "{s}");
        assert_eq!(s["path"], json!(w.ws().join(&rel)), "{s}");
    }
    let echo = skills.iter().find(|s| s["name"] == "echo").unwrap();
    assert_eq!(
        (&echo["source"], &echo["trust_level"], &echo["path"]),
        (&json!("builtin"), &json!("system-trusted"), &json!("builtin:echo"))
    );
    for name in AGENT_SKILL_ENTRIES {
        let s = skills.iter().find(|s| s["name"] == *name).unwrap();
        assert_eq!(s["source"], "agents", "{s}");
        assert_eq!(s["path"], json!(w.ws().join(".agents/skills/json-stats/SKILL.md")), "{s}");
    }
    assert_eq!(skills.len(), example_skills().len() + 2 + AGENT_SKILL_ENTRIES.len(), "{v}");
}

/// The entries the example Agent Skill `examples/workspace/.agents/skills/json-stats` makes.
const AGENT_SKILL_ENTRIES: &[&str] = &["json-stats", "json-stats--stats"];

/// Expected problem for each broken file of `examples/broken`: (file, field, words of the
/// reason).
const BROKEN: &[(&str, Option<&str>, &[&str])] = &[
    ("trailing-comma.json", None, &["not valid JSON", "trailing comma"]),
    ("bad-timeout.json", Some("timeout"), &["invalid type", "soon"]),
    ("no-command.json", Some("command"), &["required for a `command` skill"]),
    ("enum-without-values.json", Some("parameters[0].values"), &["needs `values`"]),
    ("bad-pattern.json", Some("parameters[0].pattern"), &["invalid regex"]),
    ("bad-name.json", Some("name"), &["\"../evil\"", "not a valid skill name"]),
    ("zz-duplicate.json", Some("name"), &["duplicate skill name `hello`", "hello.json"]),
    ("not-utf8.json", None, &["not valid UTF-8"]),
];

/// Checks that every broken file is named on exactly one line of `stderr`, with its field and
/// reason, and that no other problem line appears.
fn assert_broken_files_reported(stderr: &str) {
    for (file, field, words) in BROKEN {
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(file)).collect();
        assert_eq!(lines.len(), 1, "{file} must be named on exactly one line:\n{stderr}");
        let line = lines[0];
        assert!(line.starts_with("skillbox: error: "), "{line}");
        if let Some(field) = field {
            assert!(line.contains(&format!("field `{field}`")), "{file}: no field in {line}");
        }
        for w in *words {
            assert!(line.contains(w), "{file}: {w:?} missing in {line}");
        }
    }
    let problem_lines = stderr.lines().filter(|l| l.starts_with("skillbox: error:")).count();
    assert_eq!(problem_lines, BROKEN.len(), "one line per problem:\n{stderr}");
}

#[test]
fn every_file_of_examples_broken_is_accounted_for() {
    let mut on_disk: BTreeSet<String> = fs::read_dir(example("broken/.q-skills"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for good in ["hello.json", "summarize.json"] {
        assert!(on_disk.remove(good), "{good} missing");
    }
    let listed: BTreeSet<String> = BROKEN.iter().map(|b| b.0.to_string()).collect();
    assert_eq!(on_disk, listed, "examples/broken and this test disagree");
    let readme = fs::read_to_string(example("broken/README.md")).unwrap();
    for (file, _, _) in BROKEN {
        assert!(readme.contains(file), "README.md does not explain {file}");
    }
    assert!(
        std::str::from_utf8(&fs::read(example("broken/.q-skills/not-utf8.json")).unwrap()).is_err(),
        "not-utf8.json must not be UTF-8"
    );
}

#[test]
fn list_on_examples_broken_names_each_bad_file_and_keeps_the_good_ones() {
    let w = World::with("broken");
    let out = w.run(&["list"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let names = listed_names(&out.stdout);
    let expected: BTreeSet<String> =
        ["echo", "explain-denial", "hello", "summarize"].iter().map(|s| s.to_string()).collect();
    assert_eq!(names, expected, "{}", out.stdout);
    assert_broken_files_reported(&out.stderr);

    let out = w.run(&["list", "--json"]);
    assert_eq!(out.code, Some(1));
    let v = out.json();
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), BROKEN.len(), "{v}");
    for (file, field, _) in BROKEN {
        let p = problems
            .iter()
            .find(|p| p["path"].as_str().is_some_and(|s| s.ends_with(file)))
            .unwrap_or_else(|| panic!("{file} not in {v}"));
        assert_eq!(p["field"], json!(field), "{p}");
        assert!(p["reason"].as_str().is_some_and(|r| !r.is_empty()), "{p}");
    }
    // The first file of the duplicate pair is the one used.
    let hello = v["skills"].as_array().unwrap().iter().find(|s| s["name"] == "hello").unwrap();
    assert_eq!(hello["path"], json!(w.ws().join(".q-skills/hello.json")));
    // And the good skills run.
    let out = w.run(&["run", "hello", "--params", r#"{"who": "World"}"#]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "hello World\n"), "{out:?}");
}

#[test]
fn list_names_a_problem_on_one_line_even_when_the_file_name_holds_a_newline() {
    let w = World::with("workspace");
    fs::write(w.ws().join(".q-skills/two\nlines.json"), "{\"name\": ").unwrap();
    let out = w.run(&["list"]);
    assert_eq!(out.code, Some(1));
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(lines[0].contains("two\\nlines.json") && lines[0].contains("not valid JSON"));
}

#[test]
fn workspace_flag_is_accepted_before_and_after_the_subcommand() {
    let w = World::with("workspace");
    let ws = w.ws_str();
    for args in [
        vec!["--workspace", ws.as_str(), "list"],
        vec!["list", "--workspace", ws.as_str()],
        vec!["list", "--json", "--workspace", ws.as_str()],
    ] {
        let mut c = w.command(&args);
        c.current_dir(w.cwd()); // an empty directory: only --workspace can find the skills
        let out = run_bounded(c, DEFAULT_LIMIT);
        assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
        assert!(out.stdout.contains("count-lines"), "{args:?}: {}", out.stdout);
    }
    for args in [
        vec![
            "--workspace",
            ws.as_str(),
            "run",
            "count-lines",
            "--params",
            r#"{"path":"src/util.py"}"#,
        ],
        vec![
            "run",
            "count-lines",
            "--workspace",
            ws.as_str(),
            "--params",
            r#"{"path":"src/util.py"}"#,
        ],
        vec![
            "run",
            "count-lines",
            "--params",
            r#"{"path":"src/util.py"}"#,
            "--workspace",
            ws.as_str(),
        ],
    ] {
        let mut c = w.command(&args);
        c.current_dir(w.cwd());
        let out = run_bounded(c, DEFAULT_LIMIT);
        assert_eq!((out.code, out.stdout.as_str()), (Some(0), "3 src/util.py\n"), "{args:?}");
    }
    // Without --workspace, from the empty directory, the example skills are not found.
    let mut c = w.command(&["list"]);
    c.current_dir(w.cwd());
    let out = run_bounded(c, DEFAULT_LIMIT);
    assert_eq!(out.code, Some(0));
    assert!(!out.stdout.contains("count-lines"), "{}", out.stdout);
}

// ---------------------------------------------------------------------------------------
// run: each kind of example skill
// ---------------------------------------------------------------------------------------

#[test]
fn run_command_skill_count_lines() {
    let w = World::with("workspace");
    let lines = fs::read_to_string(w.ws().join("src/app.py")).unwrap().matches('\n').count();
    let out = w.run(&["run", "count-lines", "--params", r#"{"path": "src/app.py"}"#]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, format!("{lines} src/app.py\n"));
    assert!(out.stderr.contains("count-lines: success at user-verified"), "{}", out.stderr);
    // The parameter's pattern keeps it inside the workspace.
    let out = w.run(&["run", "count-lines", "--params", r#"{"path": "/etc/passwd"}"#]);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(out.stderr.contains("parameter `path`") && out.stderr.contains("pattern"));
    assert_eq!(out.stdout, "");
}

/// The library's diagnostics reach stderr only when `SKILLBOX_LOG` asks for them: a span
/// per run naming the skill, and its steps; a filter that does not parse is said so and
/// ignored.
#[test]
fn skillbox_log_shows_the_library_diagnostics_and_nothing_without_it() {
    let w = World::with("workspace");
    let args = ["run", "count-lines", "--params", r#"{"path": "src/app.py"}"#];
    let quiet = w.run(&args);
    assert_eq!(quiet.code, Some(0), "{quiet:?}");
    assert!(!quiet.stderr.contains("DEBUG") && !quiet.stderr.contains("skill_run"), "{quiet:?}");
    let mut c = w.command(&args);
    c.env("SKILLBOX_LOG", "debug");
    let loud = run_bounded(c, DEFAULT_LIMIT);
    assert_eq!(loud.code, Some(0), "{loud:?}");
    assert!(loud.stderr.contains(r#"skill_run{skill="count-lines""#), "{}", loud.stderr);
    assert!(loud.stderr.contains("spawning program=\"/usr/bin/wc\""), "{}", loud.stderr);
    assert_eq!(loud.stdout, quiet.stdout, "diagnostics go to stderr only");
    let mut c = w.command(&["list"]);
    c.env("SKILLBOX_LOG", "bad[");
    let bad = run_bounded(c, DEFAULT_LIMIT);
    assert_eq!(bad.code, Some(0), "{bad:?}");
    assert!(bad.stderr.contains("SKILLBOX_LOG=\"bad[\" is not a filter"), "{}", bad.stderr);
}

#[test]
fn run_command_skill_find_todos() {
    let w = World::with("workspace");
    let out = w.run(&["run", "find-todos", "--params", r#"{"marker": "TODO", "ext": "py"}"#]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut expected = BTreeSet::new();
    for file in ["src/app.py", "src/util.py"] {
        let text = fs::read_to_string(w.ws().join(file)).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.contains("TODO") {
                expected.insert(format!("{file}:{}:{line}", i + 1));
            }
        }
    }
    assert_eq!(expected.len(), 2);
    let got: BTreeSet<String> = out.stdout.lines().map(str::to_string).collect();
    assert_eq!(got, expected);
    // An enum parameter refuses other values.
    let out = w.run(&["run", "find-todos", "--params", r#"{"marker": "-r", "ext": "py"}"#]);
    assert_eq!(out.code, Some(4));
    assert!(out.stderr.contains("parameter `marker`") && out.stderr.contains("TODO, FIXME, XXX"));
}

#[test]
fn run_code_inline_skill_python_stats() {
    let w = World::with("workspace");
    let out = w.run(&["run", "python-stats", "--params", r#"{"numbers": "3,1,4"}"#]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "n=3 mean=2.66667 median=3 stdev=1.24722\n");
}

#[test]
fn run_prompt_inline_skill_commit_message() {
    let w = World::with("workspace");
    let file: Value =
        serde_json::from_slice(&fs::read(w.ws().join(".q-skills/commit-message.json")).unwrap())
            .unwrap();
    let template = file["prompt"].as_str().unwrap();
    let summary = "Handle an empty list in mean_of";
    let out = w.run(&[
        "run",
        "commit-message",
        "--params",
        &params(json!({"kind": "fix", "summary": summary})),
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let expected = template.replace("{kind}", "fix").replace("{summary}", summary);
    assert_eq!(out.stdout.trim_end_matches('\n'), expected);
    // A value holding a placeholder is not expanded again.
    let out = w.run(&[
        "run",
        "commit-message",
        "--params",
        &params(json!({"kind": "docs", "summary": "{kind} {summary} {context_files}"})),
        "--json",
    ]);
    let v = out.json();
    assert!(v["stdout"]
        .as_str()
        .unwrap()
        .ends_with("Change summary:\n{kind} {summary} {context_files}"));
}

#[test]
fn run_conversation_skill_review_python_attaches_the_sources() {
    let w = World::with("workspace");
    // A symlink planted among the sources must not carry a file from outside the grant into
    // the prompt.
    let secret = w.root().join("secret.txt");
    fs::write(&secret, "TOP-SECRET-CONTENT\n").unwrap();
    std::os::unix::fs::symlink(&secret, w.ws().join("src/leak.py")).unwrap();
    let out = w.run(&["run", "review-python", "--params", r#"{"focus": "readability"}"#]);
    assert_eq!(out.code, Some(0), "{out:?}");
    for file in ["src/app.py", "src/util.py"] {
        let text = fs::read_to_string(w.ws().join(file)).unwrap();
        assert!(out.stdout.contains(&format!("--- {file} ---\n{text}")), "{file}:\n{}", out.stdout);
    }
    assert!(out.stdout.starts_with("Review the following Python code. Focus on readability."));
    assert!(out.stdout.trim_end().ends_with("End of files."), "{}", out.stdout);
    assert!(!out.stdout.contains("TOP-SECRET"), "a symlink was followed:\n{}", out.stdout);
}

#[test]
fn repl_runs_each_input_in_the_same_session() {
    let w = World::with("workspace");
    let mut c = w.command(&["repl", "python-repl"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let input = "x = 20\nx * 2 + 2\ndef f(y):\n    return y + x\n\nf(1)\n1/0\nprint('still', x)\n";
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "42\n21\nstill 20\n", "state kept across inputs; stderr: {stderr}");
    assert!(stderr.contains("ZeroDivisionError"), "{stderr}");
    let out = w.run(&["repl", "count-lines"]);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(out.stderr.contains("code_session"), "{}", out.stderr);
}

#[test]
fn run_code_session_skill_runs_one_call_in_a_fresh_session() {
    let w = World::with("workspace");
    let out = w.run(&["run", "python-repl", "--params", r#"{"code": "print('hi')\n6 * 7"}"#]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "hi\n42\n", "the output, then the value: {out:?}");
    let out = w.run(&["run", "python-repl", "--params", r#"{"code": "1/0"}"#]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("ZeroDivisionError"), "{}", out.stderr);
    // No code: invalid, and nothing ran.
    let v = w.run(&["run", "python-repl", "--json"]).json();
    assert_eq!(v["status"], "invalid", "{v}");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("`code` is required")), "{v}");
}

// ---------------------------------------------------------------------------------------
// run --json: one object, and one status and exit code per outcome
// ---------------------------------------------------------------------------------------

#[test]
fn run_json_prints_one_object_with_the_status_and_exit_code_of_each_outcome() {
    let w = World::with("workspace");
    w.add_skill(
        "exit-three.json",
        &json!({"name": "exit-three", "type": "command", "command": "sh",
                "args": ["-c", "echo partial; echo oops >&2; exit 3"],
                "security": {"permissions": {"process_spawn": "none"}}}),
    );
    w.add_skill(
        "slow.json",
        &json!({"name": "slow", "type": "command", "command": "sleep", "args": ["30"],
                "timeout": 1, "security": {"permissions": {"process_spawn": "none"}}}),
    );
    w.add_skill(
        "no-program.json",
        &json!({"name": "no-program", "type": "command", "command": "no-such-program-skillbox"}),
    );
    let url = r#"{"url": "https://example.com"}"#;
    let cases: &[(&[&str], &str, i32)] = &[
        (&["run", "count-lines", "--params", r#"{"path": "src/app.py"}"#], "success", 0),
        (&["run", "exit-three"], "failed", 1),
        (&["run", "fetch-status", "--trust", "untrusted", "--params", url], "denied", 3),
        (&["run", "count-lines", "--params", "{}"], "invalid", 4),
        (&["run", "slow"], "timeout", 5),
        (&["run", "no-program"], "error", 7),
    ];
    for (args, status, code) in cases {
        let mut args = args.to_vec();
        args.push("--json");
        let out = w.run(&args);
        let v = out.json();
        assert_eq!((out.code, v["status"].as_str()), (Some(*code), Some(*status)), "{args:?}: {v}");
        for field in ["status", "exit_code", "stdout", "stderr", "duration_ms", "execution_id"] {
            assert!(v.get(field).is_some(), "{status}: no {field} in {v}");
        }
        assert!(v["duration_ms"].is_u64(), "{v}");
        let id = v["execution_id"].as_str().unwrap();
        assert_eq!(id.len(), 36, "execution id {id:?}");
        if *status != "success" {
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        }
        match *status {
            "success" => {
                assert_eq!(v["exit_code"], 0);
                assert!(v["stdout"].as_str().unwrap().ends_with(" src/app.py\n"), "{v}");
            }
            "failed" => {
                assert_eq!(v["exit_code"], 3, "{v}");
                assert_eq!(
                    (v["stdout"].as_str(), v["stderr"].as_str()),
                    (Some("partial\n"), Some("oops\n"))
                );
                assert!(v["message"].as_str().unwrap().contains("exited with code 3"));
            }
            "timeout" => {
                assert!(out.elapsed < Duration::from_secs(15), "took {:?}", out.elapsed);
                assert!(v["duration_ms"].as_u64().unwrap() >= 900, "{v}");
                assert!(v["exit_code"].is_null(), "{v}");
            }
            _ => assert!(v["exit_code"].is_null(), "nothing ran or nothing exited: {v}"),
        }
    }
}

#[test]
fn run_human_mode_reports_failure_and_timeout_on_stderr() {
    let w = World::with("workspace");
    w.add_skill(
        "exit-three.json",
        &json!({"name": "exit-three", "type": "command", "command": "sh",
                "args": ["-c", "exit 3"], "security": {"permissions": {"process_spawn": "none"}}}),
    );
    w.add_skill(
        "slow.json",
        &json!({"name": "slow", "type": "command", "command": "sleep", "args": ["30"],
                "timeout": 1, "security": {"permissions": {"process_spawn": "none"}}}),
    );
    let out = w.run(&["run", "exit-three"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("exit-three: failed") && out.stderr.contains("exited with code 3"));
    let out = w.run(&["run", "slow"]);
    assert_eq!(out.code, Some(5));
    assert!(out.elapsed < Duration::from_secs(15), "took {:?}", out.elapsed);
    assert!(out.stderr.contains("slow: timeout") && out.stderr.contains("timed out after 1.0 s"));
}

// ---------------------------------------------------------------------------------------
// Hostile parameter values
// ---------------------------------------------------------------------------------------

const HOSTILE: &[&str] = &[
    "$(touch pwned); rm -rf ~ ; `touch pwned2`",
    "; touch pwned3 #",
    "| touch pwned4",
    "&& touch pwned5 && $(touch src/pwned6)",
    "line one\nline two {\"seq\": 1, \"skill\": \"{v}\"}\n}",
    "{v}",
    "-n",
    "  spaced   out  ",
    "*",
    "~",
    "$HOME ${PATH} %s %n \\x1b",
    "'single' \"double\" \\back\\slash",
    "ünïcødé ✓",
];

fn hostile_world() -> World {
    let w = World::with("workspace");
    let param = json!([{"name": "v", "type": "string", "required": true}]);
    w.add_skill(
        "say.json",
        &json!({"name": "say", "type": "command", "command": "printf", "args": ["%s\\n", "{v}"],
                "parameters": param, "security": {"permissions": {"process_spawn": "none"}}}),
    );
    // python3 printing its argv: one argv element, exactly the value. It may write in src/,
    // so that a value that reached a shell could leave a trace there.
    w.add_skill(
        "argv.json",
        &json!({"name": "argv", "type": "code_inline", "command": "python3",
                "args": ["-I", "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", "{v}"],
                "parameters": param,
                "security": {"permissions": {"file_write": ["src"], "process_spawn": "none"}}}),
    );
    w
}

fn assert_no_trace(w: &World) {
    for dir in [w.ws(), w.ws().join("src"), w.cwd(), w.home(), w.root()] {
        for f in ["pwned", "pwned2", "pwned3", "pwned4", "pwned5", "pwned6"] {
            assert!(!dir.join(f).exists(), "{} was created", dir.join(f).display());
        }
    }
    assert!(w.ws().join("src/app.py").exists() && w.home().exists(), "something was removed");
}

#[test]
fn hostile_parameter_values_reach_the_program_as_literal_text() {
    let w = hostile_world();
    for value in HOSTILE {
        let p = params(json!({ "v": value }));
        let out = w.run_elsewhere(&["run", "say", "--params", &p, "--raw"]);
        assert_eq!(out.code, Some(0), "{value:?}: {out:?}");
        assert_eq!(out.stdout, format!("{value}\n"), "printf got something else for {value:?}");

        let v = w.run_elsewhere(&["run", "argv", "--params", &p, "--json"]).json();
        assert_eq!(v["status"], "success", "{value:?}: {v}");
        let argv: Value = serde_json::from_str(v["stdout"].as_str().unwrap().trim()).unwrap();
        assert_eq!(argv, json!([value]), "python3 got a different argv for {value:?}");
    }
    assert_no_trace(&w);
}

#[test]
fn a_nul_byte_in_a_value_is_refused_naming_the_parameter() {
    let w = hostile_world();
    let p = r#"{"v": "a\u0000b"}"#;
    let out = w.run(&["run", "say", "--params", p, "--json"]);
    assert_eq!(out.code, Some(4));
    let v = out.json();
    assert_eq!(v["status"], "invalid", "{v}");
    assert!(v["exit_code"].is_null() && v["attempts"] == 0, "nothing ran: {v}");
    assert_eq!(v["problems"][0]["parameter"], "v", "{v}");
    assert!(v["message"].as_str().unwrap().contains("parameter `v`: contains a NUL byte"), "{v}");
    let out = w.run(&["run", "say", "--params", p]);
    assert_eq!(out.code, Some(4));
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("parameter `v`") && out.stderr.contains("NUL"), "{}", out.stderr);
}

#[test]
fn an_undeclared_parameter_is_refused_naming_it() {
    let w = hostile_world();
    let out = w.run(&["run", "say", "--params", r#"{"v": "x", "extra": "$(touch pwned)"}"#]);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("parameter `extra`") && out.stderr.contains("not declared"),
        "{}",
        out.stderr
    );
    let v = w.run(&["run", "say", "--params", r#"{"v": "x", "extra": 1}"#, "--json"]).json();
    assert_eq!(v["status"], "invalid");
    assert_eq!(v["problems"][0]["parameter"], "extra", "{v}");
    assert_no_trace(&w);
}

#[test]
fn params_that_are_not_a_json_object_are_refused_naming_the_flag() {
    let w = hostile_world();
    for bad in ["[1]", "\"v\"", "42", "null", "true", "{\"v\": ", "not json", "", "{'v': 1}"] {
        let out = w.run(&["run", "say", "--params", bad]);
        assert_eq!(out.code, Some(4), "{bad:?}: {out:?}");
        assert!(out.stderr.contains("--params"), "{bad:?}: {}", out.stderr);
        assert_eq!(out.stdout, "");
        let v = w.run(&["run", "say", "--params", bad, "--json"]).json();
        assert_eq!(v["status"], "invalid", "{bad:?}: {v}");
        assert!(v["message"].as_str().unwrap().contains("--params"), "{v}");
    }
}

// ---------------------------------------------------------------------------------------
// Skill names
// ---------------------------------------------------------------------------------------

#[test]
fn invalid_names_are_refused_before_any_file_is_touched() {
    let w = World::empty();
    let missing = w.root().join("no-such-workspace");
    let long = "x".repeat(129);
    for name in ["../x", "", "a/b", "..", ".", "a b", "é", "$(id)", "a\nb", long.as_str()] {
        let mut c = w.command(&["--workspace", missing.to_str().unwrap(), "run", name]);
        c.current_dir(w.cwd());
        let out = run_bounded(c, DEFAULT_LIMIT);
        out.assert_no_panic();
        assert_eq!(out.code, Some(4), "{name:?}: {out:?}");
        assert!(out.stderr.contains("not a valid skill name"), "{name:?}: {}", out.stderr);
        assert!(!out.stderr.contains("workspace"), "{name:?}: looked at the workspace first");
        assert_eq!(out.stderr.lines().count(), 1, "{name:?}: {}", out.stderr);

        let mut c = w.command(&["--workspace", missing.to_str().unwrap(), "run", name, "--json"]);
        c.current_dir(w.cwd());
        let v = run_bounded(c, DEFAULT_LIMIT).json();
        assert_eq!(v["status"], "invalid", "{v}");
        assert!(v["message"].as_str().unwrap().contains("not a valid skill name"), "{v}");
    }
    // The workspace was not looked at, but every refusal was recorded, with the name
    // escaped and cut.
    assert!(!missing.exists());
    let log = std::fs::read_to_string(w.sb().join("logs/security_events.jsonl")).unwrap();
    let refusals: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event_type"] == "InputValidationFailed")
        .collect();
    assert_eq!(refusals.len(), 20, "one event per refused run: {log}");
    assert!(refusals.iter().any(|e| e["skill_name"] == "\"a\\nb\""), "{log}");
    assert!(log.lines().all(|l| l.len() < 2000), "a name was not cut: {log}");
    // A valid name in the same missing workspace gets the workspace error instead.
    let mut c = w.command(&["--workspace", missing.to_str().unwrap(), "run", "count-lines"]);
    c.current_dir(w.cwd());
    let out = run_bounded(c, DEFAULT_LIMIT);
    assert_eq!(out.code, Some(7), "{out:?}");
    assert!(out.stderr.contains("workspace") && out.stderr.contains("no-such-workspace"));
}

#[test]
fn info_refuses_invalid_and_unknown_names() {
    let w = World::with("workspace");
    let out = w.run(&["info", "../x"]);
    assert_eq!(out.code, Some(4));
    assert!(out.stderr.contains("not a valid skill name"), "{}", out.stderr);
    let out = w.run(&["info", "no-such-skill"]);
    assert_eq!(out.code, Some(4));
    assert!(out.stderr.contains("no skill named `no-such-skill`"), "{}", out.stderr);
    let out = w.run(&["run", "no-such-skill"]);
    assert_eq!(out.code, Some(4));
    assert!(out.stderr.contains("no skill named `no-such-skill`"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------
// Trust levels
// ---------------------------------------------------------------------------------------

#[test]
fn untrusted_network_skill_is_denied_with_the_fix_and_nothing_runs() {
    let w = World::with("workspace");
    let p = r#"{"url": "https://example.com"}"#;
    let out = w.run(&["run", "fetch-status", "--trust", "untrusted", "--params", p]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("security.permissions.network_access")
            && out.stderr.contains("--trust user-verified")
            && out.stderr.contains("fetch-status: denied at untrusted"),
        "{}",
        out.stderr
    );
    let out = w.run(&["run", "fetch-status", "--trust", "untrusted", "--params", p, "--json"]);
    assert_eq!(out.code, Some(3));
    let v = out.json();
    assert_eq!(v["status"], "denied");
    assert!(v["exit_code"].is_null(), "{v}");
    assert_eq!(v["attempts"], 0, "{v}");
    assert!(v.get("usage").is_none(), "a process ran: {v}");
    assert_eq!(v["denial"]["permission"], "network");
    assert_eq!(v["denial"]["fix"], "user-verified");
    assert!(v["message"].as_str().unwrap().contains("network_access"));
}

// ---------------------------------------------------------------------------------------
// Shadowing and aliases
// ---------------------------------------------------------------------------------------

#[test]
fn a_workspace_skill_shadows_a_global_one_with_a_warning_naming_both() {
    let w = World::with("workspace");
    let global = w.sb().join("skills");
    fs::create_dir_all(&global).unwrap();
    let global_file = global.join("greet.json");
    fs::write(&global_file, r#"{"name": "greet", "type": "prompt_inline", "prompt": "global"}"#)
        .unwrap();
    fs::write(
        global.join("only-global.json"),
        r#"{"name": "only-global", "type": "prompt_inline", "prompt": "g"}"#,
    )
    .unwrap();
    let ws_file = w.ws().join(".skillbox/skills/greet.json");
    fs::write(&ws_file, r#"{"name": "greet", "type": "prompt_inline", "prompt": "workspace"}"#)
        .unwrap();

    let out = w.run(&["list"]);
    assert_eq!(out.code, Some(0), "shadowing is a warning, not a problem: {out:?}");
    assert!(listed_names(&out.stdout).contains("only-global"));
    let warning = out
        .stderr
        .lines()
        .find(|l| l.contains("greet"))
        .unwrap_or_else(|| panic!("no warning:\n{}", out.stderr));
    assert!(warning.starts_with("skillbox: warning:"), "{warning}");
    assert!(
        warning.contains(ws_file.to_str().unwrap())
            && warning.contains(global_file.to_str().unwrap()),
        "{warning}"
    );

    let v = w.run(&["list", "--json"]).json();
    let greet = v["skills"].as_array().unwrap().iter().find(|s| s["name"] == "greet").unwrap();
    assert_eq!((&greet["path"], &greet["source"]), (&json!(ws_file), &json!("workspace")));
    assert_eq!(v["shadowed"], json!([{"name": "greet", "winner": ws_file, "hidden": global_file}]));
    let only = v["skills"].as_array().unwrap().iter().find(|s| s["name"] == "only-global").unwrap();
    assert_eq!(only["source"], "global");

    let out = w.run(&["run", "greet"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "workspace\n"));
}

#[test]
fn a_workspace_skill_named_echo_shadows_the_builtin_without_its_trust() {
    let w = World::with("workspace");
    let file = w.add_skill(
        "echo.json",
        &json!({"name": "echo", "type": "prompt_inline", "prompt": "workspace echo: {text}",
                "parameters": [{"name": "text", "type": "string", "required": true}]}),
    );
    let out = w.run(&["list"]);
    assert_eq!(out.code, Some(0));
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains(file.to_str().unwrap()) && l.contains("builtin:echo")),
        "{}",
        out.stderr
    );
    let out = w.run(&["run", "echo", "--params", r#"{"text": "hi"}"#, "--json"]);
    let v = out.json();
    assert_eq!(v["stdout"], "workspace echo: hi", "{v}");
    assert_eq!(v["trust_level"], "user-verified", "a shadowing skill must not inherit trust: {v}");
}

#[test]
fn global_skills_come_from_home_q_skills_and_from_xdg_config_home() {
    let w = World::with("workspace");
    fs::create_dir_all(w.home().join(".q-skills")).unwrap();
    fs::write(
        w.home().join(".q-skills/from-home.json"),
        r#"{"name": "from-home", "type": "prompt_inline", "prompt": "h"}"#,
    )
    .unwrap();
    fs::create_dir_all(w.xdg().join("skillbox/skills")).unwrap();
    fs::write(
        w.xdg().join("skillbox/skills/from-xdg.json"),
        r#"{"name": "from-xdg", "type": "prompt_inline", "prompt": "x"}"#,
    )
    .unwrap();
    // SKILLBOX_HOME set: XDG_CONFIG_HOME is not used.
    let names = listed_names(&w.run(&["list"]).stdout);
    assert!(names.contains("from-home") && !names.contains("from-xdg"), "{names:?}");
    // SKILLBOX_HOME empty: $XDG_CONFIG_HOME/skillbox is the skillbox home.
    let mut c = w.command(&["run", "from-xdg"]);
    c.env("SKILLBOX_HOME", "");
    let out = run_bounded(c, DEFAULT_LIMIT);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "x\n"), "{out:?}");
    assert!(w.xdg().join("skillbox/logs").is_dir(), "the audit log goes under XDG_CONFIG_HOME");
}

#[test]
fn an_alias_runs_its_skill() {
    let w = World::with("workspace");
    let p = r#"{"path": "src/app.py"}"#;
    let by_name = w.run(&["run", "count-lines", "--params", p, "--json"]).json();
    let out = w.run(&["run", "wc", "--params", p, "--json"]);
    assert_eq!(out.code, Some(0));
    let by_alias = out.json();
    assert_eq!(by_alias["skill"], "count-lines", "{by_alias}");
    assert_eq!(by_alias["stdout"], by_name["stdout"]);
    let v = w.run(&["info", "wc", "--json"]).json();
    assert_eq!(v["name"], "count-lines");
}

// ---------------------------------------------------------------------------------------
// validate and info
// ---------------------------------------------------------------------------------------

#[test]
fn validate_a_good_file_and_a_broken_directory() {
    let w = World::with("workspace");
    let broken = w.root().join("broken");
    fs::create_dir(&broken).unwrap();
    copy_tree(&example("broken"), &broken);
    let good = w.ws().join(".q-skills/count-lines.json");

    let out = w.run(&["validate", good.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, format!("ok: count-lines ({})\n1 skill(s) valid\n", good.display()));
    assert_eq!(out.stderr, "");

    let dir = broken.join(".q-skills");
    let out = w.run(&["validate", dir.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("ok: hello (") && out.stdout.contains("ok: summarize ("));
    assert!(out.stdout.contains("2 skill(s) valid, 8 problem(s)"), "{}", out.stdout);
    assert_broken_files_reported(&out.stderr);

    let out = w.run(&["validate", "--json", dir.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(out.code, Some(1));
    let v = out.json();
    let valid: BTreeSet<&str> =
        v["valid"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(valid, BTreeSet::from(["count-lines", "hello", "summarize"]));
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), BROKEN.len(), "{v}");
    for p in problems {
        for field in ["path", "field", "reason", "message"] {
            assert!(p.get(field).is_some(), "{field} missing in {p}");
        }
    }

    let v = w.run(&["validate", "--json", good.to_str().unwrap()]).json();
    assert_eq!(v["problems"], json!([]));

    // With no PATH: the workspace's skill locations.
    let out = w.run(&["validate"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    for (name, _, _) in example_skills() {
        assert!(out.stdout.contains(&format!("ok: {name} (")), "{name}: {}", out.stdout);
    }

    // A path that does not exist is a problem, named.
    let missing = w.root().join("missing.json");
    let out = w.run(&["validate", missing.to_str().unwrap()]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("missing.json") && out.stderr.contains("cannot open"));
}

#[test]
fn info_shows_the_effective_grant_and_limits() {
    let w = World::with("workspace");
    let out = w.run(&["info", "count-lines", "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = out.json();
    assert_eq!(v["trust_level"], "user-verified");
    assert!(v["denial"].is_null(), "{v}");
    let g = &v["grant"];
    assert_eq!(g["file_read"], json!([w.ws()]), "{g}");
    assert_eq!(g["file_write"], json!([]), "{g}");
    assert_eq!((&g["network"], &g["process_spawn"]), (&json!("none"), &json!("none")), "{g}");
    // Declared 5 s and 64 MiB, below the user-verified caps of 60 s and 256 MiB.
    assert_eq!(g["limits"]["max_execution_time"], 5.0, "{g}");
    assert_eq!(g["limits"]["max_memory_mb"], 64, "{g}");
    assert_eq!(v["context"]["resource_limits"]["max_memory_mb"], 256, "{v}");
    assert!(v["enforcement"].as_array().is_some_and(|e| !e.is_empty()), "{v}");

    // A skill that declares no limits gets its level's: 60 s and 256 MiB at user-verified,
    // 10 s and 64 MiB at untrusted.
    let v = w.run(&["info", "find-todos", "--json"]).json();
    assert_eq!(v["grant"]["limits"]["max_execution_time"], 60.0, "{v}");
    assert_eq!(v["grant"]["limits"]["max_memory_mb"], 256, "{v}");
    let v = w.run(&["info", "find-todos", "--trust", "untrusted", "--json"]).json();
    assert_eq!(v["grant"]["limits"]["max_execution_time"], 10.0, "{v}");
    assert_eq!(v["grant"]["limits"]["max_memory_mb"], 64, "{v}");
    assert_eq!(v["grant"]["file_read"], json!([w.ws().join("src")]), "{v}");

    let out = w.run(&["info", "count-lines"]);
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("trust level: user-verified"), "{}", out.stdout);
    assert!(out.stdout.contains("\"max_memory_mb\":64"), "{}", out.stdout);
}

#[test]
fn info_shows_the_denial_at_untrusted() {
    let w = World::with("workspace");
    let v = w.run(&["info", "fetch-status", "--trust", "untrusted", "--json"]).json();
    assert_eq!(v["trust_level"], "untrusted");
    assert!(v["grant"].is_null(), "{v}");
    assert_eq!(v["denial"]["permission"], "network", "{v}");
    assert_eq!(v["denial"]["fix"], "user-verified", "{v}");
    let out = w.run(&["info", "fetch-status", "--trust", "untrusted"]);
    assert!(
        out.stdout.contains("DENIED")
            && out.stdout.contains("network_access")
            && out.stdout.contains("--trust user-verified"),
        "{}",
        out.stdout
    );
    // At its default level it is granted HTTPS only.
    let v = w.run(&["info", "fetch-status", "--json"]).json();
    assert_eq!(v["grant"]["network"], "https-only", "{v}");
}

// ---------------------------------------------------------------------------------------
// Hostile skill files
// ---------------------------------------------------------------------------------------

#[test]
fn huge_deeply_nested_and_fifo_skill_files_are_named_without_hanging() {
    let w = World::with("workspace");
    let dir = w.ws().join(".q-skills");
    let huge = fs::File::create(dir.join("huge.json")).unwrap();
    huge.set_len(50 * 1024 * 1024).unwrap();
    drop(huge);
    fs::write(dir.join("deep.json"), "[".repeat(100_000)).unwrap();
    let fifo = dir.join("x.json");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());

    let out = run_bounded(w.command(&["list"]), Duration::from_secs(20));
    out.assert_no_panic();
    assert_eq!(out.code, Some(1), "{out:?}");
    for (file, words) in [
        ("huge.json", &["52428800 bytes", "limited to"][..]),
        ("deep.json", &["not valid JSON", "recursion limit"][..]),
        ("x.json", &["not a regular file"][..]),
    ] {
        let lines: Vec<&str> = out.stderr.lines().filter(|l| l.contains(file)).collect();
        assert_eq!(lines.len(), 1, "{file}:\n{}", out.stderr);
        for word in words {
            assert!(lines[0].contains(word), "{file}: {word:?} missing in {}", lines[0]);
        }
    }
    let names = listed_names(&out.stdout);
    for (name, _, _) in example_skills() {
        assert!(names.contains(&name), "{name} no longer listed");
    }

    // validate on the FIFO itself, and a run in this workspace, do not hang either.
    let out =
        run_bounded(w.command(&["validate", fifo.to_str().unwrap()]), Duration::from_secs(20));
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    let out = run_bounded(
        w.command(&["run", "count-lines", "--params", r#"{"path": "src/util.py"}"#]),
        Duration::from_secs(20),
    );
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "3 src/util.py\n"), "{out:?}");
    assert!(out.stderr.contains("x.json"), "run still reports the bad files: {}", out.stderr);
}

// ---------------------------------------------------------------------------------------
// Terminal safety
// ---------------------------------------------------------------------------------------

#[test]
fn terminal_escapes_in_skill_output_are_escaped_unless_raw() {
    let w = World::with("workspace");
    w.add_skill(
        "esc.json",
        &json!({"name": "esc", "type": "command", "command": "sh",
                "args": ["-c", "printf '\\033[2Jout\\n'; printf '\\033]0;pwned\\007err\\n' >&2"],
                "security": {"permissions": {"process_spawn": "none"}}}),
    );
    let out = w.run(&["run", "esc"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!out.stdout.contains('\u{1b}') && !out.stderr.contains('\u{1b}'), "{out:?}");
    assert!(!out.stderr.contains('\u{7}'), "{out:?}");
    assert_eq!(out.stdout, "\\u{1b}[2Jout\n");
    assert!(out.stderr.starts_with("\\u{1b}]0;pwned\\u{7}err\n"), "{}", out.stderr);

    let out = w.run(&["run", "esc", "--raw"]);
    assert_eq!(out.code, Some(0));
    assert_eq!(out.stdout, "\u{1b}[2Jout\n");
    assert!(out.stderr.starts_with("\u{1b}]0;pwned\u{7}err\n"), "{:?}", out.stderr);

    let v = w.run(&["run", "esc", "--json"]).json();
    assert_eq!(v["stdout"], "\u{1b}[2Jout\n");
}

#[test]
fn terminal_escapes_in_descriptions_and_file_names_are_escaped() {
    let w = World::with("workspace");
    w.add_skill(
        "desc.json",
        &json!({"name": "desc", "type": "prompt_inline", "prompt": "x",
                "description": "\u{1b}[2Jcleared \u{1b}]0;title\u{7}"}),
    );
    let out = w.run(&["list"]);
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
    assert!(out.stdout.contains("\\u{1b}[2Jcleared"), "{}", out.stdout);
    let out = w.run(&["info", "desc"]);
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);

    // File names are chosen by whoever wrote the skill directory.
    w.add_skill(
        "\u{1b}[31mred.json",
        &json!({"name": "red", "type": "prompt_inline", "prompt": "a"}),
    );
    fs::write(
        w.ws().join(".skillbox/skills/\u{1b}]0;t\u{7}.json"),
        r#"{"name": "red", "type": "prompt_inline", "prompt": "b"}"#,
    )
    .unwrap();
    let out = w.run(&["list"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("`red`"), "no shadowing warning: {}", out.stderr);
    assert!(!out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{7}'), "{:?}", out.stderr);
    let out = w.run(&["validate"]);
    assert!(out.stdout.contains("ok: red ("), "{}", out.stdout);
    assert!(!out.stdout.contains('\u{1b}') && !out.stdout.contains('\u{7}'), "{:?}", out.stdout);
    assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
}

// ---------------------------------------------------------------------------------------
// Output to a closed pipe (`skillbox list | head -1`)
// ---------------------------------------------------------------------------------------

#[test]
fn output_to_a_closed_pipe_ends_without_a_panic() {
    let w = World::with("workspace");
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["validate"],
        &["info", "count-lines"],
        &["run", "count-lines", "--params", r#"{"path": "src/app.py"}"#, "--json"],
    ] {
        let (read_end, write_end) = std::io::pipe().unwrap();
        drop(read_end); // nobody will ever read: every write gets EPIPE
        let mut c = w.command(args);
        c.stdin(Stdio::null()).stdout(Stdio::from(write_end)).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        drop(c); // the parent's copy of the write end
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let status = child.wait().unwrap();
        assert!(!stderr.contains("panicked"), "{args:?}: skillbox panicked:\n{stderr}");
        assert!(!status.success(), "{args:?}: output was lost, yet success");
    }
}
