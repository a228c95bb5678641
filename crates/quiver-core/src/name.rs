//! Collection and snapshot names: `^[A-Za-z0-9_-]{1,64}$`.
//!
//! Names become directory names, so they are checked before they ever touch a path;
//! the rule admits no dots, slashes or NULs, which rules out traversal by construction.

use crate::{CoreError, Result};

/// Longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Checks `name` against `^[A-Za-z0-9_-]{1,64}$`.
pub fn validate_name(name: &str) -> Result<()> {
    let fail = |reason| {
        Err(CoreError::InvalidName {
            name: name.chars().take(80).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return fail("must be at most 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return fail("may contain only ASCII letters, digits, '_' and '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["a", "docs_v2", "A-b_9", &"x".repeat(64)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_paths_and_odd_bytes() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "%2e%2e",
            "a\0b",
            "é",
            " x",
            &"x".repeat(65),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
