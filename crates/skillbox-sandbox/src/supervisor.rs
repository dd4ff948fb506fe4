//! Nothing of a run outlives skillbox, where no PID namespace can hold the run.
//!
//! With unprivileged user namespaces, each run is the first process of a PID namespace that
//! dies with the thread that started it, and the kernel kills the rest of the run then. Where
//! a host refuses user namespaces (Docker's and Podman's default profiles, Ubuntu 23.10 and
//! later for a normal user), that mechanism is missing, and a run would outlive a skillbox
//! killed with `SIGKILL`. This module is the fallback: one small supervisor process per
//! skillbox process, which holds the read end of a pipe whose write end only skillbox holds.
//! Each run registers its process group before it executes its program, and unregisters it
//! once it is killed and before it is reaped (so a registered group id can never have been
//! reused). When skillbox ends in any way, the kernel closes the write end, the supervisor
//! reads end-of-file, kills every group still registered with `SIGKILL`, and exits.
//!
//! Every process of a run stays in its group because `setsid` and `setpgid` are denied by the
//! run's seccomp filter in this mode, so killing the groups kills the whole run.
//!
//! The supervisor is started with `fork`, once per process, when the first run needs it: it
//! then only reads, kills and exits (async-signal-safe system calls on its own copy of the
//! memory), with every signal but `SIGKILL` blocked and every descriptor but its pipe closed.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

/// Most groups registered at once (a skillbox process runs far fewer at once: the MCP server
/// at most `--max-concurrent`); a registration beyond it is dropped by the supervisor.
pub(crate) const MAX_GROUPS: usize = 4096;

/// Record kinds on the pipe: 8 bytes each, `[kind: u32][group: i32]` in native order, written
/// with one `write(2)` (atomic below `PIPE_BUF`).
const ADD: u32 = 1;
const REMOVE: u32 = 2;

/// The supervisor of this process.
#[derive(Debug)]
pub(crate) struct Supervisor {
    /// The pipe's write end, close-on-exec: only this process holds it.
    write: OwnedFd,
    /// The supervisor's pid.
    pid: libc::pid_t,
}

/// The supervisor of this process, started on first use, and started again if it has died
/// (someone killed it): the error when it cannot be started. A run holds the returned `Arc`
/// until it has ended, so the descriptor its child writes to stays open meanwhile.
pub(crate) fn get() -> Result<Arc<Supervisor>, String> {
    static SUPERVISOR: Mutex<Option<Arc<Supervisor>>> = Mutex::new(None);
    let mut slot = match SUPERVISOR.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(s) = slot.as_ref().filter(|s| s.alive()) {
        return Ok(s.clone());
    }
    let started = Arc::new(start()?);
    *slot = Some(started.clone());
    Ok(started)
}

impl Supervisor {
    /// The record a run's child writes to [`Supervisor::fd`] before it executes its
    /// program: the group is registered before any of its code runs.
    pub(crate) fn add_record(group: libc::pid_t) -> [u8; 8] {
        record(ADD, group)
    }

    /// The write end, for the run's child to register its own group.
    pub(crate) fn fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    /// Unregisters `group`: call after the group was killed and before its leader is
    /// reaped, so that the id cannot have been reused meanwhile.
    pub(crate) fn unregister(&self, group: libc::pid_t) {
        let r = record(REMOVE, group);
        // A failed write leaves the group registered: killed again at exit, where it is a
        // zombie's group (its leader not reaped yet) or gone; never another process's.
        let _ = rustix::io::write(&self.write, &r);
    }

    /// The record that takes `group` off the list again, for a child that registered and
    /// then failed before exec (its group dies with it).
    pub(crate) fn remove_record(group: libc::pid_t) -> [u8; 8] {
        record(REMOVE, group)
    }

    /// Whether the supervisor still runs: one `waitid` without waiting. A supervisor that
    /// died is reaped here (it is our child), so that a new one can take over.
    fn alive(&self) -> bool {
        // SAFETY: siginfo_t is plain data, for which all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only `info`; the pid is our own child's.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            )
        };
        // SAFETY: reading the pid field of the siginfo waitid filled (0 when nothing ended).
        r == 0 && unsafe { info.si_pid() } == 0
    }

    /// The supervisor's pid.
    #[cfg(test)]
    pub(crate) fn pid(&self) -> libc::pid_t {
        self.pid
    }
}

fn record(kind: u32, group: libc::pid_t) -> [u8; 8] {
    let mut r = [0u8; 8];
    r[..4].copy_from_slice(&kind.to_ne_bytes());
    r[4..].copy_from_slice(&group.to_ne_bytes());
    r
}

/// Starts the supervisor: makes the pipe, forks, and in the child runs [`supervise`].
fn start() -> Result<Supervisor, String> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("cannot make the supervisor's pipe: {e}"))?;
    let read_fd = read.as_raw_fd();
    // Every signal is blocked across the fork, so the child starts with all blocked and no
    // handler of this process ever runs in it.
    // SAFETY: sigset_t is plain data, for which all zeroes is a valid value.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigset_t is plain data, for which all zeroes is a valid value.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigfillset writes only `all`, a sigset_t on this stack.
    unsafe { libc::sigfillset(&mut all) };
    // SAFETY: changes this thread's mask only; reads `all` and writes the mask before into
    // `old`, both on this stack.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old) };
    // SAFETY: fork in a possibly multi-threaded process: the child calls only
    // async-signal-safe system calls (`supervise`), on its own copy of the memory, and never
    // returns.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        supervise(read_fd);
    }
    let fork_error = std::io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    if pid < 0 {
        return Err(format!("cannot start the supervisor: {fork_error}"));
    }
    drop(read);
    Ok(Supervisor { write, pid })
}

/// The supervisor's whole life: reads records from `fd` until end-of-file, then kills the
/// groups still registered and exits. Only async-signal-safe system calls, no allocation.
fn supervise(fd: RawFd) -> ! {
    // Every descriptor but the pipe's read end is closed (the write end above all: while
    // this process held it, end-of-file would never come; and no file, socket or pipe of
    // skillbox's stays open here once skillbox is gone).
    if fd > 0 {
        // SAFETY: close_range takes integers only and touches no memory; the descriptors
        // below the read end are this forked process's own copies.
        unsafe { libc::syscall(libc::SYS_close_range, 0u32, (fd - 1) as u32, 0u32) };
    }
    // SAFETY: close_range takes integers only and touches no memory; the descriptors above
    // the read end are this forked process's own copies.
    unsafe { libc::syscall(libc::SYS_close_range, (fd + 1) as u32, u32::MAX, 0u32) };
    // SAFETY: the descriptor is ours alone now.
    let pipe = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut groups = [0 as libc::pid_t; MAX_GROUPS];
    let mut count = 0usize;
    let mut buf = [0u8; 4096];
    let mut pending = 0usize;
    loop {
        match rustix::io::read(&pipe, &mut buf[pending..]) {
            Ok(0) => break,
            Ok(n) => {
                let end = pending + n;
                let whole = end - end % 8;
                for r in buf[..whole].chunks_exact(8) {
                    let kind = u32::from_ne_bytes([r[0], r[1], r[2], r[3]]);
                    let group = libc::pid_t::from_ne_bytes([r[4], r[5], r[6], r[7]]);
                    match kind {
                        ADD if count < MAX_GROUPS && group > 1 => {
                            groups[count] = group;
                            count += 1;
                        }
                        REMOVE => {
                            if let Some(i) = groups[..count].iter().position(|g| *g == group) {
                                count -= 1;
                                groups[i] = groups[count];
                            }
                        }
                        _ => {}
                    }
                }
                buf.copy_within(whole..end, 0);
                pending = end - whole;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    for g in &groups[..count] {
        // SAFETY: kill takes integers only; a negative pid names the group.
        unsafe { libc::kill(-*g, libc::SIGKILL) };
    }
    // SAFETY: _exit ends this process without running anything of skillbox's.
    unsafe { libc::_exit(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registered group is killed when the supervisor's write end closes (as when
    /// skillbox dies), an unregistered one is not, and the supervisor then exits.
    #[test]
    fn the_groups_still_registered_die_with_the_write_end() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let sleeper =
            || std::process::Command::new("sleep").arg("1000").process_group(0).spawn().unwrap();
        let (mut kept, mut killed) = (sleeper(), sleeper());
        let s = start().unwrap();
        let supervisor = s.pid();
        for child in [&kept, &killed] {
            rustix::io::write(&s.write, &Supervisor::add_record(child.id() as i32)).unwrap();
        }
        s.unregister(kept.id() as i32);
        assert!(s.alive());
        drop(s);
        let status = killed.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "the registered group was killed");
        let pid = rustix::process::Pid::from_raw(supervisor).unwrap();
        let ended = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        assert!(ended.unwrap().is_some_and(|(_, st)| st.exit_status() == Some(0)));
        assert_eq!(kept.try_wait().unwrap(), None, "the unregistered group lives on");
        kept.kill().unwrap();
        kept.wait().unwrap();
    }

    #[test]
    fn records_are_eight_bytes_in_native_order() {
        let r = record(ADD, 4242);
        assert_eq!(&r[..4], &1u32.to_ne_bytes());
        assert_eq!(&r[4..], &4242i32.to_ne_bytes());
    }
}
