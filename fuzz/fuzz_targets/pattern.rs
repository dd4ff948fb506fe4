//! The regex pattern checker: a parameter's `pattern`, checked when the skill file loads
//! (parsed and bounded, compiled later; see `skillbox_skills::pattern`), against the regex
//! crate compiling the same anchored pattern with the same size limit.
//!
//! Input: the pattern, then optionally a line `==> value <==` and a value to match.
//!
//! Beyond "no panic": the checker accepts exactly what compiles, and refuses what does not
//! with the regex crate's own reason on one line; an accepted pattern compiles when first
//! used (the promise that lets loading skip compiling); a value is accepted exactly when the
//! compiled regex matches it.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use skillbox_fuzz::{file, sections};
use skillbox_skills::params::validate;
use skillbox_skills::parse_skill;
use skillbox_skills::pattern::REGEX_SIZE_LIMIT;

fuzz_target!(|data: &[u8]| {
    let files = sections(data, "pattern");
    let Some(Ok(pattern)) = file(&files, "pattern").map(std::str::from_utf8) else { return };
    let skill = json!({
        "name": "p",
        "type": "command",
        "command": "true",
        "args": ["{v}"],
        "parameters": [{"name": "v", "type": "string", "pattern": pattern}],
    });
    let bytes = serde_json::to_vec(&skill).expect("JSON serializes");
    let reference =
        regex::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(REGEX_SIZE_LIMIT).build();
    match (parse_skill(Path::new("p.json"), &bytes), &reference) {
        (Ok(def), Ok(re)) => {
            let checked = def.parameters[0].pattern.as_ref().expect("the pattern is kept");
            let compiled = checked.regex().expect("a pattern accepted at load compiles");
            assert_eq!(compiled.as_str(), re.as_str());
            let Some(Ok(value)) = file(&files, "value").map(std::str::from_utf8) else { return };
            let accepted = validate(&def, &json!({ "v": value })).is_ok();
            let fits =
                !value.contains('\0') && value.len() <= skillbox_skills::params::MAX_PARAM_BYTES;
            assert_eq!(accepted, fits && re.is_match(value), "value {value:?}");
        }
        (Err(problems), Err(e)) => {
            let last = e.to_string();
            let want = format!("invalid regex: {}", last.lines().last().unwrap_or(""));
            let got: Vec<&str> = problems
                .iter()
                .filter(|p| p.field.as_deref() == Some("parameters[0].pattern"))
                .map(|p| p.reason.as_str())
                .collect();
            assert_eq!(got, vec![want.as_str()], "all problems: {problems:?}");
            assert!(!want.contains('\n'));
        }
        (Ok(_), Err(e)) => panic!("accepted at load, but does not compile: {e}"),
        (Err(problems), Ok(_)) => panic!("refused at load, but compiles: {problems:?}"),
    }
});
