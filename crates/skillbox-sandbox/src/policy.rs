use std::path::PathBuf;

/// Network a child may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NetworkAccess {
    /// No socket but `socketpair`: no TCP, UDP, raw, netlink or Unix socket of any address.
    None,
    /// TCP connections to port 443 only (Landlock), plus UDP for DNS and netlink route
    /// queries. UDP destinations are not restricted (see the security model).
    HttpsOnly,
    /// The run's own network namespace, holding nothing but loopback: no route out, no UDP
    /// or DNS that leaves it, no host loopback. Its only open door is a listener on
    /// `127.0.0.1:port` inside it, which the caller receives ([`crate::ChildSpec::listener`])
    /// and serves from outside (skillbox's egress proxy). TCP connects to that port only
    /// (Landlock, ABI 4), sockets as at `HttpsOnly` (seccomp). Needs user namespaces.
    Loopback {
        /// The port of the listener, on `127.0.0.1` inside the run's namespace.
        port: u16,
    },
    /// Everything the host allows.
    Full,
}

impl NetworkAccess {
    /// Whether the run may make TCP and UDP sockets (`HttpsOnly` or `Loopback`) but not
    /// reach everything: the socket rules these two share.
    pub fn is_limited_sockets(self) -> bool {
        matches!(self, Self::HttpsOnly | Self::Loopback { .. })
    }
}

/// Whether a child may create processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProcessAccess {
    /// `fork`, `vfork` and `clone` of anything but a thread fail with `EPERM`.
    None,
    /// Processes may be created; the count is bounded by [`Rlimits::processes`] where a
    /// pids cgroup can be created.
    Limited,
    /// No bound from the sandbox.
    Full,
}

/// Kernel resource limits, set as both soft and hard limit so that the child cannot raise
/// them (raising a hard limit needs `CAP_SYS_RESOURCE`, which is dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rlimits {
    /// `RLIMIT_NOFILE`: open descriptors.
    pub open_files: Option<u64>,
    /// `RLIMIT_FSIZE`: largest file the child may write, in bytes. Exact, per file: a write
    /// past it fails and the writer gets `SIGXFSZ`.
    pub file_size: Option<u64>,
    /// Total bytes the whole run may write to disk, summed over all its processes. Enforced
    /// by supervision, not by a kernel quota: the supervisor samples the kernel's
    /// `write_bytes` counters every 50 ms and kills the run beyond the limit, so a run can
    /// overshoot by what it writes in one interval. Counts bytes dirtied in files of
    /// block-backed filesystems (page-granular), not tmpfs, pipes or sockets; see the
    /// `disk-writes` line of the enforcement report for what it misses.
    pub disk_write_bytes: Option<u64>,
    /// `RLIMIT_CPU`: CPU seconds.
    pub cpu_seconds: Option<u64>,
    /// At most this many processes of the run at once, with [`ProcessAccess::Limited`].
    /// Enforced by a pids cgroup where this process can create one (root, or a delegated
    /// cgroup); `RLIMIT_NPROC` is not used, as it counts every process of the user.
    pub processes: Option<u64>,
    /// `RLIMIT_AS`: address space in bytes.
    pub address_space: Option<u64>,
    /// Memory of the whole run, in bytes: a memory cgroup where one can be created, else
    /// `RLIMIT_AS` per process (which limits address space, not resident memory, and breaks
    /// runtimes that reserve large ranges).
    pub memory: Option<u64>,
    /// Share of one CPU, in percent, for the whole run: a cpu cgroup quota where one can be
    /// created; otherwise not enforced (and reported so).
    pub cpu_percent: Option<u32>,
}

/// What the kernel should allow one child and all its descendants.
///
/// Files are an allow-list: the child reads only beneath [`Policy::read`] (plus the system
/// directories of [`SYSTEM_READ`]) and writes only beneath [`Policy::write`]. Beneath a
/// writable tree, the entries named in [`Policy::protected`] stay read-only at any depth;
/// beneath any tree, the paths in [`Policy::hidden`] stay out of reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `false` turns file confinement off entirely (the child sees what its user sees).
    pub confine_files: bool,
    /// Trees the child may read and execute from.
    pub read: Vec<PathBuf>,
    /// Trees the child may read and write.
    pub write: Vec<PathBuf>,
    /// Names of entries that stay read-only wherever they occur beneath a writable tree, at
    /// any depth (compared without regard to ASCII case), such as `.git`: a writable tree
    /// holding one is walked and split around it (see the `grants` module). Which names are
    /// protected is the caller's policy; this crate only enforces the list.
    ///
    /// The kernel cannot refuse one name inside a directory it lets the run write, so a
    /// protected name the run creates in a writable directory that held none (`src/.git`),
    /// or in a directory it made, is taken away after the run, once every process of it is
    /// gone: moved to [`Policy::quarantine`] (else removed) and reported in
    /// [`crate::ChildOutcome::planted`]. What existed before the run stays.
    pub protected: Vec<String>,
    /// Paths no grant reaches by containing them: neither readable nor writable through a
    /// read or write tree they lie beneath, at any depth (keys, credentials, the caller's
    /// own records). They must be given resolved, as [`crate::resolve`] makes them (links
    /// followed), so that a path reached through a link is hidden where it lives; they are
    /// compared as given (resolving them here again would cost a system call per component
    /// of each, per run). A grant of a hidden path itself, or of a path inside one, is the
    /// caller's explicit choice and is made. The secrets of `/etc` ([`ETC_SECRETS`]) are
    /// always hidden, whatever this list holds.
    pub hidden: Vec<PathBuf>,
    /// Trees private to the run and discarded after it (its `HOME` and `TMPDIR`): writable
    /// as a whole, and not walked for protected names, since nothing planted there outlives
    /// the run. Hidden paths are still carved out of them.
    pub scratch: Vec<PathBuf>,
    /// Writable trees granted entry by entry even when they hold no protected entry yet
    /// (a workspace), so that none can be created at their top: no `.git/hooks`,
    /// `.q-skills` or `.bashrc` planted in a workspace that lacked them.
    pub guarded: Vec<PathBuf>,
    /// Where entries the run planted under a [`Policy::protected`] name are moved after it
    /// (made when first needed, mode 0700, with its parents), each as `N-NAME`, so that a
    /// person can see what a skill tried to leave behind. An entry on another file system
    /// than this directory, or every entry when there is none, is removed instead. It must
    /// lie outside every writable tree, where no run can write (the caller's own files).
    pub quarantine: Option<PathBuf>,
    /// Network.
    pub network: NetworkAccess,
    /// Process creation.
    pub processes: ProcessAccess,
    /// Resource limits.
    pub rlimits: Rlimits,
    /// Start the child as the first process of a new PID namespace (in a new user
    /// namespace), killed with `SIGKILL` when the thread that started it dies. The kernel
    /// then kills every process of the run when its first process exits, or when the
    /// supervisor is killed, even with `SIGKILL`. Costs a user namespace per run, and the
    /// program runs as PID 1 of its namespace (signals it sends itself are ignored unless
    /// handled). Needs unprivileged user namespaces; reported when unavailable.
    pub pid_namespace: bool,
}

impl Policy {
    /// The tightest policy: system directories readable, nothing writable, no network, no
    /// process creation.
    pub fn strict() -> Self {
        Self {
            confine_files: true,
            read: Vec::new(),
            write: Vec::new(),
            protected: Vec::new(),
            hidden: Vec::new(),
            scratch: Vec::new(),
            guarded: Vec::new(),
            quarantine: None,
            network: NetworkAccess::None,
            processes: ProcessAccess::None,
            rlimits: Rlimits::default(),
            pid_namespace: false,
        }
    }

    /// No file, network or process restriction. Side doors (io_uring, `TIOCSTI`, `bpf`,
    /// namespaces, ...) stay shut and privileges are still dropped.
    pub fn permissive() -> Self {
        Self {
            confine_files: false,
            read: Vec::new(),
            write: Vec::new(),
            protected: Vec::new(),
            hidden: Vec::new(),
            scratch: Vec::new(),
            guarded: Vec::new(),
            quarantine: None,
            network: NetworkAccess::Full,
            processes: ProcessAccess::Full,
            rlimits: Rlimits::default(),
            pid_namespace: false,
        }
    }
}

/// Directories every program needs to start, readable (and executable) for every child.
pub const SYSTEM_READ: &[&str] =
    &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt"];

/// Device files any program may open: `/dev/null` and friends. Not terminals.
pub const DEVICES: &[&str] =
    &["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

/// Entries of `/etc` (relative paths) that are never readable unless a policy grants them
/// explicitly: account databases, credentials, private keys and privilege configuration.
/// A directory that holds a secret (`ssl` holds `ssl/private`) is granted entry by entry.
pub const ETC_SECRETS: &[&str] = &[
    "shadow",
    "shadow-",
    "gshadow",
    "gshadow-",
    "passwd",
    "passwd-",
    "sudoers",
    "sudoers.d",
    "ssh",
    "ssl/private",
    "pki",
    "security",
    "krb5.keytab",
    "docker",
    "containerd",
    "NetworkManager",
    "wpa_supplicant",
    "credstore",
    "credstore.encrypted",
    "machine-id",
];
