//! The settings of a `warehouse` or `carrier` plugin, as written under
//! `plugins:`; the secret token is read from the environment, never from
//! YAML.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// What is wrong with a plugin's settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("settings of the {kind} plugin: {message}")]
    Settings { kind: String, message: String },
    #[error(
        "the environment variable `{var}` (named by `token_env`) is not set; export it with the API token, secrets are never written in the YAML"
    )]
    MissingToken { var: String },
}

/// `url`, `auth_header`, `auth_scheme`, `token_env`, `timeout`, `paths`.
///
/// ```
/// use casework_http::HttpSettings;
/// let s: HttpSettings = serde_json::from_value(serde_json::json!({
///     "url": "https://wms.example/api", "token_env": "WMS_TOKEN", "timeout": "5s",
///     "paths": { "ship_on": "/shipments/date" }
/// })).unwrap();
/// assert_eq!(s.auth_header, "Authorization");
/// assert_eq!(s.timeout, std::time::Duration::from_secs(5));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// The base URL; an action `hold` is posted to `{url}/hold`.
    pub url: String,
    /// The header the token goes in.
    #[serde(default = "default_auth_header")]
    pub auth_header: String,
    /// Put before the token: `Bearer` by default when the header is
    /// `Authorization`, nothing for any other header (`X-Api-Key`).
    #[serde(default)]
    pub auth_scheme: Option<String>,
    /// The environment variable holding the token; no auth header
    /// without it.
    #[serde(default)]
    pub token_env: Option<String>,
    /// For the whole request: connect, send, answer.
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Per-action paths (`hold: /v2/holds`) or full URLs, replacing
    /// `/{action}`.
    #[serde(default)]
    pub paths: BTreeMap<String, String>,
}

fn default_auth_header() -> String {
    "Authorization".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Seconds(u64),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => humantime::parse_duration(t.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "timeout `{t}` is not a duration ({e}); write e.g. `10s` or `1m 30s`"
            ))
        }),
    }
}

/// Read settings from the map the configuration loader hands over
/// (everything under the plugin but `kind`).
pub(crate) fn from_map<T: for<'de> Deserialize<'de>>(
    kind: &str,
    settings: &BTreeMap<String, serde_json::Value>,
    fields: &str,
) -> Result<T, ConfigError> {
    let map: serde_json::Map<String, serde_json::Value> = settings
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| ConfigError::Settings {
        kind: kind.to_owned(),
        message: format!("{e}; the settings are {fields}"),
    })
}

/// The settings of [`HttpSettings`], for error messages.
pub(crate) const HTTP_FIELDS: &str =
    "url, auth_header, auth_scheme, token_env (the variable holding the token), timeout and paths";

impl HttpSettings {
    /// Check the settings for the actions of `kind`, and read the token
    /// through `env`. Returns the header to send, if any.
    pub(crate) fn validate(
        &self,
        kind: &str,
        actions: &[&str],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<(String, String)>, ConfigError> {
        let bad = |message: String| ConfigError::Settings {
            kind: kind.to_owned(),
            message,
        };
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(bad(format!(
                "`url` must start with http:// or https://, found `{}`",
                self.url
            )));
        }
        for action in self.paths.keys() {
            if !actions.contains(&action.as_str()) {
                return Err(bad(format!(
                    "`paths` names `{action}`, which is not an action of kind {kind}; it offers: {}",
                    actions.join(", ")
                )));
            }
        }
        if self.auth_header.trim().is_empty() {
            return Err(bad("`auth_header` is empty".to_owned()));
        }
        let Some(var) = &self.token_env else {
            return Ok(None);
        };
        let token = env(var)
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| ConfigError::MissingToken { var: var.clone() })?;
        let scheme = match &self.auth_scheme {
            Some(s) => s.trim().to_owned(),
            None if self.auth_header.eq_ignore_ascii_case("authorization") => "Bearer".to_owned(),
            None => String::new(),
        };
        let value = if scheme.is_empty() {
            token.trim().to_owned()
        } else {
            format!("{scheme} {}", token.trim())
        };
        Ok(Some((self.auth_header.clone(), value)))
    }

    /// Where `action` is posted.
    pub(crate) fn url_for(&self, action: &str) -> String {
        let base = self.url.trim_end_matches('/');
        match self.paths.get(action) {
            Some(p) if p.starts_with("http://") || p.starts_with("https://") => p.clone(),
            Some(p) => format!("{base}/{}", p.trim_start_matches('/')),
            None => format!("{base}/{action}"),
        }
    }
}
