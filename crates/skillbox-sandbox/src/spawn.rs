//! Starting a confined child without forking the parent.
//!
//! `fork()` copies the page tables of the embedding process: 37 ms from a parent holding
//! 1 GiB, measured on these machines. Instead the child is created with
//! `clone(CLONE_VM | CLONE_VFORK)`: it borrows the parent's memory until it calls `execve`,
//! while the calling thread waits. Everything it needs (argv, environment, the Landlock
//! descriptor, the seccomp program) is prepared in the parent, so that between clone and exec
//! the child makes only system calls and writes only to its result slot.
//!
//! The child runs on a stack of its own, mapped with a guard page below it ([`Stack`]): an
//! overflow faults there instead of writing into the parent's memory.
//!
//! Order in the child, each step needing the one before: signals to default, (in new
//! namespaces: id maps, parent-death signal, and with a mount program the run's own root,
//! see `crate::mountns`, or beside Landlock `crate::metadata`, and stdin opened again there),
//! new session, (without a PID namespace: its
//! group registered with the supervisor), stdio, working directory,
//! rlimits, cgroup, capabilities dropped, `no_new_privs`, Landlock, other descriptors closed,
//! signal mask restored, seccomp, exec.

use std::cell::RefCell;
use std::ffi::{c_int, c_void, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// Steps of the child's setup, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Stage {
    /// `setsid`.
    Session = 1,
    /// Writing the user namespace's id maps.
    IdMaps,
    /// Registering the process group with the supervisor.
    Supervisor,
    /// Mounting in the run's mount namespace.
    Mounts,
    /// Bringing up loopback and opening the listener in the run's network namespace.
    Network,
    /// `PR_SET_PDEATHSIG`.
    DeathSignal,
    /// `dup2` of stdin, stdout, stderr.
    Stdio,
    /// `chdir`.
    Chdir,
    /// `setrlimit`.
    Rlimit,
    /// Joining the run's cgroup.
    Cgroup,
    /// Dropping capabilities.
    Capabilities,
    /// `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivs,
    /// `landlock_restrict_self`.
    Landlock,
    /// `close_range`.
    CloseFds,
    /// Installing the seccomp filter.
    Seccomp,
    /// `execve`.
    Exec,
}

impl Stage {
    fn from_raw(v: i32) -> Option<Self> {
        use Stage::*;
        [
            Session,
            IdMaps,
            Supervisor,
            Mounts,
            Network,
            DeathSignal,
            Stdio,
            Chdir,
            Rlimit,
            Cgroup,
            Capabilities,
            NoNewPrivs,
            Landlock,
            CloseFds,
            Seccomp,
            Exec,
        ]
        .into_iter()
        .find(|s| *s as i32 == v)
    }

    /// What the step does, for error messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Stage::Session => "starting a new session",
            Stage::IdMaps => "mapping the user and group ids of the new namespace",
            Stage::Supervisor => "registering the process group with the supervisor",
            Stage::Mounts => "mounting in the run's mount namespace",
            Stage::Network => "opening the run's network namespace",
            Stage::DeathSignal => "setting the parent-death signal",
            Stage::Stdio => "connecting stdin, stdout and stderr",
            Stage::Chdir => "changing to the working directory",
            Stage::Rlimit => "setting resource limits",
            Stage::Cgroup => "joining the run's cgroup",
            Stage::Capabilities => "dropping capabilities",
            Stage::NoNewPrivs => "setting no_new_privs",
            Stage::Landlock => "applying the Landlock ruleset",
            Stage::CloseFds => "closing inherited descriptors",
            Stage::Seccomp => "installing the seccomp filter",
            Stage::Exec => "executing the program",
        }
    }
}

/// Everything the child reads, laid out before the clone. Raw pointers point into buffers
/// owned by [`Prepared`], which outlives the clone call.
#[repr(C)]
struct ChildArgs {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdio: [c_int; 3],
    rlimits: *const (libc::c_int, libc::rlimit),
    n_rlimits: usize,
    cgroup_procs: [c_int; 4],
    drop_caps: bool,
    caps_required: bool,
    landlock_fd: c_int,
    seccomp: *const libc::sock_fprog,
    sigmask: libc::sigset_t,
    /// In a new user namespace: `/proc/self/...` files and what to write to them.
    id_maps: [(*const libc::c_char, *const u8, usize); 3],
    new_namespaces: bool,
    /// The mount program to run in the new mount namespace, or NULL (no mount namespace).
    mounts: *const crate::mountns::MountProgram,
    /// The mount program beside Landlock (`crate::metadata`), or NULL.
    metadata: *const crate::metadata::MetadataProgram,
    /// stdin is `/dev/null`, opened again in the run's mount namespace, where it is
    /// read-only (the parent's lies on the host's mount).
    stdin_null: bool,
    /// The supervisor's pipe (see `crate::supervisor`), or -1: the child registers its
    /// process group there before any of its program runs.
    supervisor_fd: c_int,
    /// In a new network namespace: the socket to pass the listener through (see
    /// `crate::netns`), or -1; and the listener's port in network byte order.
    loopback_pass: c_int,
    loopback_port_be: u16,
    /// Descriptors to become 3, 4, ... (the first `n_passed`).
    passed: [c_int; crate::spec::MAX_PASSED_FDS],
    n_passed: usize,
    /// Result slot, written by the child only when a step fails: the [`Stage`] (0: none)
    /// and the errno. Atomics, because the child writes them through the same shared
    /// reference it reads everything else through.
    fail_stage: AtomicI32,
    fail_errno: AtomicI32,
}

/// Inputs of a spawn, allocated, opened and compiled in the parent: between clone and exec
/// the child may only make system calls on memory that already exists.
pub(crate) struct Prepared {
    /// The program's absolute path, for execve.
    pub program: CString,
    /// The argument vector, program first.
    pub argv: Vec<CString>,
    /// The whole environment, `NAME=value` each.
    pub envp: Vec<CString>,
    /// The working directory.
    pub cwd: CString,
    /// `(resource, limit)` of each rlimit, hard = soft.
    pub rlimits: Vec<(libc::c_int, libc::rlimit)>,
    /// The run's cgroups, whose `cgroup.procs` (or `tasks`) the child writes itself into.
    pub cgroup: Option<crate::cgroup::RunCgroup>,
    /// Drop every capability (bounding, ambient, permitted, effective, inheritable).
    pub drop_caps: bool,
    /// A bounding set that cannot be dropped is an error (root), not a matter of course.
    pub caps_required: bool,
    /// The Landlock ruleset to restrict the child with.
    pub landlock: Option<OwnedFd>,
    /// The seccomp program to install last.
    pub seccomp: Option<std::sync::Arc<Vec<libc::sock_filter>>>,
    /// New user and PID namespaces, with the id maps (`setgroups`, `uid_map`, `gid_map`).
    pub namespaces: Option<[(CString, String); 3]>,
    /// A mount namespace too, with the run's own root made by this program (only with
    /// `namespaces`: the mounts need the new user namespace's capabilities, and must never
    /// touch the host's mount namespace).
    pub mounts: Option<crate::mountns::MountProgram>,
    /// A mount namespace beside Landlock, made by this program (only with `namespaces`, never
    /// with `mounts`): what the run may only read read-only in every respect, and a `/proc`
    /// of its own.
    pub metadata: Option<crate::metadata::MetadataProgram>,
    /// stdin (`stdio[0]` of [`spawn`]) is `/dev/null`: with a mount namespace, the child
    /// opens it again there, so that its mode and times cannot be changed through the
    /// descriptor (the parent's lies on the host's mount, which the run's does not make
    /// read-only).
    pub stdin_null: bool,
    /// Without a PID namespace: the supervisor's pipe, which the child registers its
    /// process group with (see `crate::supervisor`).
    pub supervisor_fd: Option<RawFd>,
    /// A network namespace of the run's own too, with loopback and a listener passed back
    /// through this pair (only with `namespaces`: see `crate::netns`).
    pub loopback: Option<crate::netns::Passing>,
    /// Descriptors the program gets as 3, 4, ... (at most `crate::spec::MAX_PASSED_FDS`).
    pub passed: Vec<OwnedFd>,
}

/// A started child.
pub(crate) struct Spawned {
    /// Its pid, also its process group's id (it started a new session).
    pub pid: libc::pid_t,
    /// Its pidfd: readable once it has exited, so its end can be awaited without a signal
    /// handler, and it cannot name a recycled pid.
    pub pidfd: OwnedFd,
}

/// Why the child could not be started.
#[derive(Debug)]
pub(crate) struct SpawnFailure {
    /// The step of the child that failed; `None` when clone itself (or the stack) failed.
    pub stage: Option<Stage>,
    /// The errno of the failure.
    pub error: std::io::Error,
}

/// Usable size of the child's stack: the libc wrappers it calls need a few KiB.
const STACK_SIZE: usize = 64 * 1024;

/// `_LINUX_CAPABILITY_VERSION_3` of linux/capability.h (64-bit capability sets, two
/// `CapData`); libc does not define it.
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Starts the child with `stdio` as its descriptors 0, 1, 2.
pub(crate) fn spawn(p: &Prepared, stdio: [RawFd; 3]) -> Result<Spawned, SpawnFailure> {
    let argv: Vec<*const libc::c_char> =
        p.argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> =
        p.envp.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let fprog = p.seccomp.as_ref().map(|prog| libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    });
    let mut cgroup_procs = [-1; 4];
    for (slot, fd) in cgroup_procs.iter_mut().zip(p.cgroup.iter().flat_map(|c| c.procs.iter())) {
        *slot = fd.as_raw_fd();
    }
    let id_maps = match &p.namespaces {
        Some(maps) => {
            maps.each_ref().map(|(path, data)| (path.as_ptr(), data.as_ptr(), data.len()))
        }
        None => [(std::ptr::null(), std::ptr::null(), 0); 3],
    };
    let own_mounts = p.mounts.is_some() || p.metadata.is_some();
    if (own_mounts && p.namespaces.is_none()) || (p.mounts.is_some() && p.metadata.is_some()) {
        // Mounts outside a mount namespace of the run's own would be the host's; and the
        // two programs are one or the other.
        return Err(SpawnFailure {
            stage: Some(Stage::Mounts),
            error: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    if p.loopback.is_some() && p.namespaces.is_none() {
        // A network namespace needs the user namespace's capabilities to bring `lo` up.
        return Err(SpawnFailure {
            stage: Some(Stage::Network),
            error: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    if p.passed.len() > crate::spec::MAX_PASSED_FDS {
        return Err(SpawnFailure {
            stage: Some(Stage::CloseFds),
            error: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    let mut passed = [-1; crate::spec::MAX_PASSED_FDS];
    for (slot, fd) in passed.iter_mut().zip(&p.passed) {
        *slot = fd.as_raw_fd();
    }
    let blocked = BlockedSignals::all();
    let args = ChildArgs {
        program: p.program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: p.cwd.as_ptr(),
        stdio,
        rlimits: p.rlimits.as_ptr(),
        n_rlimits: p.rlimits.len(),
        cgroup_procs,
        drop_caps: p.drop_caps,
        caps_required: p.caps_required,
        landlock_fd: p.landlock.as_ref().map_or(-1, |f| f.as_raw_fd()),
        seccomp: fprog.as_ref().map_or(std::ptr::null(), |f| f as *const libc::sock_fprog),
        sigmask: blocked.old,
        id_maps,
        new_namespaces: p.namespaces.is_some(),
        mounts: p.mounts.as_ref().map_or(std::ptr::null(), |m| m as *const _),
        metadata: p.metadata.as_ref().map_or(std::ptr::null(), |m| m as *const _),
        stdin_null: p.stdin_null && own_mounts,
        supervisor_fd: p.supervisor_fd.unwrap_or(-1),
        loopback_pass: p.loopback.as_ref().map_or(-1, crate::netns::child_end),
        loopback_port_be: p.loopback.as_ref().map_or(0, |l| l.port_be),
        passed,
        n_passed: p.passed.len(),
        fail_stage: AtomicI32::new(0),
        fail_errno: AtomicI32::new(0),
    };
    let namespaces = match (&p.namespaces, own_mounts) {
        (Some(_), true) => libc::CLONE_NEWUSER | libc::CLONE_NEWPID | libc::CLONE_NEWNS,
        (Some(_), false) => libc::CLONE_NEWUSER | libc::CLONE_NEWPID,
        (None, _) => 0,
    };
    let network = match p.loopback {
        Some(_) => libc::CLONE_NEWNET,
        None => 0,
    };
    let flags = libc::CLONE_PIDFD | libc::SIGCHLD | namespaces | network;
    let started = with_stack(|stack| {
        // SAFETY: `child_main` reads only `args` and the buffers it points to (argv, envp,
        // the Prepared), all alive until this function returns, and writes only the atomics
        // of `args`; it makes system calls only, no allocation, no lock (see child_main).
        unsafe { clone_vfork(stack, child_main, &args as *const ChildArgs as *mut c_void, flags) }
    });
    // The child has exec'd or exited: the mask saved above can be restored.
    drop(blocked);
    let (pid, pidfd) = started.map_err(|error| SpawnFailure { stage: None, error })?;
    // The child reports a failed step through the slot, then exits 127.
    let stage = args.fail_stage.load(Ordering::Acquire);
    if stage != 0 {
        // A group it registered dies with it: off the supervisor's list before the reap,
        // which frees the id.
        if let Some(fd) = p.supervisor_fd {
            let r = crate::supervisor::Supervisor::remove_record(pid);
            // SAFETY: a borrowed descriptor the Prepared's owner keeps open meanwhile.
            let _ = rustix::io::write(unsafe { BorrowedFd::borrow_raw(fd) }, &r);
        }
        // Reaps the child, which has exited.
        if let Some(child) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty());
        }
        let errno = args.fail_errno.load(Ordering::Acquire);
        return Err(SpawnFailure {
            stage: Stage::from_raw(stage),
            error: std::io::Error::from_raw_os_error(errno),
        });
    }
    Ok(Spawned { pid, pidfd })
}

/// The id maps of a run's user namespace, as [`Prepared::namespaces`] takes them: this
/// process's uid and gid mapped to themselves (so files keep their owners), and
/// `setgroups` denied (an unprivileged writer of `gid_map` must deny it first).
pub(crate) fn own_id_maps() -> [(CString, String); 3] {
    let (uid, gid) = (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw());
    [
        (CString::from(c"/proc/self/setgroups"), "deny".to_string()),
        (CString::from(c"/proc/self/uid_map"), format!("{uid} {uid} 1")),
        (CString::from(c"/proc/self/gid_map"), format!("{gid} {gid} 1")),
    ]
}

/// What trying a new user namespace found: the step that failed and its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NamespaceTrial {
    /// The step: `None` when `clone` itself was refused (a seccomp filter or a sysctl),
    /// [`Stage::IdMaps`] when the namespace was made but the ids could not be mapped (an
    /// AppArmor restriction), [`Stage::Mounts`] when no mount could be changed in it.
    pub stage: Option<Stage>,
    /// The errno.
    pub errno: i32,
}

/// Everything the trial child reads: the id maps to write, and whether to try a mount; and
/// what it found.
#[repr(C)]
struct TrialArgs {
    id_maps: [(*const libc::c_char, *const u8, usize); 3],
    mount: bool,
    fail_stage: AtomicI32,
    fail_errno: AtomicI32,
    /// With `mount`: the errno of mounting a procfs of its own, and of the mount calls of
    /// `crate::metadata` (0: it worked).
    proc_errno: AtomicI32,
    api_errno: AtomicI32,
}

/// What a trial of a mount namespace found beyond making it: whether a procfs of the run's
/// PID namespace can be mounted in it, and whether `open_tree`, `mount_setattr` and
/// `move_mount` work there (0: yes; else the errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct MountTrial {
    /// The errno of mounting a procfs of the namespace's own on `/proc`.
    pub proc_errno: i32,
    /// The errno of cloning a mount, making it read-only and moving it.
    pub api_errno: i32,
}

/// Tries, by doing it once, what a run with namespaces needs: a child in new user and PID
/// namespaces (and a mount namespace, with `mount`) that maps its ids (and makes its mounts
/// private, mounts a procfs of its own, and clones, makes read-only and moves a mount).
/// `maps` are the id maps as [`Prepared::namespaces`] holds them. The child exits at once
/// and is reaped here.
pub(crate) fn try_namespaces(
    maps: &[(CString, String); 3],
    mount: bool,
) -> Result<MountTrial, NamespaceTrial> {
    let args = TrialArgs {
        id_maps: maps.each_ref().map(|(path, data)| (path.as_ptr(), data.as_ptr(), data.len())),
        mount,
        fail_stage: AtomicI32::new(0),
        fail_errno: AtomicI32::new(0),
        proc_errno: AtomicI32::new(0),
        api_errno: AtomicI32::new(0),
    };
    let mut flags = libc::CLONE_PIDFD | libc::SIGCHLD | libc::CLONE_NEWUSER | libc::CLONE_NEWPID;
    if mount {
        flags |= libc::CLONE_NEWNS;
    }
    let blocked = BlockedSignals::all();
    let started = with_stack(|stack| {
        // SAFETY: `trial_main` reads only `args` and the maps it points to, alive until this
        // function returns, writes only its atomics, and makes system calls only.
        unsafe { clone_vfork(stack, trial_main, &args as *const TrialArgs as *mut c_void, flags) }
    });
    drop(blocked);
    let (pid, _pidfd) = started.map_err(|e| NamespaceTrial {
        stage: None,
        errno: e.raw_os_error().unwrap_or(libc::EPERM),
    })?;
    if let Some(child) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty());
    }
    match Stage::from_raw(args.fail_stage.load(Ordering::Acquire)) {
        Some(stage) => Err(NamespaceTrial {
            stage: Some(stage),
            errno: args.fail_errno.load(Ordering::Acquire),
        }),
        None => Ok(MountTrial {
            proc_errno: args.proc_errno.load(Ordering::Acquire),
            api_errno: args.api_errno.load(Ordering::Acquire),
        }),
    }
}

/// The trial child (see [`try_namespaces`]); the same rules as [`child_main`].
extern "C" fn trial_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the TrialArgs the parent passed to clone, alive until this child has
    // exited (the parent thread is suspended meanwhile); only its atomics are written.
    let a = unsafe { &*(arg as *const TrialArgs) };
    let mut r = write_id_maps(&a.id_maps);
    if r.is_ok() && a.mount {
        // SAFETY: mount with a static path and no data changes propagation only; the mount
        // namespace is this child's own and ends with it.
        let m = unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        };
        r = check(m, Stage::Mounts);
        if r.is_ok() {
            let (proc_errno, api_errno) = crate::metadata::trial();
            a.proc_errno.store(proc_errno, Ordering::Release);
            a.api_errno.store(api_errno, Ordering::Release);
        }
    }
    if let Err(stage) = r {
        a.fail_errno.store(errno(), Ordering::Release);
        a.fail_stage.store(stage as c_int, Ordering::Release);
    }
    // SAFETY: ends the child without running anything of the parent's.
    unsafe { libc::_exit(0) }
}

/// Every signal blocked in the calling thread until dropped, so that no handler of the
/// parent runs on the child's borrowed memory before the child has reset the
/// dispositions. `old` is the mask before, which the child restores before exec.
struct BlockedSignals {
    old: libc::sigset_t,
}

impl BlockedSignals {
    fn all() -> Self {
        // SAFETY: sigset_t is plain data, for which all zeroes is a valid value.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigset_t is plain data, for which all zeroes is a valid value.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigfillset writes only `all`, a sigset_t on this stack.
        unsafe { libc::sigfillset(&mut all) };
        // SAFETY: changes this thread's mask only; reads `all` and writes the mask before
        // into `old`, both on this stack.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old) };
        Self { old }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `all`; reads only `old`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// A stack for the child: [`STACK_SIZE`] bytes, with a `PROT_NONE` guard page below them
/// (the stack grows down), so that an overflow in the child faults at once instead of
/// writing into whatever memory of the parent lies below.
struct Stack {
    /// The whole mapping, guard page first.
    base: *mut c_void,
    len: usize,
}

impl Stack {
    fn map() -> std::io::Result<Self> {
        use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
        let guard = rustix::param::page_size();
        let len = guard + STACK_SIZE.next_multiple_of(guard);
        // SAFETY: a new anonymous mapping at an address the kernel chooses: it overlaps
        // nothing of ours.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::STACK,
            )
        }?;
        let stack = Self { base, len };
        // SAFETY: the first page of the mapping just made, which nothing uses yet.
        unsafe { rustix::mm::mprotect(base, guard, MprotectFlags::empty()) }?;
        Ok(stack)
    }

    /// The top of the stack (it grows down), 16-byte aligned as clone needs.
    fn top(&self) -> *mut c_void {
        (self.base as usize + self.len) as *mut c_void
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map` made, once; no child runs on it any
        // more (see `with_stack`).
        let _ = unsafe { rustix::mm::munmap(self.base, self.len) };
    }
}

/// Runs `f` with this thread's child stack, mapped on the first spawn of the thread and
/// unmapped when the thread ends. Reusing it is sound: with `CLONE_VFORK` the calling thread
/// is suspended until the child has exec'd (its new image has a stack of its own) or
/// exited, so a stack serves one child at a time and is free again when `clone` returns;
/// signals are blocked meanwhile, so no handler on this thread can start another spawn.
fn with_stack<T>(f: impl FnOnce(&Stack) -> std::io::Result<T>) -> std::io::Result<T> {
    thread_local! {
        static STACK: RefCell<Option<Stack>> = const { RefCell::new(None) };
    }
    STACK.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(std::io::Error::other)?;
        let stack = match slot.as_ref() {
            Some(s) => s,
            None => slot.insert(Stack::map()?),
        };
        f(stack)
    })
}

/// `clone(flags | CLONE_VM | CLONE_VFORK)` running `child(arg)` on `stack`; returns once
/// the child has exec'd or exited, with its pid and pidfd (`flags` must hold CLONE_PIDFD).
///
/// # Safety
///
/// `child` runs in this process's memory while the calling thread waits: it must not
/// allocate, lock, unwind or return into Rust code that expects its own stack, and
/// everything `arg` points to must stay valid until this returns.
unsafe fn clone_vfork(
    stack: &Stack,
    child: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
    flags: c_int,
) -> std::io::Result<(libc::pid_t, OwnedFd)> {
    let mut pidfd: c_int = -1;
    // SAFETY: the caller vouches for `child` and `arg`; `stack` is ours, free (see
    // `with_stack`) and guarded; CLONE_PIDFD stores a descriptor in `pidfd`.
    let pid = unsafe {
        libc::clone(
            child,
            stack.top(),
            flags | libc::CLONE_VM | libc::CLONE_VFORK,
            arg,
            &mut pidfd as *mut c_int,
        )
    };
    if pid < 0 {
        // Read at once: the child, had there been one, would also have written errno
        // (see `child_main`).
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: with CLONE_PIDFD the kernel wrote a new descriptor, owned by us alone.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

/// The child. Runs on [`Stack`] in the parent's memory: no allocation, no locks, no Rust
/// destructors, only system calls through libc's thin wrappers (rustix's would do for
/// some, but the child's whole vocabulary stays one list of plain system calls, most of
/// which rustix does not wrap: capset, landlock_restrict_self, close_range, seccomp).
///
/// It also runs with the parent thread's thread-local storage (`CLONE_VM` without
/// `CLONE_SETTLS`), so every failing call here writes the *parent thread's* `errno`; the
/// parent reads errno only when clone itself failed, before anything else.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the ChildArgs the parent passed to clone; it outlives this child's
    // use of it (the parent thread is suspended until exec or exit), and the child only
    // reads it, but for the atomics of the result slot.
    let a = unsafe { &*(arg as *const ChildArgs) };
    let stage = match confine(a) {
        Ok(()) => {
            exec(a);
            Stage::Exec
        }
        Err(stage) => stage,
    };
    // Store the errno before anything else can change it.
    a.fail_errno.store(errno(), Ordering::Release);
    a.fail_stage.store(stage as c_int, Ordering::Release);
    // SAFETY: ends the child without running anything of the parent's (no atexit
    // handlers, no destructors, no stdio flush).
    unsafe { libc::_exit(127) }
}

/// The errno of the last failed call, which a failed step leaves for [`child_main`].
fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `Err(stage)` when a system call returned a negative value.
fn check(r: impl Into<i64>, stage: Stage) -> Result<(), Stage> {
    if r.into() < 0 {
        Err(stage)
    } else {
        Ok(())
    }
}

/// Every step before exec, in order (see the module's documentation).
fn confine(a: &ChildArgs) -> Result<(), Stage> {
    reset_signals();
    if a.new_namespaces {
        join_namespaces(a)?;
    }
    if a.loopback_pass >= 0 {
        crate::netns::open_door(a.loopback_pass, a.loopback_port_be)
            .map_err(|()| Stage::Network)?;
    }
    if !a.mounts.is_null() {
        // SAFETY: the program of the Prepared, alive until exec (see `spawn`); read only.
        crate::mountns::apply(unsafe { &*a.mounts }).map_err(|()| Stage::Mounts)?;
    }
    if !a.metadata.is_null() {
        // SAFETY: the program of the Prepared, alive until exec (see `spawn`); read only but
        // for its atomic slots.
        let program = unsafe { &*a.metadata };
        crate::metadata::apply(program, a.landlock_fd).map_err(|()| Stage::Mounts)?;
    }
    if a.stdin_null {
        // SAFETY: a static path.
        let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        check(null, Stage::Stdio)?;
        // SAFETY: dup3 takes plain integers; it replaces this child's copy of the parent's
        // descriptor (the child has its own descriptor table).
        check(unsafe { libc::dup3(null, a.stdio[0], libc::O_CLOEXEC) }, Stage::Stdio)?;
        // SAFETY: closes the descriptor opened above.
        unsafe { libc::close(null) };
    }
    // SAFETY: setsid takes nothing and touches no memory.
    check(unsafe { libc::setsid() }, Stage::Session)?;
    if a.supervisor_fd >= 0 {
        register_group(a.supervisor_fd)?;
    }
    connect_stdio(a)?;
    // SAFETY: `cwd` is a NUL-terminated path owned by the Prepared, alive until exec.
    check(unsafe { libc::chdir(a.cwd) }, Stage::Chdir)?;
    let copies = copy_passed(a)?;
    set_rlimits(a)?;
    join_cgroups(a)?;
    if a.drop_caps {
        drop_capabilities(a.caps_required)?;
    }
    // SAFETY: prctl with plain integers; PR_SET_NO_NEW_PRIVS touches no memory.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }, Stage::NoNewPrivs)?;
    if a.landlock_fd >= 0 {
        // SAFETY: a descriptor of the Landlock ruleset, open until exec; no memory is read.
        let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, a.landlock_fd, 0) };
        check(r, Stage::Landlock)?;
    }
    pass_fds(a, &copies)?;
    // Nothing of the parent's reaches the program but stdio and the passed descriptors.
    let first = 3 + a.n_passed as u32;
    // SAFETY: close_range takes plain integers; the descriptors closed are the child's own
    // copies (no CLONE_FILES), so the parent keeps its own.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) }, Stage::CloseFds)?;
    // SAFETY: reads the mask saved by the parent, in `a`.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &a.sigmask, std::ptr::null_mut()) };
    if !a.seccomp.is_null() {
        // SAFETY: `seccomp` points to a sock_fprog in the parent's frame, whose filter
        // points to the program in the Prepared, both alive until exec; the kernel copies
        // the program.
        let r = unsafe {
            libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, a.seccomp)
        };
        check(r, Stage::Seccomp)?;
    }
    Ok(())
}

/// Copies of the passed descriptors at or above `3 + n` (a source may itself be one of the
/// targets 3, 4, ...), made before the rlimits lower the descriptor limit (the parent's
/// descriptors may be numbered above it). The copies are close-on-exec; `close_range`
/// closes them.
fn copy_passed(a: &ChildArgs) -> Result<[c_int; crate::spec::MAX_PASSED_FDS], Stage> {
    let n = a.n_passed.min(a.passed.len());
    let above = 3 + n as c_int;
    let mut copies = [-1; crate::spec::MAX_PASSED_FDS];
    for (copy, &fd) in copies.iter_mut().zip(&a.passed[..n]) {
        // SAFETY: fcntl F_DUPFD_CLOEXEC takes plain integers and touches no memory.
        *copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, above) };
        check(*copy, Stage::CloseFds)?;
    }
    Ok(copies)
}

/// The copies of [`copy_passed`] become 3, 4, ... without close-on-exec. Done after
/// Landlock, once no descriptor of the parent's is needed any more (one at 3 or 4 is
/// replaced).
fn pass_fds(a: &ChildArgs, copies: &[c_int; crate::spec::MAX_PASSED_FDS]) -> Result<(), Stage> {
    let n = a.n_passed.min(a.passed.len());
    for (target, &copy) in copies[..n].iter().enumerate() {
        // SAFETY: dup2 takes plain integers; the new descriptor has no close-on-exec.
        check(unsafe { libc::dup2(copy, 3 + target as c_int) }, Stage::CloseFds)?;
    }
    Ok(())
}

/// Default dispositions for every signal (`1..=SIGRTMAX`): handlers of the parent must
/// never run here, and SIGPIPE, which Rust ignores, must kill a writer to a closed pipe as
/// usual. The raw `rt_sigaction`, because glibc's `sigaction` refuses the two signals it
/// keeps for itself (32 and 33), which a parent may have inherited ignored.
fn reset_signals() {
    // The kernel's `struct sigaction`, all zeroes: SIG_DFL, no flags, an empty mask.
    let dfl = [0u64; 4];
    for sig in 1..=libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: the kernel reads one `struct sigaction` (at most 32 bytes on every
            // architecture, here all zeroes) from `dfl`; the old one is not asked for; 8 is
            // the size of the kernel's sigset_t.
            unsafe {
                libc::syscall(libc::SYS_rt_sigaction, sig, dfl.as_ptr(), std::ptr::null::<u64>(), 8)
            };
        }
    }
}

/// In new user and PID namespaces: keep our own ids inside (git and others compare file
/// owners with getuid), and die with the thread that started us: as PID 1 of the new PID
/// namespace, our death takes every process of the run with it.
fn join_namespaces(a: &ChildArgs) -> Result<(), Stage> {
    write_id_maps(&a.id_maps)?;
    // SAFETY: prctl with plain integers; PR_SET_PDEATHSIG touches no memory.
    check(
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) },
        Stage::DeathSignal,
    )
}

/// Writes the id maps of a new user namespace: `(path, data, len)` each, the paths and data
/// owned by the caller's prepared input.
fn write_id_maps(maps: &[(*const libc::c_char, *const u8, usize); 3]) -> Result<(), Stage> {
    for &(path, data, len) in maps {
        // SAFETY: `path` is a NUL-terminated path the parent prepared, alive until exec.
        let fd = unsafe { libc::open(path, libc::O_WRONLY | libc::O_CLOEXEC) };
        check(fd, Stage::IdMaps)?;
        // SAFETY: `data` points to `len` bytes of a String the parent prepared.
        let written = unsafe { libc::write(fd, data as *const c_void, len) };
        // SAFETY: closes the descriptor opened above, which nothing else uses.
        unsafe { libc::close(fd) };
        if written != len as isize {
            return Err(Stage::IdMaps);
        }
    }
    Ok(())
}

/// Registers this process's group (its pid: it just started a session) with the
/// supervisor, before anything of the program runs (see `crate::supervisor`).
fn register_group(fd: c_int) -> Result<(), Stage> {
    // SAFETY: getpid takes nothing and touches no memory.
    let record = crate::supervisor::Supervisor::add_record(unsafe { libc::getpid() });
    // SAFETY: writes the 8 bytes of `record`, on this stack, to the supervisor's pipe.
    let written = unsafe { libc::write(fd, record.as_ptr() as *const c_void, record.len()) };
    if written != record.len() as isize {
        return Err(Stage::Supervisor);
    }
    Ok(())
}

/// The given descriptors become 0, 1 and 2 (they are 3 or above, see `run::cloexec_fd`).
fn connect_stdio(a: &ChildArgs) -> Result<(), Stage> {
    for (target, &fd) in a.stdio.iter().enumerate() {
        // SAFETY: dup2 takes plain integers and touches no memory.
        check(unsafe { libc::dup2(fd, target as c_int) }, Stage::Stdio)?;
    }
    Ok(())
}

fn set_rlimits(a: &ChildArgs) -> Result<(), Stage> {
    // SAFETY: `rlimits` and `n_rlimits` are the pointer and length of the Prepared's Vec
    // (aligned and non-null even when empty), which is alive and unchanged until exec.
    let rlimits = unsafe { std::slice::from_raw_parts(a.rlimits, a.n_rlimits) };
    for &(res, lim) in rlimits {
        // SAFETY: setrlimit reads `lim`, a valid rlimit on this stack.
        check(unsafe { libc::setrlimit(res as _, &lim) }, Stage::Rlimit)?;
    }
    Ok(())
}

/// Joins the run's groups by writing `0` (this process) to each `tasks`/`cgroup.procs`
/// descriptor opened by the parent.
fn join_cgroups(a: &ChildArgs) -> Result<(), Stage> {
    for fd in a.cgroup_procs.into_iter().filter(|fd| *fd >= 0) {
        // SAFETY: writes one byte from a static string to a descriptor open until exec.
        let written = unsafe { libc::write(fd, b"0".as_ptr() as *const c_void, 1) };
        check(written as i64, Stage::Cgroup)?;
    }
    Ok(())
}

/// The bounding set first (it needs CAP_SETPCAP, which the next step removes); with it
/// empty, even uid 0 gains no capability from any later exec. Then the ambient set, then
/// the permitted, effective and inheritable sets. Unprivileged, the bounding set cannot be
/// changed and cannot matter under no_new_privs; where it must be (`required`, root), a
/// refusal is an error.
fn drop_capabilities(required: bool) -> Result<(), Stage> {
    let mut cap = 0;
    loop {
        // SAFETY: prctl with plain integers; PR_CAPBSET_DROP touches no memory.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } < 0 {
            match errno() {
                libc::EINVAL => break, // past the last capability this kernel knows
                libc::EPERM if !required => break,
                _ => return Err(Stage::Capabilities),
            }
        }
        cap += 1;
    }
    // SAFETY: prctl with plain integers; PR_CAP_AMBIENT touches no memory.
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    let mut hdr = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [CapData { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: capset reads the header (and may write its version) and two CapData, the
    // layout version 3 names; both live on this stack across the call.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    check(r, Stage::Capabilities)
}

/// The last step: on success it does not return.
fn exec(a: &ChildArgs) {
    // SAFETY: the program, argv and envp are NUL-terminated strings and NULL-terminated
    // arrays of the Prepared (and of `spawn`'s frame), alive until exec.
    unsafe { libc::execve(a.program, a.argv, a.envp) };
}

/// `struct __user_cap_header_struct` of linux/capability.h.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

/// `struct __user_cap_data_struct` of linux/capability.h.
#[derive(Clone, Copy)]
#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// What `spawn` needs to start `program` with `args`, unconfined but for what every
    /// child gets (new session, no_new_privs, close_range, default signals).
    fn prepared(program: &str, args: &[&str]) -> Prepared {
        let c = |s: &str| CString::new(s).unwrap();
        Prepared {
            program: c(program),
            argv: std::iter::once(program).chain(args.iter().copied()).map(c).collect(),
            envp: vec![c("PATH=/usr/bin:/bin")],
            cwd: c("/"),
            rlimits: Vec::new(),
            cgroup: None,
            drop_caps: false,
            caps_required: false,
            landlock: None,
            seccomp: None,
            namespaces: None,
            mounts: None,
            metadata: None,
            stdin_null: false,
            supervisor_fd: None,
            loopback: None,
            passed: Vec::new(),
        }
    }

    /// Starts `p` with stdin from /dev/null and stdout into a pipe; returns what it printed
    /// and its wait status.
    fn output_of(p: &Prepared) -> Result<(String, c_int), SpawnFailure> {
        let null = std::fs::File::open("/dev/null").unwrap();
        let (mut read, write) = std::io::pipe().unwrap();
        let spawned = spawn(p, [null.as_raw_fd(), write.as_raw_fd(), null.as_raw_fd()])?;
        drop(write);
        let mut out = String::new();
        read.read_to_string(&mut out).unwrap();
        let mut status = 0;
        // SAFETY: reaps the child just started; writes only `status`.
        assert_eq!(unsafe { libc::waitpid(spawned.pid, &mut status, 0) }, spawned.pid);
        Ok((out, status))
    }

    /// A setup step that fails in the child is reported with its stage and the errno the
    /// kernel gave, and the child is reaped; a good spec then starts.
    #[test]
    fn a_failed_step_is_reported_with_its_stage_and_errno() {
        let mut p = prepared("/bin/true", &[]);
        p.cwd = CString::new("/nonexistent-skillbox-dir").unwrap();
        let f = output_of(&p).unwrap_err();
        assert_eq!((f.stage, f.error.raw_os_error()), (Some(Stage::Chdir), Some(libc::ENOENT)));

        let mut p = prepared("/bin/true", &[]);
        // A soft limit above the hard one: EINVAL.
        p.rlimits = vec![(libc::RLIMIT_NOFILE as c_int, libc::rlimit { rlim_cur: 9, rlim_max: 8 })];
        let f = output_of(&p).unwrap_err();
        assert_eq!((f.stage, f.error.raw_os_error()), (Some(Stage::Rlimit), Some(libc::EINVAL)));

        let p = prepared("/nonexistent-skillbox-program", &[]);
        let f = output_of(&p).unwrap_err();
        assert_eq!((f.stage, f.error.raw_os_error()), (Some(Stage::Exec), Some(libc::ENOENT)));

        // Control: the same spawn with nothing wrong runs the program.
        let (out, status) = output_of(&prepared("/bin/echo", &["started"])).unwrap();
        assert_eq!((out.as_str(), libc::WIFEXITED(status)), ("started\n", true));
    }

    /// A `SigXxx:` mask of /proc/PID/status text.
    fn mask(status: &str, field: &str) -> u64 {
        let line = status.lines().find_map(|l| l.strip_prefix(field)).unwrap();
        u64::from_str_radix(line.trim(), 16).unwrap()
    }

    /// Signals the parent ignores are not ignored by the program, up to SIGRTMAX, and the
    /// mask of the spawning thread is the program's. (SIGRTMAX stayed ignored while the
    /// reset loop stopped one short, and 32 and 33 while it went through glibc.)
    #[test]
    fn the_child_gets_default_signals_and_the_threads_mask() {
        let bit = |sig: c_int| 1u64 << (sig - 1);
        // SAFETY: sigset_t is plain data, for which all zeroes is a valid value.
        let mut usr1: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigset_t is plain data, for which all zeroes is a valid value.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: ignores a signal nothing in this test binary uses; restored below.
        let rtmax = unsafe { libc::signal(libc::SIGRTMAX(), libc::SIG_IGN) };
        // SAFETY: ignores a signal nothing in this test binary uses; restored below.
        let usr2 = unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
        // SAFETY: sigemptyset writes only `usr1`, on this stack.
        unsafe { libc::sigemptyset(&mut usr1) };
        // SAFETY: sigaddset writes only `usr1`, on this stack.
        unsafe { libc::sigaddset(&mut usr1, libc::SIGUSR1) };
        // SAFETY: blocks SIGUSR1 in this thread only (restored below); reads `usr1` and
        // writes the mask before into `old`, both on this stack.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &usr1, &mut old) };
        let own = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let result = output_of(&prepared("/bin/cat", &["/proc/self/status"]));
        // SAFETY: puts back the disposition `signal` returned above.
        unsafe { libc::signal(libc::SIGRTMAX(), rtmax) };
        // SAFETY: puts back the disposition `signal` returned above.
        unsafe { libc::signal(libc::SIGUSR2, usr2) };
        // SAFETY: restores this thread's mask saved above; reads only `old`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        let (status, _) = result.unwrap();
        // Control: the parent did ignore them, and Rust ignores SIGPIPE.
        let ignored = bit(libc::SIGRTMAX()) | bit(libc::SIGUSR2) | bit(libc::SIGPIPE);
        assert_eq!(mask(&own, "SigIgn:") & ignored, ignored);
        assert_eq!(mask(&status, "SigIgn:"), 0, "signals still ignored in the child");
        assert_eq!(mask(&status, "SigBlk:"), mask(&own, "SigBlk:"));
        assert_ne!(mask(&status, "SigBlk:") & bit(libc::SIGUSR1), 0);
    }

    /// The line of /proc/self/maps holding `addr`: its end and its permissions.
    fn mapping_at(addr: usize) -> (usize, String) {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .find_map(|l| {
                let (range, rest) = l.split_once(' ')?;
                let (lo, hi) = range.split_once('-')?;
                let (lo, hi) =
                    (usize::from_str_radix(lo, 16).ok()?, usize::from_str_radix(hi, 16).ok()?);
                (lo <= addr && addr < hi).then(|| (hi, rest[..4].to_string()))
            })
            .unwrap()
    }

    /// The child's stack has a page below it that nothing may touch, and the stack itself
    /// is readable and writable up to its top.
    #[test]
    fn the_stack_has_a_guard_page_below_it() {
        let stack = Stack::map().unwrap();
        let page = rustix::param::page_size();
        let base = stack.base as usize;
        assert_eq!(mapping_at(base), (base + page, "---p".to_string()));
        let (end, perms) = mapping_at(base + page);
        assert!(perms.starts_with("rw"), "{perms}");
        assert!(end >= stack.top() as usize);
        assert_eq!(stack.top() as usize - (base + page), STACK_SIZE);
    }

    #[inline(never)]
    fn deeper(depth: u64) -> u64 {
        let frame = [depth; 64];
        std::hint::black_box(&frame);
        if std::hint::black_box(depth) == u64::MAX {
            return 0;
        }
        deeper(depth + 1).wrapping_add(frame[7])
    }

    extern "C" fn overflow(_: *mut c_void) -> c_int {
        // SAFETY: the child's own signal table (no CLONE_SIGHAND): the fault kills it
        // rather than entering the test harness's handler.
        unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
        deeper(0) as c_int
    }

    /// A child that overflows its stack faults on the guard page and dies by SIGSEGV,
    /// instead of writing on through the parent's memory; the parent goes on.
    #[test]
    fn a_child_that_overflows_its_stack_dies_on_the_guard_page() {
        let stack = Stack::map().unwrap();
        // SAFETY: `overflow` uses nothing of `arg` and only recurses on its own stack until
        // the guard page stops it.
        let (pid, _pidfd) = unsafe {
            clone_vfork(&stack, overflow, std::ptr::null_mut(), libc::CLONE_PIDFD | libc::SIGCHLD)
        }
        .unwrap();
        let mut status = 0;
        // SAFETY: reaps the child just started; writes only `status`.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFSIGNALED(status), "status {status:#x}");
        assert_eq!(libc::WTERMSIG(status), libc::SIGSEGV);
    }
}
