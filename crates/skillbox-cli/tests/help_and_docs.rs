//! `skillbox --help` and each subcommand's help agree with the documentation: the synopsis in
//! README.md lists exactly the flags each subcommand accepts, every page the help names
//! exists, and every environment variable it names is described in docs/configuration.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::bin;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn help(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).arg("--help").env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(0), "skillbox {args:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// The long flags of an option list (`  --name <V>  text`), `--help` and `--version` aside.
fn flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter_map(|l| l.strip_prefix("-V, ").or(l.strip_prefix("-h, ")).or(Some(l)))
        .filter_map(|l| l.strip_prefix("--"))
        .map(|l| format!("--{}", l.split([' ', ',']).next().unwrap_or_default()))
        .filter(|f| f != "--help" && f != "--version" && f != "--workspace")
        .collect()
}

/// The synopsis of README.md's "Using the command": subcommand -> flags.
fn synopsis() -> Vec<(String, BTreeSet<String>)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("## Using the command").expect("a \"Using the command\" section");
    let block = readme[start..].split("```").nth(1).expect("a code block");
    let mut out: Vec<(String, BTreeSet<String>)> = Vec::new();
    for line in block.lines().skip(1) {
        let line = line.replace("[--workspace DIR]", "");
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"skillbox") {
            let cmd: Vec<&str> = line
                .split_whitespace()
                .skip(1)
                .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase()))
                .collect();
            out.push((cmd.join(" "), BTreeSet::new()));
        }
        let Some(last) = out.last_mut() else { continue };
        for w in words.iter().filter(|w| w.starts_with("[--")) {
            last.1.insert(w.trim_start_matches('[').trim_end_matches(']').to_string());
        }
    }
    out
}

#[test]
fn readme_synopsis_lists_exactly_the_flags_of_each_subcommand() {
    let syn = synopsis();
    let names: Vec<&str> = syn.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "list",
            "info",
            "validate",
            "run",
            "repl",
            "doctor",
            "mcp",
            "trust",
            "trust",
            "untrust",
            "audit show",
            "audit verify",
            "init",
            "completions",
            "man"
        ],
        "README.md's synopsis"
    );
    for (cmd, _) in &syn {
        let args: Vec<&str> = cmd.split(' ').collect();
        let accepted = flags(&help(&args));
        let expected = match cmd.as_str() {
            "mcp" => Some("--poll-ms"),
            "init" => Some("--agent-skill"),
            "man" => Some("--dir"),
            "repl" => Some("--trust"),
            "untrust" | "completions" => None,
            _ => Some("--json"),
        };
        if let Some(flag) = expected {
            assert!(accepted.contains(flag), "no flags parsed for {cmd}: {accepted:?}");
        }
        // `trust` has two synopsis lines (grant, list); together they list its flags.
        let documented: BTreeSet<String> =
            syn.iter().filter(|(c, _)| c == cmd).flat_map(|(_, f)| f.iter().cloned()).collect();
        assert_eq!(accepted, documented, "`skillbox {cmd} --help` and README.md disagree");
    }
    // Every subcommand of the binary is in the synopsis.
    let top = help(&[]);
    let listed: BTreeSet<String> = top
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect();
    let documented: BTreeSet<String> =
        syn.iter().map(|(c, _)| c.split(' ').next().unwrap().to_string()).collect();
    assert_eq!(listed, documented);
    assert!(top.contains("--workspace <DIR>"));
}

#[test]
fn pages_and_variables_named_by_the_help_exist() {
    let config = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let mut pages = 0;
    let mut vars = 0;
    for args in [
        &[][..],
        &["list"],
        &["info"],
        &["validate"],
        &["run"],
        &["doctor"],
        &["audit", "show"],
        &["audit", "verify"],
    ] {
        let text = help(args);
        for word in text.split(|c: char| c.is_whitespace() || "(),;`".contains(c)) {
            let word = word.trim_end_matches(['.', ':']);
            if word.starts_with("docs/") && word.ends_with(".md") {
                assert!(repo().join(word).is_file(), "`skillbox {args:?} --help` names {word}");
                pages += 1;
            }
            let var = word.trim_start_matches('$').split('/').next().unwrap_or_default();
            if var.starts_with("SKILLBOX_") || var == "XDG_CONFIG_HOME" {
                assert!(config.contains(&format!("`{var}`")), "{var} is not in configuration.md");
                vars += 1;
            }
        }
    }
    assert!(pages >= 5 && vars >= 4, "the help names {pages} pages and {vars} variables");
}

#[test]
fn relative_links_of_the_guide_lead_to_files_that_exist() {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.push(repo().join("README.md"));
    pages.push(repo().join("examples/workspace/README.md"));
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in text.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
            let target = link.split('#').next().unwrap_or_default();
            if target.is_empty() || target.contains("://") {
                continue;
            }
            let path = page.parent().unwrap().join(target);
            assert!(path.exists(), "{}: the link {link} leads nowhere", page.display());
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} links checked");
}

#[test]
fn the_security_model_lists_every_protected_name_and_secret_the_code_has() {
    let doc = std::fs::read_to_string(repo().join("docs/security-model.md")).unwrap();
    let names = skillbox_skills::protect::PROTECTED_NAMES.iter().map(|(n, _)| *n);
    let secrets = skillbox_skills::protect::HOME_SECRETS.iter().copied();
    let missing: Vec<&str> =
        names.chain(secrets).filter(|n| !doc.contains(&format!("`{n}`"))).collect();
    assert!(missing.is_empty(), "docs/security-model.md does not list {missing:?}");
}
