use std::fmt;

/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// A rejected input: the field (as named in the contract, e.g. `interests[2].weight`) and the rule
/// it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

impl std::error::Error for FieldError {}

/// Ids are 1..=128 bytes of printable ASCII without spaces.
pub fn check_id(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_ID_LEN} bytes, got {}", value.len()),
        ));
    }
    if let Some(c) = value.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(FieldError::new(
            field,
            format!("must be printable ASCII without spaces, found {c:?}"),
        ));
    }
    Ok(())
}

/// Caller input quoted in a message: at most 64 characters, escaped (`{:?}`), with `…` when cut.
/// Never echo a whole field: a message must stay small whatever the caller sent.
pub fn short(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => format!("{s:?}"),
        Some((i, _)) => format!("{:?}…", &s[..i]),
    }
}

/// As [`check_id`] when present; an empty string given explicitly is an error too.
pub fn check_optional_id(field: &str, value: Option<&str>) -> Result<(), FieldError> {
    match value {
        Some(v) => check_id(field, v),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_quotes_a_prefix() {
        assert_eq!(short("ab"), "\"ab\"");
        let long = "é".repeat(1000);
        let s = short(&long);
        assert!(s.ends_with('…') && s.chars().count() == 64 + 3, "{s}");
        assert_eq!(short("a\nb"), "\"a\\nb\"");
    }

    #[test]
    fn ids() {
        assert!(check_id("lead_id", "L-1").is_ok());
        assert_eq!(
            check_id("lead_id", "").unwrap_err().rule,
            "must not be empty"
        );
        assert!(
            check_id("lead_id", &"x".repeat(129))
                .unwrap_err()
                .rule
                .contains("at most 128")
        );
        assert!(
            check_id("lead_id", "a b")
                .unwrap_err()
                .rule
                .contains("printable")
        );
        assert!(check_id("lead_id", "线索").is_err());
        assert!(check_optional_id("member_id", None).is_ok());
        assert!(check_optional_id("member_id", Some("")).is_err());
    }
}
