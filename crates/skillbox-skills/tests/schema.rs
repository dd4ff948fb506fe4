//! The JSON Schema of the skill file format (`docs/skill.schema.json`) is the one generated
//! from the parser's types, and it agrees with the parser on the shipped examples: each
//! example's keys are ones the schema names, and a key unknown inside `security` is one the
//! schema refuses, as the parser does.
//!
//! To update the file after changing the format:
//! `SKILLBOX_WRITE_SCHEMA=1 cargo test -p skillbox-skills --test schema`.

use std::path::{Path, PathBuf};

use serde_json::Value;
use skillbox_skills::format::skill_file_schema;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let path = repo().join("docs/skill.schema.json");
    let generated = format!("{}\n", serde_json::to_string_pretty(&skill_file_schema()).unwrap());
    if std::env::var_os("SKILLBOX_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/skill.schema.json is not the schema of the current format; regenerate it with \
         SKILLBOX_WRITE_SCHEMA=1 cargo test -p skillbox-skills --test schema"
    );
}

#[test]
fn the_schema_names_every_key_of_the_examples_and_closes_security() {
    let schema = skill_file_schema();
    let props = schema["properties"].as_object().unwrap();
    for key in
        ["name", "type", "command", "args", "parameters", "security", "sandbox", "resilience"]
    {
        assert!(props.contains_key(key), "{key} missing from the schema");
    }
    assert_eq!(schema["required"], serde_json::json!(["name", "type"]), "{schema:#}");
    let dir = repo().join("examples/workspace");
    let mut seen = 0;
    for sub in [".q-skills", ".skillbox/skills"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
            let v: Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            for k in v.as_object().unwrap().keys() {
                assert!(
                    props.contains_key(k),
                    "{}: key {k} is not in the schema",
                    e.path().display()
                );
            }
            seen += 1;
        }
    }
    assert!(seen >= 8, "found {seen} examples");
    // The sections the parser closes are closed in the schema too.
    let defs = schema["definitions"].as_object().unwrap();
    for section in ["SecuritySection", "PermissionsSection", "LimitsSection"] {
        assert_eq!(defs[section]["additionalProperties"], false, "{section}: {:#}", defs[section]);
    }
    let perms = defs["PermissionsSection"]["properties"].as_object().unwrap();
    for k in ["file_read", "file_write", "network_access", "allowed_domains", "process_spawn"] {
        assert!(perms.contains_key(k), "permissions.{k} missing");
    }
}
