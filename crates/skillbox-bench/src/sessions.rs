//! What a `code_session` call costs (issue 24): the first call of a session (the
//! interpreter started under the sandbox, with its driver, then the call) and a call in a
//! warm session, against the same code run by a fresh `code_inline`-style run
//! (`python3 -I -c CODE` as a skill), all through `SkillTool` at `user-verified` with the
//! audit log on, interleaved.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use skillbox_skills::{Sessions, SkillTool, Tool, TrustLevel};

use crate::stats::{fmt_ms, print_time_table, Samples};
use crate::Bench;

/// The session skill of the fixture.
pub(crate) const SESSION_SKILL: &str = "bench-session";
/// The same code as a fresh run each time.
pub(crate) const INLINE_SKILL: &str = "bench-inline";
/// What every variant runs.
pub(crate) const CODE: &str = "x = sum(range(1000))";

/// The sessions section.
pub(crate) fn sessions(b: &mut Bench) {
    println!("\n### code_session calls (issue 24)\n");
    let n = if b.quick { 30 } else { 200 };
    let mut rows = [
        Samples::new("fresh run: `python3 -I -c CODE` as a skill (baseline)"),
        Samples::new("session, first call: interpreter + driver started, then the call"),
        Samples::new("session, warm call: the same code in a live session"),
    ];
    let inline = b.fixture.tool(INLINE_SKILL, TrustLevel::UserVerified);
    let warm_table = Arc::new(Sessions::new());
    let warm = b.fixture.tool(SESSION_SKILL, TrustLevel::UserVerified).with_sessions(warm_table);
    let first = call(b, &warm, None).1;
    let id = first.expect("the warm session started");
    for i in 0..n {
        for k in 0..rows.len() {
            let j = (i + k) % rows.len();
            let d = match j {
                0 => inline_once(b, &inline),
                1 => {
                    let table = Arc::new(Sessions::new());
                    let tool = b
                        .fixture
                        .tool(SESSION_SKILL, TrustLevel::UserVerified)
                        .with_sessions(table.clone());
                    let (d, _) = call(b, &tool, None);
                    // Ended off the clock, as an owner going away would.
                    b.rt.block_on(async { table.close_all().await });
                    d
                }
                _ => call(b, &warm, Some(&id)).0,
            };
            rows[j].times.push(d);
        }
    }
    println!(
        "Each iteration runs the three variants once, in rotating order ({n} iterations), \
         through `SkillTool` at user-verified with the audit log on (a session call writes \
         the run's events and a `SessionCall` event; a first call also `SessionStarted`). \
         CODE is `{CODE}`. The first-call row closes its session after the clock stops."
    );
    print_time_table("Per-call cost of a code_session", &rows.each_ref(), 0);
    let (fresh, warm_ms) = (rows[0].median_ms(), rows[2].median_ms());
    println!(
        "\nA warm call costs {} against {} for a fresh run ({:.0}x less); a first call {}.",
        fmt_ms(warm_ms),
        fmt_ms(fresh),
        fresh / warm_ms.max(1e-9),
        fmt_ms(rows[1].median_ms())
    );
    b.verdicts.add(
        "a warm session call at most a tenth of a fresh interpreter run of the same code",
        format!("{} vs {}", fmt_ms(warm_ms), fmt_ms(fresh)),
        warm_ms * 10.0 <= fresh,
    );
}

/// One call of `tool` (in `session` when given): its time and the session id.
fn call(b: &Bench, tool: &SkillTool, session: Option<&str>) -> (Duration, Option<String>) {
    let mut input = json!({ "code": CODE });
    if let Some(id) = session {
        input["session_id"] = json!(id);
    }
    let t = Instant::now();
    let r = b.rt.block_on(tool.execute(&input));
    let d = t.elapsed();
    assert!(r.is_success(), "{:?}", r.message);
    (d, r.session.map(|s| s.session_id))
}

fn inline_once(b: &Bench, tool: &SkillTool) -> Duration {
    let t = Instant::now();
    let r = b.rt.block_on(tool.invoke(json!({})));
    let d = t.elapsed();
    assert!(!r.is_error, "{}", r.text);
    d
}
