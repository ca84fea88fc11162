//! What a reader is shown of a resident's contact: enough to recognise, not to use.
//! Masking happens on the server, before anything is served (GB/T 35273 §7.2 展示限制).

use serde::{Deserialize, Serialize};
use wangge_schemas::ResidentContact;

/// A phone kept to its first three and last four digits (`138****1234`); a number too short
/// to keep seven characters of is masked whole.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// A name kept to its first character, the rest one `*` each (`张三` → `张*`, `欧阳娜娜` →
/// `欧***`); a one-character name is masked whole.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match (chars.next(), chars.clone().count()) {
        (None, _) => String::new(),
        (Some(_), 0) => "*".to_owned(),
        (Some(first), rest) => format!("{first}{}", "*".repeat(rest)),
    }
}

/// An ID number kept to its first four and last four characters.
pub fn mask_id_number(id_number: &str) -> String {
    let chars: Vec<char> = id_number.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}

/// A contact as readers see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedContact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_number: Option<String>,
}

impl From<&ResidentContact> for MaskedContact {
    fn from(contact: &ResidentContact) -> Self {
        Self {
            name: contact.name.as_deref().map(mask_name),
            phone: contact.phone.as_deref().map(mask_phone),
            id_number: contact.id_number.as_deref().map(mask_id_number),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_shows_its_first_three_and_last_four_digits() {
        assert_eq!(mask_phone("13812341234"), "138****1234");
        assert_eq!(mask_phone("12345"), "*****");
    }

    #[test]
    fn a_name_shows_its_family_name_only() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name("王"), "*");
    }

    #[test]
    fn an_id_number_shows_its_region_and_last_four() {
        assert_eq!(mask_id_number("11010519491231002X"), "1101**********002X");
    }
}
