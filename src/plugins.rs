//! The plugin registry: from the `plugins:` section of a configuration to
//! running [`Plugin`]s, by kind.
//!
//! Built in: `process` (any program speaking JSON Lines, see
//! [`casework_process`]), `email` (SMTP, see [`casework_email`]),
//! `warehouse` and `carrier` (HTTP JSON APIs, see [`casework_http`]) and
//! `notify` (a team's chat webhook or e-mail, see
//! [`casework_http::NotifyPlugin`]; it needs the directory, given with
//! [`Registry::with_directory`]). A shop whose warehouse speaks something
//! else provides its own by registering a factory for the kind, in Rust:
//!
//! ```
//! use casework::plugin::{Done, Plugin, PluginError};
//! use casework::action::Action;
//! use casework::plugins::Registry;
//!
//! struct MyWarehouse { name: String }
//! impl Plugin for MyWarehouse {
//!     fn name(&self) -> &str { &self.name }
//!     fn execute(&self, _action: &Action) -> Result<Done, PluginError> {
//!         Ok(Done::default()) // call the warehouse's API here
//!     }
//! }
//!
//! let mut registry = Registry::builtin();
//! registry.register("warehouse", |spec| {
//!     Ok(Box::new(MyWarehouse { name: spec.name.to_owned() }))
//! });
//! let (pack_config, _) = (casework::load_config(None).unwrap(), ());
//! let plugins = registry.build(&pack_config.def.plugins, std::path::Path::new("."));
//! assert!(plugins.get("warehouse").is_some());
//! // The default pack's `carrier` names no API `url`, so it cannot run:
//! assert!(plugins.get("carrier").is_none());
//! assert!(plugins.unavailable()["carrier"].reason.contains("url"));
//! ```
//!
//! A kind of your own, under a new name, is registered with what `check`
//! needs to know of it — its actions, the events it produces, how to check
//! its settings — so configurations using it pass [`Registry::check`] (and
//! [`casework::check_config`](crate::check_config)), and a configuration
//! naming a kind nobody registered does not:
//!
//! ```
//! use std::path::Path;
//! use casework::action::Action;
//! use casework::config::MemoryReader;
//! use casework::plugin::{Done, KindInfo, Plugin, PluginError, SettingsCheck, read_settings};
//! use casework::plugins::Registry;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct ErpSettings { url: String }
//!
//! struct Erp { name: String, url: String }
//! impl Plugin for Erp {
//!     fn name(&self) -> &str { &self.name }
//!     fn execute(&self, _action: &Action) -> Result<Done, PluginError> {
//!         Ok(Done::default()) // post to self.url here
//!     }
//! }
//!
//! let mut registry = Registry::builtin();
//! registry.register_kind(
//!     KindInfo::new("erp")
//!         .actions(["export"])
//!         .settings(|_plugin, settings| match read_settings::<ErpSettings>(settings) {
//!             Ok(_) => SettingsCheck::default(),
//!             Err(problem) => SettingsCheck::problem(problem),
//!         }),
//!     |spec| {
//!         let s: ErpSettings = read_settings(&spec.def.settings).map_err(|p| p.message)?;
//!         Ok(Box::new(Erp { name: spec.name.to_owned(), url: s.url }))
//!     },
//! );
//!
//! const WORKFLOW: &str = "workflow:\n  states:\n    open: { initial: true }\n    done: { terminal: true }\n  transitions:\n    - { from: open, to: done, on: agent.resolve, actions: [{ action: books.export }] }\n";
//! let config = |yaml: &'static str| MemoryReader::new([("c.yaml", yaml), ("w.yaml", WORKFLOW)]);
//! let good = config("include: [w.yaml]\nplugins:\n  books: { kind: erp, url: https://erp.example }\n");
//! let typo = config("include: [w.yaml]\nplugins:\n  books: { kind: erp, ur1: https://erp.example }\n");
//!
//! let report = registry.check(&good, Path::new("c.yaml"));
//! assert!(report.config.is_some(), "{}", report.diagnostics);
//!
//! // A bad setting is reported where it is written.
//! let report = registry.check(&typo, Path::new("c.yaml"));
//! let d = report.diagnostics.iter().next().unwrap();
//! assert_eq!(d.code, "plugin::unknown-setting");
//! assert_eq!(d.location.as_ref().unwrap().to_string(), "c.yaml:3:23"); // `ur1`
//!
//! // Without the registration, `erp` is an unknown kind.
//! let report = Registry::builtin().check(&good, Path::new("c.yaml"));
//! assert_eq!(report.diagnostics.iter().next().unwrap().code, "plugin::unknown-kind");
//! ```
//!
//! A configured plugin whose kind has no implementation, or whose settings
//! could not be used, is *unavailable*: the outbox runner leaves its
//! actions pending (never pretends they ran) and `casework run` says so.
//!
//! A plugin of a kind that takes webhooks may require them signed with a
//! `webhook_signature:` setting (see [`WebhookSignature`]); the registry
//! reads it (for every kind, so a kind's own settings never see it) and
//! [`Plugins::webhook_verifier`] gives `casework serve` the verifier.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use casework_core::action::Action;
use casework_core::config::{self, CheckReport, DirectoryDef, PluginDef, SourceReader};
use casework_core::plugin::{
    Done, KindCatalog, KindInfo, Plugin, PluginError, PluginKind, SettingsCheck, SettingsProblem,
    WEBHOOK_SIGNATURE, WebhookSignature, WebhookVerifier,
};
use indexmap::IndexMap;

/// What a factory is given to build one plugin.
#[derive(Clone, Copy, Debug)]
pub struct PluginSpec<'a> {
    /// The name it is configured under (`erp` in `erp.export`).
    pub name: &'a str,
    pub def: &'a PluginDef,
    /// The configuration's directory, for relative paths in settings.
    pub dir: &'a Path,
    /// The teams and agents, when the registry was given them
    /// ([`Registry::with_directory`]): `notify` needs them.
    pub directory: Option<&'a DirectoryDef>,
}

/// Builds the plugin of one kind from its settings; the error says what
/// is wrong with them.
pub type Factory = Arc<dyn Fn(&PluginSpec<'_>) -> Result<Box<dyn Plugin>, String> + Send + Sync>;

/// Plugin kinds: how to build each ([`Factory`]) and what `check` knows
/// of it ([`KindInfo`]).
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<String, Factory>,
    kinds: KindCatalog,
    directory: Option<DirectoryDef>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.factories.keys().collect::<Vec<_>>())
            .field("directory", &self.directory.is_some())
            .finish()
    }
}

impl Registry {
    /// A registry with no kinds at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The kinds casework implements: `process`, `email`, `warehouse`,
    /// `carrier` and `notify`, each with its settings checked by its crate.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        let core = KindCatalog::builtin();
        let info = |kind: PluginKind| {
            core.get(kind.as_str()).cloned().unwrap_or_else(|| {
                KindInfo::new(kind.as_str()).actions(kind.actions().iter().copied())
            })
        };
        let problems = |problems: Vec<SettingsProblem>| SettingsCheck {
            problems,
            actions: Vec::new(),
        };
        r.kinds.insert(info(PluginKind::Process));
        r.kinds.insert(
            info(PluginKind::Email)
                .settings(move |_, settings| problems(casework_email::check_settings(settings))),
        );
        for kind in [PluginKind::Warehouse, PluginKind::Carrier] {
            r.kinds.insert(info(kind).settings(move |_, settings| {
                problems(casework_http::settings::check_settings(kind, settings))
            }));
        }
        r.kinds
            .insert(info(PluginKind::Notify).settings(move |_, settings| {
                problems(casework_http::notify::check_settings(settings))
            }));
        r.register("process", |spec| {
            casework_process::ProcessPlugin::from_settings(spec.name, &spec.def.settings, spec.dir)
                .map(|p| Box::new(p) as Box<dyn Plugin>)
                .map_err(|e| e.to_string())
        });
        r.register("email", |spec| {
            casework_email::EmailPlugin::from_settings(&spec.def.settings)
                .map(|p| {
                    Box::new(EmailAdapter {
                        name: spec.name.to_owned(),
                        inner: p,
                    }) as Box<dyn Plugin>
                })
                .map_err(|e| e.to_string())
        });
        for kind in [PluginKind::Warehouse, PluginKind::Carrier] {
            r.register(kind.as_str(), move |spec| {
                casework_http::HttpPlugin::from_settings(spec.name, kind, &spec.def.settings)
                    .map(|p| Box::new(p) as Box<dyn Plugin>)
                    .map_err(|e| e.to_string())
            });
        }
        r.register("notify", |spec| {
            let Some(directory) = spec.directory else {
                return Err(
                    "kind `notify` needs the directory of teams and agents: build the registry with `Registry::with_directory`"
                        .to_owned(),
                );
            };
            casework_http::NotifyPlugin::from_settings(
                spec.name,
                &spec.def.settings,
                directory.clone(),
            )
            .map(|p| Box::new(p) as Box<dyn Plugin>)
            .map_err(|e| e.to_string())
        });
        r
    }

    /// Give the factories the configuration's directory (`directory:`), so
    /// `notify` can find teams, agents and their channels.
    pub fn with_directory(mut self, directory: DirectoryDef) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Register (or replace) the factory of a kind. A kind already known
    /// (a built-in one) keeps what `check` knows of it: its actions and
    /// its settings check. A new name is known to `check` as a kind with
    /// no actions and unchecked settings: give it those with
    /// [`register_kind`](Self::register_kind) instead.
    pub fn register(
        &mut self,
        kind: &str,
        factory: impl Fn(&PluginSpec<'_>) -> Result<Box<dyn Plugin>, String> + Send + Sync + 'static,
    ) -> &mut Self {
        if self.kinds.get(kind).is_none() {
            self.kinds.insert(KindInfo::new(kind));
        }
        self.factories.insert(kind.to_owned(), Arc::new(factory));
        self
    }

    /// Register (or replace) a kind: what `check` knows of it (its name,
    /// actions, events, webhooks and settings check) and its factory.
    pub fn register_kind(
        &mut self,
        info: KindInfo,
        factory: impl Fn(&PluginSpec<'_>) -> Result<Box<dyn Plugin>, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.factories
            .insert(info.name().to_owned(), Arc::new(factory));
        self.kinds.insert(info);
        self
    }

    /// The kinds with an implementation.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// What `check` knows of the registered kinds.
    pub fn catalog(&self) -> &KindCatalog {
        &self.kinds
    }

    /// Load and check the configuration at `path` (read through `reader`)
    /// with these kinds: plugins must be of a registered kind, with
    /// settings the kind accepts.
    pub fn check(&self, reader: &dyn SourceReader, path: &Path) -> CheckReport {
        config::check_kinds(reader, path, &self.kinds)
    }

    /// Build every configured plugin whose kind is registered; the rest
    /// are listed as unavailable, with the reason.
    pub fn build(&self, plugins: &IndexMap<String, PluginDef>, dir: &Path) -> Plugins {
        let mut out = Plugins::default();
        for (name, def) in plugins {
            let Some(factory) = self.factories.get(&def.kind) else {
                out.unavailable.insert(
                    name.clone(),
                    Unavailable {
                        kind: def.kind.clone(),
                        reason: format!(
                            "kind `{}` has no implementation in this casework yet (register one in Rust with `Registry::register`)",
                            def.kind
                        ),
                    },
                );
                continue;
            };
            // Signed webhooks are the registry's business, not the kind's:
            // the factory never sees `webhook_signature`.
            let mut def = def.clone();
            let verifier = match def.settings.remove(WEBHOOK_SIGNATURE) {
                None => None,
                Some(value) => match WebhookSignature::from_value(value) {
                    Ok(sig) => Some(sig.verifier(&|var: &str| std::env::var(var).ok())),
                    Err(p) => {
                        // Never take unsigned webhooks meant to be signed.
                        out.unavailable.insert(
                            name.clone(),
                            Unavailable {
                                kind: def.kind.clone(),
                                reason: format!("`{}`: {}", p.path, p.message),
                            },
                        );
                        continue;
                    }
                },
            };
            let spec = PluginSpec {
                name,
                def: &def,
                dir,
                directory: self.directory.as_ref(),
            };
            match factory(&spec) {
                Ok(plugin) => {
                    out.ready.insert(name.clone(), plugin);
                    if let Some(v) = verifier {
                        out.verifiers.insert(name.clone(), v);
                    }
                }
                Err(reason) => {
                    out.unavailable.insert(
                        name.clone(),
                        Unavailable {
                            kind: def.kind.clone(),
                            reason,
                        },
                    );
                }
            }
        }
        out
    }
}

/// A configured plugin that cannot run, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    pub kind: String,
    pub reason: String,
}

/// The plugins of one configuration, by name.
#[derive(Default)]
pub struct Plugins {
    ready: BTreeMap<String, Box<dyn Plugin>>,
    unavailable: BTreeMap<String, Unavailable>,
    /// Plugins whose webhooks must be signed.
    verifiers: BTreeMap<String, WebhookVerifier>,
}

impl fmt::Debug for Plugins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugins")
            .field("ready", &self.ready.keys().collect::<Vec<_>>())
            .field("unavailable", &self.unavailable)
            .field(
                "signed_webhooks",
                &self.verifiers.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Plugins {
    /// The signature check of `name`'s webhooks, if they must be signed.
    pub fn webhook_verifier(&self, name: &str) -> Option<&WebhookVerifier> {
        self.verifiers.get(name)
    }

    /// Require `name`'s webhooks signed (a plugin built by hand and added
    /// with [`insert`](Self::insert)).
    pub fn sign_webhooks(&mut self, name: &str, verifier: WebhookVerifier) {
        self.verifiers.insert(name.to_owned(), verifier);
    }

    /// The plugin configured as `name`, if it can run.
    pub fn get(&self, name: &str) -> Option<&dyn Plugin> {
        self.ready.get(name).map(|p| p.as_ref())
    }

    /// Add (or replace) a plugin under its own name: an embedder's plugin
    /// built by hand.
    pub fn insert(&mut self, plugin: Box<dyn Plugin>) {
        let name = plugin.name().to_owned();
        self.unavailable.remove(&name);
        self.ready.insert(name, plugin);
    }

    /// The names of the plugins that can run.
    pub fn ready(&self) -> Vec<String> {
        self.ready.keys().cloned().collect()
    }

    /// The configured plugins that cannot run, by name.
    pub fn unavailable(&self) -> &BTreeMap<String, Unavailable> {
        &self.unavailable
    }
}

/// The e-mail plugin behind the [`Plugin`] trait.
struct EmailAdapter {
    name: String,
    inner: casework_email::EmailPlugin,
}

impl Plugin for EmailAdapter {
    fn name(&self) -> &str {
        &self.name
    }

    fn execute(&self, action: &Action) -> Result<Done, PluginError> {
        match self.inner.send(action) {
            Ok(sent) => Ok(Done {
                result: serde_json::to_value(&sent).unwrap_or_default(),
                events: Vec::new(),
            }),
            Err(e) if e.is_transient() => Err(PluginError::Transient {
                plugin: self.name.clone(),
                message: e.to_string(),
            }),
            Err(e) => Err(PluginError::Permanent {
                plugin: self.name.clone(),
                message: e.to_string(),
            }),
        }
    }
}
