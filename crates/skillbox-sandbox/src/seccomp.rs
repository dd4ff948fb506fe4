//! The seccomp filter of a run, compiled once per policy shape in the parent.
//!
//! A deny-list: what the threat model names as kernel side doors fails with `EPERM`, and
//! everything else is allowed. Files, network ports and signals are Landlock's job; seccomp
//! covers what Landlock cannot see: socket families, io_uring, namespaces, terminal
//! injection, keyrings, BPF, tracing, and alternative syscall ABIs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

use crate::policy::{NetworkAccess, ProcessAccess};

/// Errors compiling a filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// seccompiler refused the rules (a bug in this file).
    #[error("compiling the seccomp filter failed: {0}")]
    Compile(String),
}

/// A compiled program, in the kernel's `sock_filter` layout.
pub type Program = Arc<Vec<libc::sock_filter>>;

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// Syscall numbers at or above this are the x32 ABI on x86_64 kernels that build it in.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const CLONE_NAMESPACES: [u64; 8] = [
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
    0x80, /* CLONE_NEWTIME */
];

/// The program for a network and process policy, compiled on first use and cached: there
/// are only a handful of shapes, and compiling costs more than a spawn.
pub fn program(network: NetworkAccess, processes: ProcessAccess) -> Result<Program, SeccompError> {
    static CACHE: OnceLock<Mutex<HashMap<(NetworkAccess, ProcessAccess), Program>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = match cache.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(p) = guard.get(&(network, processes)) {
        return Ok(p.clone());
    }
    let p = Arc::new(compile(network, processes)?);
    guard.insert((network, processes), p.clone());
    Ok(p)
}

fn cond(arg: u8, op: Op, value: u64) -> Result<Cond, SeccompError> {
    Cond::new(arg, Len::Qword, op, value).map_err(|e| SeccompError::Compile(e.to_string()))
}

fn cond32(arg: u8, op: Op, value: u64) -> Result<Cond, SeccompError> {
    Cond::new(arg, Len::Dword, op, value).map_err(|e| SeccompError::Compile(e.to_string()))
}

fn rule(conds: Vec<Cond>) -> Result<SeccompRule, SeccompError> {
    SeccompRule::new(conds).map_err(|e| SeccompError::Compile(e.to_string()))
}

fn compile(
    network: NetworkAccess,
    processes: ProcessAccess,
) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // Denied outright, whatever the policy.
    for nr in [
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fsconfig,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_chroot,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_getfd,
        // The run's processes stay in the session and group it was started in, so that
        // killing the group reaches every one of them.
        libc::SYS_setsid,
        libc::SYS_setpgid,
        libc::SYS_acct,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_quotactl,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_vhangup,
        libc::SYS_syslog,
        // System V IPC: its objects are shared by every process of the user (and outlive
        // the run), outside anything Landlock sees.
        libc::SYS_shmget,
        libc::SYS_shmat,
        libc::SYS_shmctl,
        libc::SYS_msgget,
        libc::SYS_msgsnd,
        libc::SYS_msgrcv,
        libc::SYS_msgctl,
        libc::SYS_semget,
        libc::SYS_semop,
        libc::SYS_semtimedop,
        libc::SYS_semctl,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_iopl,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_ioperm,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_uselib,
    ] {
        rules.insert(nr, vec![]);
    }
    // Terminal injection: TIOCSTI pushes input into a terminal; TIOCLINUX can too.
    rules.insert(
        libc::SYS_ioctl,
        vec![
            rule(vec![cond32(1, Op::Eq, libc::TIOCSTI)?])?,
            rule(vec![cond32(1, Op::Eq, 0x541C /* TIOCLINUX */)?])?,
        ],
    );
    // personality: only the default and the query; no READ_IMPLIES_EXEC and friends.
    rules.insert(
        libc::SYS_personality,
        vec![rule(vec![cond32(0, Op::Ne, 0)?, cond32(0, Op::Ne, 0xffff_ffff)?])?],
    );
    // clone: never with a namespace flag; without process creation, only threads.
    let mut clone_rules = Vec::new();
    for flag in CLONE_NAMESPACES {
        clone_rules.push(rule(vec![cond(0, Op::MaskedEq(flag), flag)?])?);
    }
    if processes == ProcessAccess::None {
        clone_rules.push(rule(vec![cond(0, Op::MaskedEq(libc::CLONE_THREAD as u64), 0)?])?);
        #[cfg(target_arch = "x86_64")]
        {
            rules.insert(libc::SYS_fork, vec![]);
            rules.insert(libc::SYS_vfork, vec![]);
        }
    }
    rules.insert(libc::SYS_clone, clone_rules);
    // Sockets.
    match network {
        NetworkAccess::None => {
            rules.insert(libc::SYS_socket, vec![]);
        }
        NetworkAccess::HttpsOnly => {
            rules.insert(
                libc::SYS_socket,
                vec![
                    // Families other than IPv4, IPv6 and netlink (Unix sockets included).
                    rule(vec![
                        cond32(0, Op::Ne, libc::AF_INET as u64)?,
                        cond32(0, Op::Ne, libc::AF_INET6 as u64)?,
                        cond32(0, Op::Ne, libc::AF_NETLINK as u64)?,
                    ])?,
                    // Raw sockets.
                    rule(vec![cond32(1, Op::MaskedEq(0xf), libc::SOCK_RAW as u64)?])?,
                    rule(vec![cond32(1, Op::MaskedEq(0xf), 10 /* SOCK_PACKET */)?])?,
                    // Netlink other than route queries (getaddrinfo uses those).
                    rule(vec![
                        cond32(0, Op::Eq, libc::AF_NETLINK as u64)?,
                        cond32(2, Op::Ne, libc::NETLINK_ROUTE as u64)?,
                    ])?,
                    // Protocols other than the default, TCP and UDP: Landlock's TCP rules
                    // do not see MPTCP, SCTP or SMC (IPPROTO_SMC), which connect to any
                    // port (an MPTCP connect falls back to plain TCP).
                    rule(vec![
                        cond32(2, Op::Ne, 0)?,
                        cond32(2, Op::Ne, libc::IPPROTO_TCP as u64)?,
                        cond32(2, Op::Ne, libc::IPPROTO_UDP as u64)?,
                    ])?,
                ],
            );
            // listen() on an unbound socket binds it to an ephemeral port without the bind
            // hook Landlock checks ports in; an HTTPS client never listens.
            rules.insert(libc::SYS_listen, vec![]);
            // TCP Fast Open connects from sendto/sendmsg without the connect hook Landlock
            // checks ports in, so it would reach any port.
            let fastopen = libc::MSG_FASTOPEN as u64;
            for (nr, flags_arg) in
                [(libc::SYS_sendto, 3), (libc::SYS_sendmsg, 2), (libc::SYS_sendmmsg, 3)]
            {
                rules.insert(
                    nr,
                    vec![rule(vec![cond32(flags_arg, Op::MaskedEq(fastopen), fastopen)?])?],
                );
            }
        }
        NetworkAccess::Full => {}
    }

    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        ARCH,
    )
    .map_err(|e| SeccompError::Compile(e.to_string()))?;
    let bpf: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SeccompError::Compile(e.to_string()))?;

    // Hand-written prefix, because seccompiler matches syscall numbers one by one and has no
    // range test: refuse the x32 ABI (numbers with bit 30 set) and answer clone3 with ENOSYS
    // (its flags live in memory a filter cannot read; libc then falls back to clone, whose
    // flags the rules above check). The architecture check follows in seccompiler's part;
    // a foreign architecture (32-bit int 0x80 calls) is killed there.
    let ret =
        |k: u32| libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k };
    let mut prog = vec![
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        ret(libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_clone3 as u32,
        },
        ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ];
    prog.extend(bpf.iter().map(|f| libc::sock_filter { code: f.code, jt: f.jt, jf: f.jf, k: f.k }));
    Ok(prog)
}
