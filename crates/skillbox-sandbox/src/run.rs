use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use crate::output::Capture;
use crate::{CapturedOutput, ChildSpec, SandboxError};

/// How long output readers may keep draining after the child has gone. A descendant that
/// escaped the process group may hold the pipe open forever; we must not wait for it.
const DRAIN_GRACE: Duration = Duration::from_millis(250);

/// How a supervised child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The program exited with this code.
    Exited(i32),
    /// The program was killed by this signal (not by the timeout).
    Signaled(i32),
    /// The wall-clock timeout passed and the process group was killed.
    TimedOut,
}

/// The result of supervising one child.
#[derive(Debug, Clone)]
pub struct ChildOutcome {
    /// How it ended.
    pub status: ExitStatus,
    /// Captured standard output.
    pub stdout: CapturedOutput,
    /// Captured standard error.
    pub stderr: CapturedOutput,
    /// Wall-clock time from spawn to exit.
    pub wall_time: Duration,
}

/// Kills the whole process group when dropped, so that a cancelled future (an agent that
/// gives up on a call) never leaves the group running.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: killpg takes plain integers and has no memory effects. The group id is
            // the pid of a child we spawned and have not yet reaped, so it cannot have been
            // recycled for an unrelated group.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the child described by `spec`, supervises it to the end, and returns its outcome.
///
/// The future is cancel-safe in the sense that matters: dropping it kills the child's
/// process group.
pub async fn run(spec: &ChildSpec) -> Result<ChildOutcome, SandboxError> {
    spec.check()?;
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);

    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| SandboxError::Spawn {
        program: spec.program.display().to_string(),
        source,
    })?;
    let pid = child.id().map(|p| p as i32);
    let mut guard = GroupGuard(pid);

    let stdout = reader(child.stdout.take(), spec.output_limit);
    let stderr = reader(child.stderr.take(), spec.output_limit);

    let status = match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(Ok(st)) => {
            use std::os::unix::process::ExitStatusExt;
            match (st.code(), st.signal()) {
                (Some(code), _) => ExitStatus::Exited(code),
                (None, Some(sig)) => ExitStatus::Signaled(sig),
                (None, None) => ExitStatus::Signaled(0),
            }
        }
        Ok(Err(e)) => return Err(SandboxError::Supervise(e)),
        Err(_) => ExitStatus::TimedOut,
    };
    // Whatever happened, nothing of the group outlives the run. On timeout the leader is
    // still alive, so kill first, then reap it.
    guard.kill();
    if status == ExitStatus::TimedOut {
        child.wait().await.map_err(SandboxError::Supervise)?;
    }
    let wall_time = started.elapsed();

    Ok(ChildOutcome { status, stdout: drain(stdout).await, stderr: drain(stderr).await, wall_time })
}

type Reader = Option<(JoinHandle<()>, std::sync::Arc<std::sync::Mutex<Capture>>)>;

fn reader<R: AsyncRead + Unpin + Send + 'static>(stream: Option<R>, limit: usize) -> Reader {
    let mut stream = stream?;
    let capture = std::sync::Arc::new(std::sync::Mutex::new(Capture::new(limit)));
    let shared = capture.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => match shared.lock() {
                    Ok(mut c) => c.push(&buf[..n]),
                    Err(_) => break,
                },
            }
        }
    });
    Some((task, capture))
}

async fn drain(reader: Reader) -> CapturedOutput {
    let Some((mut task, capture)) = reader else {
        return CapturedOutput::default();
    };
    if tokio::time::timeout(DRAIN_GRACE, &mut task).await.is_err() {
        task.abort();
    }
    let taken = match capture.lock() {
        Ok(mut c) => std::mem::replace(&mut *c, Capture::new(0)),
        Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), Capture::new(0)),
    };
    taken.finish()
}
