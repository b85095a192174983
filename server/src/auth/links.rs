//! Single-use login links: the start-up line may carry `/login?code=…`, so a generated
//! operator token never travels in a URL. A code works once, within [`LINK_TTL`].

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::secret::Secret;

/// How long the start-up login link works.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// Codes of unused login links (at most one: the start-up one), each until it expires.
#[derive(Default)]
pub struct LoginLinks {
    codes: Mutex<Vec<(Secret, Instant)>>,
}

impl LoginLinks {
    /// A new code, valid once within [`LINK_TTL`].
    pub fn issue(&self) -> String {
        let code = format!("{:032x}", rand::random::<u128>());
        let mut codes = self.codes.lock();
        codes.retain(|(_, expires)| *expires > Instant::now());
        codes.push((Secret::new(code.clone()), Instant::now() + LINK_TTL));
        code
    }

    /// Uses up `code`: true when it was issued, unused and unexpired.
    pub fn redeem(&self, code: &str) -> bool {
        let mut codes = self.codes.lock();
        codes.retain(|(_, expires)| *expires > Instant::now());
        let found = codes.iter().position(|(issued, _)| issued.matches(code));
        found.map(|i| codes.remove(i)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_code_works_once() {
        let links = LoginLinks::default();
        let code = links.issue();
        assert!(!links.redeem("0123"));
        assert!(links.redeem(&code));
        assert!(!links.redeem(&code), "single use");
    }
}
