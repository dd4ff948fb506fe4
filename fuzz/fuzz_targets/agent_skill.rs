//! An Agent Skill directory: `SKILL.md` (YAML front matter, then Markdown) and
//! `agents/openai.yaml`, loaded through `Registry::load_paths`, the path `skillbox validate
//! DIR` takes (the parser itself is not public).
//!
//! Input: the bytes of `SKILL.md`, then optionally a line `==> agents/openai.yaml <==` and
//! that file's bytes. Both are written into the directory `fuzz-skill`, which also holds
//! `scripts/run.sh`, so that a skill that loads makes a script skill too.
//!
//! Beyond "no panic": every problem is one line without raw control characters and names
//! a file of the directory; every skill loaded is the directory's own (`fuzz-skill`, or
//! `fuzz-skill--run` for its script).

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use skillbox_fuzz::{assert_one_safe_line, file, put, scratch, sections, shown_path};
use skillbox_skills::Registry;

fn skill_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().join("fuzz-skill");
        std::fs::create_dir_all(dir.join("agents")).expect("scratch is writable");
        std::fs::create_dir_all(dir.join("scripts")).expect("scratch is writable");
        std::fs::write(dir.join("scripts/run.sh"), "echo run\n").expect("scratch is writable");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = skill_dir();
    let files = sections(data, "SKILL.md");
    put(&dir.join("SKILL.md"), file(&files, "SKILL.md"));
    put(&dir.join("agents/openai.yaml"), file(&files, "agents/openai.yaml"));

    let reg = Registry::load_paths(std::slice::from_ref(dir));
    let prefix = shown_path(dir);
    for p in reg.problems() {
        let line = p.to_string();
        assert_one_safe_line("a problem with an Agent Skill", &line);
        assert!(line.starts_with(&prefix), "the problem does not name a file of the skill: {line}");
    }
    for s in reg.skills() {
        let name = s.def.name.as_str();
        assert!(
            name == "fuzz-skill" || name == "fuzz-skill--run",
            "a skill that is not the directory's: {name}"
        );
        assert!(s.agent.is_some(), "{name} has no Agent Skill");
    }
});
