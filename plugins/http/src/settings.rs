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

/// Every problem `casework check` can find in the settings of a
/// `warehouse` or `carrier` plugin without the network or the token:
/// their shape, a base `url` that is an http(s) URL with a host, `paths`
/// naming the kind's actions, a usable `auth_header` and a non-zero
/// `timeout`. Each problem is at its path under the plugin.
///
/// ```
/// use std::collections::BTreeMap;
/// use casework_core::plugin::PluginKind;
/// let settings: BTreeMap<String, serde_json::Value> =
///     serde_json::from_value(serde_json::json!({ "url": "wms.example/api" })).unwrap();
/// let problems = casework_http::settings::check_settings(PluginKind::Warehouse, &settings);
/// assert_eq!(problems[0].path, "url");
/// ```
pub fn check_settings(
    kind: casework_core::plugin::PluginKind,
    settings: &BTreeMap<String, serde_json::Value>,
) -> Vec<casework_core::plugin::SettingsProblem> {
    use casework_core::plugin::{SettingsProblem, read_settings};
    let s: HttpSettings = match read_settings(settings) {
        Ok(s) => s,
        Err(p) => return vec![p],
    };
    let mut problems = Vec::new();
    if let Err(why) = check_url(&s.url) {
        problems.push(
            SettingsProblem::invalid("url", format!("`{}` is not a base URL: {why}", s.url))
                .hint("write the API's base URL, e.g. `https://wms.example/api/casework`"),
        );
    }
    for (action, path) in &s.paths {
        if !kind.actions().contains(&action.as_str()) {
            problems.push(
                SettingsProblem::unknown(format!("paths.{action}"), kind.actions()).hint(format!(
                    "`paths` maps actions of kind {kind} to paths; it offers: {}",
                    kind.actions().join(", ")
                )),
            );
        } else if (path.starts_with("http://") || path.starts_with("https://"))
            && let Err(why) = check_url(path)
        {
            problems.push(
                SettingsProblem::invalid(
                    format!("paths.{action}"),
                    format!("`{path}` is not a URL: {why}"),
                )
                .hint("write a path (`/v2/holds`) or a full URL"),
            );
        } else if path.chars().any(char::is_whitespace) {
            problems.push(
                SettingsProblem::invalid(format!("paths.{action}"), "a path has no spaces")
                    .hint("write a path such as `/v2/holds`"),
            );
        }
    }
    if s.auth_header.trim().is_empty()
        || !s
            .auth_header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        problems.push(
            SettingsProblem::invalid(
                "auth_header",
                format!("`{}` is not a header name", s.auth_header),
            )
            .hint("write a header name such as `Authorization` or `X-Api-Key`"),
        );
    }
    if s.timeout.is_zero() {
        problems.push(
            SettingsProblem::invalid("timeout", "the timeout is zero")
                .hint("write a duration such as `10s`"),
        );
    }
    problems
}

/// `http(s)://host[:port][/path]`, with no spaces.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("it must start with http:// or https://")?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it holds spaces".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || host_port.starts_with('[') => (h, Some(p)),
        _ => (host_port, None),
    };
    if host.is_empty() {
        return Err("it names no host".into());
    }
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |n| n == 0)
    {
        return Err(format!("`{p}` is not a port"));
    }
    Ok(())
}
