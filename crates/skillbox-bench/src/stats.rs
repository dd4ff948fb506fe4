//! Samples, their median and p95, and the tables the suite prints.

use std::time::Duration;

/// Timings of one variant of a comparison.
#[derive(Debug, Clone, Default)]
pub(crate) struct Samples {
    /// What was measured, as printed in the table.
    pub label: String,
    /// One duration per run.
    pub times: Vec<Duration>,
}

impl Samples {
    /// An empty set of samples named `label`.
    pub(crate) fn new(label: impl Into<String>) -> Self {
        Self { label: label.into(), times: Vec::new() }
    }

    /// The median, in milliseconds (0 with no samples).
    pub(crate) fn median_ms(&self) -> f64 {
        percentile(&self.times, 50) * 1e3
    }

    /// The 95th percentile, in milliseconds (0 with no samples).
    pub(crate) fn p95_ms(&self) -> f64 {
        percentile(&self.times, 95) * 1e3
    }
}

/// The `p`th percentile of `times`, in seconds (nearest rank).
pub(crate) fn percentile(times: &[Duration], p: usize) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    let mut v: Vec<Duration> = times.to_vec();
    v.sort();
    let idx = ((v.len() * p).div_ceil(100)).saturating_sub(1).min(v.len() - 1);
    v[idx].as_secs_f64()
}

/// Prints a markdown table of `rows` against `rows[baseline]`: median, p95, ratio of
/// medians, and the median overhead over the baseline.
pub(crate) fn print_time_table(title: &str, rows: &[&Samples], baseline: usize) {
    println!("\n#### {title}\n");
    println!("| variant | n | median | p95 | ratio | overhead (median) |");
    println!("|---|---:|---:|---:|---:|---:|");
    let base = rows[baseline].median_ms();
    for (i, s) in rows.iter().enumerate() {
        if s.times.is_empty() {
            continue;
        }
        let m = s.median_ms();
        let over = if i == baseline { "(baseline)".to_string() } else { fmt_ms(m - base) };
        println!(
            "| {} | {} | {} | {} | {:.2}x | {} |",
            s.label,
            s.times.len(),
            fmt_ms(m),
            fmt_ms(s.p95_ms()),
            m / base,
            over
        );
    }
}

/// Milliseconds with three decimals.
pub(crate) fn fmt_ms(ms: f64) -> String {
    format!("{ms:.3} ms")
}

/// A number with thousands separators.
pub(crate) fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One target of the issue, set against what this run measured.
#[derive(Debug, Clone)]
pub struct Target {
    /// The target as the issue states it.
    pub target: String,
    /// What this run measured.
    pub measured: String,
    /// Whether the measurement meets the target.
    pub met: bool,
}

/// Targets collected over a run, printed at the end.
#[derive(Debug, Default)]
pub struct Verdicts {
    /// In the order they were measured.
    pub targets: Vec<Target>,
}

impl Verdicts {
    /// Records one target.
    pub fn add(&mut self, target: impl Into<String>, measured: impl Into<String>, met: bool) {
        self.targets.push(Target { target: target.into(), measured: measured.into(), met });
    }

    /// Prints every target as a markdown table.
    pub fn print(&self) {
        if self.targets.is_empty() {
            return;
        }
        println!("\n### Targets\n");
        println!("| target | measured | verdict |");
        println!("|---|---|---|");
        for t in &self.targets {
            println!(
                "| {} | {} | {} |",
                t.target,
                t.measured,
                if t.met { "met" } else { "**not met**" }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let t: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&t, 50), 0.050);
        assert_eq!(percentile(&t, 95), 0.095);
        assert_eq!(percentile(&[Duration::from_millis(7)], 95), 0.007);
        assert_eq!(percentile(&[], 50), 0.0);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.4), "1,000");
    }
}
