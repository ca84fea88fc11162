//! What a worker's skill covers: a category code, a dotted prefix of codes, or everything.
//!
//! A skill `drainage` covers `drainage.blocked` and `drainage.overflow` but not
//! `drainage_pump.fault`: prefixes match whole dotted segments. `*` covers every category.

use wangge_schemas::grid::ANY_SKILL;

/// Whether a worker with `skill` may be dispatched a case that needs `needed`.
pub fn skill_covers(skill: &str, needed: &str) -> bool {
    if skill == ANY_SKILL || skill == needed {
        return true;
    }
    needed
        .strip_prefix(skill)
        .is_some_and(|rest| rest.starts_with('.'))
        && !skill.is_empty()
}

/// Why `skill` cannot be used, or `None` when it is well formed.
pub fn skill_problem(skill: &str) -> Option<&'static str> {
    if skill == ANY_SKILL {
        return None;
    }
    if skill.is_empty() {
        return Some("is empty");
    }
    if skill.chars().any(char::is_whitespace) {
        return Some("contains white space");
    }
    if skill.contains('*') {
        return Some("uses `*` other than alone (a prefix such as `drainage` already covers `drainage.blocked`)");
    }
    if skill.split('.').any(str::is_empty) {
        return Some("has an empty segment between dots");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skill_covers_its_code_its_dotted_descendants_and_star_covers_all() {
        assert!(skill_covers("drainage.blocked", "drainage.blocked"));
        assert!(skill_covers("drainage", "drainage.blocked"));
        assert!(skill_covers("*", "service.micro_wish"));
        assert!(!skill_covers("drainage", "drainage_pump.fault"));
        assert!(!skill_covers("drainage.blocked", "drainage"));
        assert!(!skill_covers("", "drainage.blocked"));
    }

    #[test]
    fn malformed_skills_are_named() {
        assert_eq!(skill_problem("*"), None);
        assert_eq!(skill_problem("lighting.street_light_out"), None);
        assert!(skill_problem("").is_some());
        assert!(skill_problem("drainage.*").is_some());
        assert!(skill_problem("drainage..blocked").is_some());
        assert!(skill_problem("drain age").is_some());
    }
}
