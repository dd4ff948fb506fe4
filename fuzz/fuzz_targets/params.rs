//! A call's parameters against a skill's declaration, then placeholder substitution:
//! `params::validate`, `substitute`, `substituted_len`, `check_expansion`, `build_args`.
//!
//! Input: a JSON skill file, then a line `==> params.json <==` and the parameters as JSON
//! (as a model sends them). Inputs whose skill does not parse are left to `skill_json`.
//!
//! Beyond "no panic": accepted parameters are declared, within the size bounds and free of
//! NUL bytes; a refusal lists at least one problem and names parameters on one line; the
//! length `substituted_len` predicts is the length `substitute` gives; no argument built
//! holds a NUL byte (it could not be passed to a program); an expansion `check_expansion`
//! accepts builds arguments within its bounds; the prompt a template renders to is within
//! its bound.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use skillbox_fuzz::{assert_one_safe_line, file, sections};
use skillbox_skills::params::{
    build_args, check_expansion, substitute, substituted_len, validate, MAX_ARGS_BYTES,
    MAX_ARG_BYTES, MAX_PARAMS_TOTAL_BYTES, MAX_PARAM_BYTES, MAX_RENDERED_BYTES,
};
use skillbox_skills::parse_skill;

fuzz_target!(|data: &[u8]| {
    let files = sections(data, "skill.json");
    let Some(skill) = file(&files, "skill.json") else { return };
    let Ok(skill) = parse_skill(Path::new("skill.json"), skill) else { return };
    let input: Value = match file(&files, "params.json") {
        None => Value::Null,
        Some(bytes) => match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(_) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        },
    };

    let params = match validate(&skill, &input) {
        Ok(p) => p,
        Err(problems) => {
            assert!(!problems.is_empty(), "a refusal without a problem");
            for p in &problems {
                assert_one_safe_line("a refused parameter's name", &p.parameter);
                assert_one_safe_line("a parameter problem", &p.to_string());
            }
            return;
        }
    };
    let mut total = 0;
    for (name, value) in params.iter() {
        assert!(skill.parameter(name).is_some(), "undeclared parameter {name:?} accepted");
        assert!(value.len() <= MAX_PARAM_BYTES, "{name}: {} bytes accepted", value.len());
        assert!(!value.contains('\0'), "{name}: a NUL byte accepted");
        total += value.len();
    }
    assert!(total <= MAX_PARAMS_TOTAL_BYTES, "{total} bytes of parameters accepted");

    let texts =
        skill.args.iter().chain(skill.prompt_template.as_ref()).chain(skill.command.as_ref());
    for text in texts {
        let done = substitute(text, &skill, &params);
        assert_eq!(substituted_len(text, &skill, &params), done.len(), "for {text:?}");
        if !text.contains('{') {
            assert_eq!(&done, text, "a text without placeholders changed");
        }
    }
    let args = build_args(&skill.args, &skill, &params);
    for a in &args {
        assert!(!a.contains('\0'), "an argument with a NUL byte: {a:?}");
    }
    if check_expansion(&skill, &params).is_ok() {
        for a in &args {
            assert!(a.len() <= MAX_ARG_BYTES, "an argument of {} bytes was let through", a.len());
        }
        let sum: usize = args.iter().map(String::len).sum();
        assert!(sum <= MAX_ARGS_BYTES, "{sum} bytes of arguments were let through");
        if let Some(t) = &skill.prompt_template {
            let n = substitute(t, &skill, &params).len();
            assert!(n <= MAX_RENDERED_BYTES, "a prompt of {n} bytes was let through");
        }
    }
});
