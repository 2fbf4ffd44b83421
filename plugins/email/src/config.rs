//! The plugin's settings, as ops teams write them in `casework.yaml`.
//!
//! ```yaml
//! plugins:
//!   email:
//!     kind: email
//!     host: smtp.shop.example
//!     port: 587                       # default: 25, 587 or 465 by `security`
//!     security: starttls              # none | starttls | tls (default starttls)
//!     username_env: CASEWORK_SMTP_USER
//!     password_env: CASEWORK_SMTP_PASSWORD
//!     from: "Shop Support <support@shop.example>"
//!     timeout: 10s
//!     reply_domain: cases.shop.example
//!     templates:
//!       promise_at_risk:
//!         subject: "About your order {{ order }}"
//!         body: |
//!           Dear {{ name }},
//!           ...
//! ```
//!
//! Secrets never live in the YAML: `username_env` and `password_env` name
//! environment variables, read when the plugin is built.
//!
//! Without an SMTP server (a first run, a test, a shop whose MTA picks
//! mail up from a directory), `transport: file` writes each message as an
//! `.eml` file instead; `host`, `port`, `security` and the credentials are
//! then not needed:
//!
//! ```yaml
//!     transport: file
//!     dir: outbox-mail                # relative: see `EmailConfig::dir`
//!     from: "Shop Support <support@shop.example>"
//!     reply_domain: cases.shop.example
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ConfigError;

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Plain text. Only for a relay on the same machine or network
    /// segment; credentials are refused over it except to loopback.
    None,
    /// Plain connection upgraded with STARTTLS, which is required (a
    /// server that does not offer it is an error, never a silent
    /// downgrade). Port 587 by default.
    #[default]
    Starttls,
    /// TLS from the first byte ("implicit TLS", SMTPS). Port 465 by
    /// default.
    Tls,
}

impl Security {
    /// The port used when the settings do not give one.
    pub fn default_port(self) -> u16 {
        match self {
            Security::None => 25,
            Security::Starttls => 587,
            Security::Tls => 465,
        }
    }
}

/// Where composed messages go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// To the SMTP server named by `host`.
    #[default]
    Smtp,
    /// Into the directory named by `dir`, one `.eml` file per action
    /// (a pickup directory): lettre's `FileTransport`, then a rename to a
    /// name made from the action id, so a retried action replaces its
    /// own file instead of adding a second one.
    File,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Smtp => "smtp",
            TransportKind::File => "file",
        }
    }
}

/// One message template: a subject line and a plain-text body, both
/// minijinja (Jinja2) templates over the action's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    pub subject: String,
    pub body: String,
}

/// The e-mail plugin's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp` (the default) or `file`.
    #[serde(default)]
    pub transport: TransportKind,
    /// With `transport: file`: the directory the `.eml` files go to
    /// (created if missing). A relative path is taken from the current
    /// directory of the process; the `casework` commands first make it
    /// relative to the database's directory, so the files land beside
    /// the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// The SMTP server (relay or submission server); needed with
    /// `transport: smtp` only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Defaults to [`Security::default_port`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    /// The environment variable holding the SMTP user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_env: Option<String>,
    /// The environment variable holding the SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// The sender: `Shop Support <support@shop.example>`.
    pub from: String,
    /// How long to wait for the server at each step (connect, each reply).
    #[serde(
        default = "default_timeout",
        deserialize_with = "de_duration",
        serialize_with = "ser_duration"
    )]
    pub timeout: Duration,
    /// The right-hand side of the Message-IDs this plugin makes, so replies
    /// can be recognised as answers to casework's mail.
    pub reply_domain: String,
    /// Template name -> subject and body.
    #[serde(default)]
    pub templates: BTreeMap<String, TemplateSpec>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
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

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

impl EmailConfig {
    /// Read the settings from the map the configuration loader hands over
    /// (`PluginDef::settings`: everything under the plugin but `kind`).
    pub fn from_settings(
        settings: &BTreeMap<String, serde_json::Value>,
    ) -> Result<EmailConfig, ConfigError> {
        let map: serde_json::Map<String, serde_json::Value> = settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self::from_value(serde_json::Value::Object(map))
    }

    /// Read the settings from any JSON value (an object).
    pub fn from_value(value: serde_json::Value) -> Result<EmailConfig, ConfigError> {
        serde_json::from_value(value).map_err(|e| ConfigError::Settings {
            message: e.to_string(),
        })
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.security.default_port())
    }

    /// Resolve `username_env` / `password_env` through `env` (the process
    /// environment in production, a map in tests). Both or neither must be
    /// set; a named variable that is unset or empty is an error naming it.
    pub fn credentials(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<(String, String)>, ConfigError> {
        let read = |setting: &str, var: &str| -> Result<String, ConfigError> {
            match env(var) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(ConfigError::MissingEnv {
                    setting: setting.to_owned(),
                    var: var.to_owned(),
                }),
            }
        };
        match (&self.username_env, &self.password_env) {
            (None, None) => Ok(None),
            (Some(u), Some(p)) => {
                let user = read("username_env", u)?;
                let pass = read("password_env", p)?;
                if self.security == Security::None && !is_loopback(&self.host) {
                    return Err(ConfigError::Credentials {
                        message: format!(
                            "credentials would be sent in clear text to `{}`; use `security: starttls` or `tls`",
                            self.host
                        ),
                    });
                }
                Ok(Some((user, pass)))
            }
            (Some(_), None) | (None, Some(_)) => Err(ConfigError::Credentials {
                message: "set both `username_env` and `password_env`, or neither".to_owned(),
            }),
        }
    }

    /// Check everything that can be checked without the environment or
    /// the network: host and domain names, the `from` address, and that
    /// every template compiles. `casework check` can call this on a
    /// machine that does not hold the SMTP secrets.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.validate()?;
        self.sender()?;
        crate::template::Templates::new(&self.templates)?;
        Ok(())
    }

    /// The `from` setting as a mailbox.
    pub(crate) fn sender(&self) -> Result<lettre::message::Mailbox, ConfigError> {
        self.from
            .trim()
            .parse()
            .map_err(|e: lettre::address::AddressError| ConfigError::Address {
                setting: "from".to_owned(),
                value: self.from.clone(),
                message: e.to_string(),
            })
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match self.transport {
            TransportKind::Smtp if self.host.trim().is_empty() => {
                return Err(ConfigError::Settings {
                    message: "`host` is missing: name the SMTP server (or set `transport: file` and `dir:` to write the messages as files)".to_owned(),
                });
            }
            TransportKind::Smtp if self.dir.is_some() => {
                return Err(ConfigError::Settings {
                    message: "`dir:` is set but the transport is smtp; add `transport: file` to write the messages as files, or remove `dir:`".to_owned(),
                });
            }
            TransportKind::Smtp => {}
            TransportKind::File => {
                if self.dir.as_deref().is_none_or(|d| d.as_os_str().is_empty()) {
                    return Err(ConfigError::Settings {
                        message:
                            "`transport: file` needs `dir:`, the directory the .eml files go to"
                                .to_owned(),
                    });
                }
                // The SMTP settings do not apply; a host left over from an
                // SMTP setup is ignored, not refused.
                return self.validate_common();
            }
        }
        if !is_host(&self.host) {
            return Err(ConfigError::Domain {
                setting: "host".to_owned(),
                value: self.host.clone(),
            });
        }
        self.validate_common()
    }

    /// What every transport needs: a reply domain and a sane timeout.
    fn validate_common(&self) -> Result<(), ConfigError> {
        if !is_domain(&self.reply_domain) {
            return Err(ConfigError::Domain {
                setting: "reply_domain".to_owned(),
                value: self.reply_domain.clone(),
            });
        }
        if self.port == Some(0) {
            return Err(ConfigError::Settings {
                message: "port 0 is not a port".to_owned(),
            });
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::Settings {
                message: "timeout must be longer than zero".to_owned(),
            });
        }
        Ok(())
    }
}

/// A DNS name: dot-separated labels of letters, digits and inner hyphens.
pub(crate) fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A host to connect to: a DNS name or an IP address.
fn is_host(s: &str) -> bool {
    is_domain(s) || s.parse::<std::net::IpAddr>().is_ok()
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "host": "smtp.shop.example",
            "from": "Support <support@shop.example>",
            "reply_domain": "cases.shop.example",
        })
    }

    #[test]
    fn defaults_follow_security() {
        let c = EmailConfig::from_value(base()).unwrap();
        assert_eq!(c.security, Security::Starttls);
        assert_eq!(c.port(), 587);
        assert_eq!(c.timeout, Duration::from_secs(10));
        let mut v = base();
        v["security"] = "tls".into();
        v["timeout"] = "1m 30s".into();
        let c = EmailConfig::from_value(v).unwrap();
        assert_eq!(c.port(), 465);
        assert_eq!(c.timeout, Duration::from_secs(90));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let mut v = base();
        v["hots"] = "x".into();
        let e = EmailConfig::from_value(v).unwrap_err().to_string();
        assert!(e.contains("unknown field `hots`"), "{e}");

        let mut v = base();
        v["security"] = "ssl".into();
        let e = EmailConfig::from_value(v).unwrap_err().to_string();
        assert!(e.contains("unknown variant `ssl`"), "{e}");

        let mut v = base();
        v["timeout"] = "soon".into();
        let e = EmailConfig::from_value(v).unwrap_err().to_string();
        assert!(e.contains("timeout `soon` is not a duration"), "{e}");

        let mut v = base();
        v["templates"] = serde_json::json!({ "t": { "subject": "s", "body": "b", "html": "x" } });
        let e = EmailConfig::from_value(v).unwrap_err().to_string();
        assert!(e.contains("unknown field `html`"), "{e}");
    }

    #[test]
    fn reply_domain_and_host_are_checked() {
        let mut v = base();
        v["reply_domain"] = "cases.example\r\nBcc: x".into();
        let c = EmailConfig::from_value(v).unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::Domain { .. })));
        let mut v = base();
        v["host"] = "127.0.0.1".into();
        assert!(EmailConfig::from_value(v).unwrap().validate().is_ok());
    }

    #[test]
    fn check_needs_no_secrets() {
        let mut v = base();
        v["username_env"] = "CASEWORK_TEST_SURELY_UNSET_USER".into();
        v["password_env"] = "CASEWORK_TEST_SURELY_UNSET_PASS".into();
        v["templates"] = serde_json::json!({ "t": { "subject": "{{ a }}", "body": "b" } });
        assert_eq!(EmailConfig::from_value(v.clone()).unwrap().check(), Ok(()));
        v["templates"]["t"]["body"] = "{% if %}".into();
        let e = EmailConfig::from_value(v.clone())
            .unwrap()
            .check()
            .unwrap_err();
        assert!(matches!(e, ConfigError::Template { .. }), "{e:?}");
        v["templates"] = serde_json::json!({});
        v["from"] = "support at shop".into();
        let e = EmailConfig::from_value(v).unwrap().check().unwrap_err();
        assert!(e.to_string().contains("plugins.email.from"), "{e}");
    }

    #[test]
    fn credentials_come_from_named_variables() {
        let mut v = base();
        v["username_env"] = "SMTP_USER".into();
        v["password_env"] = "SMTP_PASS".into();
        let c = EmailConfig::from_value(v).unwrap();
        let env = |k: &str| (k == "SMTP_USER").then(|| "bot".to_owned());
        let e = c.credentials(&env).unwrap_err();
        assert_eq!(
            e,
            ConfigError::MissingEnv {
                setting: "password_env".into(),
                var: "SMTP_PASS".into()
            }
        );
        assert!(e.to_string().contains("`SMTP_PASS` is not set"));
        let env = |k: &str| Some(format!("{k}-value"));
        assert_eq!(
            c.credentials(&env).unwrap(),
            Some(("SMTP_USER-value".into(), "SMTP_PASS-value".into()))
        );
    }

    #[test]
    fn credentials_are_both_or_neither_and_never_in_clear_text() {
        let mut v = base();
        v["username_env"] = "SMTP_USER".into();
        let c = EmailConfig::from_value(v).unwrap();
        let env = |_: &str| Some("x".to_owned());
        assert!(matches!(
            c.credentials(&env),
            Err(ConfigError::Credentials { .. })
        ));
        let mut v = base();
        v["username_env"] = "U".into();
        v["password_env"] = "P".into();
        v["security"] = "none".into();
        let c = EmailConfig::from_value(v.clone()).unwrap();
        let e = c.credentials(&env).unwrap_err().to_string();
        assert!(e.contains("clear text"), "{e}");
        v["host"] = "localhost".into();
        let c = EmailConfig::from_value(v).unwrap();
        assert!(c.credentials(&env).unwrap().is_some());
    }
}
