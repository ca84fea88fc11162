//! Control characters in messages from outside.
//!
//! No field of an intake message, a worker command or a reference-data command has a use for
//! a control character: titles, notes and ids are text a person reads. U+0000 in particular
//! cannot be stored by PostgreSQL at all, so a report carrying one would be accepted into the
//! log and then trip every read model that stores it. Every message is therefore walked once,
//! keys and values, before its own checks, and the first control character found is refused
//! with the JSON path that holds it.
//!
//! Refused: the C0 controls U+0000–U+001F except tab, line feed and carriage return (a
//! description has lines, and HTML forms send them as CR LF), DEL U+007F and the C1 controls
//! U+0080–U+009F.

use serde_json::Value;

/// Whether `c` is a control character no message may carry.
pub fn is_refused_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// The first refused control character in `value`: its JSON path (`title`, `media[2].url`;
/// for a key, the path of the field it names) and the character.
pub fn find_control_character(value: &Value) -> Option<(String, char)> {
    find_in(value, &mut String::new())
}

fn find_in(value: &Value, path: &mut String) -> Option<(String, char)> {
    match value {
        Value::String(text) => text
            .chars()
            .find(|c| is_refused_control(*c))
            .map(|c| (path.clone(), c)),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            let length = path.len();
            path.push_str(&format!("[{index}]"));
            let found = find_in(item, path);
            path.truncate(length);
            found
        }),
        Value::Object(fields) => fields.iter().find_map(|(key, field)| {
            let length = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            // The path is echoed in the reply: a control character in a key is spelled out.
            for c in key.chars() {
                if is_refused_control(c) {
                    path.push_str(&format!("\\u{{{:04X}}}", u32::from(c)));
                } else {
                    path.push(c);
                }
            }
            let found = key
                .chars()
                .find(|c| is_refused_control(*c))
                .map(|c| (path.clone(), c))
                .or_else(|| find_in(field, path));
            path.truncate(length);
            found
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// The reason a refusal gives: which character, named by its code point.
pub fn control_character_reason(field: &str, c: char) -> String {
    format!(
        "`{field}` contains the control character U+{:04X}; only tab, line feed and carriage \
         return are allowed",
        u32::from(c)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_nul_in_a_title_is_found_with_its_path() {
        let message = json!({"kind": "resident_report", "title": "井盖\u{0}丢失"});
        assert_eq!(
            find_control_character(&message),
            Some(("title".to_owned(), '\u{0}'))
        );
    }

    #[test]
    fn nested_fields_and_list_items_are_named_by_their_json_path() {
        let message = json!({"media": [{"url": "https://a"}, {"url": "https://b\u{1b}[31m"}]});
        assert_eq!(
            find_control_character(&message),
            Some(("media[1].url".to_owned(), '\u{1b}'))
        );
        let message = json!({"resident": {"phone": "138\u{7f}"}});
        assert_eq!(
            find_control_character(&message),
            Some(("resident.phone".to_owned(), '\u{7f}'))
        );
        let message = json!({"note": "C1 \u{85} next line"});
        assert_eq!(
            find_control_character(&message).map(|(path, _)| path),
            Some("note".to_owned())
        );
    }

    #[test]
    fn a_control_character_in_a_key_is_found() {
        let message = json!({"ti\u{0}tle": "x"});
        assert_eq!(
            find_control_character(&message),
            Some(("ti\\u{0000}tle".to_owned(), '\u{0}'))
        );
    }

    #[test]
    fn tabs_and_line_breaks_and_ordinary_text_pass() {
        let message = json!({"description": "第一行\r\n第二行\t缩进", "n": 1, "ok": [true, null]});
        assert_eq!(find_control_character(&message), None);
    }

    #[test]
    fn the_reason_names_the_code_point() {
        assert!(control_character_reason("title", '\u{0}').contains("U+0000"));
    }
}
