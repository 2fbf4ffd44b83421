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
//! A configured plugin whose kind has no implementation, or whose settings
//! could not be used, is *unavailable*: the outbox runner leaves its
//! actions pending (never pretends they ran) and `casework run` says so.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use casework_core::action::Action;
use casework_core::config::{DirectoryDef, PluginDef};
use casework_core::plugin::{Done, Plugin, PluginError, PluginKind};
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

/// Plugin factories by kind.
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<String, Factory>,
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
    /// `carrier` and `notify`.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
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

    /// Register (or replace) the factory of a kind.
    pub fn register(
        &mut self,
        kind: &str,
        factory: impl Fn(&PluginSpec<'_>) -> Result<Box<dyn Plugin>, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.factories.insert(kind.to_owned(), Arc::new(factory));
        self
    }

    /// The kinds with an implementation.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
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
            let spec = PluginSpec {
                name,
                def,
                dir,
                directory: self.directory.as_ref(),
            };
            match factory(&spec) {
                Ok(plugin) => {
                    out.ready.insert(name.clone(), plugin);
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
}

impl fmt::Debug for Plugins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugins")
            .field("ready", &self.ready.keys().collect::<Vec<_>>())
            .field("unavailable", &self.unavailable)
            .finish()
    }
}

impl Plugins {
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
