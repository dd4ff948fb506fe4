//! The bench process's own memory, from `/proc/self`.

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), in KiB; 0 when absent.
pub(crate) fn status_kib(field: &str) -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/status") else { return 0 };
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak resident memory (`VmHWM`) to the current resident memory, so that a
/// section measures its own peak (`/proc/self/clear_refs`, Linux 4.0 and later).
pub(crate) fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// MiB with one decimal, from KiB.
pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
