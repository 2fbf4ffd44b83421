//! What `check` knows about a plugin kind: its name, the actions and
//! inbound events it offers, and how to check its settings.
//!
//! `check` lives here, in the core, but the kinds live in the plugin crates
//! and in programs embedding casework. A [`KindInfo`] carries a kind's
//! knowledge to `check` without the core depending on any plugin: the
//! registry of the `casework` crate holds one per kind it can build, and
//! hands the [`KindCatalog`] to [`crate::config::check_kinds`]. With no
//! catalog given, `check` uses [`KindCatalog::builtin`], which knows the
//! built-in kinds' actions but not their settings.
//!
//! A validator sees the settings (everything under the plugin but `kind`
//! and `webhook_signature`) and answers with [`SettingsProblem`]s, each at
//! a path relative to the plugin (`port`, `templates.notice.body`), which
//! `check` turns into diagnostics at that key or value in the YAML. It
//! must not do I/O or read the environment: `check` runs where the secrets
//! and the servers may not be. [`read_settings`] deserializes settings
//! with serde and locates the first problem, so a kind whose settings are
//! a `#[derive(Deserialize)]` struct gets located errors for free:
//!
//! ```
//! use std::collections::BTreeMap;
//! use casework_core::plugin::{KindInfo, SettingsCheck, read_settings};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct ErpSettings { url: String, #[serde(default)] retries: u8 }
//!
//! let erp = KindInfo::new("erp")
//!     .actions(["export", "sync"])
//!     .settings(|_plugin, settings| match read_settings::<ErpSettings>(settings) {
//!         Ok(_) => SettingsCheck::default(),
//!         Err(problem) => SettingsCheck::problem(problem),
//!     });
//! let settings: BTreeMap<String, serde_json::Value> =
//!     [("url".to_owned(), "https://erp.example".into()), ("retries".to_owned(), "x".into())].into();
//! let found = erp.check_settings("erp", &settings);
//! assert_eq!(found.problems[0].path, "retries");
//! assert!(found.problems[0].message.contains("invalid type"));
//! ```
//!
//! Conventions every kind gets from `check` without writing them:
//! a setting whose name ends in `_env` names an environment variable and
//! must look like one (a value with spaces or symbols is probably the
//! secret itself, which must never be in the YAML); a variable that is not
//! set where `check` runs is only a warning. A setting named like a secret
//! (`password`, `token`, `api_key`, `..._secret`) is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::params::{ActionParams, ParamKind, ParamSpec};
use crate::diagnostic::Severity;

/// One problem with a plugin's settings, at a path under the plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsProblem {
    pub severity: Severity,
    /// A stable code: `plugin::invalid-settings`, `plugin::unknown-setting`,
    /// `plugin::missing-setting`, `plugin::secret-in-yaml`, ...
    pub code: &'static str,
    /// Where, under the plugin: `port`, `templates.notice.body`,
    /// `paths.hold`; empty for the plugin as a whole (a missing setting).
    pub path: String,
    /// Point at the key rather than the value (an unknown key).
    pub on_key: bool,
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl SettingsProblem {
    /// An error about the value at `path`.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        SettingsProblem {
            severity: Severity::Error,
            code: "plugin::invalid-settings",
            path: path.into(),
            on_key: false,
            message: message.into(),
            hint: None,
        }
    }

    /// An error: `path` is not a setting of this kind (located at its key).
    pub fn unknown(path: impl Into<String>, known: &[&str]) -> Self {
        let path = path.into();
        let key = path.rsplit('.').next().unwrap_or(&path).to_owned();
        let mut hint = format!("the settings are: {}", known.join(", "));
        if let Some(s) = crate::diagnostic::did_you_mean(&key, known.iter().copied()) {
            hint = format!("did you mean `{s}`? {hint}");
        }
        SettingsProblem {
            code: "plugin::unknown-setting",
            on_key: true,
            hint: Some(hint),
            ..SettingsProblem::invalid(path.clone(), format!("unknown setting `{path}`"))
        }
    }

    /// An error: the required setting `name` is missing.
    pub fn missing(name: &str) -> Self {
        SettingsProblem {
            code: "plugin::missing-setting",
            on_key: true,
            hint: Some(format!("add `{name}:` under the plugin")),
            ..SettingsProblem::invalid("", format!("missing setting `{name}`"))
        }
    }

    /// A warning about the value at `path`.
    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        SettingsProblem {
            severity: Severity::Warning,
            ..SettingsProblem::invalid(path, message)
        }
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Point at the key of `path` rather than its value.
    pub fn at_key(mut self) -> Self {
        self.on_key = true;
        self
    }

    /// The same problem under `prefix` (settings nested in settings, as
    /// the `email:` of a `notify` plugin).
    pub fn under(mut self, prefix: &str) -> Self {
        let shown = format!("`{}`", self.path);
        if !self.path.is_empty() && self.message.starts_with(&shown) {
            self.message = format!("`{prefix}.{}`{}", self.path, &self.message[shown.len()..]);
        }
        self.path = if self.path.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.path)
        };
        if self.code == "plugin::missing-setting" {
            // `email` lacks `host`: point at `email`, name `email.host`.
            self.on_key = true;
            self.message = self.message.replacen(
                "missing setting `",
                &format!("missing setting `{prefix}."),
                1,
            );
        }
        self
    }
}

/// What checking one plugin's settings found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsCheck {
    pub problems: Vec<SettingsProblem>,
    /// Actions this plugin offers because of its settings, besides the
    /// kind's own (a `process` plugin's `actions:` list).
    pub actions: Vec<String>,
}

impl SettingsCheck {
    /// One problem and nothing else.
    pub fn problem(problem: SettingsProblem) -> Self {
        SettingsCheck {
            problems: vec![problem],
            actions: Vec::new(),
        }
    }

    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }
}

/// Checks the settings of one plugin: its name and the settings map.
pub type SettingsValidator =
    Arc<dyn Fn(&str, &BTreeMap<String, Value>) -> SettingsCheck + Send + Sync>;

/// A plugin kind as `check` sees it.
#[derive(Clone)]
pub struct KindInfo {
    name: String,
    actions: Vec<String>,
    events: Vec<String>,
    webhooks: bool,
    validator: Option<SettingsValidator>,
    params: BTreeMap<String, ActionParams>,
}

impl fmt::Debug for KindInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindInfo")
            .field("name", &self.name)
            .field("actions", &self.actions)
            .field("events", &self.events)
            .field("webhooks", &self.webhooks)
            .field("params", &self.params)
            .field("validates_settings", &self.validator.is_some())
            .finish()
    }
}

impl KindInfo {
    /// A kind offering no actions, producing no events, taking any
    /// settings: add what it has with the builder methods.
    pub fn new(name: impl Into<String>) -> Self {
        KindInfo {
            name: name.into(),
            actions: Vec::new(),
            events: Vec::new(),
            webhooks: false,
            validator: None,
            params: BTreeMap::new(),
        }
    }

    /// The actions every plugin of this kind offers (`hold`, not
    /// `warehouse.hold`: the plugin's name goes in front).
    pub fn actions<S: Into<String>>(mut self, actions: impl IntoIterator<Item = S>) -> Self {
        self.actions = actions.into_iter().map(Into::into).collect();
        self
    }

    /// The event kinds it produces (`erp.synced`): the workflow may fire
    /// transitions on them and the engine accepts them.
    pub fn events<S: Into<String>>(mut self, events: impl IntoIterator<Item = S>) -> Self {
        self.events = events.into_iter().map(Into::into).collect();
        self
    }

    /// What the parameters of `action` (`hold`) must be; `check` holds the
    /// workflow's actions to it and the engine the rules' actions.
    pub fn params(mut self, action: impl Into<String>, params: ActionParams) -> Self {
        self.params.insert(action.into(), params);
        self
    }

    /// The parameter schema of `action`, if the kind declares one.
    pub fn action_params(&self, action: &str) -> Option<&ActionParams> {
        self.params.get(action)
    }

    /// It takes webhooks (`POST /webhooks/{plugin}`), so its plugins may
    /// have a `webhook_signature` setting.
    pub fn webhooks(mut self, takes_webhooks: bool) -> Self {
        self.webhooks = takes_webhooks;
        self
    }

    /// How to check a plugin's settings without I/O.
    pub fn settings(
        mut self,
        validator: impl Fn(&str, &BTreeMap<String, Value>) -> SettingsCheck + Send + Sync + 'static,
    ) -> Self {
        self.validator = Some(Arc::new(validator));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn offered_actions(&self) -> &[String] {
        &self.actions
    }

    pub fn produced_events(&self) -> &[String] {
        &self.events
    }

    pub fn takes_webhooks(&self) -> bool {
        self.webhooks
    }

    /// Run the validator (no problems when the kind has none).
    pub fn check_settings(
        &self,
        plugin: &str,
        settings: &BTreeMap<String, Value>,
    ) -> SettingsCheck {
        match &self.validator {
            Some(v) => v(plugin, settings),
            None => SettingsCheck::default(),
        }
    }
}

/// The kinds `check` accepts, by name.
#[derive(Clone, Debug, Default)]
pub struct KindCatalog {
    kinds: BTreeMap<String, KindInfo>,
}

impl KindCatalog {
    /// No kinds at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The built-in kinds with their actions, events and webhooks; the
    /// `process` kind's `actions:` list is checked. The other kinds'
    /// settings are checked by the validators their crates provide (the
    /// `casework` crate's registry adds them).
    pub fn builtin() -> Self {
        use super::PluginKind;
        let mut c = Self::empty();
        for kind in PluginKind::ALL {
            let mut info = KindInfo::new(kind.as_str()).actions(kind.actions().iter().copied());
            for (action, params) in builtin_params(*kind) {
                info = info.params(action, params);
            }
            info = match kind {
                PluginKind::Warehouse => info.webhooks(true).events(
                    [
                        "planned",
                        "shipped",
                        "delayed",
                        "held",
                        "released",
                        "backorder",
                    ]
                    .map(|t| format!("warehouse.{t}")),
                ),
                PluginKind::Carrier => info
                    .webhooks(true)
                    .events(["eta", "delivered", "exception"].map(|t| format!("carrier.{t}"))),
                PluginKind::Process => info.settings(|_, settings| process_settings(settings)),
                _ => info,
            };
            c.insert(info);
        }
        c
    }

    /// Add a kind, or replace the one of the same name.
    pub fn insert(&mut self, info: KindInfo) {
        self.kinds.insert(info.name.clone(), info);
    }

    pub fn get(&self, name: &str) -> Option<&KindInfo> {
        self.kinds.get(name)
    }

    /// Kind names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }
}

/// What the built-in kinds' actions take (the engine adds `case` to every
/// action, a notice's `team` from the case's assignment and an e-mail's
/// `to` from the customer, so those are optional here).
fn builtin_params(kind: super::PluginKind) -> Vec<(&'static str, ActionParams)> {
    use super::PluginKind;
    use ParamKind::{Any, Date, Text};
    let req = ParamSpec::required;
    let opt = ParamSpec::optional;
    match kind {
        PluginKind::Warehouse => vec![
            (
                "hold",
                ActionParams::new([
                    req("order", Text),
                    req("until", Date),
                    opt("promise", Text),
                    opt("reason", Text),
                ]),
            ),
            (
                "release",
                ActionParams::new([req("order", Text), opt("reason", Text)]),
            ),
            (
                "ship_on",
                ActionParams::new([req("order", Text), req("date", Date), opt("reason", Text)]),
            ),
            (
                "track",
                ActionParams::new([opt("order", Text), opt("tracking", Text)]),
            ),
        ],
        PluginKind::Carrier => vec![
            (
                "reschedule",
                ActionParams::new([
                    req("deliver_on", Date),
                    opt("order", Text),
                    opt("tracking", Text),
                    opt("promise", Text),
                    opt("reason", Text),
                ]),
            ),
            (
                "track",
                ActionParams::new([opt("order", Text), opt("tracking", Text)]),
            ),
        ],
        // Every other parameter is a template variable.
        PluginKind::Email => vec![(
            "send",
            ActionParams::new([
                req("template", Text),
                opt("to", Text),
                opt("in_reply_to", Any),
            ])
            .open(),
        )],
        PluginKind::Notify => vec![(
            "notify",
            ActionParams::new([
                opt("team", Text),
                opt("agent", Text),
                opt("text", Text),
                opt("template", Text),
            ])
            .open(),
        )],
        PluginKind::Process => Vec::new(),
    }
}

/// The settings of a `process` plugin: `command`, `actions`, `timeout`.
/// Here rather than in `casework-process` because `actions` decides what
/// the plugin offers, which `check` needs with or without the registry.
fn process_settings(settings: &BTreeMap<String, Value>) -> SettingsCheck {
    const KNOWN: &[&str] = &["command", "actions", "timeout"];
    let mut check = SettingsCheck::default();
    for key in settings.keys() {
        if !KNOWN.contains(&key.as_str()) {
            check
                .problems
                .push(SettingsProblem::unknown(key.clone(), KNOWN));
        }
    }
    match settings.get("command") {
        None => check.problems.push(
            SettingsProblem::missing("command")
                .hint("give the program and its arguments: `command: [python3, ledger.py]`"),
        ),
        Some(v) => {
            let ok = v.as_array().is_some_and(|a| {
                !a.is_empty() && a.iter().all(|s| s.as_str().is_some()) && a[0] != ""
            });
            if !ok {
                check.problems.push(
                    SettingsProblem::invalid(
                        "command",
                        "`command` must be a non-empty list of strings",
                    )
                    .hint("give the program and its arguments: `command: [python3, ledger.py]`"),
                );
            }
        }
    }
    match settings.get("actions") {
        None => check.problems.push(
            SettingsProblem::missing("actions")
                .hint("list the actions the program handles: `actions: [export, sync]`"),
        ),
        Some(value) => match value.as_array() {
            None => check.problems.push(
                SettingsProblem::invalid("actions", "`actions` must be a list of action names")
                    .hint("list the actions the program handles: `actions: [export, sync]`"),
            ),
            Some(items) => {
                for (i, v) in items.iter().enumerate() {
                    match v.as_str() {
                        Some(s) if !s.is_empty() && !s.contains('.') => {
                            check.actions.push(s.to_owned());
                        }
                        _ => check.problems.push(
                            SettingsProblem::invalid(
                                format!("actions[{i}]"),
                                format!("`actions` must hold plain names like `export`, found {v}"),
                            )
                            .hint("write the action without the plugin name: `export`, not `erp.export`"),
                        ),
                    }
                }
            }
        },
    }
    if let Some(v) = settings.get("timeout") {
        let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        if humantime::parse_duration(text.trim()).is_err() {
            check.problems.push(
                SettingsProblem::invalid("timeout", format!("`{text}` is not a duration"))
                    .hint("write a duration such as `10s` or `2m`"),
            );
        }
    }
    check
}

/// Deserialize a plugin's settings into `T`; on failure, the problem at
/// the path where serde stopped (`port`, `templates.notice`), with an
/// unknown key located at the key and a missing field at the plugin.
pub fn read_settings<T: DeserializeOwned>(
    settings: &BTreeMap<String, Value>,
) -> Result<T, SettingsProblem> {
    let map: serde_json::Map<String, Value> = settings
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    read_value(Value::Object(map))
}

/// [`read_settings`] for any JSON value.
pub fn read_value<T: DeserializeOwned>(value: Value) -> Result<T, SettingsProblem> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        // serde_path_to_error writes `.` for the root and `a.b[0]` below it.
        let path = if path == "." { String::new() } else { path };
        let message = e.inner().to_string();
        serde_problem(path, message)
    })
}

/// Classify a serde error message: unknown field, missing field or a bad
/// value, each with the hint a person editing the YAML needs.
fn serde_problem(path: String, message: String) -> SettingsProblem {
    // "unknown field `hots`, expected one of `host`, `port`, ..."
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let known: Vec<&str> = expected
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| !s.is_empty())
            .collect();
        let full = if path.is_empty() || path.ends_with(field) {
            if path.is_empty() {
                field.to_owned()
            } else {
                path
            }
        } else {
            format!("{path}.{field}")
        };
        return SettingsProblem::unknown(full, &known);
    }
    // "missing field `host`"
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        let p = SettingsProblem::missing(field);
        return if path.is_empty() { p } else { p.under(&path) };
    }
    // "unknown variant `ssl`, expected one of `none`, `starttls`, `tls`"
    let hint = if let Some(rest) = message.strip_prefix("unknown variant `") {
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        format!("use one of: {}", expected.join(", "))
    } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
        "write a value of the type the setting takes (see the plugin's documentation)".to_owned()
    } else {
        "fix the value".to_owned()
    };
    let shown = if path.is_empty() {
        "settings".to_owned()
    } else {
        format!("`{path}`")
    };
    SettingsProblem::invalid(path, format!("{shown}: {message}")).hint(hint)
}

// ---------------------------------------------------------------------------
// Conventions checked for every kind

/// Keys that would hold a secret in the YAML.
fn secret_like(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("_env") {
        return false;
    }
    matches!(
        k.as_str(),
        "password" | "passwd" | "token" | "secret" | "api_key" | "apikey" | "access_token"
    ) || ["_password", "_token", "_secret", "_api_key"]
        .iter()
        .any(|s| k.ends_with(s))
}

/// True when `s` has the shape of an environment variable name.
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Problems every kind shares: secrets written in the YAML, `*_env`
/// settings that do not name a variable (errors) or name one that is not
/// set here (warnings). `env` reads the environment where `check` runs.
/// Returns the problems and the keys already reported (which the kind's
/// own validator is not shown, so one mistake is reported once).
pub(crate) fn conventions(
    settings: &BTreeMap<String, Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<SettingsProblem>, BTreeSet<String>) {
    let mut problems = Vec::new();
    let mut reported = BTreeSet::new();
    for (key, value) in settings {
        let top = walk(key.clone(), value, env, &mut problems);
        if top {
            reported.insert(key.clone());
        }
    }
    (problems, reported)
}

/// Check one setting (and what is nested in it); true when the setting
/// itself was reported.
fn walk(
    path: String,
    value: &Value,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut Vec<SettingsProblem>,
) -> bool {
    let key = path.rsplit('.').next().unwrap_or(&path).to_owned();
    if secret_like(&key) && !value.is_null() && !value.is_object() {
        out.push(
            SettingsProblem::invalid(
                path.clone(),
                format!("`{path}` would put a secret in the YAML"),
            )
            .code("plugin::secret-in-yaml")
            .at_key()
            .hint(format!(
                "secrets come from the environment: put it in a variable and name that variable instead, e.g. `{key}_env: {}`",
                key.to_ascii_uppercase()
            )),
        );
        return true;
    }
    if key.ends_with("_env") {
        let Some(name) = value.as_str() else {
            out.push(
                SettingsProblem::invalid(
                    path.clone(),
                    format!("`{path}` must be the name of an environment variable"),
                )
                .hint(format!("write the variable's name: `{key}: SHOP_SECRET`")),
            );
            return true;
        };
        if !is_env_name(name) {
            out.push(
                SettingsProblem::invalid(
                    path.clone(),
                    format!("`{path}` must name an environment variable; this looks like the secret itself"),
                )
                .code("plugin::secret-in-yaml")
                .hint(format!(
                    "never write secrets in the YAML: put the value in an environment variable where casework runs (letters, digits and `_`) and write its name here, e.g. `{key}: {}`; if it was a real secret, change it",
                    key.trim_end_matches("_env").to_ascii_uppercase()
                )),
            );
            return true;
        }
        match env(name) {
            Some(v) if !v.is_empty() => {}
            _ => {
                let mut hint = format!(
                    "set `{name}` in the environment of `casework run`/`serve`; `check` only warns, as it may run where the secrets are not"
                );
                if name.chars().any(|c| c.is_ascii_lowercase()) {
                    hint.push_str(
                        "; variable names are usually upper case: if this is the secret itself, move it into a variable",
                    );
                }
                out.push(
                    SettingsProblem::warning(
                        path.clone(),
                        format!(
                            "environment variable `{name}` (named by `{path}`) is not set here"
                        ),
                    )
                    .code("plugin::env-unset")
                    .hint(hint),
                );
            }
        }
        return false;
    }
    if let Value::Object(map) = value {
        for (k, v) in map {
            walk(format!("{path}.{k}"), v, env, out);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct S {
        host: String,
        #[serde(default)]
        port: Option<u16>,
        #[serde(default)]
        nested: BTreeMap<String, Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        subject: String,
    }

    fn map(v: Value) -> BTreeMap<String, Value> {
        v.as_object().unwrap().clone().into_iter().collect()
    }

    #[test]
    fn serde_errors_are_located() {
        let p =
            read_settings::<S>(&map(serde_json::json!({"host": "h", "port": "x"}))).unwrap_err();
        assert_eq!(
            (p.path.as_str(), p.code),
            ("port", "plugin::invalid-settings")
        );
        let p = read_settings::<S>(&map(serde_json::json!({"host": "h", "hosts": 1}))).unwrap_err();
        assert_eq!(
            (p.path.as_str(), p.code, p.on_key),
            ("hosts", "plugin::unknown-setting", true)
        );
        assert!(p.hint.unwrap().contains("did you mean `host`?"));
        let p = read_settings::<S>(&map(serde_json::json!({}))).unwrap_err();
        assert_eq!((p.path.as_str(), p.code), ("", "plugin::missing-setting"));
        let p = read_settings::<S>(&map(
            serde_json::json!({"host": "h", "nested": {"a": {"subjct": "x"}}}),
        ))
        .unwrap_err();
        assert_eq!(
            (p.path.as_str(), p.code),
            ("nested.a.subjct", "plugin::unknown-setting")
        );
        let p = read_settings::<S>(&map(serde_json::json!({"host": "h", "nested": {"a": {}}})))
            .unwrap_err();
        assert_eq!((p.path.as_str(), p.on_key), ("nested.a", true));
    }

    #[test]
    fn env_settings_name_variables_and_secrets_stay_out() {
        let env = |k: &str| (k == "SET_HERE").then(|| "x".to_owned());
        let (problems, reported) = conventions(
            &map(serde_json::json!({
                "token_env": "SET_HERE",
                "password_env": "hunter2 is my password!",
                "username_env": "NOT_SET_HERE",
                "password": "hunter2",
                "email": { "password_env": 42 },
            })),
            &env,
        );
        let got: Vec<(&str, &str, Severity)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.code, p.severity))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "email.password_env",
                    "plugin::invalid-settings",
                    Severity::Error
                ),
                ("password", "plugin::secret-in-yaml", Severity::Error),
                ("password_env", "plugin::secret-in-yaml", Severity::Error),
                ("username_env", "plugin::env-unset", Severity::Warning),
            ]
        );
        assert_eq!(
            reported.into_iter().collect::<Vec<_>>(),
            ["password", "password_env"]
        );
    }

    #[test]
    fn process_settings_offer_their_actions() {
        let c = process_settings(&map(
            serde_json::json!({"command": ["x"], "actions": ["export", "a.b"], "timout": "1s"}),
        ));
        assert_eq!(c.actions, ["export"]);
        let paths: Vec<&str> = c.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["timout", "actions[1]"]);
    }
}
