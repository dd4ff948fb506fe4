//! Work done ahead, for the next run of this process.
//!
//! Some of a run's preparation does not depend on the run: the fixed part of the Landlock
//! ruleset, empty cgroups with the same limits as the last run, the skills layer's private
//! directory. Doing it on tokio's blocking pool after one run, for the next, takes it off the
//! path between a call and its spawn. Each kind of preparation keeps its own single-use slot
//! and decides what is still valid when a run takes it; this gate only decides *whether* to
//! start the work, the same way for every kind.

use std::sync::atomic::{AtomicBool, Ordering};

/// Decides when one kind of preparation is started ahead: never for the first run of a
/// process (a `skillbox run` process makes one run and exits, so anything made ahead would
/// be thrown away), never without a tokio runtime (a preview or a test calling the sandbox
/// from plain threads), and never while the previous job of the same kind is still running.
#[derive(Debug)]
pub struct AheadGate {
    /// Set by the first [`AheadGate::spawn`] call, which starts nothing.
    first_done: AtomicBool,
    /// Set while a job is queued or running; cleared when it ends or is dropped unrun.
    busy: AtomicBool,
}

impl AheadGate {
    /// A gate for one kind of preparation, in a `static`.
    pub const fn new() -> Self {
        Self { first_done: AtomicBool::new(false), busy: AtomicBool::new(false) }
    }

    /// Starts `job` on tokio's blocking pool, unless this is the first call or there is no
    /// runtime or a job of this gate is still running; returns whether it was started. A job
    /// that fails should drop its failure: the next run then does the work itself and
    /// reports the error.
    pub fn spawn(&'static self, job: impl FnOnce() + Send + 'static) -> bool {
        if !self.first_done.swap(true, Ordering::AcqRel) {
            return false;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return false };
        if self.busy.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Clears `busy` when the job ends, or when a runtime shutting down drops it unrun.
        struct Busy(&'static AtomicBool);
        impl Drop for Busy {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let busy = Busy(&self.busy);
        drop(handle.spawn_blocking(move || {
            let _busy = busy;
            job();
        }));
        true
    }
}

impl Default for AheadGate {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    #[test]
    fn first_call_and_calls_without_a_runtime_start_nothing() {
        static GATE: AheadGate = AheadGate::new();
        assert!(!GATE.spawn(|| {}), "the first call starts nothing");
        assert!(!GATE.spawn(|| {}), "no runtime here");
    }

    #[test]
    fn one_job_at_a_time_then_the_next() {
        static GATE: AheadGate = AheadGate::new();
        static RAN: AtomicUsize = AtomicUsize::new(0);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let _enter = rt.enter();
        assert!(!GATE.spawn(|| {}));
        let (release, wait) = mpsc::channel::<()>();
        let (started, is_started) = mpsc::channel::<()>();
        assert!(GATE.spawn(move || {
            started.send(()).unwrap();
            wait.recv().unwrap();
            RAN.fetch_add(1, Ordering::SeqCst);
        }));
        is_started.recv().unwrap();
        assert!(!GATE.spawn(|| unreachable!("a second job while the first runs")));
        release.send(()).unwrap();
        while GATE.busy.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        assert_eq!(RAN.load(Ordering::SeqCst), 1);
        let (done, is_done) = mpsc::channel::<()>();
        assert!(GATE.spawn(move || done.send(()).unwrap()), "free again once the job ended");
        is_done.recv().unwrap();
    }
}
