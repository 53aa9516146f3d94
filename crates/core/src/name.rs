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

/// Longest DNS name (RFC 1035, without the root dot).
pub const MAX_DNS_LEN: usize = 253;

/// Checks a DNS name such as a network's domain: dot-separated labels of
/// 1–63 ASCII letters, digits and `-` (not at either end of a label), at
/// most 253 characters. Nothing else passes, so the name cannot carry a
/// line break, a separator or a directive into a generated file.
pub fn validate_dns_name(field: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_DNS_LEN {
        return Err(Error::validation(
            field,
            format!("{name:?} must be 1-{MAX_DNS_LEN} characters"),
        ));
    }
    for label in name.split('.') {
        validate_host_label(field, label).map_err(|_| {
            Error::validation(
                field,
                format!(
                    "{name:?} is not a DNS name: labels of 1-{MAX_LEN} letters, digits and '-' (not first or last), separated by '.'"
                ),
            )
        })?;
    }
    Ok(())
}

/// Checks a host name (one DNS label): 1–63 ASCII letters, digits and `-`,
/// not starting or ending with `-`.
pub fn validate_host_label(field: &str, label: &str) -> Result<(), Error> {
    let ok = (1..=MAX_LEN).contains(&label.len())
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            field,
            format!(
                "{label:?} is not a host name: 1-{MAX_LEN} letters, digits and '-' (not first or last)"
            ),
        ))
    }
}

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const MAX_INTERFACE_LEN: usize = 15;

/// Checks a host interface name (a network's `parent`): 1–15 ASCII
/// letters, digits, `_`, `.` and `-`, not starting with `-` or `.`, so it
/// is neither a path nor an option of the tools it is handed to.
pub fn validate_interface(field: &str, name: &str) -> Result<(), Error> {
    let ok = (1..=MAX_INTERFACE_LEN).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            field,
            format!(
                "{name:?} is not an interface name: 1-{MAX_INTERFACE_LEN} letters, digits, '_', '.' and '-', not starting with '-' or '.'"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_and_host_labels() {
        for ok in ["lab", "example.org", "a-1.b2.C3", &"x".repeat(63)] {
            validate_dns_name("domain", ok).unwrap();
        }
        for bad in [
            "",
            "x\ndhcp-script=/tmp/evil",
            "a..b",
            ".a",
            "a.",
            "-a",
            "a-.b",
            "a b",
            "a/b",
            "a=b",
            "a,b",
            &"x".repeat(64),
            &format!("{}.x", vec!["y".repeat(63); 4].join(".")),
        ] {
            let err = validate_dns_name("domain", bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("domain"), "{bad:?}");
        }
        validate_host_label("h", "web-1").unwrap();
        for bad in ["", "a.b", "a\nb", "-a", "a,b", "a b"] {
            assert!(validate_host_label("h", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn interface_names() {
        for ok in ["eth0", "br0", "enp0s3.100", "vlan_7", &"x".repeat(15)] {
            validate_interface("parent", ok).unwrap();
        }
        for bad in [
            "",
            "-eth0",
            ".",
            "..",
            "a/b",
            "eth0\n",
            "a b",
            "a:b",
            &"x".repeat(16),
        ] {
            let err = validate_interface("parent", bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("parent"), "{bad:?}");
        }
    }

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
