//! The trust store, `$SKILLBOX_HOME/trust.json`: `TrustStore::load` on any bytes.
//!
//! Beyond "no panic": a file that cannot be used is refused with an error that names it,
//! on one line without raw control characters; a store that loads holds grants that
//! serialize (they are written back, and printed by `trust --list --json`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use skillbox_fuzz::{assert_one_safe_line, put, scratch, shown_path};
use skillbox_skills::trust::{TrustError, TrustStore, STORE_FILE};

fuzz_target!(|data: &[u8]| {
    let path = scratch().join(STORE_FILE);
    put(&path, Some(data));
    match TrustStore::load(&path) {
        Ok(store) => {
            for (_, grant) in store.grants() {
                serde_json::to_string(grant).expect("a grant serializes");
            }
        }
        Err(e) => {
            assert!(matches!(e, TrustError::Parse { .. }), "not a parse error: {e:?}");
            let shown = e.to_string();
            let prefix = format!("trust file {}: ", shown_path(&path));
            assert!(shown.starts_with(&prefix), "the error does not name the file: {shown}");
            assert_one_safe_line("a trust store error", &shown);
        }
    }
});
