//! Object names: DNS-label-like, so they are safe as file names, link names
//! and hostnames.

use crate::Error;

/// Longest accepted name (a DNS label).
pub const MAX_LEN: usize = 63;

/// Checks an object name: 1–63 characters of `a-z`, `0-9` and `-`, starting
/// with a letter and not ending with `-`.
pub fn validate(field: &str, name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        Some("must not be empty".to_owned())
    } else if name.len() > MAX_LEN {
        Some(format!("must be at most {MAX_LEN} characters"))
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        Some(format!(
            "{name:?} contains {c:?}; only lowercase letters, digits and '-' are allowed"
        ))
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some(format!("{name:?} must start with a lowercase letter"))
    } else if name.ends_with('-') {
        Some(format!("{name:?} must not end with '-'"))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::validation(field, reason)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "web-1", "vm0", &"x".repeat(63)] {
            validate("name", ok).unwrap();
        }
    }

    #[test]
    fn rejects_paths_and_odd_names() {
        for bad in [
            "",
            "a/b",
            "..",
            "../etc",
            "Web",
            "1vm",
            "vm-",
            "a b",
            &"x".repeat(64),
        ] {
            let err = validate("name", bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("name"), "{bad}");
        }
    }
}
