//! casework-process: the `process` plugin kind.
//!
//! Any program that speaks JSON Lines over its stdin and stdout can carry
//! out actions for casework, in any language. The program is started once
//! and kept running; casework writes one request per line and reads one
//! reply per line:
//!
//! ```text
//! → {"id": "E-3/0", "action": "export", "params": {...}, "case": "C-1"}
//! ← {"id": "E-3/0", "ok": true, "result": {...}, "events": [...]}
//! ← {"id": "E-3/0", "ok": false, "error": "ERP is down", "transient": true}
//! ```
//!
//! `id` is the action id, the **idempotency key**: after a crash or a
//! timeout the same action may be sent again, and the program must
//! recognise it (do the effect once, answer again). `action` is the part
//! after the plugin name (`export` in `erp.export`). `events` are events
//! for the engine (the scenario event format); `id` and `at` may be left
//! out (they default to `<action id>:<n>` and now) and so may `case` (the
//! action's case). `transient` defaults to true: say `false` when retrying
//! cannot help.
//!
//! A program that exits, does not answer within `timeout`, or answers
//! something else than the reply to the request (not JSON, another id) is
//! killed; the attempt fails as transient (the outbox runner retries it)
//! and the program is started again for the next request.
//!
//! Settings (`plugins.NAME` in casework.yaml):
//!
//! ```yaml
//! erp:
//!   kind: process
//!   command: [python3, plugins/erp.py, --verbose]  # run in the config's directory
//!   actions: [export, sync]
//!   timeout: 10s                                  # per request; default 10s
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use casework_core::action::Action;
use casework_core::event::Event;
use casework_core::plugin::{Done, Plugin, PluginError};
use serde::{Deserialize, Serialize};

/// The timeout of one request when the settings give none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the settings of a `process` plugin cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    #[error(
        "plugin `{plugin}` (kind process): `command` must be a non-empty list: the program and its arguments, e.g. `command: [python3, plugin.py]`"
    )]
    Command { plugin: String },
    #[error(
        "plugin `{plugin}` (kind process): `actions` must be a list of action names, e.g. `actions: [export]`"
    )]
    Actions { plugin: String },
    #[error(
        "plugin `{plugin}` (kind process): `timeout: {value}` is not a duration; write e.g. `10s` or `2m`"
    )]
    Timeout { plugin: String, value: String },
}

/// The settings of one `process` plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSettings {
    pub command: Vec<String>,
    pub actions: Vec<String>,
    pub timeout: Duration,
    /// The directory the program runs in (the configuration's).
    pub dir: PathBuf,
}

impl ProcessSettings {
    /// Read the settings of plugin `name`; relative paths of the command
    /// resolve against `dir`, where the program also runs.
    pub fn from_settings(
        name: &str,
        settings: &BTreeMap<String, serde_json::Value>,
        dir: &Path,
    ) -> Result<ProcessSettings, SettingsError> {
        let strings = |key: &str| -> Option<Vec<String>> {
            settings
                .get(key)?
                .as_array()?
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let command = strings("command")
            .filter(|c| !c.is_empty() && !c[0].is_empty())
            .ok_or_else(|| SettingsError::Command {
                plugin: name.to_owned(),
            })?;
        let actions = strings("actions").ok_or_else(|| SettingsError::Actions {
            plugin: name.to_owned(),
        })?;
        let timeout = match settings.get("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(v) => {
                let text = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string());
                humantime::parse_duration(&text).map_err(|_| SettingsError::Timeout {
                    plugin: name.to_owned(),
                    value: text,
                })?
            }
        };
        Ok(ProcessSettings {
            command,
            actions,
            timeout,
            dir: dir.to_owned(),
        })
    }
}

/// One request line.
#[derive(Debug, Serialize)]
struct Request<'a> {
    id: &'a str,
    action: &'a str,
    params: &'a serde_json::Value,
    case: &'a str,
}

/// One reply line.
#[derive(Debug, Deserialize)]
struct Reply {
    id: String,
    ok: bool,
    #[serde(default)]
    result: serde_json::Value,
    #[serde(default)]
    events: Vec<serde_json::Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    transient: Option<bool>,
}

/// The running program.
struct Running {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<std::io::Result<String>>,
}

impl Running {
    fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plugin carried out by a local program (see the crate docs).
pub struct ProcessPlugin {
    name: String,
    settings: ProcessSettings,
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for ProcessPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPlugin")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish()
    }
}

impl ProcessPlugin {
    pub fn new(name: impl Into<String>, settings: ProcessSettings) -> Self {
        ProcessPlugin {
            name: name.into(),
            settings,
            running: Mutex::new(None),
        }
    }

    /// Build from `plugins.NAME` of the configuration, `dir` being the
    /// configuration's directory.
    pub fn from_settings(
        name: &str,
        settings: &BTreeMap<String, serde_json::Value>,
        dir: &Path,
    ) -> Result<Self, SettingsError> {
        Ok(Self::new(
            name,
            ProcessSettings::from_settings(name, settings, dir)?,
        ))
    }

    pub fn settings(&self) -> &ProcessSettings {
        &self.settings
    }

    fn transient(&self, message: impl Into<String>) -> PluginError {
        PluginError::Transient {
            plugin: self.name.clone(),
            message: message.into(),
        }
    }

    fn start(&self) -> Result<Running, PluginError> {
        let program = &self.settings.command[0];
        // `./x` and `dir/x` are relative to the configuration; a bare name
        // is looked up on PATH.
        let program = if program.contains('/') && Path::new(program).is_relative() {
            self.settings.dir.join(program)
        } else {
            PathBuf::from(program)
        };
        let mut child = Command::new(&program)
            .args(&self.settings.command[1..])
            .current_dir(&self.settings.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                self.transient(format!(
                    "cannot start `{}` in {}: {e}; check `command` in the plugin's settings",
                    self.settings.command.join(" "),
                    self.settings.dir.display()
                ))
            })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("plugin-{}", self.name))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let end = line.is_err();
                    if tx.send(line).is_err() || end {
                        break;
                    }
                }
            })
            .map_err(|e| self.transient(format!("cannot start a reader thread: {e}")))?;
        tracing::debug!(plugin = %self.name, pid = child.id(), "plugin process started");
        Ok(Running {
            child,
            stdin,
            lines,
        })
    }

    /// Send one request and wait for its reply. Any failure of the
    /// program leaves it to be killed by the caller.
    fn exchange(&self, running: &mut Running, action: &Action) -> Result<Reply, String> {
        let act = action
            .action
            .split_once('.')
            .map_or(action.action.as_str(), |(_, a)| a);
        let request = Request {
            id: &action.id,
            action: act,
            params: &action.params,
            case: &action.case.0,
        };
        let mut line = serde_json::to_string(&request).map_err(|e| e.to_string())?;
        line.push('\n');
        running
            .stdin
            .write_all(line.as_bytes())
            .and_then(|()| running.stdin.flush())
            .map_err(|e| format!("the plugin process is gone ({e})"))?;
        let deadline = std::time::Instant::now() + self.settings.timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match running.lines.recv_timeout(left) {
                Ok(Ok(line)) => line,
                Ok(Err(e)) => return Err(format!("cannot read the plugin's answer: {e}")),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no answer within {} (the `timeout` setting)",
                        humantime::format_duration(self.settings.timeout)
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = running.child.try_wait().ok().flatten().map_or_else(
                        || "closed its output".to_owned(),
                        |s| format!("exited ({s})"),
                    );
                    return Err(format!("the plugin process {status} without answering"));
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            let reply: Reply = serde_json::from_str(&line).map_err(|e| {
                format!(
                    "the answer is not a reply line ({e}): {}",
                    shorten(&line, 120)
                )
            })?;
            if reply.id != action.id {
                return Err(format!(
                    "the answer is for `{}`, not for the request `{}`",
                    reply.id, action.id
                ));
            }
            return Ok(reply);
        }
    }

    /// Events from a reply, with the defaults filled in.
    fn events(
        &self,
        action: &Action,
        values: Vec<serde_json::Value>,
    ) -> Result<Vec<Event>, String> {
        let now = chrono::Utc::now().fixed_offset();
        values
            .into_iter()
            .enumerate()
            .map(|(n, mut v)| {
                let obj = v
                    .as_object_mut()
                    .ok_or_else(|| format!("event {n} of the answer is not an object"))?;
                obj.entry("id")
                    .or_insert_with(|| format!("{}:{n}", action.id).into());
                obj.entry("at").or_insert_with(|| now.to_rfc3339().into());
                let has_subject = ["case", "order", "tracking", "in_reply_to"]
                    .iter()
                    .any(|k| obj.contains_key(*k));
                if !has_subject {
                    obj.insert("case".into(), action.case.0.clone().into());
                }
                serde_json::from_value(v).map_err(|e| format!("event {n} of the answer: {e}"))
            })
            .collect()
    }
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

impl Plugin for ProcessPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn execute(&self, action: &Action) -> Result<Done, PluginError> {
        let mut guard = self
            .running
            .lock()
            .map_err(|_| self.transient("the plugin's lock was poisoned"))?;
        let mut running = match guard.take() {
            Some(r) => r,
            None => self.start()?,
        };
        let reply = match self.exchange(&mut running, action) {
            Ok(reply) => reply,
            Err(message) => {
                tracing::warn!(plugin = %self.name, action = %action.id, "{message}; restarting the plugin process");
                running.stop();
                return Err(self.transient(format!(
                    "{message}; the process was killed and will be restarted"
                )));
            }
        };
        let events = match self.events(action, reply.events) {
            Ok(events) => events,
            Err(message) => {
                running.stop();
                return Err(self.transient(format!(
                    "{message}; the process was killed and will be restarted"
                )));
            }
        };
        *guard = Some(running);
        if reply.ok {
            return Ok(Done {
                result: reply.result,
                events,
            });
        }
        let message = reply
            .error
            .unwrap_or_else(|| "failed without saying why".to_owned());
        Err(if reply.transient.unwrap_or(true) {
            PluginError::Transient {
                plugin: self.name.clone(),
                message,
            }
        } else {
            PluginError::Permanent {
                plugin: self.name.clone(),
                message,
            }
        })
    }
}

impl Drop for ProcessPlugin {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.running.lock()
            && let Some(mut running) = guard.take()
        {
            // Closing stdin asks the program to finish; give it a moment.
            drop(running.stdin);
            let deadline = std::time::Instant::now() + Duration::from_millis(500);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = running.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}
