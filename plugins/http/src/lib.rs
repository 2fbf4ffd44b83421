//! The HTTP JSON plugins of casework.
//!
//! - [`HttpPlugin`], for the kinds `warehouse` (`hold`, `release`,
//!   `ship_on`, `track`) and `carrier` (`reschedule`, `track`): each action
//!   is a `POST {url}/{action}` of
//!   `{"action", "idempotency_key", "case", "params"}` with an
//!   `Idempotency-Key` header, so the API can recognise a retry; the
//!   `events` of its answer and the payloads of its webhooks become
//!   `warehouse.*` / `carrier.*` events ([`webhook`]).
//! - [`NotifyPlugin`], for the kind `notify` (`team.notify`): tells a team
//!   or an agent about a case on their chat webhook, or by e-mail through
//!   the e-mail plugin configured under its `email:` setting.
//!
//! ```yaml
//! plugins:
//!   warehouse:
//!     kind: warehouse
//!     url: https://wms.example/api/casework
//!     token_env: WMS_TOKEN        # the token is in the environment
//!     timeout: 10s
//!     paths: { ship_on: /shipments/date }
//! ```
//!
//! 2xx is done; 5xx, 408, 429, timeouts and refused connections are
//! transient (the outbox runner retries); any other status is permanent,
//! with the start of the response body in the message.

mod client;
pub mod notify;
pub mod settings;
pub mod webhook;

use std::collections::BTreeMap;

use casework_core::action::Action;
use casework_core::event::Event;
use casework_core::plugin::{Done, Plugin, PluginError, PluginKind};

pub use notify::{NotifyPlugin, NotifySettings};
pub use settings::{ConfigError, HttpSettings};

/// A warehouse's or carrier's JSON API.
#[derive(Debug)]
pub struct HttpPlugin {
    name: String,
    kind: PluginKind,
    settings: HttpSettings,
    /// `(header, value)` with the token, read once at construction.
    auth: Option<(String, String)>,
    client: client::Client,
}

impl HttpPlugin {
    /// Build from the YAML settings of a plugin of `kind` (`warehouse` or
    /// `carrier`), reading the token from the process environment.
    pub fn from_settings(
        name: &str,
        kind: PluginKind,
        settings: &BTreeMap<String, serde_json::Value>,
    ) -> Result<HttpPlugin, ConfigError> {
        let parsed = settings::from_map(kind.as_str(), settings, settings::HTTP_FIELDS)?;
        Self::with_env(name, kind, parsed, |var| std::env::var(var).ok())
    }

    /// Build with the token read through `env` (tests, embedders that keep
    /// secrets elsewhere).
    pub fn with_env(
        name: &str,
        kind: PluginKind,
        settings: HttpSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<HttpPlugin, ConfigError> {
        if !matches!(kind, PluginKind::Warehouse | PluginKind::Carrier) {
            return Err(ConfigError::Settings {
                kind: kind.as_str().to_owned(),
                message: "the HTTP plugin serves the kinds warehouse and carrier only".into(),
            });
        }
        let auth = settings.validate(kind.as_str(), kind.actions(), env)?;
        Ok(HttpPlugin {
            name: name.to_owned(),
            kind,
            client: client::Client::new(settings.timeout),
            settings,
            auth,
        })
    }

    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// The payload posted for `action`.
    fn request_body(&self, action: &Action, act: &str) -> serde_json::Value {
        serde_json::json!({
            "action": act,
            "idempotency_key": action.id,
            "case": action.case,
            "params": action.params,
        })
    }
}

impl Plugin for HttpPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn execute(&self, action: &Action) -> Result<Done, PluginError> {
        let permanent = |message: String| PluginError::Permanent {
            plugin: self.name.clone(),
            message,
        };
        let act = action
            .action
            .split_once('.')
            .map_or(action.action.as_str(), |(_, a)| a);
        if !self.kind.actions().contains(&act) {
            return Err(permanent(format!(
                "action {}: a {} plugin has no action `{act}`; it offers: {}",
                action.id,
                self.kind,
                self.kind.actions().join(", ")
            )));
        }
        let url = self.settings.url_for(act);
        let mut headers: Vec<(&str, &str)> = vec![("Idempotency-Key", action.id.as_str())];
        if let Some((h, v)) = &self.auth {
            headers.push((h.as_str(), v.as_str()));
        }
        let body = self.request_body(action, act);
        let reply = self.client.post_json(&self.name, &url, &headers, &body)?;
        tracing::info!(action = %action.id, case = %action.case, %url, status = reply.status, "{} done", action.action);
        let events = match reply.body.get("events") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(events) => {
                let answering = webhook::Answering {
                    action_id: &action.id,
                    at: action.requested_at,
                    case: &action.case,
                };
                webhook::normalise_value(&self.name, self.kind, events, Some(&answering))
                    .map_err(|e| {
                        permanent(format!(
                            "action {}: {url} accepted it, but the events it answered with are unusable: {e}",
                            action.id
                        ))
                    })?
            }
        };
        Ok(Done {
            result: reply.body,
            events,
        })
    }

    fn webhook(&self, body: &[u8]) -> Option<Result<Vec<Event>, PluginError>> {
        Some(
            webhook::normalise(&self.name, self.kind, body).map_err(|message| {
                PluginError::Permanent {
                    plugin: self.name.clone(),
                    message: format!("webhook: {message}"),
                }
            }),
        )
    }
}
