//! Printing helpers: tables, problem lists, and escaping of text a skill controls.

use serde_json::Value;
use skillbox_skills::audit_log::text::{escape_controls, Lines};
use skillbox_skills::Registry;

/// Escapes control characters other than newline and tab, so that a skill's output or
/// description cannot move the cursor, retitle the terminal or hide text (ANSI/OSC escapes).
pub(crate) fn terminal_safe(s: &str) -> String {
    escape_controls(s, Lines::Keep)
}

/// Escapes every control character, newline and tab included: for text that must stay on
/// one line, such as a file name (which may hold an escape sequence or a newline).
pub(crate) fn one_line_safe(s: &str) -> String {
    escape_controls(s, Lines::Escape)
}

/// Prints load problems and shadowing warnings to stderr, one line each.
pub(crate) fn print_problems(reg: &Registry, with_shadowed: bool) {
    for d in reg.problems() {
        eprintln!("skillbox: error: {d}");
    }
    if with_shadowed {
        for s in reg.shadowed() {
            // The message holds two file names, which come from the skill directories.
            eprintln!("skillbox: warning: {}", one_line_safe(&s.to_string()));
        }
        warn_long_tool_names(reg);
        for s in reg.skills() {
            warn_typos(s);
        }
    }
}

/// Warns of the keys of `skill`'s file that look like typos of the format's keys (kept and
/// ignored, like other tools' keys).
pub(crate) fn warn_typos(skill: &skillbox_skills::LoadedSkill) {
    for w in skill.def.typo_warnings() {
        eprintln!(
            "skillbox: warning: {}: {}",
            one_line_safe(&skillbox_skills::audit_log::text::path(&skill.path)),
            w
        );
    }
}

/// Warns of each skill whose name makes an MCP tool name over the 64 characters agents
/// accept (`mcp__skillbox__` and the name): such a skill loads and runs, but an agent may
/// refuse or cut its tool.
pub(crate) fn warn_long_tool_names(reg: &Registry) {
    use skillbox_skills::scaffold::MCP_FRIENDLY_NAME_LEN;
    for s in reg.skills().filter(|s| s.def.name.len() > MCP_FRIENDLY_NAME_LEN) {
        eprintln!(
            "skillbox: warning: skill `{}` ({}): its name has {} characters; agents cap a tool \
             name at 64 with their prefix (mcp__skillbox__), so keep it to {MCP_FRIENDLY_NAME_LEN}",
            s.def.name,
            one_line_safe(&skillbox_skills::audit_log::text::path(&s.path)),
            s.def.name.len()
        );
    }
}

/// A plain left-aligned table.
pub(crate) fn table(headers: &[&str; 5], rows: &[[String; 5]]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r.iter()).take(4) {
            *w = (*w).max(c.chars().count());
        }
    }
    // The whole table is printed at once: one write instead of one per line.
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i < 4 {
                s.push_str(&format!("{:<w$}  ", c, w = widths[i]));
            } else {
                s.push_str(c);
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    print!("{out}");
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => terminal_safe(x),
        Value::Null => "-".into(),
        other => terminal_safe(&other.to_string()),
    }
}

/// Human-readable `info`.
pub(crate) fn info_text(v: &Value, denial: Option<String>) {
    println!("{} ({}, {} skill)", s(&v["name"]), s(&v["type"]), s(&v["source"]));
    println!("  file:        {}", s(&v["path"]));
    if let Some(d) = v["description"].as_str().filter(|d| !d.is_empty()) {
        println!("  description: {}", terminal_safe(d));
    }
    if !v["version"].is_null() {
        println!("  version:     {}", s(&v["version"]));
    }
    if v["aliases"].as_array().is_some_and(|a| !a.is_empty()) {
        println!("  aliases:     {}", s(&v["aliases"]));
    }
    if !v["command"].is_null() {
        println!("  command:     {} {}", s(&v["command"]), s(&v["args"]));
    }
    if let Some(params) = v["parameters"].as_array() {
        for p in params {
            let req = if p["required"].as_bool() == Some(true) { "required" } else { "optional" };
            let mut line = format!("  parameter:   {} ({}, {})", s(&p["name"]), s(&p["type"]), req);
            if let Some(values) = p["values"].as_array() {
                let values: Vec<String> = values.iter().map(s).collect();
                line.push_str(&format!(", one of: {}", values.join(", ")));
            }
            if let Some(d) = p["description"].as_str().filter(|d| !d.is_empty()) {
                line.push_str(&format!(": {}", terminal_safe(d)));
            }
            println!("{line}");
        }
    }
    if let Some(a) = v["agent_skill"].as_object() {
        println!(
            "  agent skill: {} (instructions: `skillbox info {} --instructions`)",
            s(&v["agent_skill"]["dir"]),
            s(&v["agent_skill"]["name"])
        );
        for key in ["license", "compatibility", "allowed_tools"] {
            if let Some(x) = a.get(key).and_then(Value::as_str) {
                println!("  {:<12} {}", format!("{key}:"), terminal_safe(x));
            }
        }
        if let Some(m) = a.get("metadata").filter(|m| !m.is_null()) {
            println!("  metadata:    {}", s(m));
        }
        if let Some(list) = a.get("scripts").and_then(Value::as_array).filter(|l| !l.is_empty()) {
            let names: Vec<String> = list.iter().map(s).collect();
            println!("  scripts:     {}", names.join(", "));
        }
        println!("  permissions: from {}", s(&v["agent_skill"]["permissions_from"]));
    }
    println!("  declared:    {}", s(&v["declared"]["permissions"]));
    if let Some(list) = v["declared"]["permissions"]["allowed_domains"].as_array() {
        let hosts: Vec<String> = list.iter().map(s).collect();
        let http = v["declared"]["permissions"]["plain_http"].as_bool() == Some(true);
        println!(
            "  domains:     {} (ports: 443{} unless written; the only hosts a run reaches, \
             through skillbox's egress proxy)",
            hosts.join(", "),
            if http { " and 80" } else { "" }
        );
    }
    println!("  trust level: {} ({})", s(&v["trust_level"]), s(&v["trust_origin"]));
    if !v["trust_lapsed"].is_null() {
        println!(
            "  LAPSED:      a grant of {} was made for content {}; the content is now {}",
            s(&v["trust_lapsed"]["grant"]["level"]),
            s(&v["trust_lapsed"]["grant"]["digest"]),
            s(&v["trust_lapsed"]["digest_now"])
        );
    }
    match denial {
        Some(d) => println!("  DENIED:      {}", terminal_safe(&d)),
        None => {
            let g = &v["grant"];
            println!("  reads:       {} (and system directories)", s(&g["file_read"]));
            println!("  writes:      {} (and a private temp dir)", s(&g["file_write"]));
            println!("  network:     {}", s(&g["network"]));
            println!("  processes:   {}", s(&g["process_spawn"]));
            println!("  limits:      {}", s(&g["limits"]));
        }
    }
    if let Some(list) = v["enforcement"].as_array() {
        let (on, off): (Vec<&Value>, Vec<&Value>) =
            list.iter().partition(|e| e["enforced"].as_bool() == Some(true));
        let names =
            |l: &[&Value]| l.iter().map(|e| s(&e["mechanism"])).collect::<Vec<_>>().join(", ");
        // A line only when it has something to name.
        if !on.is_empty() {
            println!("  enforced:    {}", names(&on));
        }
        if !off.is_empty() {
            println!("  NOT enforced (declared only): {}", names(&off));
        }
    }
}

/// `doctor`'s list of the network hosts skills declare (`allowed_domains`), if any.
pub(crate) fn egress_text(skills: &[Value]) {
    if skills.is_empty() {
        return;
    }
    println!();
    let enforced = skills.iter().all(|e| e["enforced"].as_bool() == Some(true));
    println!(
        "{}",
        if enforced {
            "Network hosts of skills (allowed_domains), the only ones their runs reach through \
             skillbox's egress proxy:"
        } else {
            "Network hosts of skills (allowed_domains): NOT enforced on this host (runs get no \
             network namespace of their own: no user namespaces), so a networked run is \
             refused unless weaker isolation is asked for, and then reaches any host on 443:"
        }
    );
    for e in skills {
        let hosts: Vec<String> =
            e["allowed_domains"].as_array().map(|l| l.iter().map(s).collect()).unwrap_or_default();
        let http = if e["plain_http"].as_bool() == Some(true) { " (http)" } else { "" };
        println!("  {}{http}: {}", s(&e["skill"]), hosts.join(", "));
    }
}

/// Human-readable `doctor`.
pub(crate) fn doctor_text(r: &skillbox_skills::HostReport) {
    println!("kernel {}, recognised as: {}", r.kernel, r.profile);
    if let Some(sim) = &r.simulated_host {
        println!("SIMULATED HOST: {sim} (a test setting; this is not what the host offers)");
    }
    println!();
    for m in &r.mechanisms {
        let mark = if m.available { "ok     " } else { "absent " };
        println!("  {mark} {:<16} {}", m.name, m.found);
        println!("          {:<16} used for: {}", "", m.used_for);
    }
    for f in &r.findings {
        println!();
        println!("{} here: {}", f.mechanism, f.found);
        println!("  costs: {}", f.costs);
        println!("  fix:   {}", f.fix);
    }
    for l in &r.levels {
        println!();
        println!("{}:", l.trust_level);
        match &l.enforcement {
            Ok(entries) => {
                for e in entries {
                    println!(
                        "  {:<13} {:<16} {:<26} {}",
                        e.state.as_str(),
                        e.mechanism,
                        e.via,
                        e.detail
                    );
                }
            }
            Err(e) => println!("  REFUSED: {e}"),
        }
    }
    println!();
    if r.ready() {
        println!(
            "This host keeps every guarantee at every trust level, each by the mechanism named."
        );
    } else {
        println!(
            "At a level marked REFUSED, a guarantee has no mechanism on this host: `skillbox \
             run` refuses to start such a skill unless --allow-weaker-isolation is given for \
             that run (which is recorded). The fix is above."
        );
    }
}

/// Whether messages on stderr get colour: stderr is a terminal, `NO_COLOR` is unset or empty
/// (<https://no-color.org>), and `TERM` is not `dumb`. Pipes, files and agents get plain text.
pub(crate) fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    !no_color && !dumb && std::io::stderr().is_terminal()
}

/// A colour for [`paint`].
#[derive(Clone, Copy)]
pub(crate) enum Colour {
    /// Success.
    Green,
    /// A failure or refusal.
    Red,
    /// A warning.
    Yellow,
}

/// `s` in `colour` (bold) when `on`, else unchanged. `s` must already be terminal-safe: the
/// only escape sequences written are these.
pub(crate) fn paint(on: bool, colour: Colour, s: &str) -> String {
    if !on {
        return s.to_string();
    }
    let code = match colour {
        Colour::Green => "32",
        Colour::Red => "31",
        Colour::Yellow => "33",
    };
    format!("\u{1b}[1;{code}m{s}\u{1b}[0m")
}

/// Shows a run's output at a terminal as it is read, made safe for the terminal as
/// `terminal_safe` makes the captured output (or raw with `--raw`). A chunk can end inside a
/// UTF-8 character: the incomplete end waits for the next chunk of its stream.
pub(crate) struct LiveOutput {
    state: std::sync::Arc<std::sync::Mutex<LiveState>>,
    raw: bool,
}

#[derive(Default)]
struct LiveState {
    /// Bytes of each stream (stdout, stderr) not yet shown: an incomplete character.
    pending: [Vec<u8>; 2],
    /// Whether anything was shown, and whether each stream's last byte shown was a newline.
    shown: bool,
    ends_line: [bool; 2],
}

impl LiveOutput {
    pub(crate) fn new(raw: bool) -> Self {
        let state = LiveState { ends_line: [true, true], ..LiveState::default() };
        Self { state: std::sync::Arc::new(std::sync::Mutex::new(state)), raw }
    }

    /// The observer to hand to the run.
    pub(crate) fn observer(&self) -> skillbox_skills::OutputObserver {
        let state = self.state.clone();
        let raw = self.raw;
        skillbox_skills::OutputObserver::new(move |stream, chunk| {
            let i = usize::from(stream == skillbox_skills::OutputStream::Stderr);
            let Ok(mut st) = state.lock() else { return };
            st.shown = true;
            let text: Vec<u8> = if raw {
                chunk.to_vec()
            } else {
                st.pending[i].extend_from_slice(chunk);
                let bytes = std::mem::take(&mut st.pending[i]);
                let (shown, rest) = complete_utf8(&bytes);
                st.pending[i] = rest.to_vec();
                terminal_safe(&String::from_utf8_lossy(shown)).into_bytes()
            };
            if let Some(last) = text.last() {
                st.ends_line[i] = *last == b'\n';
            }
            write_to(i, &text);
        })
    }

    /// Shows what is left and ends each stream that was shown on a new line, so that the
    /// status line stands on its own; returns whether anything was shown.
    pub(crate) fn finish(self) -> bool {
        let Ok(mut st) = self.state.lock() else { return false };
        for i in 0..2 {
            let rest = std::mem::take(&mut st.pending[i]);
            if !rest.is_empty() {
                write_to(i, terminal_safe(&String::from_utf8_lossy(&rest)).as_bytes());
                st.ends_line[i] = false;
            }
            if st.shown && !st.ends_line[i] {
                write_to(i, b"\n");
            }
        }
        st.shown
    }
}

/// Writes to stdout (`0`) or stderr (`1`) at once; a closed terminal is not an error here.
fn write_to(i: usize, bytes: &[u8]) {
    use std::io::Write;
    let _ = if i == 0 {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes).and_then(|()| out.flush())
    } else {
        std::io::stderr().lock().write_all(bytes)
    };
}

/// `bytes` split into what can be shown now and an incomplete UTF-8 character at its end
/// (at most 3 bytes) that must wait for the next chunk. Invalid bytes are shown (replaced).
fn complete_utf8(bytes: &[u8]) -> (&[u8], &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(_) => (bytes, &[]),
        Err(e) if e.error_len().is_none() => bytes.split_at(e.valid_up_to()),
        Err(_) => (bytes, &[]),
    }
}
