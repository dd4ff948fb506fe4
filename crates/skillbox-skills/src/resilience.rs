//! Retry with backoff, fallbacks, and failure classification, from a skill's `resilience`,
//! `retry_config` and `error_classification`.

use std::time::Duration;

use regex::Regex;

use crate::format::SkillDef;
use crate::result::{SkillResult, Status};

/// Longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Retry; the reason says which rule made it retryable.
    Retry(String),
    /// Do not retry, but fallbacks may run.
    NoRetry,
    /// Fail at once: no retry, no fallback (permanent pattern, confinement violation,
    /// refusal).
    Final(String),
}

impl Verdict {
    /// True for [`Verdict::Final`].
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Final(_))
    }
}

/// A skill's retry and fallback settings, read once per run.
pub struct Plan {
    /// Attempts after the first.
    pub max_retries: u32,
    strategy: String,
    retry_on: Vec<String>,
    transient: Vec<Regex>,
    permanent: Vec<Regex>,
}

/// stderr text of network failures, for `retry_on: ["network_error"]`.
const NETWORK_ERRORS: &[&str] = &[
    "Connection refused",
    "Connection reset",
    "Connection timed out",
    "Network is unreachable",
    "No route to host",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Could not resolve host",
    "getaddrinfo failed",
];

impl Plan {
    /// The plan of `def`: `resilience.retry_attempts`, or `retry_config.max_attempts`
    /// (the same count in the other spelling), the backoff strategy, `retry_on`, and the
    /// error classification patterns.
    pub fn of(def: &SkillDef) -> Self {
        let r = &def.resilience;
        let rc = r.retry_config.as_ref();
        let compile = |ps: &[String]| ps.iter().filter_map(|p| Regex::new(p).ok()).collect();
        let ec = r.error_classification.clone().unwrap_or_default();
        Self {
            max_retries: r.retry_attempts.or(rc.and_then(|c| c.max_attempts)).unwrap_or(0),
            strategy: rc
                .and_then(|c| c.backoff_strategy.clone())
                .unwrap_or_else(|| "exponential".into()),
            retry_on: rc.map(|c| c.retry_on.clone()).unwrap_or_default(),
            transient: compile(&ec.transient_patterns),
            permanent: compile(&ec.permanent_patterns),
        }
    }

    /// Classifies a finished attempt.
    ///
    /// Never retried: refusals, confinement violations, `permanent_patterns` matches, and
    /// errors of skillbox itself (a missing program stays missing). Retried: what
    /// `retry_on` names (`timeout`, `resource_limit`, `network_error`) and failures whose
    /// text matches `transient_patterns`. A skill that sets a retry count but neither
    /// `retry_on` nor `transient_patterns` retries every failure and timeout.
    pub fn classify(&self, r: &SkillResult) -> Verdict {
        match r.status {
            Status::Success => return Verdict::NoRetry,
            Status::Denied | Status::Invalid => {
                return Verdict::Final("refused before running".into())
            }
            _ => {}
        }
        if r.confinement.is_some() {
            return Verdict::Final("confinement violation".into());
        }
        let text = format!("{}\n{}", r.message.as_deref().unwrap_or(""), r.stderr);
        if let Some(p) = self.permanent.iter().find(|p| p.is_match(&text)) {
            return Verdict::Final(format!("permanent failure (matches {:?})", p.as_str()));
        }
        if r.status == Status::Error {
            return Verdict::NoRetry;
        }
        let named = |k: &str| self.retry_on.iter().any(|x| x == k);
        if r.status == Status::Timeout && named("timeout") {
            return Verdict::Retry("timeout (retry_on)".into());
        }
        if r.status == Status::LimitExceeded && named("resource_limit") {
            return Verdict::Retry("resource limit (retry_on)".into());
        }
        if named("network_error") && NETWORK_ERRORS.iter().any(|n| r.stderr.contains(n)) {
            return Verdict::Retry("network error (retry_on)".into());
        }
        if let Some(p) = self.transient.iter().find(|p| p.is_match(&text)) {
            return Verdict::Retry(format!("transient failure (matches {:?})", p.as_str()));
        }
        let unclassified = self.retry_on.is_empty() && self.transient.is_empty();
        if unclassified && matches!(r.status, Status::Failed | Status::Timeout) {
            return Verdict::Retry(
                "failure (no classification given: every failure retries)".into(),
            );
        }
        Verdict::NoRetry
    }

    /// Wait before attempt `n + 1`, after `n` attempts: `base * 2^(n-1)` (exponential),
    /// `base * n` (linear) or `base` (fixed), capped at [`MAX_DELAY`], with jitter: a random
    /// 50 to 100 % of that, so that many clients do not retry in step.
    pub fn delay(&self, n: u32, base: Duration) -> Duration {
        let factor: u32 = match self.strategy.as_str() {
            "linear" => n,
            "fixed" => 1,
            _ => 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX),
        };
        let d = base.saturating_mul(factor).min(MAX_DELAY);
        let mut b = [0u8; 2];
        let r = if getrandom::fill(&mut b).is_ok() { u16::from_le_bytes(b) } else { u16::MAX };
        d.mul_f64(0.5 + 0.5 * f64::from(r) / f64::from(u16::MAX))
    }

    /// The fallbacks, in order: `fallback_command` (split into words without a shell), then
    /// each of `fallback_commands`.
    pub fn fallbacks(&self, def: &SkillDef) -> Vec<(String, Vec<String>)> {
        let r = &def.resilience;
        let mut out = Vec::new();
        if let Some(words) = r.fallback_command.as_deref().and_then(|c| shell_words::split(c).ok())
        {
            let mut words = words.into_iter();
            if let Some(cmd) = words.next() {
                out.push((cmd, words.collect()));
            }
        }
        for f in r.fallback_commands.iter().flatten() {
            out.push((f.command.clone(), f.args.clone()));
        }
        out
    }
}
