//! What the CLI's test files share.

/// The `skillbox` binary under test: the one cargo built for these tests, or the one
/// `SKILLBOX_TEST_BIN` names. `scripts/test.sh` runs these tests a second time that way,
/// against the static build of `scripts/build-static.sh`, so that the binary the benchmarks
/// time is also the one the tests check.
pub(crate) fn bin() -> String {
    match std::env::var("SKILLBOX_TEST_BIN") {
        Ok(path) if !path.is_empty() => path,
        _ => env!("CARGO_BIN_EXE_skillbox").to_string(),
    }
}
