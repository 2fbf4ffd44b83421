//! The `notify` kind: tell a team or an agent about a case on the channel
//! the directory says they prefer.
//!
//! Params (all optional): `team` (default: the team of `agent`, else the
//! directory's fallback team), `agent`, `to: supervisor` (the team's
//! supervisor), `text`, `template`, `case`.
//!
//! - `chat`: `POST {"text": ...}` to the team's `webhook` (an incoming
//!   webhook of the team's chat). Chat webhooks know no idempotency key:
//!   a retry after an answer was lost may post the message twice.
//! - `email` (the default): sent through the e-mail plugin configured
//!   under this plugin's `email:` setting (the same settings as a
//!   `kind: email` plugin), with the action's `template`, or the
//!   `email_template` setting (`notify`) when it names none; `text`, `case`,
//!   `team` and `agent` are template variables. Without `email:` settings
//!   it fails, permanently, saying so.
//! - any other channel (`phone`, ...): cannot be automated; e-mail is used
//!   when there is an address, and the result says the preferred channel
//!   was not used. Without an address it fails, permanently.

use std::collections::BTreeMap;
use std::time::Duration;

use casework_core::action::Action;
use casework_core::case::Channel;
use casework_core::config::{AgentDef, DirectoryDef, TeamDef};
use casework_core::plugin::{Done, Plugin, PluginError};
use casework_email::EmailPlugin;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::Client;
use crate::settings::{ConfigError, de_duration, from_map};

/// The settings of a `notify` plugin.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// For each chat webhook request.
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// E-mail plugin settings (`host`, `from`, `templates`, ...): how to
    /// reach teams whose channel is e-mail.
    #[serde(default)]
    pub email: Option<BTreeMap<String, Value>>,
    /// The e-mail template used when the action names none.
    #[serde(default = "default_email_template")]
    pub email_template: String,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_email_template() -> String {
    "notify".to_owned()
}

/// Every problem `casework check` can find in a `notify` plugin's
/// settings: their shape, and the e-mail settings under `email:` as an
/// `email` plugin's (located under `email.`).
pub fn check_settings(
    settings: &BTreeMap<String, Value>,
) -> Vec<casework_core::plugin::SettingsProblem> {
    let parsed: NotifySettings = match casework_core::plugin::read_settings(settings) {
        Ok(s) => s,
        Err(p) => return vec![p],
    };
    let mut problems = Vec::new();
    if parsed.timeout.is_zero() {
        problems.push(
            casework_core::plugin::SettingsProblem::invalid("timeout", "the timeout is zero")
                .hint("write a duration such as `10s`"),
        );
    }
    if let Some(email) = &parsed.email {
        problems.extend(
            casework_email::check_settings(email)
                .into_iter()
                .map(|p| p.under("email")),
        );
    }
    problems
}

/// Tells teams and agents about cases.
#[derive(Debug)]
pub struct NotifyPlugin {
    name: String,
    directory: DirectoryDef,
    email: Option<EmailPlugin>,
    email_template: String,
    client: Client,
}

/// Who is told, and how.
struct Recipient<'a> {
    team_name: &'a str,
    team: &'a TeamDef,
    agent: Option<(&'a str, &'a AgentDef)>,
}

impl NotifyPlugin {
    /// Build from the YAML settings and the configuration's directory.
    pub fn from_settings(
        name: &str,
        settings: &BTreeMap<String, Value>,
        directory: DirectoryDef,
    ) -> Result<NotifyPlugin, ConfigError> {
        let settings: NotifySettings = from_map(
            "notify",
            settings,
            "timeout, email (the settings of an e-mail plugin) and email_template",
        )?;
        let email = match &settings.email {
            None => None,
            Some(map) => {
                Some(
                    EmailPlugin::from_settings(map).map_err(|e| ConfigError::Settings {
                        kind: "notify".into(),
                        message: format!("`email`: {e}"),
                    })?,
                )
            }
        };
        Ok(Self::new(name, &settings, directory, email))
    }

    /// Build with an e-mail plugin made elsewhere (or none).
    pub fn new(
        name: &str,
        settings: &NotifySettings,
        directory: DirectoryDef,
        email: Option<EmailPlugin>,
    ) -> NotifyPlugin {
        NotifyPlugin {
            name: name.to_owned(),
            directory,
            email,
            email_template: settings.email_template.clone(),
            client: Client::new(settings.timeout),
        }
    }

    fn permanent(&self, action: &Action, message: impl std::fmt::Display) -> PluginError {
        PluginError::Permanent {
            plugin: self.name.clone(),
            message: format!("action {}: {message}", action.id),
        }
    }

    fn recipient<'a>(
        &'a self,
        action: &Action,
        params: &'a serde_json::Map<String, Value>,
    ) -> Result<Recipient<'a>, PluginError> {
        let text = |field: &str| -> Result<Option<&'a str>, PluginError> {
            match params.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.as_str())),
                Some(other) => Err(self.permanent(
                    action,
                    format!("param `{field}` must be a name, found {other}"),
                )),
            }
        };
        let agent_name = text("agent")?;
        let team_name = match text("team")? {
            Some(t) => t,
            // The agent's own team, else the fallback team.
            None => agent_name
                .and_then(|a| {
                    self.directory
                        .teams
                        .iter()
                        .find(|(_, t)| t.agents.contains_key(a))
                        .map(|(n, _)| n.as_str())
                })
                .unwrap_or(self.directory.fallback.as_str()),
        };
        let Some((team_name, team)) = self.directory.teams.get_key_value(team_name) else {
            return Err(self.permanent(
                action,
                format!(
                    "team `{team_name}` is not in the directory; teams: {}",
                    self.directory
                        .teams
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let agent_name = match (agent_name, text("to")?) {
            (Some(a), _) => Some(a),
            (None, Some("supervisor")) => match &team.supervisor {
                Some(s) => Some(s.as_str()),
                None => {
                    return Err(self.permanent(
                        action,
                        format!("`to: supervisor`, but team `{team_name}` names no supervisor"),
                    ));
                }
            },
            (None, Some(other)) => {
                return Err(self.permanent(
                    action,
                    format!("param `to` must be `supervisor`, found `{other}`"),
                ));
            }
            (None, None) => None,
        };
        let agent = match agent_name {
            None => None,
            Some(a) => {
                let found = team.agents.get_key_value(a).or_else(|| {
                    self.directory
                        .teams
                        .values()
                        .find_map(|t| t.agents.get_key_value(a))
                });
                match found {
                    Some((n, def)) => Some((n.as_str(), def)),
                    None => {
                        return Err(
                            self.permanent(action, format!("agent `{a}` is not in the directory"))
                        );
                    }
                }
            }
        };
        Ok(Recipient {
            team_name,
            team,
            agent,
        })
    }

    fn chat(&self, action: &Action, to: &Recipient<'_>, text: &str) -> Result<Done, PluginError> {
        let Some(url) = &to.team.webhook else {
            return Err(self.permanent(
                action,
                format!(
                    "team `{}` prefers chat but has no `webhook` in the directory",
                    to.team_name
                ),
            ));
        };
        let headers = [("Idempotency-Key", action.id.as_str())];
        let reply = self
            .client
            .post_json(&self.name, url, &headers, &json!({ "text": text }))?;
        tracing::info!(action = %action.id, case = %action.case, team = to.team_name, "notified on chat");
        Ok(Done {
            result: json!({
                "channel": "chat", "team": to.team_name,
                "agent": to.agent.map(|(n, _)| n), "status": reply.status,
            }),
            events: Vec::new(),
        })
    }

    fn email(
        &self,
        action: &Action,
        params: &serde_json::Map<String, Value>,
        to: &Recipient<'_>,
        text: &str,
        preferred: Channel,
    ) -> Result<Done, PluginError> {
        let address = to
            .agent
            .and_then(|(_, a)| a.email.as_deref())
            .or(to.team.email.as_deref());
        let Some(address) = address else {
            let who = match to.agent {
                Some((a, _)) => format!("agent `{a}` and team `{}` have", to.team_name),
                None => format!("team `{}` has", to.team_name),
            };
            return Err(self.permanent(
                action,
                format!(
                    "{who} no e-mail address, and channel {preferred} cannot be reached automatically"
                ),
            ));
        };
        let Some(email) = &self.email else {
            return Err(self.permanent(
                action,
                format!(
                    "telling {address} by e-mail needs an e-mail plugin: configure one under this plugin's `email:` setting (host, from, templates)"
                ),
            ));
        };
        let mut vars = params.clone();
        vars.insert("to".into(), json!(address));
        vars.insert("text".into(), json!(text));
        vars.insert("team".into(), json!(to.team_name));
        if let Some((a, def)) = to.agent {
            vars.insert("agent".into(), json!(a));
            if let Some(n) = &def.name {
                vars.insert("agent_name".into(), json!(n));
            }
        }
        vars.entry("template")
            .or_insert_with(|| json!(self.email_template));
        let send = Action {
            action: "email.send".into(),
            params: Value::Object(vars),
            ..action.clone()
        };
        match email.send(&send) {
            Ok(sent) => Ok(Done {
                result: json!({
                    "channel": "email", "preferred": preferred.as_str(),
                    "team": to.team_name, "agent": to.agent.map(|(n, _)| n),
                    "to": sent.to, "message_id": sent.message_id, "file": sent.file,
                }),
                events: Vec::new(),
            }),
            Err(e) if e.is_transient() => Err(PluginError::Transient {
                plugin: self.name.clone(),
                message: e.to_string(),
            }),
            Err(e) => Err(self.permanent(action, e)),
        }
    }
}

impl Plugin for NotifyPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn execute(&self, action: &Action) -> Result<Done, PluginError> {
        let act = action.action.split_once('.').map_or("", |(_, a)| a);
        if act != "notify" {
            return Err(self.permanent(
                action,
                format!("a notify plugin has no action `{act}`; it offers: notify"),
            ));
        }
        let empty = serde_json::Map::new();
        let params = match &action.params {
            Value::Object(map) => map,
            Value::Null => &empty,
            other => {
                return Err(self.permanent(action, format!("params must be a map, found {other}")));
            }
        };
        let to = self.recipient(action, params)?;
        let case = params
            .get("case")
            .and_then(Value::as_str)
            .unwrap_or(action.case.as_str());
        let body = match (
            params.get("text").and_then(Value::as_str),
            params.get("template").and_then(Value::as_str),
        ) {
            (Some(t), _) => t.to_owned(),
            (None, Some(template)) => format!("Case {case}: {template}"),
            (None, None) => format!("Case {case} needs your attention"),
        };
        let text = match to.agent {
            Some((a, def)) => format!("@{}: {body}", def.name.as_deref().unwrap_or(a)),
            None => body,
        };
        let channel = to
            .agent
            .and_then(|(_, a)| a.channel)
            .or(to.team.channel)
            .unwrap_or(Channel::Email);
        match channel {
            Channel::Chat => self.chat(action, &to, &text),
            other => self.email(action, params, &to, &text, other),
        }
    }
}
