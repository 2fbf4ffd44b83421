//! What can go wrong, split by when it is found.
//!
//! [`ConfigError`] is found once, when the plugin is built from its
//! settings: a person editing `casework.yaml` (or the deployment's
//! environment) has to fix it. [`EmailError`] is found per action, when a
//! message is composed or sent; the outbox runner asks
//! [`EmailError::is_transient`] to decide whether trying again later can
//! help.

use serde::Serialize;

/// A problem with the plugin's settings, found before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConfigError {
    /// The settings map does not have the shape of the plugin's settings.
    #[error(
        "plugins.email: {message}; the settings are transport (smtp | file), dir (with file), host, port, security (none | starttls | tls), username_env, password_env, from, timeout, reply_domain and templates"
    )]
    Settings { message: String },
    /// A setting names an environment variable that is not set.
    #[error(
        "plugins.email.{setting}: environment variable `{var}` is not set (or is empty); set it in the service's environment, secrets never go in the YAML"
    )]
    MissingEnv { setting: String, var: String },
    /// Credentials are half configured, or would travel in clear text.
    #[error("plugins.email: {message}")]
    Credentials { message: String },
    /// An address setting (`from`) is not a mailbox.
    #[error(
        "plugins.email.{setting}: `{value}` is not an e-mail address ({message}); write `Name <user@example.com>` or `user@example.com`"
    )]
    Address {
        setting: String,
        value: String,
        message: String,
    },
    /// A setting that must be a host or domain name is not one.
    #[error(
        "plugins.email.{setting}: `{value}` is not a domain name; write something like `cases.example.com` (letters, digits, `-` and dots)"
    )]
    Domain { setting: String, value: String },
    /// A template does not compile.
    #[error(
        "plugins.email.templates.{template}.{part}: {message}; fix the template (minijinja / Jinja2 syntax)"
    )]
    Template {
        template: String,
        part: String,
        message: String,
    },
    /// TLS could not be set up for the configured host.
    #[error("plugins.email: cannot set up TLS for `{host}`: {message}")]
    Tls { host: String, message: String },
}

/// Why one `email.send` action could not be done.
///
/// Every variant names the action id, so a failure in a log or in the
/// `action.failed` event points at the request that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EmailError {
    /// The action is not one this plugin performs.
    #[error(
        "action {action_id}: the e-mail plugin does not perform `{action}`; it offers {offered}"
    )]
    UnsupportedAction {
        action_id: String,
        action: String,
        offered: String,
    },
    /// A parameter is missing or unusable (bad address, line break in a
    /// header value, wrong type).
    #[error("action {action_id}: parameter `{param}` {problem}")]
    Param {
        action_id: String,
        param: String,
        problem: String,
    },
    /// The action asks for a template the settings do not define.
    #[error(
        "action {action_id}: no e-mail template `{template}`; the configured templates are: {known}; add it under plugins.email.templates or fix the name"
    )]
    UnknownTemplate {
        action_id: String,
        template: String,
        known: String,
    },
    /// A template failed while rendering (typically a variable the action
    /// did not pass).
    #[error("action {action_id}: e-mail template `{template}` ({part}) failed: {message}")]
    Template {
        action_id: String,
        template: String,
        part: String,
        message: String,
    },
    /// The message could not be assembled from its parts.
    #[error("action {action_id}: cannot build the message: {message}")]
    Build { action_id: String, message: String },
    /// The SMTP exchange failed.
    #[error("action {action_id}: SMTP {kind}: {message}", kind = if *transient { "failed for now (will be worth retrying)" } else { "refused" })]
    Smtp {
        action_id: String,
        /// The reply code when the server answered with one (`451`, `550`).
        code: Option<u16>,
        /// True for a down or slow server and for 4xx replies.
        transient: bool,
        message: String,
    },
    /// With `transport: file`: the message could not be written to the
    /// directory (missing permission, disk full). Worth retrying: the
    /// directory can be fixed while the action waits.
    #[error(
        "action {action_id}: cannot write the message into {dir}: {message}; check that the directory (`dir:`) is writable"
    )]
    File {
        action_id: String,
        dir: String,
        message: String,
    },
}

impl EmailError {
    /// True when the same action may succeed if tried again later: the
    /// server was unreachable, timed out, dropped the connection or
    /// answered 4xx. False for everything a retry cannot fix: 5xx replies,
    /// bad addresses, bad templates, TLS failures.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            EmailError::Smtp {
                transient: true,
                ..
            } | EmailError::File { .. }
        )
    }

    /// The SMTP reply code, when the server gave one.
    pub fn smtp_code(&self) -> Option<u16> {
        match self {
            EmailError::Smtp { code, .. } => *code,
            _ => None,
        }
    }

    /// The id of the action that failed.
    pub fn action_id(&self) -> &str {
        match self {
            EmailError::UnsupportedAction { action_id, .. }
            | EmailError::Param { action_id, .. }
            | EmailError::UnknownTemplate { action_id, .. }
            | EmailError::Template { action_id, .. }
            | EmailError::Build { action_id, .. }
            | EmailError::Smtp { action_id, .. }
            | EmailError::File { action_id, .. } => action_id,
        }
    }

    /// Classify a lettre SMTP error: 4xx, connection and network problems
    /// and timeouts are transient; 5xx, client-side, TLS and shutdown
    /// errors are permanent. A response that could not be parsed usually
    /// means the connection broke mid-reply, so it counts as transient.
    pub(crate) fn from_smtp(
        action_id: &str,
        e: &lettre::transport::smtp::Error,
        timeout: std::time::Duration,
    ) -> Self {
        let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
        let transient = if e.is_transient() || e.is_timeout() || is_io_timeout(e) {
            true
        } else if e.is_permanent() || e.is_client() || e.is_tls() || e.is_transport_shutdown() {
            false
        } else {
            // Connection, network and unparsable-response errors.
            true
        };
        let mut message = e.to_string();
        // A socket read timeout shows up as `WouldBlock` on Unix, which
        // lettre does not count as a timeout; say what it means.
        if e.is_timeout() || is_io_timeout(e) {
            message = format!(
                "no answer within {} ({message})",
                humantime::format_duration(timeout)
            );
        }
        if e.is_tls() {
            message.push_str("; check `security` and the server's certificate");
        }
        EmailError::Smtp {
            action_id: action_id.to_owned(),
            code,
            transient,
            message,
        }
    }
}

/// True when an I/O error in `e`'s source chain is a timeout.
fn is_io_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            )
        {
            return true;
        }
        cur = err.source();
    }
    false
}
