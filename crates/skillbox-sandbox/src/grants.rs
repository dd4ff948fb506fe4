//! Granting a tree with paths carved out of it: the walk that decides, object by object,
//! what a granted tree comes to, for whichever mechanism makes it real ([`Grants`]: the
//! Landlock ruleset, `crate::landlock`, or the run's mount namespace, `crate::mountns`).
//!
//! Landlock only grants: a rule on a directory covers everything beneath it, and nothing can
//! take a subpath back. So to keep a path beneath a granted tree out of reach (a secret: no
//! access) or read-only (a protected entry such as `.git`), the tree is *split* along the way
//! to that path: each directory on the way gets only rights that cannot reach the path
//! (listing it, or reading beneath it), each of its other entries gets the tree's rights, and
//! the path itself gets nothing (hidden) or read rights (read-only). A mount namespace makes
//! the same decisions real with mounts: a split directory is bound read-only onto itself, its
//! entries bound back with the tree's rights, a hidden entry covered.
//!
//! A split directory keeps no right to create, remove or rename its entries. Otherwise a run
//! could rename the way to a carved-out path aside and put its own in its place, or create a
//! carved-out path that does not exist yet (`~/.aws` before `aws configure`).
//!
//! Protected entries are found by name at any depth of a writable tree: the tree is walked
//! iteratively (no recursion a skill could deepen), within a budget of entries, never
//! following a link, on directory descriptors. The rules are then made from descriptors opened
//! relative to the same directories and checked against the inode the listing showed, so
//! that what was examined is what is granted.
//!
//! The walk also takes the census of what it kept out of a writable tree's rights (device
//! and inode of each carved or unexamined entry): after the run, `crate::planted` takes
//! every entry under a protected name that is not in it, since the run must have made it.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Dir, FileType, Mode, OFlags, ResolveFlags, CWD};

/// Deepest directory examined below a granted tree's top. The walk holds one descriptor per
/// level (the rules are made from them), so a deeper directory is not examined: it is kept
/// read-only (or out of reach when a hidden path may be beneath it), never granted unexamined.
pub(crate) const MAX_DEPTH: usize = 128;

/// How a carved-out path is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Carve {
    /// Readable, never writable: no write right reaches it.
    ReadOnly,
    /// Neither readable nor writable: no right reaches it (its name may still be listed in
    /// its parent directory).
    Hidden,
}

/// Whether `p`'s bytes begin with `root`'s: necessary for `p` to lie beneath `root`.
fn bytes_under(p: &Path, root: &Path) -> bool {
    p.as_os_str().as_bytes().starts_with(root.as_os_str().as_bytes())
}

/// What is carved out of every tree of one ruleset.
pub(crate) struct Carved<'a> {
    /// Resolved absolute paths and how each is kept.
    paths: &'a [(PathBuf, Carve)],
    /// Names kept read-only wherever they occur beneath a writable tree (compared without
    /// regard to ASCII case, as a case-folding file system would find them).
    names: &'a [String],
    /// Bit `n` set when a name is `n` bytes long (longer ones share bit 63): most entries of
    /// a tree are ruled out by their length alone.
    lengths: u64,
}

impl<'a> Carved<'a> {
    /// What `paths` and `names` carve out.
    pub(crate) fn new(paths: &'a [(PathBuf, Carve)], names: &'a [String]) -> Self {
        let lengths = names.iter().fold(0u64, |m, n| m | 1 << n.len().min(63));
        Self { paths, names, lengths }
    }

    /// Whether `name` is one of the protected names, without regard to ASCII case.
    pub(crate) fn name_matches(&self, name: &[u8]) -> bool {
        self.lengths & 1 << name.len().min(63) != 0
            && self.names.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(name))
    }
}

/// Entries a ruleset may list while carving, over all its trees, and the census of what it
/// kept out of the writable ones.
pub(crate) struct Budget {
    left: usize,
    limit: usize,
    census: crate::planted::Census,
}

impl Budget {
    /// A budget of `limit` directory entries.
    pub(crate) fn new(limit: usize) -> Self {
        Self { left: limit, limit, census: crate::planted::Census::default() }
    }

    /// The census of the writable trees walked with this budget: every entry carved out of
    /// them or left unexamined, by device and inode (see `crate::planted`).
    pub(crate) fn into_census(self) -> crate::planted::Census {
        self.census.taken()
    }

    fn take(&mut self, tree: &Path) -> Result<(), GrantError> {
        match self.left.checked_sub(1) {
            Some(l) => {
                self.left = l;
                Ok(())
            }
            None => Err(GrantError::TooLarge { tree: tree.to_path_buf(), limit: self.limit }),
        }
    }
}

/// Why a tree could not be granted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GrantError {
    /// The granted path itself goes through a symbolic link.
    #[error("granted path {0} goes through a symbolic link; grant the real path instead")]
    Symlink(PathBuf),
    /// The walk of a writable tree for protected entries went over its budget.
    #[error(
        "the writable tree {tree} holds more than {limit} entries; skillbox looks at every one \
         for protected entries (.git, .claude, ...) before granting it: declare a narrower \
         file_write path"
    )]
    TooLarge {
        /// The tree.
        tree: PathBuf,
        /// The budget.
        limit: usize,
    },
    /// A directory of a tree that must be examined could not be listed to the end.
    #[error("cannot list {0}: {1}")]
    List(PathBuf, std::io::Error),
    /// An entry changed between being examined and being granted.
    #[error("{0} changed while skillbox examined it; try again")]
    Changed(PathBuf),
    /// The kernel refused a rule.
    #[error("building the Landlock ruleset failed on {0}: {1}")]
    Rule(PathBuf, std::io::Error),
}

/// How much of a granted tree one object gets, as the walk decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Listing only (a directory with a hidden path beneath it: Landlock's `ReadDir`).
    List,
    /// Reading only (a carved read-only entry, a directory on the way to one).
    Read,
    /// The tree's own rights.
    Whole,
}

/// What receives the walk's decisions: one call per object that gets rights of its own, and
/// one per entry carved out as hidden. An object without a call of its own gets what its
/// nearest ancestor with one gets.
pub(crate) trait Grants {
    /// `fd` (at `path`; a directory when `dir`) gets `level` of the tree's rights.
    fn grant(
        &mut self,
        fd: BorrowedFd<'_>,
        path: &Path,
        level: Level,
        dir: bool,
    ) -> Result<(), GrantError>;

    /// The entry `fd` (at `path`) is carved out read-only (a protected entry, or one the walk
    /// could not examine), beside its [`Level::Read`] grant. Landlock needs nothing more;
    /// the run's mount namespace beside Landlock makes its metadata read-only
    /// (`crate::metadata`).
    fn read_only(
        &mut self,
        _fd: BorrowedFd<'_>,
        _path: &Path,
        _dir: bool,
    ) -> Result<(), GrantError> {
        Ok(())
    }

    /// The entry at `path` (a directory when `dir`) is carved out as hidden. Landlock needs
    /// nothing for it (no rule reaches it); a mount namespace covers it.
    fn hide(&mut self, _path: &Path, _dir: bool) -> Result<(), GrantError> {
        Ok(())
    }
}

/// Two sinks fed by one walk: the Landlock rules and what the run's mount namespace needs
/// (`crate::metadata`), decided alike.
pub(crate) struct Tee<'a, A, B>(pub &'a mut A, pub &'a mut B);

impl<A: Grants, B: Grants> Grants for Tee<'_, A, B> {
    fn grant(
        &mut self,
        fd: BorrowedFd<'_>,
        path: &Path,
        level: Level,
        dir: bool,
    ) -> Result<(), GrantError> {
        self.0.grant(fd, path, level, dir)?;
        self.1.grant(fd, path, level, dir)
    }

    fn read_only(&mut self, fd: BorrowedFd<'_>, path: &Path, dir: bool) -> Result<(), GrantError> {
        self.0.read_only(fd, path, dir)?;
        self.1.read_only(fd, path, dir)
    }

    fn hide(&mut self, path: &Path, dir: bool) -> Result<(), GrantError> {
        self.0.hide(path, dir)?;
        self.1.hide(path, dir)
    }
}

/// Grants `root` to `sink`, less what `carved` carves out of it. Paths carved out are those
/// strictly beneath `root` (a grant of a carved path itself, or of a path inside one, is the
/// caller's explicit choice). Read-only carves and protected names only matter when the
/// tree `writes`. A `guarded` writable tree is split at its top even when nothing beneath it
/// is carved out, so that no new entry (a `.git`, a `.bashrc`) can be created there. A
/// `root` that does not exist grants nothing.
pub(crate) fn grant_tree(
    sink: &mut impl Grants,
    root: &Path,
    writes: bool,
    guarded: bool,
    carved: &Carved<'_>,
    budget: &mut Budget,
) -> Result<(), GrantError> {
    let relevant: Vec<(&Path, Carve)> = carved
        .paths
        .iter()
        // A byte prefix first: most carved paths are nowhere near the tree, and comparing
        // components costs more.
        .filter(|(p, c)| (writes || *c == Carve::Hidden) && bytes_under(p, root))
        .filter(|(p, _)| p.starts_with(root) && p != root)
        .map(|(p, c)| (p.as_path(), *c))
        .collect();
    let walk_names = writes && !carved.names.is_empty();
    let guarded = guarded && writes;

    let opened = rustix::fs::openat2(
        CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS,
    );
    let dir = match opened {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => return Err(GrantError::Symlink(root.to_path_buf())),
        Err(rustix::io::Errno::NOTDIR) => {
            // A file: its file rights; nothing beneath it to carve.
            let Some(fd) = open_path(CWD, root)? else { return Ok(()) };
            return sink.grant(fd.as_fd(), root, Level::Whole, false);
        }
        Err(rustix::io::Errno::ACCESS) if relevant.is_empty() && !walk_names && !guarded => {
            // Nothing to examine: granted as it is, listable or not.
            let Some(fd) = open_path(CWD, root)? else { return Ok(()) };
            return sink.grant(fd.as_fd(), root, Level::Whole, true);
        }
        Err(rustix::io::Errno::ACCESS) => {
            return unexamined_root(sink, root, &relevant, writes.then_some(budget))
        }
        // Does not exist, or cannot be opened at all: grants nothing.
        Err(_) => return Ok(()),
    };
    if relevant.is_empty() && !walk_names && !guarded {
        return sink.grant(dir.as_fd(), root, Level::Whole, true);
    }
    let mut walk = Walk { sink, root, writes, walk_names, guarded, carved, relevant: &relevant };
    walk.run(dir, budget)
}

/// The walk of one tree that must be examined before it is granted: its directories are
/// listed depth first (one [`Frame`] each), each entry is decided (carved out, left whole,
/// or examined below), and a directory with something carved beneath it is split: granted
/// entry by entry, else left to its parent whole.
struct Walk<'a, S> {
    sink: &'a mut S,
    root: &'a Path,
    /// The grant writes: protected names and read-only carves matter.
    writes: bool,
    /// Every directory is walked, for protected names.
    walk_names: bool,
    /// The top is split even when nothing beneath it is carved out.
    guarded: bool,
    carved: &'a Carved<'a>,
    /// The carved paths strictly beneath the root that matter for this grant.
    relevant: &'a [(&'a Path, Carve)],
}

impl<S: Grants> Walk<'_, S> {
    /// Whether a carved path (of `kind`, or of any kind) lies strictly beneath `p`.
    fn beneath(&self, p: &Path, kind: Option<Carve>) -> bool {
        self.relevant
            .iter()
            .any(|(c, k)| c.starts_with(p) && *c != p && kind.is_none_or(|x| x == *k))
    }

    fn run(&mut self, dir: OwnedFd, budget: &mut Budget) -> Result<(), GrantError> {
        let root_dev = rustix::fs::fstat(&dir).map(|st| st.st_dev).unwrap_or(0);
        let first = match Frame::list(dir, root_dev, self.root.to_path_buf(), self.root, budget) {
            Ok(mut frame) => {
                frame.near = self.beneath(&frame.path, None);
                frame
            }
            Err(GrantError::List(..)) => {
                let census = self.writes.then_some(budget);
                return unexamined_root(self.sink, self.root, self.relevant, census);
            }
            Err(e) => return Err(e),
        };
        let mut stack = vec![first];
        loop {
            let depth = stack.len();
            let Some(top) = stack.last_mut() else { return Ok(()) };
            if let Some(i) = top.pending() {
                if let Some(frame) = self.decide(top, i, depth, budget)? {
                    stack.push(frame);
                }
                continue;
            }
            // Every entry of `top` is decided: split it, or leave it to its parent whole.
            let Some(frame) = stack.pop() else { return Ok(()) };
            let is_root = stack.is_empty();
            let hidden_beneath =
                frame.hidden_beneath || self.beneath(&frame.path, Some(Carve::Hidden));
            let split = frame.carved_beneath
                || self.beneath(&frame.path, None)
                || (self.guarded && is_root);
            if split {
                self.split(&frame, hidden_beneath)?;
            } else if is_root {
                self.sink.grant(frame.fd()?, &frame.path, Level::Whole, true)?;
            }
            if let Some(parent) = stack.last_mut() {
                let i = parent.next - 1;
                if !split {
                    // Left to its parent whole: with the tree's rights, or read-only when it
                    // is the top of a read-only carve examined for a hidden path.
                    parent.entries[i].fate = if frame.read_only && !parent.read_only {
                        Fate::Carved(Carve::ReadOnly)
                    } else {
                        Fate::Whole
                    };
                }
                parent.carved_beneath |= split;
                parent.hidden_beneath |= hidden_beneath && split;
            }
        }
    }

    /// Decides entry `i` of `top`: carved out, left whole, or examined below, in which case
    /// its frame is returned, to be walked next.
    fn decide(
        &self,
        top: &mut Frame,
        i: usize,
        depth: usize,
        budget: &mut Budget,
    ) -> Result<Option<Frame>, GrantError> {
        let dirfd = top.dir.fd().map_err(|e| GrantError::List(top.path.clone(), e.into()))?;
        let entry = &mut top.entries[i];
        // The carve of this entry, if any: by resolved path (only looked at where a carved
        // path lies beneath this directory), and (writable trees) by name.
        let path = (top.near || entry.kind == Kind::Dir).then(|| top.path.join(&entry.name));
        let by_path = match &path {
            Some(path) if top.near => {
                self.relevant.iter().filter(|(p, _)| p == path).map(|(_, c)| *c).max()
            }
            _ => None,
        };
        let by_name = (self.writes && self.carved.name_matches(entry.name.as_bytes()))
            .then_some(Carve::ReadOnly);
        let carve = by_path.max(by_name);
        // A read-only carve with a hidden path beneath it (`~/.config` and `~/.config/gh`)
        // is examined below as read-only, so that the hidden path is carved out of it too:
        // granting it read-only whole would make the secret readable.
        let read_only_above_hidden = carve == Some(Carve::ReadOnly)
            && entry.kind == Kind::Dir
            && path.as_ref().is_some_and(|p| self.beneath(p, Some(Carve::Hidden)));
        if let Some(c) = carve.filter(|_| !read_only_above_hidden) {
            if self.writes {
                budget.census.record(top.dev, entry.ino);
            }
            entry.fate = Fate::Carved(c);
            top.carved_beneath = true;
            top.hidden_beneath |= c == Carve::Hidden;
            return Ok(None);
        }
        let Some(path) = path.filter(|_| entry.kind == Kind::Dir) else { return Ok(None) };
        let read_only = top.read_only || read_only_above_hidden;
        let descend = if read_only {
            // Nothing beneath is writable: only the way to a hidden path matters.
            read_only_above_hidden || (top.near && self.beneath(&path, Some(Carve::Hidden)))
        } else {
            self.walk_names || (top.near && self.beneath(&path, None))
        };
        if !descend {
            return Ok(None);
        }
        if read_only_above_hidden {
            if self.writes {
                budget.census.record(top.dev, entry.ino);
            }
            // Whether split or not, the entry is carved out of the tree's rights.
            top.carved_beneath = true;
        }
        // Examined below: listed, or, when that cannot be done (too deep to hold a
        // descriptor per level, not listable by this user, a listing that fails part way),
        // kept out of the writable grant (read-only), or out of reach altogether when a
        // secret may be beneath. Never granted unexamined.
        let listed = if depth >= MAX_DEPTH {
            Err(())
        } else {
            match open_dir(dirfd, &entry.name) {
                Ok(None) => {
                    // Gone meanwhile: it grants nothing.
                    entry.fate = Fate::Gone;
                    return Ok(None);
                }
                Ok(Some(child)) => {
                    let dev = same_object(&child, entry.ino, top.dev, &path)?;
                    match Frame::list(child, dev, path.clone(), self.root, budget) {
                        Ok(mut frame) => {
                            frame.near = self.beneath(&frame.path, None);
                            frame.read_only = read_only;
                            Ok(frame)
                        }
                        Err(GrantError::List(..)) => Err(()),
                        Err(e) => return Err(e),
                    }
                }
                Err(_) => Err(()),
            }
        };
        match listed {
            Ok(frame) => {
                entry.fate = Fate::Split; // provisional: Whole again if nothing is carved
                Ok(Some(frame))
            }
            Err(()) => {
                if self.writes {
                    budget.census.record(top.dev, entry.ino);
                }
                let c = if self.beneath(&path, Some(Carve::Hidden)) {
                    Carve::Hidden
                } else {
                    Carve::ReadOnly
                };
                entry.fate = Fate::Carved(c);
                top.carved_beneath = true;
                top.hidden_beneath |= c == Carve::Hidden;
                Ok(None)
            }
        }
    }

    /// Grants `frame` entry by entry: the directory itself readable (only listable when a
    /// hidden path is beneath it), each entry left whole with the grant's rights (read rights
    /// inside a read-only carve), each carved read-only with its read rights; split entries get nothing here (their own
    /// frame granted them), hidden ones are handed to [`Grants::hide`].
    fn split(&mut self, frame: &Frame, hidden_beneath: bool) -> Result<(), GrantError> {
        let own = if hidden_beneath { Level::List } else { Level::Read };
        self.sink.grant(frame.fd()?, &frame.path, own, true)?;
        for entry in &frame.entries {
            let level = match entry.fate {
                Fate::Whole if entry.kind == Kind::Symlink => continue,
                Fate::Whole if frame.read_only => Level::Read,
                Fate::Whole => Level::Whole,
                Fate::Carved(Carve::ReadOnly) => Level::Read,
                Fate::Carved(Carve::Hidden) if entry.kind != Kind::Symlink => {
                    let dir = entry.kind == Kind::Dir;
                    self.sink.hide(&frame.path.join(&entry.name), dir)?;
                    continue;
                }
                Fate::Carved(Carve::Hidden) | Fate::Split | Fate::Gone => continue,
            };
            let path = frame.path.join(&entry.name);
            let Some(fd) = open_path(frame.fd()?, &entry.name)? else { continue };
            same_object(&fd, entry.ino, frame.dev, &path)?;
            let dir = entry.kind == Kind::Dir;
            self.sink.grant(fd.as_fd(), &path, level, dir)?;
            if entry.fate == Fate::Carved(Carve::ReadOnly) {
                self.sink.read_only(fd.as_fd(), &path, dir)?;
            }
        }
        Ok(())
    }
}

/// A tree whose top must be examined but cannot be listed: read-only, or nothing when a
/// hidden path is beneath it. A writable one is counted in the census of `budget`.
fn unexamined_root(
    sink: &mut impl Grants,
    root: &Path,
    relevant: &[(&Path, Carve)],
    budget: Option<&mut Budget>,
) -> Result<(), GrantError> {
    let Some(fd) = open_path(CWD, root)? else { return Ok(()) };
    if let (Some(budget), Ok(st)) = (budget, rustix::fs::fstat(&fd)) {
        budget.census.record(st.st_dev, st.st_ino);
    }
    if relevant.iter().any(|(_, c)| *c == Carve::Hidden) {
        return Ok(());
    }
    sink.grant(fd.as_fd(), root, Level::Read, true)
}

/// A directory being examined, with its entries.
struct Frame {
    /// A carved path lies beneath this directory: its entries' paths are looked at.
    near: bool,
    path: PathBuf,
    dir: Dir,
    dev: u64,
    entries: Vec<Entry>,
    /// Index of the next entry to decide.
    next: usize,
    /// Something beneath an entry is carved out: this directory is split.
    carved_beneath: bool,
    /// A hidden path is beneath: this directory gets listing rights only.
    hidden_beneath: bool,
    /// Inside a read-only carve (examined only for the hidden paths beneath it): entries
    /// left whole get read rights, not the tree's.
    read_only: bool,
}

impl Frame {
    /// Lists the directory `dir` (on device `dev`): the stream takes the descriptor, which
    /// then serves the opens and rules of its entries (neither depends on the stream's
    /// position), so a directory costs one open, not two.
    fn list(
        dir: OwnedFd,
        dev: u64,
        path: PathBuf,
        tree: &Path,
        budget: &mut Budget,
    ) -> Result<Self, GrantError> {
        let mut entries = Vec::new();
        let mut listing = Dir::new(dir).map_err(|e| GrantError::List(path.clone(), e.into()))?;
        let mut unknown: Vec<usize> = Vec::new();
        for item in &mut listing {
            let item = item.map_err(|e| GrantError::List(path.clone(), e.into()))?;
            let name = item.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            budget.take(tree)?;
            let name = OsString::from(std::ffi::OsStr::from_bytes(name));
            let kind = match item.file_type() {
                FileType::Directory => Kind::Dir,
                FileType::Symlink => Kind::Symlink,
                FileType::Unknown => {
                    unknown.push(entries.len());
                    Kind::Other
                }
                _ => Kind::Other,
            };
            entries.push(Entry { name, ino: item.ino(), kind, fate: Fate::Whole });
        }
        let mut frame = Self {
            near: false,
            path,
            dir: listing,
            dev,
            entries,
            next: 0,
            carved_beneath: false,
            hidden_beneath: false,
            read_only: false,
        };
        // Entries whose type the listing did not give are asked, once it is done.
        let fd = frame.fd()?;
        let kinds: Vec<(usize, Kind)> =
            unknown.into_iter().map(|i| (i, kind_at(fd, &frame.entries[i].name))).collect();
        for (i, k) in kinds {
            frame.entries[i].kind = k;
        }
        Ok(frame)
    }

    /// The directory's descriptor: the listing's own (opens relative to it and rules do
    /// not depend on the listing's position).
    fn fd(&self) -> Result<BorrowedFd<'_>, GrantError> {
        self.dir.fd().map_err(|e| GrantError::List(self.path.clone(), e.into()))
    }

    /// The index of the next entry to decide, advancing past it.
    fn pending(&mut self) -> Option<usize> {
        let i = self.next;
        if i < self.entries.len() {
            self.next += 1;
            Some(i)
        } else {
            None
        }
    }
}

struct Entry {
    name: OsString,
    ino: u64,
    kind: Kind,
    fate: Fate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    Symlink,
    Other,
}

/// What becomes of an entry of a split directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Granted whole with the tree's rights.
    Whole,
    /// Carved out.
    Carved(Carve),
    /// Split itself: its own rules were made when it was examined.
    Split,
    /// Removed while being examined: grants nothing.
    Gone,
}

/// What `name` in `dir` is, when the listing did not say.
fn kind_at(dir: BorrowedFd<'_>, name: &OsString) -> Kind {
    match rustix::fs::statat(dir, name.as_os_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        },
        Err(_) => Kind::Other,
    }
}

/// Opens the directory `name` of `dir` for listing, never through a link; `None` if it is
/// gone.
fn open_dir(dir: BorrowedFd<'_>, name: &OsString) -> rustix::io::Result<Option<OwnedFd>> {
    match rustix::fs::openat2(
        dir,
        name.as_os_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An `O_PATH` descriptor of `name` in `dir` (or of the absolute path `name` when `dir` is
/// the current directory), never through a link: `None` when it is gone or is a link itself.
fn open_path<P: rustix::path::Arg>(
    dir: BorrowedFd<'_>,
    name: P,
) -> Result<Option<OwnedFd>, GrantError> {
    match rustix::fs::openat2(
        dir,
        name,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(_) => Ok(None),
    }
}

/// Fails when `fd` is not the entry the listing showed (inode `ino`), unless it is a mount
/// point (another device than its parent's `dev`), whose listed inode is the one under the
/// mount. Returns its device.
fn same_object(fd: &OwnedFd, ino: u64, dev: u64, path: &Path) -> Result<u64, GrantError> {
    match rustix::fs::fstat(fd) {
        Ok(st) if st.st_ino == ino || st.st_dev != dev => Ok(st.st_dev),
        _ => Err(GrantError::Changed(path.to_path_buf())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landlock::Rules;
    use landlock::{Access, AccessFs, Ruleset, RulesetAttr, ABI};

    fn ruleset() -> OwnedFd {
        let created = Ruleset::default()
            .handle_access(AccessFs::from_all(ABI::V6))
            .unwrap()
            .create()
            .unwrap();
        let fd: Option<OwnedFd> = created.into();
        fd.unwrap()
    }

    #[test]
    fn a_writable_tree_over_the_budget_is_refused_not_granted_unexamined() {
        if crate::landlock::kernel_abi() < crate::landlock::FULL_ABI {
            panic!("this host has no Landlock ABI 6: the grant walk cannot be tested here");
        }
        let t = tempfile::tempdir().unwrap();
        for i in 0..30 {
            std::fs::create_dir(t.path().join(format!("d{i}"))).unwrap();
        }
        let names = [".git".to_string()];
        let carved = Carved::new(&[], &names);
        let write = AccessFs::from_all(ABI::V6) & !AccessFs::Refer;
        let rs = ruleset();
        let mut rules = Rules::new(&rs, write);
        let r = grant_tree(&mut rules, t.path(), true, false, &carved, &mut Budget::new(10));
        assert!(matches!(r, Err(GrantError::TooLarge { limit: 10, .. })), "{r:?}");
        grant_tree(&mut rules, t.path(), true, false, &carved, &mut Budget::new(100)).unwrap();
        // A read tree is not walked for names: the budget does not apply.
        let mut rules = Rules::new(&rs, AccessFs::from_read(ABI::V6));
        grant_tree(&mut rules, t.path(), false, false, &carved, &mut Budget::new(0)).unwrap();
    }

    #[test]
    fn a_tree_deeper_than_the_walk_goes_is_kept_read_only_not_granted() {
        if crate::landlock::kernel_abi() < crate::landlock::FULL_ABI {
            panic!("this host has no Landlock ABI 6: the grant walk cannot be tested here");
        }
        // Far deeper than MAX_DEPTH, walked on a small stack: the walk keeps its frames on
        // the heap and stops at MAX_DEPTH (the rest is carved out read-only).
        let t = tempfile::tempdir().unwrap();
        let depth = 1_000;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        let mut dir = rustix::fs::open(t.path(), flags, Mode::empty()).unwrap();
        for _ in 0..depth {
            rustix::fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o700)).unwrap();
            dir = rustix::fs::openat(&dir, "d", flags, Mode::empty()).unwrap();
        }
        rustix::fs::mkdirat(&dir, ".git", Mode::from_raw_mode(0o700)).unwrap();
        let root = t.path().to_path_buf();
        let walk = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                let names = [".git".to_string()];
                let carved = Carved::new(&[], &names);
                let write = AccessFs::from_all(ABI::V6) & !AccessFs::Refer;
                let rs = ruleset();
                let mut rules = Rules::new(&rs, write);
                grant_tree(&mut rules, &root, true, false, &carved, &mut Budget::new(100_000))
                    .map_err(|e| e.to_string())
            })
            .unwrap();
        let result = walk.join().expect("no stack overflow");
        remove_deep(t.path());
        result.unwrap();
    }

    /// Removes a tree too deep for `std::fs::remove_dir_all` (which recurses).
    fn remove_deep(root: &Path) {
        let ok = std::process::Command::new("rm").arg("-rf").arg(root).status().unwrap();
        assert!(ok.success());
    }
}
