//! Signed webhooks: a warehouse or carrier signs each payload it pushes
//! with a secret shared with the shop, and `casework serve` refuses a
//! payload whose signature does not match before anything is stored.
//!
//! Any plugin of a kind that takes webhooks may have it:
//!
//! ```yaml
//! plugins:
//!   carrier:
//!     kind: carrier
//!     url: https://api.carrier.example/v1
//!     webhook_signature:
//!       secret_env: CARRIER_WEBHOOK_SECRET   # the variable holding the secret
//!       header: X-Carrier-Signature          # default X-Signature
//!       format: hex                          # hex (default) | timestamped
//! ```
//!
//! - `hex`: the header holds HMAC-SHA256(secret, raw body) in hex, with or
//!   without a `sha256=` prefix (GitHub-style).
//! - `timestamped` (Stripe-style): the header is `t=<unix seconds>,v1=<hex>`
//!   where the MAC is over `<t>.<raw body>`; a timestamp further than
//!   `tolerance` (default 5m) from now is refused, so a captured request
//!   cannot be replayed later.
//!
//! Comparison is constant-time ([`hmac::Mac::verify_slice`]).
//!
//! ```
//! use casework_core::plugin::{WebhookSignature, SignatureError};
//! use hmac::{KeyInit, Mac};
//!
//! let sig = WebhookSignature::from_value(serde_json::json!({"secret_env": "HOOK_SECRET"})).unwrap();
//! let verifier = sig.verifier(&|var: &str| (var == "HOOK_SECRET").then(|| "s3cret".to_owned()));
//! let body = br#"{"id":"x"}"#;
//! let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
//! mac.update(body);
//! let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
//! let now = chrono::Utc::now().fixed_offset();
//! assert_eq!(verifier.verify(Some(&format!("sha256={hex}")), body, now), Ok(()));
//! assert!(matches!(verifier.verify(Some(&hex), b"tampered", now), Err(SignatureError::Mismatch { .. })));
//! assert!(matches!(verifier.verify(None, body, now), Err(SignatureError::Missing { .. })));
//! ```

use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::kinds::{SettingsProblem, read_value};
use crate::Timestamp;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The setting under a plugin that turns on signed webhooks.
pub const WEBHOOK_SIGNATURE: &str = "webhook_signature";

/// How the signature is written in its header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureFormat {
    /// HMAC-SHA256 of the body in hex, optionally prefixed `sha256=`.
    #[default]
    Hex,
    /// `t=<unix seconds>,v1=<hex>`, the MAC over `<t>.<body>`.
    Timestamped,
}

/// The `webhook_signature:` settings of a plugin.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSignature {
    /// The environment variable holding the shared secret.
    pub secret_env: String,
    /// The request header carrying the signature.
    #[serde(default = "default_header")]
    pub header: String,
    #[serde(default)]
    pub format: SignatureFormat,
    /// For `timestamped`: how far the timestamp may be from now.
    #[serde(default = "default_tolerance", deserialize_with = "de_duration")]
    pub tolerance: Duration,
}

fn default_header() -> String {
    "X-Signature".to_owned()
}

fn default_tolerance() -> Duration {
    Duration::from_secs(300)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim()).map_err(|e| {
        serde::de::Error::custom(format!("`{text}` is not a duration ({e}); write e.g. `5m`"))
    })
}

impl WebhookSignature {
    /// Read the value of `webhook_signature`; a problem is located under
    /// it (`webhook_signature.format`).
    pub fn from_value(value: Value) -> Result<WebhookSignature, SettingsProblem> {
        let sig: WebhookSignature = read_value(value).map_err(|p| p.under(WEBHOOK_SIGNATURE))?;
        if !super::kinds::is_env_name(&sig.secret_env) {
            // Reported by the `*_env` convention too; here for callers
            // that build verifiers without `check`.
            return Err(SettingsProblem::invalid(
                format!("{WEBHOOK_SIGNATURE}.secret_env"),
                "`secret_env` must name an environment variable",
            )
            .code("plugin::secret-in-yaml")
            .hint("put the secret in an environment variable and write its name here"));
        }
        if sig.header.trim().is_empty()
            || !sig
                .header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SettingsProblem::invalid(
                format!("{WEBHOOK_SIGNATURE}.header"),
                format!("`{}` is not a header name", sig.header),
            )
            .hint("write the header the sender puts its signature in, e.g. `X-Signature`"));
        }
        Ok(sig)
    }

    /// The verifier, with the secret read through `env` now. An unset
    /// variable does not fail here: the verifier then refuses every
    /// webhook, naming the variable, while the plugin's actions still run.
    pub fn verifier(&self, env: &dyn Fn(&str) -> Option<String>) -> WebhookVerifier {
        WebhookVerifier {
            secret: env(&self.secret_env)
                .filter(|s| !s.is_empty())
                .map(String::into_bytes),
            signature: self.clone(),
        }
    }
}

/// Why a webhook's signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The secret is not configured where the server runs: nothing can be
    /// verified, so nothing is accepted (a 503, the sender retries).
    #[error(
        "this plugin's webhooks are signed, but the environment variable `{var}` (named by `webhook_signature.secret_env`) is not set; set it and restart `casework serve`"
    )]
    SecretUnset { var: String },
    #[error("the request has no `{header}` header with the payload's signature")]
    Missing { header: String },
    #[error("the `{header}` header is malformed: {why}")]
    Malformed { header: String, why: String },
    #[error("the signature in `{header}` does not match the payload")]
    Mismatch { header: String },
    #[error(
        "the signature's timestamp is {age_seconds}s away from now, more than the {tolerance_seconds}s allowed; a replayed request?"
    )]
    Stale {
        age_seconds: i64,
        tolerance_seconds: u64,
    },
}

impl SignatureError {
    /// True when the server, not the sender, is at fault (503, not 401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, SignatureError::SecretUnset { .. })
    }
}

/// Checks the signature of one plugin's webhooks.
#[derive(Clone)]
pub struct WebhookVerifier {
    signature: WebhookSignature,
    secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("WebhookVerifier")
            .field("signature", &self.signature)
            .field("secret_set", &self.secret.is_some())
            .finish()
    }
}

impl WebhookVerifier {
    /// The header to read the signature from.
    pub fn header(&self) -> &str {
        &self.signature.header
    }

    pub fn signature(&self) -> &WebhookSignature {
        &self.signature
    }

    /// Check `header_value` (the value of [`header`](Self::header), if
    /// the request had it) against the raw `body`.
    pub fn verify(
        &self,
        header_value: Option<&str>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<(), SignatureError> {
        let sig = &self.signature;
        let Some(secret) = &self.secret else {
            return Err(SignatureError::SecretUnset {
                var: sig.secret_env.clone(),
            });
        };
        let header = || sig.header.clone();
        let value = header_value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SignatureError::Missing { header: header() })?;
        let malformed = |why: &str| SignatureError::Malformed {
            header: header(),
            why: why.to_owned(),
        };
        let mut mac = HmacSha256::new_from_slice(secret)
            .map_err(|_| malformed("the secret cannot key an HMAC"))?;
        let expected_hex = match sig.format {
            SignatureFormat::Hex => value.strip_prefix("sha256=").unwrap_or(value).to_owned(),
            SignatureFormat::Timestamped => {
                let mut t = None;
                let mut v1 = None;
                for part in value.split(',') {
                    match part.trim().split_once('=') {
                        Some(("t", x)) => t = Some(x.trim()),
                        Some(("v1", x)) if v1.is_none() => v1 = Some(x.trim()),
                        _ => {}
                    }
                }
                let (Some(t), Some(v1)) = (t, v1) else {
                    return Err(malformed("expected `t=<unix seconds>,v1=<hex>`"));
                };
                let secs: i64 = t
                    .parse()
                    .map_err(|_| malformed("`t` is not a number of seconds"))?;
                let age = now.timestamp() - secs;
                if age.unsigned_abs() > sig.tolerance.as_secs() {
                    return Err(SignatureError::Stale {
                        age_seconds: age,
                        tolerance_seconds: sig.tolerance.as_secs(),
                    });
                }
                mac.update(t.as_bytes());
                mac.update(b".");
                v1.to_owned()
            }
        };
        let expected = decode_hex(&expected_hex)
            .ok_or_else(|| malformed("the signature is not hexadecimal"))?;
        mac.update(body);
        mac.verify_slice(&expected)
            .map_err(|_| SignatureError::Mismatch { header: header() })
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], parts: &[&[u8]]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret).unwrap();
        for p in parts {
            mac.update(p);
        }
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn verifier(v: Value) -> WebhookVerifier {
        WebhookSignature::from_value(v)
            .unwrap()
            .verifier(&|k: &str| (k == "S").then(|| "key".to_owned()))
    }

    fn at(secs: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .fixed_offset()
    }

    #[test]
    fn hex_with_or_without_prefix() {
        let v = verifier(serde_json::json!({"secret_env": "S"}));
        let good = sign(b"key", &[b"body"]);
        assert_eq!(v.verify(Some(&good), b"body", at(0)), Ok(()));
        assert_eq!(
            v.verify(Some(&format!("sha256={good}")), b"body", at(0)),
            Ok(())
        );
        assert_eq!(
            v.verify(Some(&good.to_uppercase()), b"body", at(0)),
            Ok(()),
            "hex digits in either case"
        );
        assert!(matches!(
            v.verify(Some(&sign(b"other", &[b"body"])), b"body", at(0)),
            Err(SignatureError::Mismatch { .. })
        ));
        assert!(matches!(
            v.verify(Some("zz"), b"body", at(0)),
            Err(SignatureError::Malformed { .. })
        ));
        assert!(matches!(
            v.verify(Some(&good[..10]), b"body", at(0)),
            Err(SignatureError::Mismatch { .. })
        ));
    }

    #[test]
    fn timestamped_refuses_old_and_tampered_requests() {
        let v = verifier(
            serde_json::json!({"secret_env": "S", "format": "timestamped", "tolerance": "1m"}),
        );
        let sig = sign(b"key", &[b"1000", b".", b"body"]);
        let header = format!("t=1000,v1={sig}");
        assert_eq!(v.verify(Some(&header), b"body", at(1030)), Ok(()));
        assert!(matches!(
            v.verify(Some(&header), b"body", at(1100)),
            Err(SignatureError::Stale { .. })
        ));
        assert!(matches!(
            v.verify(Some(&format!("t=1001,v1={sig}")), b"body", at(1030)),
            Err(SignatureError::Mismatch { .. })
        ));
        assert!(matches!(
            v.verify(Some(&sig), b"body", at(1030)),
            Err(SignatureError::Malformed { .. })
        ));
    }

    #[test]
    fn an_unset_secret_refuses_everything_and_bad_settings_are_located() {
        let v = WebhookSignature::from_value(serde_json::json!({"secret_env": "UNSET_HERE"}))
            .unwrap()
            .verifier(&|_: &str| None);
        let e = v.verify(Some("00"), b"", at(0)).unwrap_err();
        assert!(
            e.is_unavailable() && e.to_string().contains("UNSET_HERE"),
            "{e}"
        );
        let p = WebhookSignature::from_value(
            serde_json::json!({"secret_env": "S", "format": "base64"}),
        )
        .unwrap_err();
        assert_eq!(p.path, "webhook_signature.format");
        let p = WebhookSignature::from_value(serde_json::json!({"header": "X"})).unwrap_err();
        assert_eq!(
            (p.path.as_str(), p.code),
            ("webhook_signature", "plugin::missing-setting")
        );
    }
}
