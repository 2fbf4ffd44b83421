//! Plugins: the code that talks to the outside world, and the catalog of
//! actions a configuration may request of them.
//!
//! A plugin is configured under `plugins:` as `name: { kind: K, ...settings }`.
//! The *kind* picks the implementation; the *name* is what actions are
//! written with: an action is `<plugin name>.<action>`, so a plugin named
//! `team` of kind `notify` offers `team.notify`. The engine itself offers a
//! few actions that need no plugin ([`ENGINE_ACTIONS`]).
//!
//! `check` uses the [`ActionCatalog`] to reject an action no configured
//! plugin offers, before a case ever asks for it.
//!
//! ```
//! use casework_core::plugin::{ActionCatalog, PluginKind};
//!
//! assert_eq!(PluginKind::parse("carrier"), Some(PluginKind::Carrier));
//! assert!(PluginKind::Warehouse.actions().contains(&"hold"));
//! // Engine actions are always there.
//! assert!(ActionCatalog::default().contains("task.create"));
//! assert!(!ActionCatalog::default().contains("warehouse.hold"));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use indexmap::IndexMap;

use crate::config::PluginDef;
use crate::diagnostic::{Diagnostic, Diagnostics, Severity};
use crate::yaml::LocationIndex;

mod kinds;
mod params;
mod signature;

pub use kinds::{
    KindCatalog, KindInfo, SettingsCheck, SettingsProblem, SettingsValidator, is_env_name,
    read_settings, read_value,
};
pub use params::{ActionParams, ParamKind, ParamSpec};
pub use signature::{
    SignatureError, SignatureFormat, WEBHOOK_SIGNATURE, WebhookSignature, WebhookVerifier,
};

/// Actions the engine carries out itself, with no plugin configured:
/// `task.create` puts work on a person's list (phone the customer),
/// `case.tag` adds a tag to the case.
pub const ENGINE_ACTIONS: &[&str] = &["task.create", "case.tag"];

/// Plugin names that would clash with [`ENGINE_ACTIONS`].
const RESERVED_NAMES: &[&str] = &["task", "case"];

/// The built-in plugin kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    /// Sends e-mail: `send`.
    Email,
    /// The shop's warehouse: `hold`, `release`, `ship_on`, `track`.
    Warehouse,
    /// A delivery company: `reschedule`, `track`.
    Carrier,
    /// Tells a team or agent about a case on their preferred channel:
    /// `notify`.
    Notify,
    /// Runs a local program; offers the actions listed in its `actions:`
    /// setting.
    Process,
}

impl PluginKind {
    /// Every kind, in the order shown in hints.
    pub const ALL: &'static [PluginKind] = &[
        PluginKind::Email,
        PluginKind::Warehouse,
        PluginKind::Carrier,
        PluginKind::Notify,
        PluginKind::Process,
    ];

    /// The kind named in YAML (`kind: warehouse`).
    pub fn parse(s: &str) -> Option<Self> {
        PluginKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Email => "email",
            PluginKind::Warehouse => "warehouse",
            PluginKind::Carrier => "carrier",
            PluginKind::Notify => "notify",
            PluginKind::Process => "process",
        }
    }

    /// The actions every plugin of this kind offers. `process` offers none
    /// by itself: its actions come from its settings.
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            PluginKind::Email => &["send"],
            PluginKind::Warehouse => &["hold", "release", "ship_on", "track"],
            PluginKind::Carrier => &["reschedule", "track"],
            PluginKind::Notify => &["notify"],
            PluginKind::Process => &[],
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which actions the configured plugins (and the engine) offer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionCatalog {
    /// Plugin name -> (kind, actions offered).
    plugins: BTreeMap<String, (String, BTreeSet<String>)>,
    /// `plugin.action` -> what its parameters must be, for the actions
    /// whose kind declares it.
    params: BTreeMap<String, ActionParams>,
    /// Event kinds the configured plugins' kinds produce.
    events: BTreeSet<String>,
    /// Plugins written with their `kind` alone, whose kind needs settings:
    /// declared but not configured yet (their actions wait in the outbox),
    /// with what they need.
    not_configured: BTreeMap<String, String>,
    /// Plugins configured with a problem (unknown kind, bad settings):
    /// their actions are accepted, so one mistake is reported once, where
    /// the plugin is configured, not again at every use.
    unchecked: BTreeSet<String>,
    /// When the plugin section could not be read, every action is
    /// accepted rather than reporting each as unknown.
    open: bool,
}

impl ActionCatalog {
    /// Build the catalog from `plugins:` with the built-in kinds
    /// ([`KindCatalog::builtin`]).
    pub fn from_config(
        plugins: &IndexMap<String, PluginDef>,
        index: &LocationIndex,
    ) -> (ActionCatalog, Diagnostics) {
        Self::from_config_with(plugins, index, &KindCatalog::builtin())
    }

    /// Build the catalog from `plugins:`, reporting reserved names, kinds
    /// not in `kinds`, and every problem the kinds' validators and the
    /// shared conventions (secrets from the environment, signed webhooks)
    /// find in the settings, each at its key or value. The actions of a
    /// plugin with an error are not checked (the problem is reported once,
    /// here). Environment variables are looked up in this process's
    /// environment, for warnings only.
    pub fn from_config_with(
        plugins: &IndexMap<String, PluginDef>,
        index: &LocationIndex,
        kinds: &KindCatalog,
    ) -> (ActionCatalog, Diagnostics) {
        let env = |var: &str| std::env::var(var).ok();
        let mut catalog = ActionCatalog::default();
        let mut diags = Diagnostics::default();
        for (name, def) in plugins {
            let path = format!("plugins.{name}");
            if RESERVED_NAMES.contains(&name.as_str()) {
                diags.push(
                    Diagnostic::error(
                        "plugin::reserved-name",
                        format!("plugin name `{name}` is reserved for the engine's own actions"),
                    )
                    .at(index.key(&path))
                    .hint(format!(
                        "rename the plugin; `{}` are built in",
                        ENGINE_ACTIONS.join("`, `")
                    )),
                );
                continue;
            }
            let Some(kind) = kinds.get(&def.kind) else {
                let known: Vec<&str> = kinds.names().collect();
                let mut hint = format!(
                    "use one of the kinds: {}; a kind of your own is registered in Rust (`Registry::register_kind`)",
                    known.join(", ")
                );
                if let Some(s) = crate::diagnostic::did_you_mean(&def.kind, known.iter().copied()) {
                    hint = format!("did you mean `{s}`? {hint}");
                }
                catalog.unchecked.insert(name.clone());
                diags.push(
                    Diagnostic::error(
                        "plugin::unknown-kind",
                        format!("plugin `{name}` has unknown kind `{}`", def.kind),
                    )
                    .at(index.value(&format!("{path}.kind")))
                    .hint(hint),
                );
                continue;
            };
            // The kind's events do not depend on its settings.
            catalog
                .events
                .extend(kind.produced_events().iter().cloned());
            let (problems, actions) = check_plugin(name, def, kind, &env);
            // Written with its kind alone, and all the kind lacks is
            // settings: declared, not configured yet. Not a mistake (the
            // default pack declares its warehouse so rules can ask it to
            // hold); `run` and `serve` say its actions wait.
            if def.settings.is_empty()
                && !problems.is_empty()
                && problems.iter().all(|p| p.code == "plugin::missing-setting")
            {
                let needs: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
                catalog
                    .not_configured
                    .insert(name.clone(), needs.join(", "));
            } else {
                let mut failed = false;
                for p in problems {
                    failed |= p.severity == Severity::Error;
                    diags.push(locate(name, &def.kind, &path, p, index));
                }
                if failed {
                    catalog.unchecked.insert(name.clone());
                    continue;
                }
            }
            let mut offered: BTreeSet<String> = kind.offered_actions().iter().cloned().collect();
            offered.extend(actions);
            for action in &offered {
                if let Some(schema) = kind.action_params(action) {
                    catalog
                        .params
                        .insert(format!("{name}.{action}"), schema.clone());
                }
            }
            catalog
                .plugins
                .insert(name.clone(), (def.kind.clone(), offered));
        }
        (catalog, diags)
    }

    /// A catalog that accepts every action: used when the `plugins`
    /// section could not be read, so its absence does not turn every action
    /// into a second error.
    pub(crate) fn open() -> Self {
        ActionCatalog {
            open: true,
            ..ActionCatalog::default()
        }
    }

    /// True when `action` (`plugin.action`) can be carried out.
    pub fn contains(&self, action: &str) -> bool {
        if self.open || ENGINE_ACTIONS.contains(&action) {
            return true;
        }
        let Some((plugin, act)) = action.split_once('.') else {
            return false;
        };
        if self.unchecked.contains(plugin) {
            return true;
        }
        self.plugins
            .get(plugin)
            .is_some_and(|(_, actions)| actions.contains(act))
    }

    /// What the parameters of `action` (`plugin.action`) must be, when its
    /// kind says.
    pub fn params(&self, action: &str) -> Option<&ActionParams> {
        self.params.get(action)
    }

    /// Every action with a parameter schema, by `plugin.action`.
    pub fn all_params(&self) -> &BTreeMap<String, ActionParams> {
        &self.params
    }

    /// The kind of the plugin called `name`.
    pub fn kind(&self, name: &str) -> Option<&str> {
        self.plugins.get(name).map(|(k, _)| k.as_str())
    }

    /// Event kinds the configured plugins produce (`warehouse.planned`).
    pub fn events(&self) -> impl Iterator<Item = &str> {
        self.events.iter().map(String::as_str)
    }

    /// Plugins declared with their kind alone whose kind needs settings,
    /// with what they lack: they load, but cannot run.
    pub fn not_configured(&self) -> impl Iterator<Item = (&str, &str)> {
        self.not_configured
            .iter()
            .map(|(n, why)| (n.as_str(), why.as_str()))
    }

    /// Every action on offer, `plugin.action`, engine actions first.
    pub fn actions(&self) -> impl Iterator<Item = String> + '_ {
        ENGINE_ACTIONS.iter().map(|a| (*a).to_owned()).chain(
            self.plugins
                .iter()
                .flat_map(|(p, (_, acts))| acts.iter().map(move |a| format!("{p}.{a}"))),
        )
    }

    /// What to tell someone who wrote `action`, which is not on offer.
    pub fn hint_for(&self, action: &str) -> String {
        let all: Vec<String> = self.actions().collect();
        if let Some(s) = crate::diagnostic::did_you_mean(action, all.iter().map(String::as_str)) {
            return format!("did you mean `{s}`?");
        }
        match action.split_once('.') {
            None => format!(
                "write actions as `plugin.action`; available: {}",
                all.join(", ")
            ),
            Some((plugin, _))
                if self.not_configured.contains_key(plugin)
                    && self.plugins.get(plugin).is_none_or(|(_, a)| a.is_empty()) =>
            {
                format!(
                    "plugin `{plugin}` is declared with its kind alone and is not configured yet ({}); configure it, then use its actions",
                    self.not_configured[plugin]
                )
            }
            Some((plugin, act)) => match self.plugins.get(plugin) {
                Some((kind, acts)) => format!(
                    "plugin `{plugin}` (kind {kind}) has no action `{act}`; it offers: {}",
                    acts.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                None => format!(
                    "no plugin is named `{plugin}`: configure one under `plugins:` \
                     (e.g. `{plugin}: {{ kind: ... }}`) or use one of: {}",
                    all.join(", ")
                ),
            },
        }
    }
}

/// Every problem in one plugin's settings, and the actions they add.
fn check_plugin(
    name: &str,
    def: &PluginDef,
    kind: &KindInfo,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<SettingsProblem>, Vec<String>) {
    let mut problems = Vec::new();
    let mut settings = def.settings.clone();
    if let Some(value) = settings.remove(WEBHOOK_SIGNATURE) {
        if kind.takes_webhooks() {
            if let Err(p) = WebhookSignature::from_value(value.clone()) {
                problems.push(p);
            }
        } else {
            problems.push(
                SettingsProblem::invalid(
                    WEBHOOK_SIGNATURE,
                    format!("kind {} takes no webhooks, so there is nothing to sign", kind.name()),
                )
                .at_key()
                .hint("remove `webhook_signature`; only kinds that take webhooks (warehouse, carrier, ...) verify signatures"),
            );
        }
        // The secret's variable, checked like every `*_env` setting.
        let nested: BTreeMap<String, serde_json::Value> =
            [(WEBHOOK_SIGNATURE.to_owned(), value)].into();
        let (found, _) = kinds::conventions(&nested, env);
        for p in found {
            if !problems.iter().any(|q| q.path == p.path) {
                problems.push(p);
            }
        }
    }
    let (shared, reported) = kinds::conventions(&settings, env);
    problems.extend(shared);
    for key in reported {
        if key.ends_with("_env") {
            // Reported already; the kind still sees the setting, so it
            // does not also report it missing.
            settings.insert(key, serde_json::Value::from("REPORTED_ABOVE"));
        } else {
            settings.remove(&key);
        }
    }
    let own = kind.check_settings(name, &settings);
    problems.extend(own.problems);
    (problems, own.actions)
}

/// A settings problem as a diagnostic at its place under `plugins.NAME`.
fn locate(
    name: &str,
    kind: &str,
    base: &str,
    p: SettingsProblem,
    index: &LocationIndex,
) -> Diagnostic {
    let full = if p.path.is_empty() {
        base.to_owned()
    } else if p.path.starts_with('[') {
        format!("{base}{}", p.path)
    } else {
        format!("{base}.{}", p.path)
    };
    let at = if p.on_key || p.path.is_empty() {
        index.key(&full)
    } else {
        index.value(&full)
    }
    .or_else(|| index.nearest(&full));
    let mut d = match p.severity {
        Severity::Error => Diagnostic::error(p.code, String::new()),
        Severity::Warning => Diagnostic::warning(p.code, String::new()),
    };
    d.message = format!("plugin `{name}` (kind {kind}): {}", p.message);
    d.hint = Some(
        p.hint
            .unwrap_or_else(|| "fix the setting (see the plugin kind's documentation)".to_owned()),
    );
    d.at(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(kind: &str, settings: &[(&str, serde_json::Value)]) -> PluginDef {
        PluginDef {
            kind: kind.into(),
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn catalog_offers_kind_actions_under_the_plugin_name() {
        let mut plugins = IndexMap::new();
        plugins.insert("team".to_owned(), plugin("notify", &[]));
        plugins.insert("wh".to_owned(), plugin("warehouse", &[]));
        plugins.insert(
            "erp".to_owned(),
            plugin(
                "process",
                &[
                    ("command", serde_json::json!(["./erp"])),
                    ("actions", serde_json::json!(["export"])),
                ],
            ),
        );
        let (cat, diags) = ActionCatalog::from_config(&plugins, &LocationIndex::default());
        assert!(diags.is_empty(), "{diags}");
        assert!(cat.contains("team.notify"));
        assert!(cat.contains("wh.ship_on"));
        assert!(cat.contains("erp.export"));
        assert!(cat.contains("case.tag"));
        assert!(!cat.contains("wh.notify"));
        assert!(!cat.contains("warehouse.hold"));
        assert!(cat.hint_for("wh.hodl").contains("wh.hold"));
    }

    #[test]
    fn unknown_kind_and_bad_process_settings_are_reported() {
        let mut plugins = IndexMap::new();
        plugins.insert("x".to_owned(), plugin("smtp", &[]));
        plugins.insert(
            "p".to_owned(),
            plugin("process", &[("command", serde_json::json!(["./p"]))]),
        );
        plugins.insert("task".to_owned(), plugin("notify", &[]));
        let (cat, diags) = ActionCatalog::from_config(&plugins, &LocationIndex::default());
        let codes: Vec<_> = diags.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            [
                "plugin::unknown-kind",
                "plugin::missing-setting",
                "plugin::reserved-name"
            ]
        );
        assert_eq!(cat.kind("x"), None);
        assert_eq!(cat.kind("task"), None);
        // Reported once, at the plugin; uses of it are not errors again.
        assert!(cat.contains("x.send"));
    }
}

// ---------------------------------------------------------------------------
// Execution

/// What a plugin did with one action.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Done {
    /// The plugin's own account of it (a Message-ID, a tracking number).
    #[serde(default)]
    pub result: serde_json::Value,
    /// Events the outside world answered with, fed back to the engine.
    #[serde(default)]
    pub events: Vec<crate::event::Event>,
}

/// Why a plugin could not carry out an action.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PluginError {
    /// Worth retrying: connection refused, timeout, a 4xx SMTP or 5xx HTTP
    /// answer, a crashed plugin process.
    #[error("{plugin}: {message} (will retry)")]
    Transient { plugin: String, message: String },
    /// Retrying cannot help: a bad address, an unknown template, a 4xx
    /// HTTP answer. The case is raised instead.
    #[error("{plugin}: {message}")]
    Permanent { plugin: String, message: String },
}

impl PluginError {
    pub fn is_transient(&self) -> bool {
        matches!(self, PluginError::Transient { .. })
    }
}

/// The code that talks to the outside world for one configured plugin.
///
/// The outbox runner calls [`execute`](Plugin::execute) with actions whose
/// `plugin()` is this plugin's name. `action.id` is the idempotency key:
/// after a crash the same action may be handed over again, and the plugin
/// (or the system behind it) must recognise it.
pub trait Plugin: Send + Sync {
    /// The name it is configured under (`warehouse` in `warehouse.hold`).
    fn name(&self) -> &str;
    fn execute(&self, action: &crate::action::Action) -> Result<Done, PluginError>;

    /// Turn a payload the outside system pushed to us (a warehouse or
    /// carrier webhook, posted to `/webhooks/{name}` by `casework serve`)
    /// into events. `None`: this plugin takes no webhooks.
    fn webhook(&self, body: &[u8]) -> Option<Result<Vec<crate::event::Event>, PluginError>> {
        let _ = body;
        None
    }
}
