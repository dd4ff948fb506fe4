//! `Registry::load`: precedence between sources, bad files reported without stopping the
//! good ones, aliases, name checks on lookup, hostile directory entries, standard locations.

mod support;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use skillbox_skills::name::NameError;
use skillbox_skills::{Locations, LookupError, Registry, SourceKind};
use support::write;

/// Writes a valid skill named `name` whose description records `tag`.
fn skill(dir: &Path, file: &str, name: &str, tag: &str) -> PathBuf {
    let p = dir.join(file);
    let v = json!({"name": name, "description": tag, "type": "command", "command": "true"});
    write(&p, &v.to_string());
    p
}

fn only(dirs: &[&Path]) -> Locations {
    Locations {
        global: Vec::new(),
        workspace: dirs.iter().map(|d| d.to_path_buf()).collect(),
        builtins: false,
        ..Locations::default()
    }
}

fn problems_for<'a>(reg: &'a Registry, path: &Path) -> Vec<&'a skillbox_skills::Diagnostic> {
    reg.problems().iter().filter(|d| d.path == path).collect()
}

/// An environment with only the given variables.
fn env(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> {
    let vars: Vec<(String, OsString)> =
        vars.iter().map(|(k, v)| (k.to_string(), v.as_os_str().to_owned())).collect();
    move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

// ---------------------------------------------------------------- precedence

#[test]
fn workspace_beats_global_beats_builtin_and_skillbox_dir_beats_q_skills() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let sb_home = tmp.path().join("sbhome");
    let ws = tmp.path().join("ws");
    fs::create_dir_all(&ws).unwrap();
    let loc = Locations::standard(&ws, env(&[("HOME", &home), ("SKILLBOX_HOME", &sb_home)]));
    assert!(loc.builtins);
    let home_q = home.join(".q-skills");
    let global_sb = sb_home.join("skills");
    let ws_q = ws.join(".q-skills");
    let ws_sb = ws.join(".skillbox/skills");
    assert_eq!(loc.global, [home_q.clone(), global_sb.clone()]);
    assert_eq!(loc.workspace, [ws_q.clone(), ws_sb.clone()]);

    // `p` everywhere: the workspace's .skillbox/skills wins.
    skill(&home_q, "p.json", "p", "home-q");
    skill(&global_sb, "p.json", "p", "global-sb");
    let p_ws_q = skill(&ws_q, "p.json", "p", "ws-q");
    let p_ws_sb = skill(&ws_sb, "p.json", "p", "ws-sb");
    // `g` in both global dirs: $SKILLBOX_HOME/skills wins over ~/.q-skills.
    let g_home = skill(&home_q, "g.json", "g", "home-q");
    let g_sb = skill(&global_sb, "g.json", "g", "global-sb");
    // `w` in global and workspace: the workspace wins.
    let w_global = skill(&global_sb, "w.json", "w", "global");
    let w_ws = skill(&ws_q, "w.json", "w", "workspace");
    // Built-ins: `echo` shadowed by the workspace, `explain-denial` by a global skill.
    let echo_ws = skill(&ws_q, "echo.json", "echo", "my echo");
    let ed_global = skill(&home_q, "ed.json", "explain-denial", "my explain");

    let reg = Registry::load(&loc);
    assert!(reg.problems().is_empty(), "{:#?}", reg.problems());
    assert_eq!(reg.len(), 5);

    let p = reg.get("p").unwrap();
    assert_eq!(
        (p.def.description.as_str(), p.source, &p.path),
        ("ws-sb", SourceKind::Workspace, &p_ws_sb)
    );
    let g = reg.get("g").unwrap();
    assert_eq!(
        (g.def.description.as_str(), g.source, &g.path),
        ("global-sb", SourceKind::Global, &g_sb)
    );
    let w = reg.get("w").unwrap();
    assert_eq!((w.def.description.as_str(), w.source), ("workspace", SourceKind::Workspace));
    let echo = reg.get("echo").unwrap();
    assert_eq!((echo.def.description.as_str(), echo.source), ("my echo", SourceKind::Workspace));
    assert_eq!(echo.path, echo_ws);
    let ed = reg.get("explain-denial").unwrap();
    assert_eq!((ed.source, &ed.path), (SourceKind::Global, &ed_global));

    // shadowed() names both files of each replacement.
    let has = |name: &str, winner: &Path, hidden: &Path| {
        reg.shadowed().iter().any(|s| s.name == name && s.winner == winner && s.hidden == hidden)
    };
    assert!(has("p", &p_ws_sb, &p_ws_q), "{:#?}", reg.shadowed());
    assert!(has("g", &g_sb, &g_home), "{:#?}", reg.shadowed());
    assert!(has("w", &w_ws, &w_global), "{:#?}", reg.shadowed());
    assert!(has("echo", &echo_ws, Path::new("builtin:echo")), "{:#?}", reg.shadowed());
    assert!(has("explain-denial", &ed_global, Path::new("builtin:explain-denial")));
    let line = reg.shadowed().iter().find(|s| s.name == "w").unwrap().to_string();
    assert!(line.contains(&w_ws.display().to_string()), "{line}");
    assert!(line.contains(&w_global.display().to_string()), "{line}");
    // Source kinds order the same way.
    assert!(SourceKind::Builtin < SourceKind::Global && SourceKind::Global < SourceKind::Workspace);
}

#[test]
fn builtins_load_without_problems_and_only_when_asked() {
    let reg = Registry::load(&Locations { builtins: true, ..Locations::default() });
    assert!(reg.problems().is_empty(), "{:#?}", reg.problems());
    let echo = reg.get("echo").unwrap();
    assert_eq!(echo.source, SourceKind::Builtin);
    assert_eq!(echo.path, Path::new("builtin:echo"));
    assert!(reg.get("explain-denial").is_ok());
    assert!(Registry::load(&Locations::default()).is_empty());
}

// ---------------------------------------------------------------- bad files

#[test]
fn bad_files_never_stop_the_good_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for i in 0..30 {
        skill(dir, &format!("good-{i:02}.json"), &format!("good-{i:02}"), "ok");
    }
    let bad: Vec<(&str, &[u8])> = vec![
        ("bad-json.json", b"{\"name\": "),
        ("bad-array.json", b"[]"),
        ("bad-utf8.json", b"{\"name\": \"\xff\"}"),
        ("bad-empty.json", b""),
        ("bad-type.json", br#"{"name": "x1", "type": "shell", "command": "ls"}"#),
        (
            "bad-timeout.json",
            br#"{"name": "x2", "type": "command", "command": "ls", "timeout": 0}"#,
        ),
        ("bad-name.json", br#"{"name": "../x", "type": "command", "command": "ls"}"#),
        ("a-first-bad.json", br#"{"name": "x3", "type": "command"}"#),
        ("zz-last-bad.json", br#"{"name": "x4", "type": "prompt_inline"}"#),
    ];
    for (f, bytes) in &bad {
        fs::write(dir.join(f), bytes).unwrap();
    }
    let reg = Registry::load(&only(&[dir]));
    assert_eq!(reg.len(), 30, "{:#?}", reg.problems());
    for i in 0..30 {
        assert!(reg.get(&format!("good-{i:02}")).is_ok());
    }
    for (f, _) in &bad {
        let ps = problems_for(&reg, &dir.join(f));
        assert!(!ps.is_empty(), "{f} is reported: {:#?}", reg.problems());
        for p in ps {
            assert!(p.to_string().starts_with(&dir.join(f).display().to_string()));
        }
    }
    assert_eq!(reg.problems().len(), bad.len(), "{:#?}", reg.problems());
}

/// A directory of many files gives what reading its files
/// one by one in name order gives: the same skills, and the same diagnostics in the same
/// order (bad JSON, bad patterns, duplicates claimed by the first file by name).
#[test]
fn a_large_directory_loads_as_if_read_file_by_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for i in 0..300 {
        let file = dir.join(format!("f-{i:03}.json"));
        let name = format!("s-{:03}", i % 250); // 50 duplicates, claimed by the lower number
        let v = match i % 7 {
            0 => json!({"name": name, "type": "command", "command": "true",
                        "parameters": [{"name": "p", "type": "string", "pattern": "[a-z]+"}]}),
            1 => json!({"name": name, "type": "command", "command": "true",
                        "parameters": [{"name": "p", "type": "string", "pattern": "(bad"}]}),
            2 => json!({"name": name, "type": "command"}),
            3 => json!({"name": name, "type": "command", "command": "true", "timeout": "x"}),
            _ => json!({"name": name, "type": "command", "command": "true"}),
        };
        let text = if i % 31 == 5 { "{\"name\": ".to_string() } else { v.to_string() };
        write(&file, &text);
    }
    let reg = Registry::load(&only(&[dir]));

    // What reading the files one by one in name order gives.
    let mut expected = Vec::new();
    let mut claimed: std::collections::BTreeMap<String, PathBuf> = Default::default();
    let mut files: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in &files {
        match skillbox_skills::parse_skill(f, &fs::read(f).unwrap()) {
            Err(ds) => expected.extend(ds.iter().map(|d| d.to_string())),
            Ok(def) => match claimed.get(&def.name) {
                Some(first) => expected.push(format!(
                    "{}: field `name`: duplicate skill name `{}`: also defined in {}, which is used",
                    f.display(),
                    def.name,
                    first.display()
                )),
                None => {
                    claimed.insert(def.name.clone(), f.clone());
                }
            },
        }
    }
    let got: Vec<String> = reg.problems().iter().map(|d| d.to_string()).collect();
    assert_eq!(got, expected);
    assert!(
        got.iter().any(|d| d.contains("field `parameters[0].pattern`: invalid regex")),
        "{got:#?}"
    );
    assert_eq!(reg.len(), claimed.len());
    for (name, path) in &claimed {
        assert_eq!(&reg.get(name).unwrap().path, path, "{name}");
    }
}

#[test]
fn duplicate_names_in_one_directory_keep_the_first_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = skill(dir, "a.json", "dup", "first");
    let second = skill(dir, "b.json", "dup", "second");
    let reg = Registry::load(&only(&[dir]));
    let d = reg.get("dup").unwrap();
    assert_eq!((d.def.description.as_str(), &d.path), ("first", &first));
    assert!(reg.shadowed().is_empty(), "a duplicate is not an override");
    let ps = problems_for(&reg, &second);
    assert_eq!(ps.len(), 1, "{:#?}", reg.problems());
    assert_eq!(ps[0].field.as_deref(), Some("name"));
    let line = ps[0].to_string();
    assert!(line.contains(&second.display().to_string()), "{line}");
    assert!(line.contains(&first.display().to_string()), "{line}");
    assert!(line.contains("duplicate"), "{line}");
}

// ---------------------------------------------------------------- aliases and lookups

#[test]
fn aliases_resolve_and_an_alias_naming_another_skill_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        &dir.join("long.json"),
        &json!({"name": "long-name", "type": "command", "command": "true",
                "aliases": ["ln", "other"]})
        .to_string(),
    );
    let other = skill(dir, "other.json", "other", "the real other");
    let reg = Registry::load(&only(&[dir]));
    let s = reg.get("ln").unwrap();
    assert_eq!(s.def.name, "long-name");
    // `other` is a skill's name: the alias is ignored, and reported.
    let o = reg.get("other").unwrap();
    assert_eq!((o.def.name.as_str(), &o.path), ("other", &other));
    let ps = problems_for(&reg, &dir.join("long.json"));
    assert_eq!(ps.len(), 1, "{:#?}", reg.problems());
    assert_eq!(ps[0].field.as_deref(), Some("aliases"));
    assert!(ps[0].reason.contains("other"), "{}", ps[0]);
}

#[test]
fn an_alias_claimed_twice_goes_to_one_skill_and_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for n in ["a", "b"] {
        write(
            &dir.join(format!("{n}.json")),
            &json!({"name": n, "type": "command", "command": "true", "aliases": ["shared"]})
                .to_string(),
        );
    }
    let reg = Registry::load(&only(&[dir]));
    assert_eq!(reg.get("shared").unwrap().def.name, "a");
    assert_eq!(reg.problems().len(), 1, "{:#?}", reg.problems());
    assert_eq!(reg.problems()[0].path, dir.join("b.json"));
}

#[test]
fn get_checks_the_name_before_looking() {
    let reg = Registry::load(&Locations { builtins: true, ..Locations::default() });
    for bad in ["../x", "", "a\0b", "a/b", "/etc/passwd", "echo ", "x".repeat(200).as_str()] {
        match reg.get(bad) {
            Err(LookupError::InvalidName { quoted, source }) => {
                assert!(!quoted.contains('\0'), "{quoted:?}");
                let msg = LookupError::InvalidName { quoted, source }.to_string();
                assert!(msg.contains("not a valid skill name"), "{msg}");
                assert!(!msg.contains('\0') && !msg.contains('\n'), "{msg:?}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert!(matches!(reg.get(""), Err(LookupError::InvalidName { source: NameError::Empty, .. })));
    match reg.get("no-such-skill") {
        Err(LookupError::NotFound { name, suggestion }) => {
            assert_eq!(name, "no-such-skill");
            assert_eq!(suggestion, None);
        }
        other => panic!("{other:?}"),
    }
    assert!(reg.get("echo").is_ok());
}

#[test]
fn an_unknown_name_close_to_a_skill_suggests_it() {
    let reg = Registry::load(&Locations { builtins: true, ..Locations::default() });
    let suggest = |n: &str| match reg.get(n) {
        Err(e @ LookupError::NotFound { .. }) => {
            let msg = e.to_string();
            let LookupError::NotFound { suggestion, .. } = e else { unreachable!() };
            (suggestion, msg)
        }
        other => panic!("{n}: {other:?}"),
    };
    // A letter dropped, swapped, replaced; a case slip.
    for typo in ["ech", "ecoh", "ecxo", "Echo", "explain-denail", "explain_denial"] {
        let want = if typo.starts_with('e') && typo.len() < 6 || typo == "Echo" {
            "echo"
        } else {
            "explain-denial"
        };
        let (s, msg) = suggest(typo);
        assert_eq!(s.as_deref(), Some(want), "{typo}");
        assert!(msg.contains(&format!("did you mean `{want}`?")), "{msg}");
    }
    // Nothing close: no guess.
    for far in ["x", "zz", "deploy", "no-such-skill"] {
        let (s, msg) = suggest(far);
        assert_eq!(s, None, "{far}");
        assert!(msg.contains("skillbox list"), "{msg}");
    }
}

// ---------------------------------------------------------------- hostile entries

#[test]
fn a_fifo_named_json_does_not_hang_loading() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let fifo = dir.join("x.json");
    let st = Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
    assert!(st.success());
    skill(&dir, "good.json", "good", "ok");

    // Load on another thread so that a hang fails this test instead of the whole run.
    let (tx, rx) = mpsc::channel();
    let d = dir.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Registry::load(&only(&[&d])));
    });
    let reg = rx.recv_timeout(Duration::from_secs(120)).expect("Registry::load hung on a FIFO");
    assert!(reg.get("good").is_ok());
    let ps = problems_for(&reg, &fifo);
    assert_eq!(ps.len(), 1, "{:#?}", reg.problems());
    assert!(ps[0].reason.contains("not a regular file"), "{}", ps[0]);

    // The same through load_paths with the FIFO named directly.
    let (tx, rx) = mpsc::channel();
    let f = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Registry::load_paths(&[f]));
    });
    let reg = rx.recv_timeout(Duration::from_secs(120)).expect("load_paths hung on a FIFO");
    assert!(reg.is_empty());
    assert!(reg.problems()[0].reason.contains("not a regular file"));
}

#[test]
fn a_huge_file_is_reported_as_too_large() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let big = dir.join("big.json");
    // Sparse: 50 MB long, no blocks written.
    fs::File::create(&big).unwrap().set_len(50 * 1024 * 1024).unwrap();
    skill(dir, "good.json", "good", "ok");
    let reg = Registry::load(&only(&[dir]));
    assert!(reg.get("good").is_ok());
    let ps = problems_for(&reg, &big);
    assert_eq!(ps.len(), 1, "{:#?}", reg.problems());
    let reason = &ps[0].reason;
    assert!(reason.contains("52428800"), "reports the size from metadata: {reason}");
    assert!(reason.contains("limited to"), "{reason}");
    assert!(!reason.contains("JSON"), "not parsed: {reason}");
}

#[test]
fn a_directory_named_json_is_reported_and_other_files_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sub = dir.join("y.json");
    fs::create_dir(&sub).unwrap();
    skill(&sub, "inner.json", "inner", "not loaded: not a skill dir");
    skill(dir, "good.json", "good", "ok");
    for f in ["README.md", "notes.txt", "skill.json.bak", "skill.JSON", ".json.swp", "json"] {
        fs::write(dir.join(f), "{ this is not json").unwrap();
    }
    let reg = Registry::load(&only(&[dir]));
    assert_eq!(reg.len(), 1);
    assert!(reg.get("good").is_ok());
    assert!(reg.get("inner").is_err(), "subdirectories are not searched");
    assert_eq!(reg.problems().len(), 1, "{:#?}", reg.problems());
    assert_eq!(reg.problems()[0].path, sub);
    assert!(reg.problems()[0].reason.contains("not a regular file"));
}

#[test]
fn a_missing_directory_is_silently_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    skill(&real, "good.json", "good", "ok");
    let loc = Locations {
        global: vec![tmp.path().join("missing-global"), tmp.path().join("a/b/c")],
        workspace: vec![tmp.path().join("missing-ws"), real],
        builtins: false,
        ..Locations::default()
    };
    let reg = Registry::load(&loc);
    assert_eq!(reg.len(), 1);
    assert!(reg.problems().is_empty(), "{:#?}", reg.problems());
}

#[test]
fn a_file_where_a_directory_is_expected_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let not_dir = tmp.path().join("skills");
    fs::write(&not_dir, "x").unwrap();
    let reg = Registry::load(&only(&[&not_dir]));
    assert!(reg.is_empty());
    assert_eq!(reg.problems().len(), 1, "{:#?}", reg.problems());
    assert_eq!(reg.problems()[0].path, not_dir);
}

#[test]
fn load_paths_reads_files_and_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let a = skill(tmp.path(), "one/a.json", "a", "a");
    skill(tmp.path(), "two/b.json", "b", "b");
    skill(tmp.path(), "two/c.json", "c", "c");
    let reg = Registry::load_paths(&[a, tmp.path().join("two")]);
    assert_eq!(reg.len(), 3);
    assert!(reg.skills().all(|s| s.source == SourceKind::Workspace));
}

// ---------------------------------------------------------------- standard locations

#[test]
fn standard_locations_follow_the_environment() {
    let ws = Path::new("/w");
    let home = Path::new("/home/u");
    let xdg = Path::new("/xdg");
    let sb = Path::new("/sb");

    // SKILLBOX_HOME wins.
    let l = Locations::standard(
        ws,
        env(&[("HOME", home), ("XDG_CONFIG_HOME", xdg), ("SKILLBOX_HOME", sb)]),
    );
    assert_eq!(l.global, [home.join(".q-skills"), sb.join("skills")]);
    // Else XDG_CONFIG_HOME/skillbox.
    let l = Locations::standard(ws, env(&[("HOME", home), ("XDG_CONFIG_HOME", xdg)]));
    assert_eq!(l.global, [home.join(".q-skills"), xdg.join("skillbox/skills")]);
    // Else HOME/.config/skillbox.
    let l = Locations::standard(ws, env(&[("HOME", home)]));
    assert_eq!(l.global, [home.join(".q-skills"), home.join(".config/skillbox/skills")]);
    // Empty values count as unset.
    let l = Locations::standard(
        ws,
        env(&[
            ("HOME", home),
            ("XDG_CONFIG_HOME", Path::new("")),
            ("SKILLBOX_HOME", Path::new("")),
        ]),
    );
    assert_eq!(l.global, [home.join(".q-skills"), home.join(".config/skillbox/skills")]);
    // No HOME: no ~/.q-skills, but SKILLBOX_HOME still counts.
    let l = Locations::standard(ws, env(&[("SKILLBOX_HOME", sb)]));
    assert_eq!(l.global, [sb.join("skills")]);
    let l = Locations::standard(ws, env(&[]));
    assert!(l.global.is_empty());

    assert_eq!(l.workspace, [ws.join(".q-skills"), ws.join(".skillbox/skills")]);
    assert!(l.builtins);
}
