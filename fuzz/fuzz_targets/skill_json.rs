//! A JSON skill file: `parse_skill` on any bytes, with every check it makes.
//!
//! Beyond "no panic": a refusal lists at least one problem, and each problem is shown as
//! one line, without raw control characters, that starts with the file's name (the file name
//! used here holds an escape sequence, a newline and a byte that is not UTF-8, as Linux
//! allows). A skill that parses, written back as JSON, parses again to the same skill.

#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use skillbox_fuzz::{assert_one_safe_line, shown_path};
use skillbox_skills::parse_skill;

fuzz_target!(|data: &[u8]| {
    let path = Path::new(OsStr::from_bytes(b"/skills/\x1b[1mlint\xff\n.json"));
    match parse_skill(path, data) {
        Err(problems) => {
            assert!(!problems.is_empty(), "a refusal without a problem");
            let prefix = format!("{}: ", shown_path(path));
            for p in &problems {
                let line = p.to_string();
                assert_one_safe_line("a problem with a skill file", &line);
                assert!(line.starts_with(&prefix), "the problem does not name the file: {line}");
            }
        }
        Ok(def) => {
            let again = serde_json::to_vec(&def.raw).expect("a JSON value serializes");
            let def2 = match parse_skill(path, &again) {
                Ok(d) => d,
                Err(p) => panic!("a skill that parsed does not parse once written back: {p:?}"),
            };
            assert_eq!(def2.name, def.name);
            assert_eq!(def2.skill_type, def.skill_type);
            assert_eq!(def2.args, def.args);
            assert_eq!(def2.parameters.len(), def.parameters.len());
            assert_eq!(def2.timeout, def.timeout);
            // Permissions, `allowed_domains` normalised, are the same from the same file.
            assert_eq!(def2.permissions, def.permissions);
        }
    }
});
