//! The trust policy, `$SKILLBOX_HOME/policy.json`: `TrustPolicy::load` on any bytes.
//!
//! Beyond "no panic": a file that cannot be used is refused with an error that names it,
//! on one line without raw control characters; a policy that loads, written back, loads
//! again to the same policy.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skillbox_fuzz::{assert_one_safe_line, put, scratch, shown_path};
use skillbox_skills::trust::{TrustError, TrustPolicy, POLICY_FILE};

fuzz_target!(|data: &[u8]| {
    let path = scratch().join(POLICY_FILE);
    put(&path, Some(data));
    match TrustPolicy::load(&path) {
        Ok(policy) => {
            let again = serde_json::to_vec(&policy).expect("a policy serializes");
            put(&path, Some(&again));
            let reread = TrustPolicy::load(&path).expect("a policy written back loads");
            assert_eq!(reread, policy);
        }
        Err(e) => {
            assert!(matches!(e, TrustError::Parse { .. }), "not a parse error: {e:?}");
            let shown = e.to_string();
            let prefix = format!("trust file {}: ", shown_path(&path));
            assert!(shown.starts_with(&prefix), "the error does not name the file: {shown}");
            assert_one_safe_line("a trust policy error", &shown);
        }
    }
});
