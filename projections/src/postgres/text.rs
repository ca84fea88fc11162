//! Strings as PostgreSQL can store them.
//!
//! PostgreSQL's `text` cannot hold U+0000 (its strings end at a NUL byte). The log may hold such a string anyway — an event stored before intake
//! refused control characters, or one written by another writer — and a projection must never
//! stall on one event: a write that PostgreSQL refuses would be retried forever, freezing
//! every read model behind it. So every string the store writes passes through here, and a
//! U+0000 is stored as U+FFFD (the replacement character), the way a decoder marks what it
//! could not keep. Every other character, control or not, PostgreSQL stores as it is.
//!
//! Only the filter columns pass through here: states and audit trails are stored as
//! compressed bytes (`crate::compact`), which hold U+0000 as it is, so a case whose title held
//! U+0000 is served exactly, and only a filter on such a column would compare with U+FFFD.

use std::borrow::Cow;

/// What PostgreSQL cannot store.
const NUL: char = '\u{0}';
/// `text` as a `text` column can hold it; borrowed when there was nothing to replace.
pub fn pg_text(text: &str) -> Cow<'_, str> {
    if text.contains(NUL) {
        Cow::Owned(text.replace(NUL, "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// An optional `text` as a column can hold it.
pub fn pg_text_opt(text: Option<&str>) -> Option<Cow<'_, str>> {
    text.map(pg_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_is_stored_as_the_replacement_character() {
        assert_eq!(pg_text("井盖\u{0}丢失"), "井盖\u{FFFD}丢失");
        assert!(matches!(pg_text("井盖丢失"), Cow::Borrowed(_)));
        assert_eq!(pg_text_opt(Some("\u{0}")).as_deref(), Some("\u{FFFD}"));
    }
}
