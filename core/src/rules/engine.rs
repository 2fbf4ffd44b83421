//! The one configured Rhai engine and the sandbox limits it enforces.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rhai::packages::{Package, StandardPackage};
use rhai::{Dynamic, Engine, EvalAltResult, Map, Scope, Shared as RhaiShared};

use super::calendars::{BusinessDays, Calendars, WeekdaysOnly};
use super::convert::json_map_to_rhai;
use super::helpers;
use super::keywords::{KeywordCache, KeywordSet};
use super::patterns::PatternCache;
use super::views::{self, DirectoryView, SettingsView};
use crate::config::{DirectoryDef, LimitsDef};

/// The sandbox limits in force. Set explicitly, so a debug build (where
/// Rhai's own default call depth is 8) behaves like a release build.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Limits {
    /// Operations one rule call may run: stops loops that never end.
    pub max_operations: u64,
    /// Nested function calls: stops recursion without end.
    pub max_call_depth: usize,
    /// Nesting of expressions at the top level of a file or guard.
    pub max_expr_depth: usize,
    /// Nesting of expressions inside functions.
    pub max_function_expr_depth: usize,
    /// Bytes in one string: stops a rule building a huge text.
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
}

impl Default for Limits {
    /// Comfortable for the default pack (a few thousand operations per
    /// call) while stopping a runaway script within milliseconds.
    fn default() -> Self {
        Limits {
            max_operations: 100_000,
            max_call_depth: 32,
            max_expr_depth: 64,
            max_function_expr_depth: 64,
            // A long e-mail fits; a runaway string stops here.
            max_string_size: 1 << 20,
            max_array_size: 10_000,
            max_map_size: 10_000,
        }
    }
}

impl Limits {
    /// The defaults, with what the configuration overrides.
    pub fn from_def(def: Option<&LimitsDef>) -> Limits {
        let mut limits = Limits::default();
        if let Some(def) = def {
            if let Some(v) = def.max_operations {
                limits.max_operations = v.max(1);
            }
            if let Some(v) = def.max_call_depth {
                limits.max_call_depth = v;
            }
            if let Some(v) = def.max_string_size {
                limits.max_string_size = v.max(1);
            }
            if let Some(v) = def.max_array_size {
                limits.max_array_size = v.max(1);
            }
            if let Some(v) = def.max_map_size {
                limits.max_map_size = v.max(1);
            }
        }
        limits
    }
}

/// What a rule set shares with every call: settings, directory,
/// calendars, keyword sets. Reached by helpers through the call frame.
#[derive(Debug)]
pub(crate) struct Shared {
    /// `settings`, read-only.
    pub settings: SettingsView,
    pub directory: Arc<DirectoryDef>,
    pub calendars: Calendars,
    /// The calendar used when a rule names none.
    pub default_calendar: Option<String>,
    pub keywords: KeywordCache,
    /// The patterns of `has_pattern` / `find_pattern`, by their text:
    /// those written in the files compiled with the rule set, others on
    /// first use.
    pub patterns: PatternCache,
    /// `settings.keywords.<name>`, compiled once.
    pub named_keywords: HashMap<String, Arc<KeywordSet>>,
    /// The top-level `const`s of the rule files, by name: keyword lists
    /// and groups as compiled [`Keywords`](super::keywords::Keywords), other
    /// literals as they are. Functions read them through the variable
    /// resolver of [`build_engine`].
    pub constants: HashMap<String, Dynamic>,
    /// The pack's classifiers, for `classify(name, text)`; set once, by
    /// [`super::RuleSet::with_classifiers`].
    pub classifiers: OnceLock<Arc<crate::classify::ClassifierSet>>,
}

impl Shared {
    pub fn new(
        settings: &serde_json::Map<String, serde_json::Value>,
        directory: &DirectoryDef,
        calendars: &Calendars,
    ) -> Result<Shared, String> {
        let mut named_keywords = HashMap::new();
        if let Some(serde_json::Value::Object(sets)) = settings.get("keywords") {
            for (name, groups) in sets {
                let groups: Vec<(String, Vec<String>)> = match groups {
                    serde_json::Value::Object(g) => g
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), json_phrases(&format!("{name}.{k}"), v)?)))
                        .collect::<Result<_, String>>()?,
                    other => vec![(name.clone(), json_phrases(name, other)?)],
                };
                named_keywords.insert(name.clone(), Arc::new(KeywordSet::new(groups)?));
            }
        }
        let default_calendar = match settings.get("calendar") {
            Some(serde_json::Value::String(name)) => {
                if !calendars.contains_key(name) {
                    return Err(format!(
                        "settings.calendar names `{name}`, which is not a calendar of this configuration"
                    ));
                }
                Some(name.clone())
            }
            _ => calendars.keys().next().cloned(),
        };
        let map: Map = json_map_to_rhai(settings);
        Ok(Shared {
            settings: SettingsView(Arc::new(map)),
            directory: Arc::new(directory.clone()),
            calendars: calendars.clone(),
            default_calendar,
            keywords: KeywordCache::default(),
            patterns: PatternCache::default(),
            named_keywords,
            constants: HashMap::new(),
            classifiers: OnceLock::new(),
        })
    }

    /// The calendar named, or the default one for `""`.
    pub fn calendar(&self, name: &str) -> Result<&dyn BusinessDays, Box<EvalAltResult>> {
        static WEEKDAYS: WeekdaysOnly = WeekdaysOnly;
        let name = if name.is_empty() {
            match &self.default_calendar {
                Some(n) => n.as_str(),
                None => return Ok(&WEEKDAYS),
            }
        } else {
            name
        };
        self.calendars.get(name).map(|c| c.as_ref()).ok_or_else(|| {
            let known: Vec<_> = self.calendars.keys().map(String::as_str).collect();
            views::script_error(format!(
                "no calendar named `{name}`; the calendars are: {}",
                if known.is_empty() {
                    "(none)".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// The names every rule file and guard is compiled with, so strict
    /// variable checking accepts them. They are plain variables, not
    /// constants, on purpose: the optimizer would fold a constant
    /// `settings.x` into its value, and Rhai 1.27 then panics on
    /// `settings.x = 1` instead of refusing it. At run time [`build_engine`]'s
    /// variable resolver supplies them, read-only.
    pub fn compile_scope(&self, extra: &[&str]) -> Scope<'static> {
        let mut scope = Scope::new();
        scope.push_dynamic("settings", Dynamic::UNIT);
        scope.push_dynamic("directory", Dynamic::UNIT);
        for name in extra {
            scope.push_dynamic(*name, Dynamic::UNIT);
        }
        scope
    }
}

fn json_phrases(name: &str, value: &serde_json::Value) -> Result<Vec<String>, String> {
    match value {
        serde_json::Value::String(s) => Ok(vec![s.clone()]),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_owned).ok_or_else(|| {
                    format!("settings.keywords.{name} must hold phrases (text), found {i}")
                })
            })
            .collect(),
        other => Err(format!(
            "settings.keywords.{name} must be a list of phrases, found {other}"
        )),
    }
}

/// An engine that only parses, without strict variables: it reads a
/// file's top-level `const`s before the real compile, which must know
/// their names to accept them inside functions.
pub(crate) fn scanning_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut engine = Engine::new_raw();
        engine.set_max_expr_depths(0, 0);
        engine.disable_symbol("import");
        engine.disable_symbol("eval");
        engine
    })
}

/// The standard package, built once for every engine.
fn standard_package() -> RhaiShared<rhai::Module> {
    static PACKAGE: OnceLock<RhaiShared<rhai::Module>> = OnceLock::new();
    PACKAGE
        .get_or_init(|| StandardPackage::new().as_shared_module())
        .clone()
}

/// The configured engine for `limits`. Engines are built once per
/// distinct set of limits and shared by every rule set that uses them.
pub fn shared_engine(limits: &Limits) -> Arc<Engine> {
    type Engines = Mutex<Vec<(Limits, Arc<Engine>)>>;
    static ENGINES: OnceLock<Engines> = OnceLock::new();
    let engines = ENGINES.get_or_init(Default::default);
    let mut engines = engines.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, engine)) = engines.iter().find(|(l, _)| l == limits) {
        return engine.clone();
    }
    let engine = Arc::new(build_engine(limits));
    engines.push((limits.clone(), engine.clone()));
    engine
}

/// Build the sandboxed engine: the standard package and nothing that
/// reaches outside (no `import`, no `eval`, no wall clock, no sleeping),
/// explicit limits, `print`/`debug` into `tracing`, and the casework types
/// and helpers.
pub fn build_engine(limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(standard_package());

    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_depth)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_function_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_modules(0)
        .set_strict_variables(true);

    // `new_raw` has no module resolver; refusing the keywords also turns a
    // stray `import` or `eval` into a compile error with a location.
    engine.disable_symbol("import");
    engine.disable_symbol("eval");

    // Rules must be pure functions of their inputs: no wall clock, no
    // waiting. These override the standard package's versions.
    engine.register_fn("timestamp", || -> Result<Dynamic, Box<EvalAltResult>> {
        Err("rules cannot read the wall clock; use `now()` or `today()`, which follow the engine's clock".into())
    });
    engine.register_fn("sleep", |_: i64| -> Result<(), Box<EvalAltResult>> {
        Err("rules cannot sleep; they decide, and the engine's timers wait".into())
    });
    engine.register_fn("sleep", |_: f64| -> Result<(), Box<EvalAltResult>> {
        Err("rules cannot sleep; they decide, and the engine's timers wait".into())
    });

    engine.on_print(|text| tracing::info!(target: "casework::rules", "{text}"));
    engine.on_debug(|text, source, pos| {
        tracing::debug!(
            target: "casework::rules",
            file = source.unwrap_or("?"),
            line = pos.line().unwrap_or(0),
            "{text}"
        );
    });

    // `settings`, `directory` and the files' constants, visible inside
    // every function; Rhai marks what a resolver returns read-only. Rhai
    // asks on every variable read; a variable the parser resolved to a
    // slot (a parameter, a `let`) has an index and is never one of ours.
    #[allow(deprecated)] // volatile, not deprecated, says Rhai
    engine.on_var(|name, index, _| {
        if index > 0 {
            return Ok(None);
        }
        Ok(views::with_shared(|shared| match name {
            "settings" => Some(Dynamic::from(shared.settings.clone())),
            "directory" => Some(Dynamic::from(DirectoryView(shared.directory.clone()))),
            _ => shared.constants.get(name).cloned(),
        })
        .flatten())
    });

    engine.register_type_with_name::<super::keywords::Keywords>("Keywords");
    engine.register_iterator::<super::keywords::Keywords>();
    engine.register_type_with_name::<chrono::NaiveDate>("Date");
    engine.register_type_with_name::<crate::Timestamp>("Time");
    views::register(&mut engine);
    engine.register_global_module(rhai::exported_module!(helpers::dates).into());
    engine.register_global_module(rhai::exported_module!(helpers::text).into());
    engine.register_global_module(rhai::exported_module!(helpers::promises).into());
    engine.register_global_module(rhai::exported_module!(helpers::customers).into());
    super::classifiers::register(&mut engine);
    engine
}
