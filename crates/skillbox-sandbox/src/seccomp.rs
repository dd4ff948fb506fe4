//! The seccomp filter of a run, compiled once per policy shape in the parent.
//!
//! A deny-list: what the threat model names as kernel side doors fails with `EPERM`, and
//! everything else is allowed. Files, network ports and signals are Landlock's job; seccomp
//! covers what Landlock cannot see: socket families, io_uring, namespaces, terminal
//! injection, keyrings, BPF, tracing, and alternative syscall ABIs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use crate::policy::{NetworkAccess, ProcessAccess};

/// Errors compiling a filter.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SeccompError {
    /// A rule cannot be expressed (a bug in this file).
    #[error("compiling the seccomp filter failed: {0}")]
    Compile(String),
}

/// A compiled program, in the kernel's `sock_filter` layout.
pub(crate) type Program = Arc<Vec<libc::sock_filter>>;

/// Syscall numbers at or above this are the x32 ABI on x86_64 kernels that build it in
/// (`__X32_SYSCALL_BIT` of asm/unistd.h; libc defines it for x32 targets only).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `SOCK_PACKET` of linux/net.h, the obsolete packet socket type (libc defines it for other
/// C libraries than glibc only).
const SOCK_PACKET: u64 = 10;

const CLONE_NAMESPACES: [u64; 8] = [
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWTIME as u64,
];

/// What a filter is compiled for: the policy's network and processes, and what the other
/// mechanisms of the run leave to seccomp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Shape {
    /// The network level.
    pub network: NetworkAccess,
    /// Process creation.
    pub processes: ProcessAccess,
    /// `setsid` and `setpgid` allowed: a PID namespace holds the run, so the process group
    /// is not what keeps it together. The run may then not make itself non-dumpable
    /// (`PR_SET_DUMPABLE` 0), which would hide it from the watchdog, which finds it by its
    /// PID namespace in `/proc`.
    pub sessions: bool,
    /// Landlock below ABI 3, which does not see truncation: `truncate(2)` and read-only
    /// opens with `O_TRUNC` are denied, and `openat2` (whose flags a filter cannot read) is
    /// answered `ENOSYS`, so that callers fall back to `openat`.
    pub truncation: bool,
}

/// The program for a shape, compiled on first use and cached: there are only a handful of
/// shapes, and compiling costs more than a spawn.
pub(crate) fn program(shape: Shape) -> Result<Program, SeccompError> {
    static CACHE: OnceLock<Mutex<HashMap<Shape, Program>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = match cache.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(p) = guard.get(&shape) {
        return Ok(p.clone());
    }
    let p = Arc::new(compile(shape)?);
    guard.insert(shape, p.clone());
    Ok(p)
}

/// A comparison of one argument with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Equal to the value.
    Eq,
    /// Not equal to the value.
    Ne,
    /// Equal to the value once masked.
    MaskedEq(u64),
}

/// A condition on argument `arg`: its low 32 bits only (`wide` false: the kernel reads an
/// `int` there), or all 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cond {
    arg: u8,
    wide: bool,
    op: Op,
    value: u64,
}

/// Conditions that must all hold for a rule to deny the call.
type Rule = Vec<Cond>;

fn checked(c: Cond) -> Result<Cond, SeccompError> {
    let narrow = |v: u64| c.wide || v <= u64::from(u32::MAX);
    let mask_fits = match c.op {
        Op::MaskedEq(m) => narrow(m),
        _ => true,
    };
    // Internal errors (the rules are constants of this file): no user can cause them.
    let fits = c.arg <= 5 && narrow(c.value) && mask_fits;
    fits.then_some(c).ok_or_else(|| SeccompError::Compile(format!("bad condition {c:?}")))
}

fn cond(arg: u8, op: Op, value: u64) -> Result<Cond, SeccompError> {
    checked(Cond { arg, wide: true, op, value })
}

fn cond32(arg: u8, op: Op, value: u64) -> Result<Cond, SeccompError> {
    checked(Cond { arg, wide: false, op, value })
}

fn rule(conds: Vec<Cond>) -> Result<Rule, SeccompError> {
    let some = !conds.is_empty();
    some.then_some(conds).ok_or_else(|| SeccompError::Compile("a rule without conditions".into()))
}

/// The rules of a shape: each denied system call, with the argument conditions under which
/// it is denied (none: always). Everything not listed is allowed.
fn rules(shape: Shape) -> Result<BTreeMap<i64, Vec<Rule>>, SeccompError> {
    let Shape { network, processes, sessions, truncation } = shape;
    let mut rules: BTreeMap<i64, Vec<Rule>> = BTreeMap::new();
    for &nr in ALWAYS_DENIED {
        rules.insert(nr, vec![]);
    }
    if sessions {
        // Found by its PID namespace, a process must stay readable in /proc.
        rules.insert(
            libc::SYS_prctl,
            vec![rule(vec![
                cond32(0, Op::Eq, libc::PR_SET_DUMPABLE as u64)?,
                cond(1, Op::Eq, 0)?,
            ])?],
        );
    } else {
        // The run's processes stay in the session and group it was started in, so that
        // killing the group reaches every one of them.
        rules.insert(libc::SYS_setsid, vec![]);
        rules.insert(libc::SYS_setpgid, vec![]);
    }
    if truncation {
        truncation_rules(&mut rules)?;
    }
    // Terminal injection: TIOCSTI pushes input into a terminal; TIOCLINUX can too.
    rules.insert(
        libc::SYS_ioctl,
        vec![
            rule(vec![cond32(1, Op::Eq, libc::TIOCSTI)?])?,
            rule(vec![cond32(1, Op::Eq, libc::TIOCLINUX)?])?,
        ],
    );
    // personality: only the default and the query; no READ_IMPLIES_EXEC and friends.
    rules.insert(
        libc::SYS_personality,
        vec![rule(vec![cond32(0, Op::Ne, 0)?, cond32(0, Op::Ne, 0xffff_ffff)?])?],
    );
    process_rules(processes, &mut rules)?;
    match network {
        NetworkAccess::None => {
            rules.insert(libc::SYS_socket, vec![]);
        }
        NetworkAccess::HttpsOnly | NetworkAccess::Loopback { .. } => https_only_rules(&mut rules)?,
        NetworkAccess::Full => {}
    }
    if network != NetworkAccess::Full {
        // A datagram pair's socket is unconnected for sendto: it reaches any pathname Unix
        // socket it may write (journald's, /dev/log), which Landlock before ABI 9 does not
        // see, and abstract ones where no scope or namespace hides them. Stream and
        // seqpacket pairs send to their peer only.
        rules.insert(
            libc::SYS_socketpair,
            vec![rule(vec![cond32(1, Op::MaskedEq(0xf), libc::SOCK_DGRAM as u64)?])?],
        );
    }
    Ok(rules)
}

/// Truncation without a writable open, which Landlock sees from ABI 3 only: `truncate(2)`
/// by path, and `open`/`openat` of a file for reading with `O_TRUNC` (Linux truncates it,
/// and Landlock before ABI 3 checks only the read). `ftruncate` needs a descriptor open for
/// writing, which Landlock checked at the open.
fn truncation_rules(rules: &mut BTreeMap<i64, Vec<Rule>>) -> Result<(), SeccompError> {
    let read_only_trunc = |flags_arg: u8| -> Result<Rule, SeccompError> {
        let mask = (libc::O_ACCMODE | libc::O_TRUNC) as u64;
        rule(vec![cond32(flags_arg, Op::MaskedEq(mask), libc::O_TRUNC as u64)?])
    };
    rules.insert(libc::SYS_truncate, vec![]);
    #[cfg(target_arch = "x86_64")]
    rules.insert(libc::SYS_open, vec![read_only_trunc(1)?]);
    rules.insert(libc::SYS_openat, vec![read_only_trunc(2)?]);
    Ok(())
}

/// Denied outright, whatever the policy.
const ALWAYS_DENIED: &[i64] = &[
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
];

/// clone: never with a namespace flag; without process creation, only threads (and no
/// fork or vfork).
fn process_rules(
    processes: ProcessAccess,
    rules: &mut BTreeMap<i64, Vec<Rule>>,
) -> Result<(), SeccompError> {
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
    Ok(())
}

/// Sockets at `https-only`: IPv4, IPv6 and route netlink, TCP and UDP only, no listen, no
/// TCP Fast Open (Landlock's TCP rules then allow connect to 443 only).
fn https_only_rules(rules: &mut BTreeMap<i64, Vec<Rule>>) -> Result<(), SeccompError> {
    rules.insert(
        libc::SYS_socket,
        vec![
            // Families other than IPv4, IPv6 and netlink (Unix sockets included).
            rule(vec![
                cond32(0, Op::Ne, libc::AF_INET as u64)?,
                cond32(0, Op::Ne, libc::AF_INET6 as u64)?,
                cond32(0, Op::Ne, libc::AF_NETLINK as u64)?,
            ])?,
            // Raw IP sockets. Not netlink: glibc opens route netlink sockets as
            // SOCK_RAW (getaddrinfo's AI_ADDRCONFIG, getifaddrs), and a netlink
            // socket of any type is the same datagram socket; the rule below keeps
            // netlink to the route protocol.
            rule(vec![
                cond32(0, Op::Ne, libc::AF_NETLINK as u64)?,
                cond32(1, Op::MaskedEq(0xf), libc::SOCK_RAW as u64)?,
            ])?,
            rule(vec![cond32(1, Op::MaskedEq(0xf), SOCK_PACKET)?])?,
            // Netlink other than route (getaddrinfo uses it). Route netlink
            // reads links, addresses and routes; changing them needs
            // CAP_NET_ADMIN, and sending to another process's netlink socket
            // needs it too (NETLINK_ROUTE allows only receiving without it).
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
    for (nr, flags_arg) in [(libc::SYS_sendto, 3), (libc::SYS_sendmsg, 2), (libc::SYS_sendmmsg, 3)]
    {
        rules.insert(nr, vec![rule(vec![cond32(flags_arg, Op::MaskedEq(fastopen), fastopen)?])?]);
    }
    Ok(())
}

fn ret(k: u32) -> libc::sock_filter {
    libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k }
}

fn jump(op: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: (libc::BPF_JMP | op) as u16, jt, jf, k }
}

fn load(offset: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

/// Offsets of `nr` and `arch` in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH_OFFSET: u32 = 4;

/// The start of every program: refuse the x32 ABI (numbers with bit 30 set) and answer
/// clone3 with ENOSYS (its flags live in memory a filter cannot read; libc then falls back
/// to clone, whose flags the rules check); with `truncation`, openat2 too (its flags are in
/// memory as well; callers fall back to openat). The architecture check follows; a foreign
/// architecture (32-bit int 0x80 calls) is killed there.
fn prefix(truncation: bool) -> Vec<libc::sock_filter> {
    let enosys = ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
    let mut prog = vec![
        load(NR),
        jump(libc::BPF_JGE | libc::BPF_K, X32_SYSCALL_BIT, 0, 1),
        ret(libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        jump(libc::BPF_JEQ | libc::BPF_K, libc::SYS_clone3 as u32, 0, 1),
        enosys,
    ];
    if truncation {
        prog.push(jump(libc::BPF_JEQ | libc::BPF_K, libc::SYS_openat2 as u32, 0, 1));
        prog.push(enosys);
    }
    prog
}

/// The program for a policy.
///
/// Installing a filter costs the kernel far more than its length suggests: it runs the
/// filter once for every system call number of each architecture, to find the calls it
/// always allows (the `seccomp` action cache, Linux 5.11), with interrupts off, while the
/// parent waits for the exec; then it converts and JIT-compiles it (about 0.35 µs per
/// instruction here). seccompiler, which this file used before, compares the number with
/// each listed call in turn (about 150 steps for an allowed call) and spends 6 to 8
/// instructions per condition: installing its program was the largest single step of a
/// spawn (0.42 ms of 1.2 ms). So after the [`prefix`] and the architecture check, the
/// number is found by a binary search over the listed calls (about 10 steps): a call
/// denied outright returns `EPERM` there, an unlisted one is allowed there, and one denied
/// under argument conditions jumps to its own block of [`rules_block`].
fn compile(shape: Shape) -> Result<Vec<libc::sock_filter>, SeccompError> {
    compile_rules(&rules(shape)?, shape.truncation)
}

/// The program of [`compile`] for any table of rules, after the [`prefix`] (`truncation`).
fn compile_rules(
    rules: &BTreeMap<i64, Vec<Rule>>,
    truncation: bool,
) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut listed = Vec::new();
    for (nr, chain) in rules {
        let nr = u32::try_from(*nr).map_err(|e| SeccompError::Compile(e.to_string()))?;
        listed.push((nr, !chain.is_empty()));
    }
    let mut prog = prefix(truncation);
    prog.push(load(ARCH_OFFSET));
    prog.push(jump(libc::BPF_JEQ | libc::BPF_K, AUDIT_ARCH, 1, 0));
    prog.push(ret(libc::SECCOMP_RET_KILL_PROCESS));
    prog.push(load(NR));
    let mut to_block = Vec::new();
    search(&listed, &mut prog, &mut to_block)?;
    for (nr, chain) in rules.iter().filter(|(_, c)| !c.is_empty()) {
        let start = prog.len();
        for &(at, target) in &to_block {
            if i64::from(target) == *nr {
                // A jump always goes forward: `k` instructions after the next.
                prog[at].k = u32::try_from(start - at - 1)
                    .map_err(|e| SeccompError::Compile(e.to_string()))?;
            }
        }
        prog.extend(rules_block(chain)?);
    }
    if prog.len() > usize::from(u16::MAX) {
        return Err(SeccompError::Compile(format!("{} instructions", prog.len())));
    }
    Ok(prog)
}

const DENY: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

/// The block of one call with argument rules: `EPERM` when every condition of some rule
/// holds, else allowed. Each condition loads the argument word it tests (the high word of
/// a wide argument first) and, when it fails, jumps to the next rule.
fn rules_block(chain: &[Rule]) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut block = Vec::new();
    for r in chain {
        let mut code = Vec::new();
        // Indices of jumps to the next rule, and whether on the `true` branch.
        let mut to_next: Vec<(usize, bool)> = Vec::new();
        for c in r {
            let (arg_lo, arg_hi) = (16 + 8 * u32::from(c.arg), 20 + 8 * u32::from(c.arg));
            let (mask, value) = match c.op {
                Op::MaskedEq(m) => (Some(m), c.value),
                _ => (None, c.value),
            };
            // The high word of a wide argument: `(hi & mask_hi) == value_hi` for Eq and
            // MaskedEq (trivially true when both are 0, then omitted); for Ne, a differing
            // high word already makes the condition hold.
            let hi_trivial = matches!(c.op, Op::MaskedEq(m) if m >> 32 == 0 && value >> 32 == 0);
            if c.wide && !hi_trivial {
                code.push(load(arg_hi));
                if let Some(m) = mask {
                    code.push(and((m >> 32) as u32));
                }
                if c.op == Op::Ne {
                    // Equal: go on to the low word; different: the condition holds, skip
                    // the low word's two instructions.
                    code.push(jump(libc::BPF_JEQ | libc::BPF_K, (value >> 32) as u32, 0, 2));
                } else {
                    to_next.push((code.len(), false));
                    code.push(jump(libc::BPF_JEQ | libc::BPF_K, (value >> 32) as u32, 0, 0));
                }
            }
            code.push(load(arg_lo));
            if let Some(m) = mask {
                code.push(and(m as u32));
            }
            to_next.push((code.len(), c.op == Op::Ne));
            code.push(jump(libc::BPF_JEQ | libc::BPF_K, value as u32, 0, 0));
        }
        code.push(ret(DENY));
        // The next rule starts right after this rule's last instruction.
        for (at, on_true) in to_next {
            let offset = u8::try_from(code.len() - at - 1)
                .map_err(|_| SeccompError::Compile("a rule is too long".into()))?;
            if on_true {
                code[at].jt = offset;
            } else {
                code[at].jf = offset;
            }
        }
        block.extend(code);
    }
    block.push(ret(libc::SECCOMP_RET_ALLOW));
    Ok(block)
}

fn and(k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// Emits a binary search for the loaded syscall number over `listed` (sorted, each with
/// whether it has argument conditions): a call denied outright returns `EPERM`, one with
/// conditions jumps to its block (the jump's index and the number are pushed to
/// `to_block`, for the caller to fill in the offset), and a number not listed is allowed.
fn search(
    listed: &[(u32, bool)],
    prog: &mut Vec<libc::sock_filter>,
    to_block: &mut Vec<(usize, u32)>,
) -> Result<(), SeccompError> {
    if listed.len() <= 3 {
        for &(nr, has_conditions) in listed {
            prog.push(jump(libc::BPF_JEQ | libc::BPF_K, nr, 0, 1));
            if has_conditions {
                to_block.push((prog.len(), nr));
                prog.push(jump(libc::BPF_JA, 0, 0, 0));
            } else {
                prog.push(ret(DENY));
            }
        }
        prog.push(ret(libc::SECCOMP_RET_ALLOW));
        return Ok(());
    }
    let (low, high) = listed.split_at(listed.len() / 2);
    // Numbers at or above the first of `high` skip the code of `low`.
    let at = prog.len();
    prog.push(jump(libc::BPF_JGE | libc::BPF_K, high[0].0, 0, 0));
    search(low, prog, to_block)?;
    prog[at].jt = u8::try_from(prog.len() - at - 1)
        .map_err(|_| SeccompError::Compile("a branch of the search is too long".into()))?;
    search(high, prog, to_block)
}

#[cfg(test)]
mod tests {
    use super::*;

    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };

    #[cfg(target_arch = "x86_64")]
    const ARCH: TargetArch = TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    const ARCH: TargetArch = TargetArch::aarch64;

    /// The program as it was built before this file compiled its own: the prefix, then
    /// seccompiler's program for the same rules (an architecture check, the number compared
    /// with each listed call in turn, seccompiler's code for each condition). The program
    /// installed must decide every call exactly like it.
    pub(super) fn reference(shape: Shape) -> Vec<libc::sock_filter> {
        reference_of(rules(shape).unwrap(), shape.truncation)
    }

    /// seccompiler's program for any table of rules, after the prefix.
    fn reference_of(rules: BTreeMap<i64, Vec<Rule>>, truncation: bool) -> Vec<libc::sock_filter> {
        let rules = rules
            .into_iter()
            .map(|(nr, chain)| {
                let chain = chain
                    .into_iter()
                    .map(|r| {
                        let conds = r
                            .into_iter()
                            .map(|c| {
                                let len = if c.wide {
                                    SeccompCmpArgLen::Qword
                                } else {
                                    SeccompCmpArgLen::Dword
                                };
                                let op = match c.op {
                                    Op::Eq => SeccompCmpOp::Eq,
                                    Op::Ne => SeccompCmpOp::Ne,
                                    Op::MaskedEq(m) => SeccompCmpOp::MaskedEq(m),
                                };
                                SeccompCondition::new(c.arg, len, op, c.value).unwrap()
                            })
                            .collect();
                        SeccompRule::new(conds).unwrap()
                    })
                    .collect();
                (nr, chain)
            })
            .collect();
        let mut prog = prefix(truncation);
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            ARCH,
        )
        .unwrap();
        let bpf: BpfProgram = filter.try_into().unwrap();
        prog.extend(bpf.iter().map(|f| libc::sock_filter {
            code: f.code,
            jt: f.jt,
            jf: f.jf,
            k: f.k,
        }));
        prog
    }

    /// `struct seccomp_data`: nr, arch, instruction pointer, six arguments.
    #[derive(Clone, Copy)]
    struct Data {
        nr: u32,
        arch: u32,
        args: [u64; 6],
    }

    impl Data {
        fn word(&self, offset: u32) -> u32 {
            match offset {
                0 => self.nr,
                4 => self.arch,
                8..=15 => 0,
                16..=63 if offset.is_multiple_of(4) => {
                    let arg = self.args[(offset as usize - 16) / 8];
                    if offset.is_multiple_of(8) {
                        arg as u32
                    } else {
                        (arg >> 32) as u32
                    }
                }
                _ => panic!("load at offset {offset}"),
            }
        }
    }

    /// Runs a classic BPF program on `d` the way the kernel does, and returns the action
    /// and the number of instructions executed. Panics on an instruction it does not know
    /// (so that a program outside this subset is noticed, not misjudged).
    fn interpret(prog: &[libc::sock_filter], d: &Data) -> (u32, usize) {
        let (mut pc, mut a, mut steps) = (0usize, 0u32, 0usize);
        loop {
            let i = prog[pc];
            steps += 1;
            let code = u32::from(i.code);
            pc += 1;
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => a = d.word(i.k),
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= i.k,
                c if c == libc::BPF_RET | libc::BPF_K => return (i.k, steps),
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
                c if c & 0x07 == libc::BPF_JMP => {
                    let taken = match c & 0xf0 {
                        x if x == libc::BPF_JEQ => a == i.k,
                        x if x == libc::BPF_JGE => a >= i.k,
                        x if x == libc::BPF_JGT => a > i.k,
                        x if x == libc::BPF_JSET => a & i.k != 0,
                        _ => panic!("jump {code:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                _ => panic!("instruction {code:#x}"),
            }
        }
    }

    /// Every shape: each network level and process setting, with and without sessions and
    /// the truncation rules.
    fn shapes() -> Vec<Shape> {
        let mut all = Vec::new();
        for network in [NetworkAccess::None, NetworkAccess::HttpsOnly, NetworkAccess::Full] {
            for processes in [ProcessAccess::None, ProcessAccess::Limited, ProcessAccess::Full] {
                for (sessions, truncation) in
                    [(false, false), (true, false), (false, true), (true, true)]
                {
                    all.push(Shape { network, processes, sessions, truncation });
                }
            }
        }
        all
    }

    /// `AUDIT_ARCH_I386` of linux/audit.h: 32-bit calls (`int 0x80`) on an x86_64 kernel.
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    /// `AUDIT_ARCH_AARCH64`, as a foreign architecture on x86_64 (and the native one there).
    const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;

    /// Architectures a call may come with: the native one, i386, others, and nonsense.
    const ARCHES: [u32; 5] = [AUDIT_ARCH, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64, AUDIT_ARCH ^ 1, 0];

    /// Every syscall number of x86_64 and i386 (both below 1024), every x32 number (bit 30
    /// set, below 1024), and the extremes.
    fn numbers() -> Vec<u32> {
        let mut n: Vec<u32> = (0..1024).collect();
        n.extend((0..1024).map(|n| X32_SYSCALL_BIT | n));
        n.extend([u32::MAX, 0x7fff_ffff, 0x3fff_ffff, 0x8000_0000, X32_SYSCALL_BIT - 1]);
        n
    }

    /// A small deterministic generator (xorshift), so that a failure can be replayed.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// Values of argument `arg` around every value the conditions of `chain` compare it
    /// with: each value, one below and one above (an off-by-one in a comparison shows), for
    /// a masked comparison every combination of the mask's bits (up to 4 bits, else the
    /// value and the value with its lowest masked bit flipped) with the other bits clear or
    /// all set, ORs of those (two flags at once), then each with the high half of the 64
    /// bits clear, with bit 32 set and all set (a 32-bit condition must ignore it, a 64-bit
    /// one must not); plus 0 and `u64::MAX`.
    fn around(chain: &[Rule], arg: u8) -> Vec<u64> {
        let mut low: Vec<u64> = vec![0, u64::MAX];
        let mut masked: Vec<u64> = Vec::new();
        for c in chain.iter().flatten().filter(|c| c.arg == arg) {
            match c.op {
                Op::Eq | Op::Ne => {
                    low.extend([c.value, c.value.wrapping_sub(1), c.value.wrapping_add(1)]);
                }
                Op::MaskedEq(m) => {
                    let bits: Vec<u64> =
                        (0..64).map(|b| 1u64 << b).filter(|b| m & b != 0).collect();
                    let inside: Vec<u64> = if bits.len() <= 4 {
                        (0..1u64 << bits.len())
                            .map(|set| {
                                bits.iter()
                                    .enumerate()
                                    .filter(|(i, _)| set >> i & 1 == 1)
                                    .map(|(_, b)| b)
                                    .sum()
                            })
                            .collect()
                    } else {
                        vec![c.value & m, (c.value & m) ^ bits.first().copied().unwrap_or(0)]
                    };
                    for v in inside {
                        masked.extend([v, v | !m]);
                    }
                    low.extend([c.value, c.value.wrapping_sub(1), c.value.wrapping_add(1)]);
                }
            }
        }
        let pairs: Vec<u64> =
            masked.iter().flat_map(|a| masked.iter().map(move |b| a | b)).collect();
        low.extend(masked);
        low.extend(pairs);
        let mut out: Vec<u64> = low
            .iter()
            .flat_map(|&v| {
                [v & 0xffff_ffff, (v & 0xffff_ffff) | 1 << 32, v | 0xffff_ffff_0000_0000, v]
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Argument vectors for a call whose rules are `chain`: every combination of the values
    /// [`around`] gives for each argument the rules compare (the others 0, or a fixed odd
    /// pattern), then `random` vectors drawn from those values and from anywhere.
    fn vectors(chain: &[Rule], random: usize, rand: &mut impl FnMut() -> u64) -> Vec<[u64; 6]> {
        let mut compared: Vec<u8> = chain.iter().flatten().map(|c| c.arg).collect();
        compared.sort_unstable();
        compared.dedup();
        let per_arg: Vec<(u8, Vec<u64>)> =
            compared.iter().map(|&a| (a, around(chain, a))).collect();
        let mut out = Vec::new();
        for rest in [0u64, 0x5a5a_5a5a_a5a5_a5a5] {
            let mut partial = vec![[rest; 6]];
            for (arg, values) in &per_arg {
                partial = partial
                    .iter()
                    .flat_map(|v| {
                        values.iter().map(move |&x| {
                            let mut v = *v;
                            v[usize::from(*arg)] = x;
                            v
                        })
                    })
                    .collect();
            }
            out.extend(partial);
        }
        let pool: Vec<u64> = per_arg.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        for t in 0..random {
            let mut args = [0u64; 6];
            for a in &mut args {
                let r = rand();
                *a = if t % 4 == 3 || pool.is_empty() {
                    r
                } else {
                    pool[(r % pool.len() as u64) as usize]
                };
            }
            out.push(args);
        }
        out
    }

    /// The program compiled here decides every call like seccompiler's program for the
    /// same rules (the reference this file was checked against when it replaced it): every
    /// syscall number of x86_64, i386 and x32 and the extremes, with every architecture of
    /// [`ARCHES`], at every network level and process setting; for a call with argument
    /// rules, every combination of the values around each compared value ([`vectors`]) and
    /// 2,000 random vectors; for the others, a few random ones. The prefix is the same
    /// code in both: [`every_call_is_decided_as_the_security_model_says`] checks it.
    #[test]
    fn the_search_decides_every_call_like_the_linear_program() {
        let mut rand = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0usize;
        for shape in shapes() {
            let table = rules(shape).unwrap();
            let (old, new) = (reference(shape), compile(shape).unwrap());
            for nr in numbers() {
                let chain = table.get(&i64::from(nr)).map_or(&[][..], |c| &c[..]);
                let random = if chain.is_empty() { 3 } else { 2_000 };
                let vectors = vectors(chain, random, &mut rand);
                for arch in ARCHES {
                    // Only the native architecture reaches the rules.
                    let vectors = if arch == AUDIT_ARCH { &vectors[..] } else { &vectors[..1] };
                    for &args in vectors {
                        let d = Data { nr, arch, args };
                        let (want, got) = (interpret(&old, &d).0, interpret(&new, &d).0);
                        assert_eq!(want, got, "{shape:?}: nr {nr} arch {arch:#x} args {args:x?}");
                        checked += 1;
                    }
                }
            }
        }
        eprintln!("{checked} calls compared");
        assert!(checked > 500_000, "only {checked} calls compared");
    }

    /// The compiler on rule tables the policy does not use (yet): random tables of
    /// conditions on every argument, 32 and 64 bits wide, `Eq`, `Ne` and `MaskedEq` with
    /// values and masks in both halves, decided like seccompiler decides them. The policy's
    /// own tables compare 32-bit values only, which leave the code for high words unused.
    #[test]
    fn the_compiler_agrees_with_seccompiler_on_any_table() {
        let mut rand = xorshift(0x2545_f491_4f6c_dd1d);
        for _ in 0..60 {
            let table = random_table(&mut rand);
            let truncation = rand().is_multiple_of(2);
            let (old, new) = (
                reference_of(table.clone(), truncation),
                compile_rules(&table, truncation).unwrap(),
            );
            let nrs: Vec<u32> = (0..700).chain(table.keys().map(|&n| n as u32)).collect();
            for nr in nrs {
                let chain = table.get(&i64::from(nr)).map_or(&[][..], |c| &c[..]);
                for args in vectors_sampled(chain, &mut rand) {
                    let d = Data { nr, arch: AUDIT_ARCH, args };
                    assert_eq!(
                        interpret(&old, &d).0,
                        interpret(&new, &d).0,
                        "{table:?}\n{nr} {args:x?}"
                    );
                }
            }
        }
    }

    /// Up to 4,000 vectors for `chain` ([`vectors`] is a full product, too large for tables
    /// comparing many arguments): drawn from the values around the compared ones.
    fn vectors_sampled(chain: &[Rule], rand: &mut impl FnMut() -> u64) -> Vec<[u64; 6]> {
        if chain.is_empty() {
            return vec![[0; 6], [rand(), rand(), rand(), rand(), rand(), rand()]];
        }
        let per_arg: Vec<Vec<u64>> = (0..6).map(|a| around(chain, a)).collect();
        (0..4_000)
            .map(|_| {
                let mut args = [0u64; 6];
                for (a, values) in args.iter_mut().zip(&per_arg) {
                    *a = values[(rand() % values.len() as u64) as usize];
                }
                args
            })
            .collect()
    }

    /// A random table: 1 to 30 numbers below 700, each denied outright or under 1 to 4
    /// rules of 1 to 3 conditions.
    fn random_table(rand: &mut impl FnMut() -> u64) -> BTreeMap<i64, Vec<Rule>> {
        let mut table = BTreeMap::new();
        for _ in 0..1 + rand() % 30 {
            let nr = (rand() % 700) as i64;
            let chain: Vec<Rule> = (0..rand() % 5)
                .map(|_| (0..1 + rand() % 3).map(|_| random_cond(rand)).collect())
                .collect();
            table.insert(nr, chain);
        }
        table
    }

    fn random_cond(rand: &mut impl FnMut() -> u64) -> Cond {
        let wide = rand().is_multiple_of(2);
        let fit = |v: u64| if wide { v } else { v & 0xffff_ffff };
        // Small values and single bits, as real conditions use, and anything.
        let value = |r: &mut dyn FnMut() -> u64| match r() % 3 {
            0 => r() % 20,
            1 => 1 << (r() % 64),
            _ => r(),
        };
        let op = match rand() % 3 {
            0 => Op::Eq,
            1 => Op::Ne,
            _ => Op::MaskedEq(fit(value(rand) | value(rand))),
        };
        let mut v = fit(value(rand));
        if let Op::MaskedEq(m) = op {
            v &= m; // a masked value outside its mask never matches; seccompiler refuses none
        }
        let c = Cond { arg: (rand() % 6) as u8, wide, op, value: v };
        checked(c).unwrap()
    }

    /// What the security model (docs/security-model.md, "side doors", "network", "process
    /// creation") says the filter decides, written out here on its own rather than read
    /// from [`rules`], so that a call dropped from the table, a wrong value or a wrong
    /// errno there shows as a difference.
    fn model(d: &Data, shape: Shape) -> u32 {
        let Shape { network, processes, sessions, truncation } = shape;
        let errno = |e: i32| libc::SECCOMP_RET_ERRNO | e as u32;
        if d.nr >= X32_SYSCALL_BIT {
            return errno(libc::EPERM); // the x32 ABI (and above), whatever the architecture
        }
        if i64::from(d.nr) == libc::SYS_clone3 {
            return errno(libc::ENOSYS); // its flags cannot be read; libc falls back to clone
        }
        if truncation && i64::from(d.nr) == libc::SYS_openat2 {
            return errno(libc::ENOSYS); // its flags cannot be read; callers fall back
        }
        if d.arch != AUDIT_ARCH {
            return libc::SECCOMP_RET_KILL_PROCESS;
        }
        let (nr, a) = (i64::from(d.nr), d.args);
        let low = |i: usize| a[i] & 0xffff_ffff; // an int argument: the kernel reads 32 bits
        let https = network == NetworkAccess::HttpsOnly;
        // A read-only open that truncates (O_RDONLY is 0).
        let read_trunc =
            |flags: u64| flags & libc::O_TRUNC as u64 != 0 && flags & libc::O_ACCMODE as u64 == 0;
        let denied = match nr {
            n if MODEL_SIDE_DOORS.contains(&n) => true,
            libc::SYS_setsid | libc::SYS_setpgid => !sessions,
            libc::SYS_prctl => sessions && low(0) == libc::PR_SET_DUMPABLE as u64 && a[1] == 0,
            libc::SYS_truncate => truncation,
            #[cfg(target_arch = "x86_64")]
            libc::SYS_open => truncation && read_trunc(low(1)),
            libc::SYS_openat => truncation && read_trunc(low(2)),
            libc::SYS_socketpair => {
                network != NetworkAccess::Full && low(1) & 0xf == libc::SOCK_DGRAM as u64
            }
            libc::SYS_ioctl => low(1) == libc::TIOCSTI || low(1) == libc::TIOCLINUX,
            libc::SYS_personality => low(0) != 0 && low(0) != 0xffff_ffff,
            libc::SYS_clone => {
                let namespaces = CLONE_NAMESPACES.iter().fold(0, |all, f| all | f);
                let thread = a[0] & libc::CLONE_THREAD as u64 != 0;
                a[0] & namespaces != 0 || (processes == ProcessAccess::None && !thread)
            }
            #[cfg(target_arch = "x86_64")]
            libc::SYS_fork | libc::SYS_vfork => processes == ProcessAccess::None,
            libc::SYS_socket => match network {
                NetworkAccess::None => true,
                NetworkAccess::HttpsOnly | NetworkAccess::Loopback { .. } => {
                    !https_socket_allowed(low(0), low(1), low(2))
                }
                NetworkAccess::Full => false,
            },
            libc::SYS_listen => https,
            libc::SYS_sendto | libc::SYS_sendmmsg => {
                https && low(3) & libc::MSG_FASTOPEN as u64 != 0
            }
            libc::SYS_sendmsg => https && low(2) & libc::MSG_FASTOPEN as u64 != 0,
            _ => false,
        };
        if denied {
            errno(libc::EPERM)
        } else {
            libc::SECCOMP_RET_ALLOW
        }
    }

    /// `socket(family, type, protocol)` at https-only: IPv4 and IPv6 streams and datagrams
    /// with the default, TCP or UDP protocol; netlink of the route protocol only, of any
    /// type; nothing raw but route netlink, no packet socket.
    fn https_socket_allowed(family: u64, kind: u64, protocol: u64) -> bool {
        let (inet, inet6, netlink) =
            (libc::AF_INET as u64, libc::AF_INET6 as u64, libc::AF_NETLINK as u64);
        let kind = kind & 0xf; // the rest are SOCK_CLOEXEC and SOCK_NONBLOCK
        let protocols = [0, libc::IPPROTO_TCP as u64, libc::IPPROTO_UDP as u64];
        let family_ok = [inet, inet6, netlink].contains(&family);
        let raw_ip = family != netlink && kind == libc::SOCK_RAW as u64;
        let other_netlink = family == netlink && protocol != libc::NETLINK_ROUTE as u64;
        family_ok
            && !raw_ip
            && kind != SOCK_PACKET
            && !other_netlink
            && protocols.contains(&protocol)
    }

    /// The calls the security model lists as side doors, denied whatever the policy: io_uring,
    /// keyrings, bpf, perf, userfaultfd, mounts, namespaces, chroot, kexec and modules,
    /// tracing and other processes' memory, leaving the session or group, System V IPC,
    /// handles, and the odd administrative calls.
    const MODEL_SIDE_DOORS: &[i64] = &[
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
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_acct,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_quotactl,
        libc::SYS_vhangup,
        libc::SYS_syslog,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_iopl,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_ioperm,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_uselib,
    ];

    /// The program installed decides every call as [`model`] says: every number of
    /// x86_64, i386 and x32 and the extremes, every architecture of [`ARCHES`], every
    /// network level and process setting, and for a call with argument rules every
    /// combination of the values around each compared value.
    #[test]
    fn every_call_is_decided_as_the_security_model_says() {
        let mut rand = xorshift(0x853c_49e6_748f_ea9b);
        for shape in shapes() {
            let table = rules(shape).unwrap();
            let program = compile(shape).unwrap();
            for nr in numbers() {
                let chain = table.get(&i64::from(nr)).map_or(&[][..], |c| &c[..]);
                let vectors = vectors(chain, 200, &mut rand);
                for arch in ARCHES {
                    let vectors = if arch == AUDIT_ARCH { &vectors[..] } else { &vectors[..1] };
                    for &args in vectors {
                        let d = Data { nr, arch, args };
                        assert_eq!(
                            interpret(&program, &d).0,
                            model(&d, shape),
                            "{shape:?}: nr {nr} arch {arch:#x} args {args:x?}"
                        );
                    }
                }
            }
        }
    }

    /// What the https-only filter decides for the socket() calls its rules are about, read
    /// from the compiled program: route netlink in every form glibc opens it, no other
    /// netlink, no raw IP or packet socket, TCP and UDP.
    #[test]
    fn https_only_allows_route_netlink_and_no_raw_ip_socket() {
        let (inet, inet6, netlink, packet) = (
            libc::AF_INET as u64,
            libc::AF_INET6 as u64,
            libc::AF_NETLINK as u64,
            libc::AF_PACKET as u64,
        );
        let (raw, dgram, stream) =
            (libc::SOCK_RAW as u64, libc::SOCK_DGRAM as u64, libc::SOCK_STREAM as u64);
        let cloexec = libc::SOCK_CLOEXEC as u64;
        let route = libc::NETLINK_ROUTE as u64;
        let allowed = [
            (netlink, raw | cloexec, route),
            (netlink, raw, route),
            (netlink, dgram | cloexec, route),
            (inet, stream | cloexec, libc::IPPROTO_TCP as u64),
            (inet6, dgram, 0),
        ];
        let denied = [
            (netlink, raw, libc::NETLINK_SOCK_DIAG as u64),
            (netlink, dgram, libc::NETLINK_AUDIT as u64),
            (inet, raw, libc::IPPROTO_ICMP as u64),
            (inet6, raw | cloexec, 0),
            (inet, SOCK_PACKET, 0),
            (packet, raw, 0),
            (libc::AF_UNIX as u64, stream, 0),
        ];
        for procs in [ProcessAccess::None, ProcessAccess::Limited, ProcessAccess::Full] {
            let shape = Shape {
                network: NetworkAccess::HttpsOnly,
                processes: procs,
                sessions: false,
                truncation: false,
            };
            let prog = compile(shape).unwrap();
            let decide = |(family, kind, proto): (u64, u64, u64)| {
                let d = Data {
                    nr: libc::SYS_socket as u32,
                    arch: AUDIT_ARCH,
                    args: [family, kind, proto, 0, 0, 0],
                };
                interpret(&prog, &d).0
            };
            for call in allowed {
                assert_eq!(decide(call), libc::SECCOMP_RET_ALLOW, "{procs:?}: {call:?}");
            }
            for call in denied {
                assert_eq!(decide(call), DENY, "{procs:?}: {call:?}");
            }
        }
    }

    /// What the kernel pays at install: it runs the filter for each syscall number to find
    /// the calls it always allows. The search keeps that walk short.
    #[test]
    fn an_allowed_call_is_decided_in_a_few_steps() {
        for shape in shapes() {
            let new = compile(shape).unwrap();
            let old = reference(shape);
            let d = |nr| Data { nr, arch: AUDIT_ARCH, args: [0; 6] };
            let (mut total_new, mut total_old) = (0, 0);
            for nr in 0..512 {
                let (action, steps) = interpret(&new, &d(nr));
                total_new += steps;
                total_old += interpret(&old, &d(nr)).1;
                if action == libc::SECCOMP_RET_ALLOW
                    && !rules(shape).unwrap().contains_key(&i64::from(nr))
                {
                    assert!(steps <= 16, "{shape:?}: nr {nr} took {steps} steps");
                }
            }
            eprintln!(
                "{shape:?}: {} instructions (was {}), steps over 512 numbers {} (was {})",
                new.len(),
                old.len(),
                total_new,
                total_old
            );
        }
    }
}

/// `cargo test --release -p skillbox-sandbox --lib install_cost -- --ignored --nocapture`:
/// the time the kernel takes to install each program, in forked children.
#[cfg(test)]
mod install_cost {
    use super::*;

    fn now_ns() -> i64 {
        // SAFETY: timespec is plain data, for which all zeroes is a valid value.
        let mut t: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: clock_gettime writes only to `t`.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
        t.tv_sec * 1_000_000_000 + t.tv_nsec
    }

    /// Median install time of `prog` in µs, over `n` children.
    fn median_install_us(prog: &[libc::sock_filter], n: usize) -> f64 {
        let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut _ };
        let mut times = Vec::new();
        for _ in 0..n {
            let (read, write) = rustix::pipe::pipe().unwrap();
            // SAFETY: fork in the multi-threaded test harness: the child runs only
            // `time_install`, system calls on memory prepared before the fork, then exits.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                time_install(&fprog, &write);
            }
            let mut d = [0u8; 8];
            let _ = rustix::io::read(&read, &mut d);
            if let Some(child) = rustix::process::Pid::from_raw(pid) {
                let _ =
                    rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty());
            }
            let d = i64::from_ne_bytes(d);
            assert!(d >= 0, "seccomp refused the program");
            times.push(d);
        }
        times.sort();
        times[n / 2] as f64 / 1e3
    }

    /// The forked child of [`median_install_us`]: installs `fprog`, writes to `out` how
    /// long that took (ns; -1 when refused), and exits. System calls only.
    fn time_install(fprog: &libc::sock_fprog, out: &std::os::fd::OwnedFd) -> ! {
        let _ = rustix::thread::set_no_new_privs(true);
        let t = now_ns();
        // SAFETY: the kernel copies the program `fprog` points to; both outlive the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                fprog as *const libc::sock_fprog,
            )
        };
        let d: i64 = if r < 0 { -1 } else { now_ns() - t };
        let _ = rustix::io::write(out, &d.to_ne_bytes());
        // SAFETY: ends the forked child at once, without running the test harness's exit
        // path (no atexit handlers, no destructors) on its copy of the parent's memory.
        unsafe { libc::_exit(0) }
    }

    #[test]
    #[ignore = "a measurement, not a check: cargo test --release -p skillbox-sandbox install_cost -- --ignored --nocapture"]
    fn install_cost() {
        for (network, processes) in [
            (NetworkAccess::None, ProcessAccess::None),
            (NetworkAccess::HttpsOnly, ProcessAccess::Limited),
        ] {
            let shape = Shape { network, processes, sessions: false, truncation: false };
            let new = compile(shape).unwrap();
            let old = super::tests::reference(shape);
            for round in 0..3 {
                eprintln!(
                    "{shape:?} round {round}: seccompiler {} instructions {:.1} us, ours {} instructions {:.1} us",
                    old.len(),
                    median_install_us(&old, 300),
                    new.len(),
                    median_install_us(&new, 300)
                );
            }
        }
    }
}
