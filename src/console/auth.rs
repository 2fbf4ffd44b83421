//! Who may use the console and the JSON API, and the CSRF token of its
//! forms.
//!
//! On loopback nobody else can connect, so no token is asked. Off
//! loopback `serve` insists on a token ([`Guard::token`]); a request
//! proves it with `Authorization: Bearer TOKEN` (scripts, Prometheus) or
//! with the cookie the console's sign-in form sets (browsers). Tokens are
//! compared as SHA-256 digests with a constant-time comparison, so neither
//! the time taken nor an early exit tells an attacker how much of a guess
//! was right.
//!
//! Forms that POST carry a CSRF token: a value derived from a secret
//! drawn when the server starts, which another site's page cannot read
//! (the same-origin policy), so it cannot forge the form.

use std::io::Read;

use sha2::{Digest, Sha256};

/// The name of the cookie a signed-in browser holds.
pub const COOKIE: &str = "casework_token";

/// Token check and CSRF token of one server.
pub struct Guard {
    /// Digest of the token, when one is required.
    token: Option<[u8; 32]>,
    csrf: String,
}

impl Guard {
    /// No token asked (loopback); a fresh CSRF secret.
    pub fn open() -> Guard {
        Guard {
            token: None,
            csrf: fresh_secret(),
        }
    }

    /// Every request must carry `token`.
    pub fn token(token: &str) -> Guard {
        Guard {
            token: Some(digest(token.as_bytes())),
            csrf: fresh_secret(),
        }
    }

    pub fn requires_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `given` is the token (always true when none is required).
    pub fn accepts(&self, given: Option<&str>) -> bool {
        match (&self.token, given) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(want), Some(given)) => constant_time_eq(want, &digest(given.as_bytes())),
        }
    }

    /// Whether the request's headers carry the token: a bearer
    /// `Authorization` or the console's cookie.
    pub fn allows(&self, headers: &[(String, String)]) -> bool {
        if !self.requires_token() {
            return true;
        }
        let header = |name: &'static str| {
            headers
                .iter()
                .filter(|(h, _)| h.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let bearer = header("Authorization").find_map(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|t| self.accepts(Some(t.trim()))) {
            return true;
        }
        header("Cookie")
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .filter(|(k, _)| *k == COOKIE)
            .any(|(_, v)| self.accepts(Some(v)))
    }

    /// The CSRF token forms carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether a posted form's CSRF token is this server's.
    pub fn csrf_ok(&self, given: Option<&str>) -> bool {
        given
            .is_some_and(|g| constant_time_eq(&digest(g.as_bytes()), &digest(self.csrf.as_bytes())))
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equal without an early exit: every byte is looked at.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// 32 random bytes from the kernel, as hex; when /dev/urandom cannot be
/// read (not Linux), a digest of the time, the process id and an address,
/// which still differs per start.
fn fresh_secret() -> String {
    let mut bytes = [0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        let seed = format!(
            "{:?}{}{:p}",
            std::time::SystemTime::now(),
            std::process::id(),
            &bytes
        );
        bytes = digest(seed.as_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn a_token_is_asked_only_when_configured() {
        assert!(Guard::open().allows(&[]));
        let g = Guard::token("s3cret");
        assert!(!g.allows(&[]));
        assert!(!g.allows(&[h("Authorization", "Bearer wrong")]));
        assert!(!g.allows(&[h("Authorization", "Bearer s3cre")]));
        assert!(g.allows(&[h("authorization", "Bearer s3cret")]));
        assert!(g.allows(&[h("Cookie", "a=b; casework_token=s3cret")]));
        assert!(!g.allows(&[h("Cookie", "casework_token=s3cretx")]));
    }

    #[test]
    fn csrf_tokens_differ_per_server_and_are_checked() {
        let (a, b) = (Guard::open(), Guard::open());
        assert_ne!(a.csrf(), b.csrf());
        assert_eq!(a.csrf().len(), 64);
        assert!(a.csrf_ok(Some(a.csrf())));
        assert!(!a.csrf_ok(Some(b.csrf())));
        assert!(!a.csrf_ok(None));
    }
}
