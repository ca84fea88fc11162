//! The rule that keeps the engine's streams from growing weaker by accident: which change of
//! a stream's settings weakens it.
//!
//! Any `wangge` command opens the streams it uses with the settings it was given; a command
//! run without `--replicas 3` on a cluster once brought the event log from three replicas to
//! one. Now a change that would weaken a stream — fewer replicas, a limit that is new or
//! lower (messages could be dropped), a shorter duplicate window, deletes or purges allowed,
//! rollups allowed, discarding old messages, a subject no longer covered — is refused unless
//! an operator asks for it by name (`wangge streams set <stream> … --confirm`). Changes the
//! other way (more replicas, a limit raised or removed, deny flags on, a new subject) are
//! applied as before. The same rule tells the stream guard which changes made while the
//! engine runs are violations.

use std::fmt;
use std::time::Duration;

use super::guard::OwnedSettings;

/// One setting that a change would weaken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weakening {
    /// The setting's name as the server's stream config spells it.
    pub setting: &'static str,
    pub from: String,
    pub to: String,
}

impl fmt::Display for Weakening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {} to {}", self.setting, self.from, self.to)
    }
}

/// A limit where −1 means none: `to` is weaker when it limits where `from` did not, or
/// limits to less.
fn limit_weakens(from: i64, to: i64) -> bool {
    match (from, to) {
        (_, -1) => false,
        (-1, _) => true,
        (from, to) => to < from,
    }
}

fn limit_text(value: i64) -> String {
    if value == -1 {
        "unlimited".to_owned()
    } else {
        value.to_string()
    }
}

fn age_text(age: Duration) -> String {
    if age.is_zero() {
        "unlimited".to_owned()
    } else {
        format!("{}s", age.as_secs())
    }
}

/// Every way `to` is weaker than `from` (empty: the change only keeps or strengthens).
pub fn weakenings(from: &OwnedSettings, to: &OwnedSettings) -> Vec<Weakening> {
    let mut found = Vec::new();
    let mut weakened = |setting: &'static str, from: String, to: String| {
        found.push(Weakening { setting, from, to });
    };
    if to.replicas < from.replicas {
        weakened(
            "num_replicas",
            from.replicas.to_string(),
            to.replicas.to_string(),
        );
    }
    // A max age of zero keeps messages forever.
    let age_weakens = match (from.max_age.is_zero(), to.max_age.is_zero()) {
        (_, true) => false,
        (true, false) => true,
        (false, false) => to.max_age < from.max_age,
    };
    if age_weakens {
        weakened("max_age", age_text(from.max_age), age_text(to.max_age));
    }
    for (setting, before, after) in [
        ("max_msgs", from.max_msgs, to.max_msgs),
        ("max_bytes", from.max_bytes, to.max_bytes),
        (
            "max_msgs_per_subject",
            from.max_msgs_per_subject,
            to.max_msgs_per_subject,
        ),
        ("max_msg_size", from.max_message_size, to.max_message_size),
    ] {
        if limit_weakens(before, after) {
            weakened(setting, limit_text(before), limit_text(after));
        }
    }
    // Zero asks for the server's default (two minutes): nothing to compare.
    if !to.duplicate_window.is_zero() && to.duplicate_window < from.duplicate_window {
        weakened(
            "duplicate_window",
            format!("{}s", from.duplicate_window.as_secs()),
            format!("{}s", to.duplicate_window.as_secs()),
        );
    }
    // Discarding old messages when a limit is reached loses messages; refusing new ones
    // does not.
    if to.discard != from.discard && to.discard.eq_ignore_ascii_case("old") {
        weakened("discard", from.discard.clone(), to.discard.clone());
    }
    for (setting, before, after) in [
        ("deny_delete", from.deny_delete, to.deny_delete),
        ("deny_purge", from.deny_purge, to.deny_purge),
    ] {
        if before && !after {
            weakened(setting, "true".into(), "false".into());
        }
    }
    if !from.allow_rollup && to.allow_rollup {
        weakened("allow_rollup_hdrs", "false".into(), "true".into());
    }
    let dropped: Vec<&String> = from
        .subjects
        .iter()
        .filter(|subject| !to.subjects.contains(subject))
        .collect();
    if !dropped.is_empty() {
        weakened(
            "subjects",
            format!("{:?}", from.subjects),
            format!("{:?}", to.subjects),
        );
    }
    found
}

/// The refusal an operator reads: what would weaken and how to do it deliberately.
pub fn refusal(stream: &str, weakened: &[Weakening]) -> String {
    let list = weakened
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "refusing to weaken stream {stream}: {list}. A command never lowers a stream's \
         replicas, limits or deny flags; leave --replicas out to keep the stream's, or change \
         it deliberately with `wangge streams set {stream} … --confirm` (see `wangge streams \
         show`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_log() -> OwnedSettings {
        OwnedSettings {
            subjects: vec!["wangge.events.>".into()],
            replicas: 3,
            max_age: Duration::ZERO,
            max_msgs: -1,
            max_bytes: -1,
            max_msgs_per_subject: -1,
            max_message_size: 1 << 20,
            duplicate_window: Duration::from_secs(120),
            discard: "New".into(),
            deny_delete: true,
            deny_purge: true,
            allow_rollup: false,
            sealed: false,
            storage: "File".into(),
        }
    }

    fn settings_named(weakened: &[Weakening]) -> Vec<&'static str> {
        weakened.iter().map(|w| w.setting).collect()
    }

    #[test]
    fn the_same_settings_weaken_nothing() {
        assert!(weakenings(&event_log(), &event_log()).is_empty());
    }

    #[test]
    fn fewer_replicas_weaken_more_do_not() {
        let mut one = event_log();
        one.replicas = 1;
        assert_eq!(
            weakenings(&event_log(), &one),
            vec![Weakening {
                setting: "num_replicas",
                from: "3".into(),
                to: "1".into()
            }]
        );
        assert!(weakenings(&one, &event_log()).is_empty());
    }

    #[test]
    fn a_new_or_lower_limit_weakens_a_raised_or_removed_one_does_not() {
        let mut limited = event_log();
        limited.max_msgs = 5;
        limited.max_bytes = 1 << 30;
        limited.max_msgs_per_subject = 10;
        limited.max_age = Duration::from_secs(86_400);
        assert_eq!(
            settings_named(&weakenings(&event_log(), &limited)),
            vec!["max_age", "max_msgs", "max_bytes", "max_msgs_per_subject"]
        );
        assert!(weakenings(&limited, &event_log()).is_empty());
        let mut lower = limited.clone();
        lower.max_bytes = 1 << 20;
        lower.max_age = Duration::from_secs(3_600);
        assert_eq!(
            settings_named(&weakenings(&limited, &lower)),
            vec!["max_age", "max_bytes"]
        );
        let mut higher = limited.clone();
        higher.max_bytes = 1 << 40;
        higher.max_age = Duration::from_secs(7 * 86_400);
        assert!(weakenings(&limited, &higher).is_empty());
    }

    #[test]
    fn smaller_messages_and_a_shorter_duplicate_window_weaken() {
        let mut smaller = event_log();
        smaller.max_message_size = 1024;
        smaller.duplicate_window = Duration::from_secs(10);
        assert_eq!(
            settings_named(&weakenings(&event_log(), &smaller)),
            vec!["max_msg_size", "duplicate_window"]
        );
    }

    #[test]
    fn allowing_deletes_purges_rollups_or_discarding_old_messages_weakens() {
        let mut open = event_log();
        open.deny_delete = false;
        open.deny_purge = false;
        open.allow_rollup = true;
        open.discard = "Old".into();
        assert_eq!(
            settings_named(&weakenings(&event_log(), &open)),
            vec!["discard", "deny_delete", "deny_purge", "allow_rollup_hdrs"]
        );
        assert!(weakenings(&open, &event_log()).is_empty());
    }

    #[test]
    fn a_subject_no_longer_covered_weakens_a_new_one_does_not() {
        let mut more = event_log();
        more.subjects.push("wangge.archive.>".into());
        assert!(weakenings(&event_log(), &more).is_empty());
        assert_eq!(
            settings_named(&weakenings(&more, &event_log())),
            vec!["subjects"]
        );
    }

    #[test]
    fn the_refusal_names_the_setting_and_the_deliberate_command() {
        let mut one = event_log();
        one.replicas = 1;
        let message = refusal("WANGGE_EVENTS", &weakenings(&event_log(), &one));
        assert!(message.contains("num_replicas from 3 to 1"), "{message}");
        assert!(
            message.contains("wangge streams set WANGGE_EVENTS") && message.contains("--confirm"),
            "{message}"
        );
    }
}
