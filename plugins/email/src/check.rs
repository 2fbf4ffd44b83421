//! What `casework check` asks of an `email` plugin's settings: their
//! shape, host and domain names, the `from` address, templates that
//! compile, and credentials that are both named or neither and never sent
//! in clear text. No environment, no network: `check` may run where the
//! SMTP secrets are not.

use std::collections::BTreeMap;

use casework_core::plugin::{SettingsProblem, read_settings};

use crate::config::{EmailConfig, Security};
use crate::error::ConfigError;

/// Every problem found in the settings of an `email` plugin (or the
/// `email:` of a `notify` plugin), each at its path under the plugin.
///
/// ```
/// use std::collections::BTreeMap;
/// let settings: BTreeMap<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
///     "host": "smtp.shop.example", "port": "587", "from": "support@shop.example",
///     "reply_domain": "cases.shop.example",
/// })).unwrap();
/// let problems = casework_email::check_settings(&settings);
/// assert_eq!(problems[0].path, "port");
/// ```
pub fn check_settings(settings: &BTreeMap<String, serde_json::Value>) -> Vec<SettingsProblem> {
    let config: EmailConfig = match read_settings(settings) {
        Ok(c) => c,
        Err(p) => return vec![p],
    };
    let mut problems = Vec::new();
    if let Err(e) = config.check() {
        problems.push(located(&e));
    }
    match (&config.username_env, &config.password_env) {
        (Some(_), None) | (None, Some(_)) => {
            let (have, lacks) = if config.username_env.is_some() {
                ("username_env", "password_env")
            } else {
                ("password_env", "username_env")
            };
            problems.push(
                SettingsProblem::invalid(have, format!("`{have}` is set but `{lacks}` is not"))
                    .at_key()
                    .hint(format!(
                        "name both variables (`{lacks}: SMTP_...`) or neither"
                    )),
            );
        }
        (Some(_), Some(_)) if config.security == Security::None && !loopback(&config.host) => {
            problems.push(
                SettingsProblem::invalid(
                    "security",
                    format!(
                        "credentials would be sent in clear text to `{}`",
                        config.host
                    ),
                )
                .hint("use `security: starttls` or `tls`, or a relay on this machine"),
            );
        }
        _ => {}
    }
    problems
}

/// A [`ConfigError`] found by [`EmailConfig::check`] at its setting.
fn located(e: &ConfigError) -> SettingsProblem {
    if let ConfigError::Settings { message } = e
        && message.starts_with("`host` is missing")
    {
        // Missing for SMTP only, so serde cannot say it: report it as the
        // missing setting it is.
        return SettingsProblem::missing("host").hint(
            "add `host: smtp.shop.example`, or `transport: file` and `dir:` to write the \
             messages as files",
        );
    }
    let text = e.to_string();
    // The messages start `plugins.email.<setting>: `; the path goes in the
    // problem, the plugin's real name in front of it.
    let message = text
        .split_once(": ")
        .map_or(text.as_str(), |(_, m)| m)
        .to_owned();
    let (path, hint) = match e {
        ConfigError::Domain { setting, .. } => (
            setting.clone(),
            "write a host name such as `smtp.shop.example` or an IP address",
        ),
        ConfigError::Address { setting, .. } => (
            setting.clone(),
            "write `Name <user@example.com>` or `user@example.com`",
        ),
        ConfigError::Template { template, part, .. } => (
            format!("templates.{template}.{part}"),
            "fix the template (minijinja / Jinja2 syntax)",
        ),
        ConfigError::Settings { message } if message.starts_with("port") => {
            ("port".to_owned(), "write the SMTP port, e.g. 587")
        }
        ConfigError::Settings { message } if message.starts_with("`dir:`") => {
            ("dir".to_owned(), "add `transport: file`, or remove `dir:`")
        }
        ConfigError::Settings { message } if message.starts_with("timeout") => {
            ("timeout".to_owned(), "write a duration such as `10s`")
        }
        _ => (String::new(), "fix the e-mail settings"),
    };
    SettingsProblem::invalid(path, message).hint(hint)
}

fn loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
