//! Resource subscriptions: a client names resources it shows (a skill's `SKILL.md`, a
//! reference it opened) and is told with `notifications/resources/updated` when one of them
//! changes, so it can read it again instead of polling.
//!
//! Both protocol eras are served from one source of changes, the watcher's poll of the
//! resources (`resources::versions`), which publishes the URIs that changed:
//!
//! * **handshake-era** sessions call `resources/subscribe` and `resources/unsubscribe`; the
//!   URIs are kept per connection in a [`Subscriptions`], and the watcher sends each
//!   connection's peer the updates of its own URIs;
//! * **2026-07-28** sessions name the URIs in the `resourceSubscriptions` of their
//!   `subscriptions/listen` filter, and the listen stream sends the updates of those.
//!
//! A URI may be subscribed before its file exists or while it is not served (a client may
//! show a reference `SKILL.md` is about to gain): its update comes when it appears. What is
//! subscribed is bounded, since a client could otherwise grow the server's memory: at most
//! [`MAX_SUBSCRIPTIONS`] URIs per connection or listen stream, each at most
//! [`MAX_URI_BYTES`](crate::resources::MAX_URI_BYTES) long. A subscription reads nothing and
//! grants nothing; it only asks to be told.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rmcp::model::ErrorData;

use crate::resources::MAX_URI_BYTES;

/// Most URIs one connection (or one listen stream) may subscribe to.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 256;

/// The URIs one handshake-era connection subscribed to.
#[derive(Default)]
pub(crate) struct Subscriptions {
    uris: Mutex<BTreeSet<String>>,
    /// Whether the connection's peer was registered with the watcher (once, whatever it
    /// unsubscribes and subscribes again: twice would send each update twice).
    registered: AtomicBool,
}

impl Subscriptions {
    /// Adds `uri`; refuses one that is too long, or one too many. Returns whether this was
    /// the connection's first subscription ever (its peer must then be registered).
    pub(crate) fn add(&self, uri: &str) -> Result<bool, ErrorData> {
        check(uri)?;
        let mut uris = self.uris.lock().map_err(|_| poisoned())?;
        if uris.len() >= MAX_SUBSCRIPTIONS && !uris.contains(uri) {
            return Err(ErrorData::invalid_params(
                format!(
                    "at most {MAX_SUBSCRIPTIONS} resources can be subscribed to at once; \
                     unsubscribe from one first"
                ),
                None,
            ));
        }
        uris.insert(uri.to_string());
        Ok(!self.registered.swap(true, Ordering::Relaxed))
    }

    /// Removes `uri` (a URI not subscribed to is no error: the end state is the same).
    pub(crate) fn remove(&self, uri: &str) {
        if let Ok(mut uris) = self.uris.lock() {
            uris.remove(uri);
        }
    }

    /// The subscribed URIs among `updated`.
    pub(crate) fn among(&self, updated: &BTreeSet<String>) -> Vec<String> {
        match self.uris.lock() {
            Ok(uris) => uris.intersection(updated).cloned().collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// The URIs of a listen filter's `resourceSubscriptions` that are accepted: those within
/// [`MAX_URI_BYTES`], at most [`MAX_SUBSCRIPTIONS`] of them. The acknowledgment shows the
/// client which were honoured.
pub(crate) fn accepted(requested: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for uri in requested {
        if out.len() >= MAX_SUBSCRIPTIONS {
            break;
        }
        if check(uri).is_ok() && !out.contains(uri) {
            out.push(uri.clone());
        }
    }
    out
}

/// A subscribed URI must not be empty nor longer than any URI a resource could have.
fn check(uri: &str) -> Result<(), ErrorData> {
    if uri.is_empty() || uri.len() > MAX_URI_BYTES {
        return Err(ErrorData::invalid_params(
            format!("a resource URI to subscribe to has 1 to {MAX_URI_BYTES} bytes"),
            None,
        ));
    }
    Ok(())
}

fn poisoned() -> ErrorData {
    ErrorData::internal_error("the subscriptions of this connection are unusable", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_per_connection() {
        let s = Subscriptions::default();
        assert!(s.add("skill://a/SKILL.md").unwrap(), "the first subscription");
        assert!(!s.add("skill://a/SKILL.md").unwrap(), "again: not the first");
        for i in 1..MAX_SUBSCRIPTIONS {
            s.add(&format!("skill://a/{i}.md")).unwrap();
        }
        assert!(s.add("skill://a/one-more.md").is_err(), "over the bound");
        assert!(s.add("skill://a/SKILL.md").is_ok(), "one already held is no new one");
        s.remove("skill://a/1.md");
        assert!(s.add("skill://a/one-more.md").is_ok(), "room again after an unsubscribe");
        let again = Subscriptions::default();
        assert!(again.add("u").unwrap());
        again.remove("u");
        assert!(!again.add("u").unwrap(), "registered once, however often emptied");
        assert!(s.add("").is_err());
        assert!(s.add(&"x".repeat(MAX_URI_BYTES + 1)).is_err());
        let updated = BTreeSet::from(["skill://a/SKILL.md".to_string(), "skill://b/x".into()]);
        assert_eq!(s.among(&updated), vec!["skill://a/SKILL.md".to_string()]);
    }

    #[test]
    fn listen_filters_are_bounded() {
        let many: Vec<String> = (0..MAX_SUBSCRIPTIONS + 10).map(|i| format!("u{i}")).collect();
        assert_eq!(accepted(&many).len(), MAX_SUBSCRIPTIONS);
        let odd = vec!["a".to_string(), "a".into(), String::new(), "y".repeat(MAX_URI_BYTES + 1)];
        assert_eq!(accepted(&odd), vec!["a".to_string()]);
    }
}
