//! What no skill may touch whatever it declares: the one place that decides it.
//!
//! Two sets, both decided on resolved paths (links followed), whatever the workspace is, so
//! that a workspace of `$HOME` or `/` narrows what a run gets instead of opening it:
//!
//! * **Secrets**: keys and credentials in the user's home ([`HOME_SECRETS`]), the secrets of
//!   `/etc` (hidden by the sandbox itself), and skillbox's own home and audit log. No grant
//!   reaches one by *containing* it, at any level (a grant of `~` or `/` is carved around
//!   them). Below `system-trusted` no declaration may *name* one either; at `system-trusted` a
//!   declaration that names a secret is honoured, except that skillbox's own files are never
//!   writable.
//! * **Protected entries**: every file an agent, editor or tool acts on with the person's
//!   rights without the person asking for that file's code to run ([`PROTECTED_NAMES`]).
//!   They stay read-only wherever they occur beneath a writable tree, at any depth, at every
//!   level, whether a declaration names them or contains them.
//!
//! The membership rule of each list is written above it; the lists live only here (the
//! sandbox enforces whatever list it is given).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Names of protected entries, with why each is protected.
///
/// The rule: an entry is protected when a tool or an agent acts on it with the person's rights
/// without the person asking for that entry's code to run, so that a skill planting or
/// editing it gets code run later, outside its confinement. That is: version-control
/// metadata and hooks (and hook managers), skill and agent directories, agents' MCP server
/// lists and instruction files, editor, devcontainer and CI task definitions, directory
/// hooks that run on `cd`, shell and session start-up files, and the user's configuration and
/// program directories (`~/.config` holds autostart entries, systemd user units, git's
/// config; `~/.local` holds `~/.local/bin`, which is on `PATH`, and Python's user
/// site-packages, which every `python3` imports from).
///
/// Not protected: project files that run when the person runs a project tool
/// (`package.json` scripts, a `Makefile`): they are the project's code, reviewed like any
/// change.
///
/// Names are compared without regard to ASCII case (a case-folding file system finds `.git`
/// as `.GIT`).
pub const PROTECTED_NAMES: &[(&str, &str)] = &[
    (".git", "version control: config (core.fsmonitor, aliases) and hooks run on git commands"),
    (".hg", "version control: hgrc hooks run on hg commands"),
    (".gitmodules", "version control: submodule URLs and update commands"),
    (".gitattributes", "version control: filter and diff drivers run on checkout and diff"),
    (".gitconfig", "version control: the user's git config (core.fsmonitor, aliases)"),
    (".husky", "git hooks managed by husky run on commit"),
    (".pre-commit-config.yaml", "hooks of the pre-commit framework run on commit"),
    ("lefthook.yml", "hooks of lefthook run on commit"),
    (".lefthook.yml", "hooks of lefthook run on commit"),
    (".q-skills", "skill directory: its skills are offered to agents"),
    (".skillbox", "skill directory: its skills are offered to agents"),
    (".agents", "Agent Skills directory: its skills are offered to agents"),
    (".claude", "Claude Code: settings, hooks, skills and commands"),
    (".claude.json", "Claude Code: MCP servers it starts"),
    (".mcp.json", "MCP servers agents start for the project"),
    (".codex", "Codex: configuration and MCP servers"),
    (".cursor", "Cursor: MCP servers and rules"),
    (".amazonq", "Amazon Q Developer CLI: agents and MCP servers"),
    (".continue", "Continue: configuration and MCP servers"),
    (".windsurf", "Windsurf: rules and workflows"),
    (".codeium", "Windsurf: MCP server configuration"),
    (".zed", "Zed: settings, tasks and context servers"),
    (".gemini", "Gemini CLI: settings and MCP servers"),
    ("AGENTS.md", "instructions agents read at the start of every session"),
    ("CLAUDE.md", "instructions Claude Code reads at the start of every session"),
    ("GEMINI.md", "instructions Gemini CLI reads at the start of every session"),
    (".cursorrules", "instructions Cursor reads"),
    (".windsurfrules", "instructions Windsurf reads"),
    (".clinerules", "instructions Cline reads"),
    (".vscode", "editor: tasks run on folder open, extensions, MCP servers"),
    (".idea", "editor: run configurations and startup tasks"),
    (".devcontainer", "container definition: its commands run when the project is opened"),
    (".github", "CI: workflows run with the repository's secrets on push"),
    (".gitlab", "CI: templates the pipeline includes"),
    (".gitlab-ci.yml", "CI: the pipeline runs with the repository's secrets on push"),
    (".circleci", "CI: the pipeline runs with the repository's secrets on push"),
    (".envrc", "direnv: runs when a shell enters the directory"),
    (".mise.toml", "mise: hooks run when a shell enters the directory"),
    ("mise.toml", "mise: hooks run when a shell enters the directory"),
    (".bashrc", "shell start-up"),
    (".bash_profile", "shell start-up"),
    (".bash_login", "shell start-up"),
    (".bash_logout", "shell exit"),
    (".bash_aliases", "shell start-up (sourced by .bashrc)"),
    (".profile", "shell and session start-up"),
    (".zshrc", "shell start-up"),
    (".zshenv", "shell start-up"),
    (".zprofile", "shell start-up"),
    (".zlogin", "shell start-up"),
    (".zlogout", "shell exit"),
    (".cshrc", "shell start-up"),
    (".tcshrc", "shell start-up"),
    (".kshrc", "shell start-up"),
    (".xprofile", "graphical session start-up"),
    (".xinitrc", "graphical session start-up"),
    (".xsession", "graphical session start-up"),
    (".xsessionrc", "graphical session start-up"),
    (".pam_environment", "session environment (LD_PRELOAD, PATH)"),
    (".vimrc", "editor start-up"),
    (".vim", "editor plugins run at start-up"),
    (".emacs", "editor start-up"),
    (".emacs.d", "editor start-up and packages"),
    (".config", "the user's configuration: autostart, systemd user units, git, editors, shells"),
    (".local", "~/.local/bin is on PATH; Python's user site-packages are imported by python3"),
];

/// Keys and credentials in a home directory, relative to it: what a tool reads to act as the
/// user. Hidden from every run below `system-trusted`, and from every grant that merely
/// contains them at any level.
pub const HOME_SECRETS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".config/op",
    ".config/doctl",
    ".config/github-copilot",
    ".config/google-chrome",
    ".config/chromium",
    ".config/BraveSoftware",
    ".mozilla",
    ".oci",
    ".terraform.d",
    ".vault-token",
    ".pgpass",
    ".my.cnf",
    ".boto",
    ".s3cfg",
    ".databrickscfg",
    ".fly",
    ".password-store",
    ".local/share/keyrings",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".gem/credentials",
    ".claude/.credentials.json",
    ".codex/auth.json",
    ".bash_history",
    ".zsh_history",
    ".python_history",
    ".psql_history",
    ".mysql_history",
];

/// Whether `name` is a protected entry's name.
pub fn is_protected_name(name: &OsStr) -> bool {
    let name = name.as_bytes();
    PROTECTED_NAMES.iter().any(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
}

/// The protected names, for the sandbox's policy.
pub fn protected_names() -> Vec<String> {
    PROTECTED_NAMES.iter().map(|(n, _)| n.to_string()).collect()
}

/// The first component of `path` below `base` (every component when `path` is not beneath
/// `base`) that is a protected entry's name.
pub(crate) fn protected_component<'a>(path: &'a Path, base: &Path) -> Option<&'a OsStr> {
    let below = path.strip_prefix(base).unwrap_or(path);
    below.iter().find(|c| is_protected_name(c))
}

/// What kind of path a run must not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HiddenKind {
    /// A key or credential: `system-trusted` may name it.
    Secret,
    /// skillbox's own home or audit log: never writable; `system-trusted` may read it by
    /// naming it.
    Skillbox,
}

/// A resolved path no grant reaches by containing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hidden {
    pub path: PathBuf,
    pub kind: HiddenKind,
}

/// The hidden paths of a run whose grants are `roots` (resolved): skillbox's own `reserved`
/// paths and the secrets of `homes`, resolved now (a link made since the last run is
/// followed). The secrets of the user's own homes are always resolved (one of them may be a
/// link into a granted tree: a dotfile manager's layout); another user's home (as root) only
/// when a grant contains it or lies in it, which keeps a run from stat-ing every account's
/// home.
pub(crate) fn hidden(reserved: &[PathBuf], homes: &Homes, roots: &[PathBuf]) -> Vec<Hidden> {
    let mut out = Vec::with_capacity(reserved.len() + 2 * HOME_SECRETS.len());
    // Reserved paths often share a directory (the audit log's files): it is resolved once.
    let mut parents: std::collections::HashMap<&Path, PathBuf> = Default::default();
    for r in reserved {
        let path = match (r.parent(), r.file_name()) {
            (Some(parent), Some(name)) => {
                let parent =
                    parents.entry(parent).or_insert_with(|| skillbox_sandbox::resolve(parent));
                skillbox_sandbox::resolve_beneath(parent, Path::new(name))
            }
            _ => skillbox_sandbox::resolve(r),
        };
        out.push(Hidden { path, kind: HiddenKind::Skillbox });
    }
    let related = |h: &Path| roots.iter().any(|r| h.starts_with(r) || r.starts_with(h));
    let own = homes.own.iter().map(|h| (skillbox_sandbox::resolve(h), true));
    // Other users' homes come resolved from `/etc/passwd`, once per process.
    let others = homes.others.iter().map(|h| (h.clone(), false));
    let mut seen: Vec<PathBuf> = Vec::new();
    for (home, own) in own.chain(others) {
        if seen.contains(&home) || !(own || related(&home)) {
            continue;
        }
        let mut listings = Listings::default();
        for s in HOME_SECRETS {
            let path = listings.resolve(&home, s);
            out.push(Hidden { path, kind: HiddenKind::Secret });
        }
        seen.push(home);
    }
    out
}

/// Directory listings taken once per run, to resolve a home's ~40 secrets with a listing of
/// the home (and of the few directories secrets lie in, such as `.config`) instead of an
/// `lstat` per secret: most secrets do not exist, and a listing tells which do, and which
/// are links (only those are followed, with `canonicalize`).
#[derive(Default)]
struct Listings(std::collections::HashMap<PathBuf, Option<Vec<Listed>>>);

/// One entry of a listing: its name, whether it is a directory, whether it is a link.
type Listed = (std::ffi::OsString, bool, bool);

impl Listings {
    /// `rel` beneath the resolved `base`, resolved as [`skillbox_sandbox::resolve_beneath`]
    /// would.
    fn resolve(&mut self, base: &Path, rel: &str) -> PathBuf {
        let mut dir = base.to_path_buf();
        let mut parts = rel.split('/').filter(|p| !p.is_empty());
        while let Some(name) = parts.next() {
            let listing = self.0.entry(dir.clone()).or_insert_with(|| list(&dir));
            let Some(listing) = listing else {
                // Cannot be listed: looked up entry by entry instead.
                let rest: PathBuf = std::iter::once(name).chain(parts).collect();
                return skillbox_sandbox::resolve_beneath(&dir, &rest);
            };
            let found = listing.iter().find(|(n, ..)| n == name).map(|(_, d, l)| (*d, *l));
            dir.push(name);
            match found {
                // Does not exist: nothing beneath it does either.
                None => {
                    dir.extend(parts);
                    return dir;
                }
                Some((_, true)) => {
                    if let Ok(target) = std::fs::canonicalize(&dir) {
                        dir = target;
                    }
                }
                Some((false, false)) => {
                    // A file: whatever follows it does not exist.
                    dir.extend(parts);
                    return dir;
                }
                Some((true, false)) => {}
            }
        }
        dir
    }
}

/// The entries of `dir`: name, is a directory, is a link (from the listing's types; an
/// entry of unknown type is asked with `lstat`).
fn list(dir: &Path) -> Option<Vec<Listed>> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .flatten()
            .map(|e| {
                let t = e.file_type().ok();
                let is_dir = t.is_some_and(|t| t.is_dir());
                let is_link = t.is_some_and(|t| t.is_symlink());
                (e.file_name(), is_dir, is_link)
            })
            .collect(),
    )
}

/// Home directories whose keys and credentials no run reaches.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Homes {
    /// The user's own: `HOME`, and the home of this user's entry in `/etc/passwd`.
    #[serde(serialize_with = "skillbox_audit::text::serde_path::many")]
    pub own: Vec<PathBuf>,
    /// As root, every other user's home in `/etc/passwd` (root can read them all),
    /// resolved.
    #[serde(serialize_with = "skillbox_audit::text::serde_path::many")]
    pub others: Vec<PathBuf>,
}

/// The home directories whose secrets are hidden (see [`Homes`]), with `HOME` as `vars`
/// gives it. Homes that are system directories (`/`, `/bin`, `/usr/...`, `/nonexistent`) or
/// do not exist are left out: they hold no user's keys, and splitting `/usr` around them
/// would cost a rule per entry.
pub fn homes(vars: impl Fn(&str) -> Option<std::ffi::OsString>) -> Homes {
    let mut h = passwd_homes().clone();
    if let Some(home) = vars("HOME").filter(|h| !h.is_empty()).map(PathBuf::from) {
        if !h.own.contains(&home) {
            h.own.insert(0, home);
        }
    }
    h.others.retain(|o| !h.own.contains(o));
    h
}

/// Homes from `/etc/passwd`, read once per process.
fn passwd_homes() -> &'static Homes {
    static HOMES: OnceLock<Homes> = OnceLock::new();
    HOMES.get_or_init(|| {
        let euid = rustix::process::geteuid().as_raw();
        let mut out = Homes::default();
        let Ok(text) = read_small("/etc/passwd") else { return out };
        let system =
            ["/bin", "/sbin", "/usr", "/lib", "/dev", "/proc", "/sys", "/run", "/nonexistent"];
        for line in text.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            let (Some(uid), Some(home)) = (fields.get(2), fields.get(5)) else { continue };
            let ours = uid.parse::<u32>().is_ok_and(|u| u == euid);
            if !(ours || euid == 0) {
                continue;
            }
            let home = PathBuf::from(home);
            if !home.is_absolute()
                || home == Path::new("/")
                || system.iter().any(|s| home.starts_with(s))
                || !home.is_dir()
            {
                continue;
            }
            let (list, home) = if ours {
                (&mut out.own, home)
            } else {
                (&mut out.others, skillbox_sandbox::resolve(&home))
            };
            if !list.contains(&home) {
                list.push(home);
            }
        }
        out
    })
}

fn read_small(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)?.take(4 * 1024 * 1024).read_to_string(&mut s)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_without_ascii_case_and_only_whole() {
        assert!(is_protected_name(OsStr::new(".git")));
        assert!(is_protected_name(OsStr::new(".GIT")));
        assert!(is_protected_name(OsStr::new("agents.md")));
        assert!(!is_protected_name(OsStr::new(".gitignore")));
        assert!(!is_protected_name(OsStr::new("git")));
        assert!(!is_protected_name(OsStr::new("src")));
    }

    #[test]
    fn the_component_below_the_base_decides() {
        let ws = Path::new("/home/u/.config/nvim");
        // The workspace's own place is the person's choice; what is below it counts.
        assert_eq!(protected_component(Path::new("/home/u/.config/nvim/lua"), ws), None);
        assert_eq!(
            protected_component(Path::new("/home/u/.config/nvim/.git/hooks"), ws),
            Some(OsStr::new(".git"))
        );
        // Outside the workspace, every component counts.
        assert_eq!(protected_component(Path::new("/srv/app/.git"), ws), Some(OsStr::new(".git")));
    }

    #[test]
    fn listings_resolve_secrets_as_lstat_would() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().canonicalize().unwrap();
        let elsewhere = home.join("store");
        std::fs::create_dir_all(elsewhere.join("gh")).unwrap();
        std::fs::create_dir_all(home.join(".config")).unwrap();
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".netrc"), "x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, home.join(".aws")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("gh"), home.join(".config/gh")).unwrap();
        let mut l = Listings::default();
        for s in HOME_SECRETS.iter().chain(&[".netrc/x", ".aws/credentials", "a/b/c"]) {
            assert_eq!(
                l.resolve(&home, s),
                skillbox_sandbox::resolve_beneath(&home, Path::new(s)),
                "{s}"
            );
        }
        assert_eq!(l.resolve(&home, ".aws"), elsewhere);
        assert_eq!(l.resolve(&home, ".config/gh"), elsewhere.join("gh"));
    }

    #[test]
    fn every_list_entry_is_unique() {
        let mut names: Vec<String> =
            PROTECTED_NAMES.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a protected name is listed twice");
        let mut secrets = HOME_SECRETS.to_vec();
        secrets.sort();
        let before = secrets.len();
        secrets.dedup();
        assert_eq!(before, secrets.len(), "a secret is listed twice");
    }
}
