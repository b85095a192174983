//! A token that does not print itself, compared in constant time.

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// A token that does not print itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// A fresh random token (256 bits, hex).
    pub fn generate() -> Self {
        Self(format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        ))
    }

    /// The token itself, for the places that must have it (deriving keys, the token file).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison of digests: the time taken tells neither where the two differ
    /// nor how long the token is.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (
            Sha256::digest(self.0.as_bytes()),
            Sha256::digest(given.as_bytes()),
        );
        bool::from(a.ct_eq(&b))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly_and_never_print() {
        let secret = Secret::new("abcdef0123456789");
        assert!(secret.matches("abcdef0123456789"));
        assert!(!secret.matches("abcdef012345678"));
        assert!(!secret.matches("abcdef01234567890"));
        assert!(!secret.matches(""));
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(Secret::generate().expose().len(), 64);
    }
}
