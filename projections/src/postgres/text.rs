//! Strings as PostgreSQL can store them.
//!
//! PostgreSQL's `text` cannot hold U+0000 (its strings end at a NUL byte), and `jsonb` refuses
//! the `\u0000` escape. The log may hold such a string anyway — an event stored before intake
//! refused control characters, or one written by another writer — and a projection must never
//! stall on one event: a write that PostgreSQL refuses would be retried forever, freezing
//! every read model behind it. So every string the store writes passes through here, and a
//! U+0000 is stored as U+FFFD (the replacement character), the way a decoder marks what it
//! could not keep. Every other character, control or not, PostgreSQL stores as it is.
//!
//! Both stores fold the same value, so what differs is only what PostgreSQL hands back: a
//! case whose title held U+0000 reads with U+FFFD there. The audit trail is unaffected: its
//! entries are stored as the JSON text that was hashed, in which U+0000 is the six ASCII
//! characters `\u0000`.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

/// What PostgreSQL cannot store.
const NUL: char = '\u{0}';
/// What it is stored as.
const REPLACEMENT: char = '\u{FFFD}';

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

/// `value` as JSON text that a `jsonb` column accepts.
pub fn pg_json(value: &impl Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    // serde_json writes U+0000 only as this escape, so its absence means there is none
    // (the common case costs one scan). Its presence may also be a literal backslash
    // followed by "u0000"; the value walk below tells the two apart.
    if !text.contains("\\u0000") {
        return text;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(&text) else {
        return text;
    };
    replace_nul(&mut value);
    serde_json::to_string(&value).unwrap_or(text)
}

fn replace_nul(value: &mut Value) {
    match value {
        Value::String(text) => {
            if text.contains(NUL) {
                *text = text.replace(NUL, &REPLACEMENT.to_string());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(fields) => {
            let keys_with_nul: Vec<String> =
                fields.keys().filter(|k| k.contains(NUL)).cloned().collect();
            for key in keys_with_nul {
                if let Some(field) = fields.remove(&key) {
                    fields.insert(key.replace(NUL, &REPLACEMENT.to_string()), field);
                }
            }
            fields.values_mut().for_each(replace_nul);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_nul_is_stored_as_the_replacement_character() {
        assert_eq!(pg_text("井盖\u{0}丢失"), "井盖\u{FFFD}丢失");
        assert!(matches!(pg_text("井盖丢失"), Cow::Borrowed(_)));
        assert_eq!(pg_text_opt(Some("\u{0}")).as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn json_for_jsonb_has_no_nul_escape_left_in_values_or_keys() {
        let value = json!({"title": "a\u{0}b", "list": ["\u{0}"], "k\u{0}": 1});
        let text = pg_json(&value);
        assert!(!text.contains("\\u0000"), "{text}");
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["title"], "a\u{FFFD}b");
        assert_eq!(back["list"][0], "\u{FFFD}");
        assert_eq!(back["k\u{FFFD}"], 1);
    }

    #[test]
    fn other_control_characters_and_literal_backslashes_are_kept_as_they_are() {
        let value = json!({"title": "tab\there \\u0000 bell\u{7}"});
        assert_eq!(pg_json(&value), serde_json::to_string(&value).unwrap());
    }
}
