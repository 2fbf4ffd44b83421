//! casework-email: the e-mail plugin of casework.
//!
//! Outbound, it performs `email.send` actions: it renders a template that
//! ops teams keep in `casework.yaml`, tags the subject with the case
//! (`[C-1]`), gives the message a Message-ID derived from the action id
//! (so a retry is recognisable as the same message) and hands it to an
//! SMTP server, or (`transport: file`) writes it as an `.eml` file into a
//! directory. Inbound, it turns raw messages (from an MTA pipe or a
//! Maildir) into `email.received` events that find their case through the
//! subject tag or the In-Reply-To / References chain.
//!
//! The plugin never retries by itself: the outbox runner does, asking
//! [`EmailError::is_transient`] whether a failure is worth another try
//! (server down, timeout, 4xx) or needs a person (5xx, bad address, bad
//! template).
//!
//! # Example
//!
//! ```
//! use casework_core::action::Action;
//! use casework_email::{EmailConfig, EmailPlugin};
//!
//! let settings = serde_json::json!({
//!     "host": "smtp.shop.example",
//!     "security": "starttls",
//!     "from": "Shop Support <support@shop.example>",
//!     "reply_domain": "cases.shop.example",
//!     "templates": {
//!         "promise_at_risk": {
//!             "subject": "About your order {{ order }}",
//!             "body": "Dear {{ name }},\nyour order {{ order }} may arrive early; we are holding it.\n",
//!         }
//!     }
//! });
//! let plugin = EmailPlugin::new(EmailConfig::from_value(settings)?)?;
//!
//! let action = Action {
//!     id: "E-3/0".into(),
//!     case: "C-1".into(),
//!     action: "email.send".into(),
//!     params: serde_json::json!({
//!         "to": "Jo Tanaka <jo@example.com>",
//!         "template": "promise_at_risk",
//!         "order": "O-77",
//!         "name": "Jo",
//!     }),
//!     requested_at: "2026-12-10T08:00:00+09:00".parse()?,
//!     event: "E-3".into(),
//!     requested_by: "promise.rhai#check_promise".into(),
//! };
//! // `send` would talk SMTP; `compose` shows what it would send.
//! let mail = plugin.compose(&action)?;
//! assert_eq!(mail.subject, "[C-1] About your order O-77");
//! assert_eq!(mail.message_id, "<E-3=2F0@cases.shop.example>");
//! let wire = String::from_utf8(mail.formatted())?;
//! assert!(wire.contains("X-Casework-Case: C-1\r\n"));
//!
//! // A reply comes back through an MTA pipe or a Maildir:
//! let reply = b"From: Jo Tanaka <jo@example.com>\r\n\
//! Subject: Re: [C-1] About your order O-77\r\n\
//! Message-ID: <r1@example.com>\r\n\
//! In-Reply-To: <E-3=2F0@cases.shop.example>\r\n\
//! \r\n\
//! Thanks, the 6th is fine.\r\n";
//! let received = casework_email::inbound::parse(reply)?;
//! let event = received.to_event("2026-12-10T09:00:00+09:00".parse()?);
//! assert_eq!(event.kind.as_str(), "email.received");
//! assert_eq!(event.case.as_ref().map(|c| c.as_str()), Some("C-1"));
//! assert_eq!(event.in_reply_to, vec!["<E-3=2F0@cases.shop.example>".to_string()]);
//! assert_eq!(event.text("text"), Some("Thanks, the 6th is fine."));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;

use std::path::PathBuf;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{FileTransport, SmtpTransport};

mod check;
pub mod config;
pub mod error;
pub mod inbound;
pub mod outbound;
pub mod template;

pub use check::check_settings;
pub use config::{EmailConfig, Security, TemplateSpec, TransportKind};
pub use error::{ConfigError, EmailError};
pub use inbound::{InboundEmail, InboundError};
pub use outbound::{Composed, Sent};

use template::Templates;

/// The e-mail plugin, built once from its settings and shared by the
/// outbox runner. It holds no connection between sends.
pub struct EmailPlugin {
    config: EmailConfig,
    from: Mailbox,
    templates: Templates,
    transport: Outgoing,
}

/// Where [`EmailPlugin::send`] hands a message.
pub(crate) enum Outgoing {
    Smtp(SmtpTransport),
    /// lettre's file transport writing into `staging` (`{dir}/tmp`);
    /// `send` then renames the file into `dir`, so a reader of `dir` never
    /// sees half a message.
    File {
        dir: PathBuf,
        staging: PathBuf,
        transport: FileTransport,
    },
}

impl std::fmt::Debug for EmailPlugin {
    // By hand: the transport holds the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("EmailPlugin");
        match &self.transport {
            Outgoing::Smtp(_) => d
                .field("host", &self.config.host)
                .field("port", &self.config.port())
                .field("security", &self.config.security),
            Outgoing::File { dir, .. } => d.field("dir", dir),
        }
        .field("from", &self.from.to_string())
        .field("templates", &self.templates.names())
        .finish_non_exhaustive()
    }
}

impl EmailPlugin {
    /// The plugin's name: the `email` of `email.send`.
    pub const NAME: &'static str = "email";

    /// Build the plugin, reading credentials from the process environment.
    pub fn new(config: EmailConfig) -> Result<EmailPlugin, ConfigError> {
        Self::with_env(config, |var| std::env::var(var).ok())
    }

    /// Build the plugin from the settings map of `casework.yaml`.
    pub fn from_settings(
        settings: &BTreeMap<String, serde_json::Value>,
    ) -> Result<EmailPlugin, ConfigError> {
        Self::new(EmailConfig::from_settings(settings)?)
    }

    /// Build the plugin, reading the variables named by `username_env`
    /// and `password_env` through `env` (tests and embedders that keep
    /// secrets elsewhere).
    pub fn with_env(
        config: EmailConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<EmailPlugin, ConfigError> {
        config.validate()?;
        let from = config.sender()?;
        let templates = Templates::new(&config.templates)?;
        if config.transport == TransportKind::File {
            let dir = config.dir.clone().unwrap_or_default();
            let staging = dir.join("tmp");
            return Ok(EmailPlugin {
                transport: Outgoing::File {
                    transport: FileTransport::new(&staging),
                    dir,
                    staging,
                },
                config,
                from,
                templates,
            });
        }
        let credentials = config.credentials(&env)?;

        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|e| ConfigError::Tls {
                host: host.to_owned(),
                message: e.to_string(),
            })
        };
        let mut builder = SmtpTransport::builder_dangerous(&config.host)
            .port(config.port())
            .timeout(Some(config.timeout));
        builder = match config.security {
            Security::None => builder.tls(Tls::None),
            Security::Starttls => builder.tls(Tls::Required(tls(&config.host)?)),
            Security::Tls => builder.tls(Tls::Wrapper(tls(&config.host)?)),
        };
        if let Some((user, pass)) = credentials {
            builder = builder.credentials(Credentials::new(user, pass));
        }
        Ok(EmailPlugin {
            transport: Outgoing::Smtp(builder.build()),
            config,
            from,
            templates,
        })
    }

    /// The settings the plugin was built from.
    pub fn config(&self) -> &EmailConfig {
        &self.config
    }

    /// The names of the configured templates, sorted.
    pub fn template_names(&self) -> &[String] {
        self.templates.names()
    }

    /// The Message-ID this plugin gives the mail of action `action_id`.
    pub fn message_id_for(&self, action_id: &str) -> String {
        outbound::message_id(action_id, &self.config.reply_domain)
    }
}
