//! Compiling rule files into a [`RuleSet`] and calling its rules.

use std::collections::HashMap;
use std::sync::Arc;

use rhai::{
    AST, CallFnOptions, Dynamic, Engine, EvalAltResult, Expr, FuncArgs, Map, ParseError,
    ParseErrorType, Scope,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::calendars::Calendars;
use super::convert::rhai_map_to_json;
use super::engine::{Limits, Shared, scanning_engine, shared_engine};
use super::keywords::Keywords;
use super::views::{self, Borrowed, CaseView, Frame};
use super::{PromiseCheck, Route, RuleError, RuleInput, UrgencyVerdict};
use super::{patterns, syntax};
use crate::audit::RuleRef;
use crate::case::UrgencyLevel;
use crate::config::{ActionDef, DirectoryDef, RulesDef};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, SourceLocation};
use crate::promise::{Promise, PromiseStatus};

/// The well-known rule functions and their parameters.
const WELL_KNOWN: &[(&str, &[&str])] = &[
    ("route", &["c", "event"]),
    ("urgency", &["c", "event"]),
    ("check_promise", &["p", "c", "now"]),
];

/// One compiled rule file.
#[derive(Debug)]
struct CompiledFile {
    path: String,
    hash: String,
    ast: AST,
}

/// A well-known function, located.
#[derive(Debug, Clone)]
struct RuleFn {
    file: usize,
    rule: RuleRef,
}

/// A compiled guard expression.
#[derive(Debug)]
struct Guard {
    ast: AST,
    rule: RuleRef,
    /// Where the expression starts, to turn its positions into file lines.
    location: Option<SourceLocation>,
}

/// What a rule set was compiled from, kept for [`super::Rules::reload`].
#[derive(Debug, Clone)]
pub(crate) struct CompileInputs {
    pub files: Vec<SourceFile>,
    pub def: RulesDef,
    pub guards: Vec<(usize, String, Option<SourceLocation>)>,
    pub directory: DirectoryDef,
    pub calendars: Calendars,
}

/// What one rule set version was compiled from, as the store keeps it: a
/// case handled by an older version (before a hot reload, or by an older
/// deployment) replays with that version, not with the rules in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleSetSource {
    /// The version, as decisions record it ([`RuleSet::hash`]).
    pub hash: String,
    /// The `rules:` section: file names, settings, limits.
    pub rules: RulesDef,
    /// Each rule file's path and text, in compile order.
    pub files: Vec<RuleFileText>,
    /// The classifiers and their examples: a replay trains the same models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classifiers: Vec<crate::classify::ClassifierSource>,
}

/// One rule file of a [`RuleSetSource`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFileText {
    pub path: String,
    pub text: String,
}

/// Compiled rules: immutable, shared between threads, identified by a
/// content hash that every decision records.
#[derive(Debug)]
pub struct RuleSet {
    engine: Arc<Engine>,
    limits: Limits,
    files: Vec<CompiledFile>,
    route: Option<RuleFn>,
    urgency: Option<RuleFn>,
    check_promise: Option<RuleFn>,
    guards: HashMap<usize, Guard>,
    shared: Arc<Shared>,
    hash: String,
    warnings: Diagnostics,
    pub(crate) inputs: CompileInputs,
}

/// First 16 hex digits of SHA-256.
fn short_hash(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The line `fn name(` is defined on, found in the source text.
fn definition_line(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let l = line.trim_start();
            let l = l.strip_prefix("private").map_or(l, str::trim_start);
            l.strip_prefix("fn")
                .filter(|rest| rest.starts_with(char::is_whitespace))
                .map(str::trim_start)
                .and_then(|rest| rest.strip_prefix(name))
                .is_some_and(|rest| rest.trim_start().starts_with('('))
        })
        .map(|i| i + 1)
}

/// The function a line is inside, for messages about compile errors.
fn enclosing_function(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().take(line).collect();
    lines.iter().rev().find_map(|l| {
        let l = l.trim_start();
        let l = l.strip_prefix("private").map_or(l, str::trim_start);
        let rest = l.strip_prefix("fn ")?.trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        (!name.is_empty()).then_some(name)
    })
}

fn parse_hint(err: &ParseErrorType) -> String {
    let text = err.to_string();
    match err {
        ParseErrorType::VariableUndefined(name) => format!(
            "`{name}` is not defined here: a rule function sees its parameters, its own `let` \
             variables, `settings`, `directory` and the file's top-level `const`s whose value is \
             written out (text, numbers, lists, maps); check the spelling, declare it with \
             `let` or `const`, or put the value in `settings`"
        ),
        ParseErrorType::ModuleUndefined(name) => format!(
            "`{name}::` names a module, and rules cannot load modules; call the helper directly"
        ),
        _ if text.contains("import") => "rules cannot import files or modules; put the helper \
                                         functions you need in this file"
            .to_owned(),
        _ if text.contains("eval") => {
            "rules cannot `eval` text as code; write the logic directly".to_owned()
        }
        ParseErrorType::MissingToken(token, _) => format!("add the missing `{token}`"),
        ParseErrorType::ExprTooDeep => {
            "the expression nests too deeply; split it with `let` variables or helper functions"
                .to_owned()
        }
        ParseErrorType::Reserved(word) => format!(
            "`{word}` is a reserved word in Rhai; choose another name (the case is `c`, since \
             `case` is reserved)"
        ),
        _ => "fix the syntax at this position; the Rhai book (rhai.rs/book) describes the language"
            .to_owned(),
    }
}

fn parse_diagnostic(file: &SourceFile, err: &ParseError, line_offset: usize) -> Diagnostic {
    let ParseError(kind, pos) = err;
    let line = pos.line().map(|l| l + line_offset);
    let location = line.map(|l| SourceLocation::new(&file.path, l, pos.position().unwrap_or(1)));
    let inside = line
        .and_then(|l| enclosing_function(&file.text, l))
        .map(|f| format!(" (in function `{f}`)"))
        .unwrap_or_default();
    Diagnostic::error("rules::syntax", format!("{kind}{inside}"))
        .at(location)
        .hint(parse_hint(kind))
}

/// A file's top-level constants whose values are written out (text,
/// numbers, lists, maps), read by a parse that does not run the file.
/// Empty when the file does not parse: the real compile reports why.
fn top_level_constants(text: &str) -> Vec<(String, Dynamic)> {
    match scanning_engine().compile(text) {
        Ok(ast) => ast
            .iter_literal_variables(true, false)
            .map(|(name, _, value)| (name.to_owned(), value))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The line `const name` is declared on, found in the source text.
fn const_line(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix("const")
                .filter(|rest| rest.starts_with(char::is_whitespace))
                .and_then(|rest| rest.trim_start().strip_prefix(name))
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        })
        .map(|i| i + 1)
}

/// Names the engine gives a meaning of its own, in functions or guards.
const RESERVED_NAMES: &[&str] = &["settings", "directory", "c", "event", "now"];

/// Make a top-level constant visible to every function: a keyword list or
/// groups compiled into [`Keywords`] now, any other literal as it is.
fn declare_constant(
    shared: &mut Shared,
    declared_in: &mut HashMap<String, SourceLocation>,
    name: String,
    value: Dynamic,
    location: SourceLocation,
) -> Result<(), Diagnostic> {
    if RESERVED_NAMES.contains(&name.as_str()) {
        return Err(Diagnostic::error(
            "rules::reserved-name",
            format!("the constant `{name}` hides a name the engine gives its rules"),
        )
        .at(Some(location))
        .hint(format!(
            "give it another name; `{name}` means what the rules documentation says"
        )));
    }
    if let Some(first) = declared_in.get(&name) {
        return Err(Diagnostic::error(
            "rules::duplicate",
            format!(
                "the constant `{name}` is already declared in {}:{}",
                first.file, first.line
            ),
        )
        .at(Some(location))
        .hint("constants are shared by every function of the pack; give this one another name"));
    }
    let value = match Keywords::from_constant(&value) {
        Some(Ok(keywords)) => Dynamic::from(keywords),
        Some(Err(message)) => {
            return Err(
                Diagnostic::error("rules::keywords", format!("`{name}`: {message}"))
                    .at(Some(location))
                    .hint("check the phrases of this list"),
            );
        }
        None => value,
    };
    shared.constants.insert(name.clone(), value);
    declared_in.insert(name, location);
    Ok(())
}

/// Where a keyword argument is a list or map written out in the call (or
/// added to one, `products + ["sku"]`): the slow form, rebuilt per call.
fn literal_list_at(expr: &Expr) -> Option<rhai::Position> {
    match expr {
        Expr::Array(..) | Expr::Map(..) if expr.is_constant() => Some(expr.position()),
        Expr::DynamicConstant(value, pos) if value.is_array() || value.is_map() => Some(*pos),
        Expr::FnCall(call, _) if call.name == "+" => call.args.iter().find_map(literal_list_at),
        _ => None,
    }
}

/// Warnings for keyword lists written inside functions
/// (`match_keywords(text, #{ .. })`, `matches(text, [..])`): each call
/// rebuilds the list as a value and looks its automaton up by content. A
/// top-level `const` is compiled once, when the pack loads.
fn literal_keyword_lists(file: &SourceFile, ast: &AST) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    syntax::each_call(ast, |name, arg| {
        if (name == "match_keywords" || name == "matches")
            && let Some(pos) = arg.and_then(literal_list_at)
        {
            found.push((name.to_owned(), pos));
        }
    });
    found
        .into_iter()
        .map(|(name, pos)| {
            let line = pos.line().unwrap_or(1);
            let inside = enclosing_function(&file.text, line)
                .map(|f| format!(" in function `{f}`"))
                .unwrap_or_default();
            let (form, example) = if name == "match_keywords" {
                ("#{ group: [..] }", "match_keywords(text, TOPIC_WORDS)")
            } else {
                ("[..]", "matches(text, SOME_WORDS)")
            };
            Diagnostic::warning(
                "rules::literal-keywords",
                format!(
                    "`{name}` is given a keyword list written out{inside}: the list is rebuilt \
                     on every call"
                ),
            )
            .at(Some(SourceLocation::new(
                &file.path,
                line,
                pos.position().unwrap_or(1),
            )))
            .hint(format!(
                "declare it once at the top of the file, `const SOME_WORDS = {form};`, and pass \
                 it by name, `{example}`: a constant is compiled when the pack loads"
            ))
        })
        .collect()
}

/// Compile every pattern the file passes as written to `has_pattern` or
/// `find_pattern`, so a broken one is refused now, with its place, and a
/// rule call finds the rest compiled.
fn compile_patterns(shared: &Shared, file: &SourceFile, ast: &AST) -> Vec<Diagnostic> {
    patterns::written_patterns(ast, |name| shared.constants.get(name).cloned())
        .into_iter()
        .filter_map(|written| {
            let message = shared.patterns.get(&written.text).err()?;
            let pos = written.at;
            let line = pos.line().unwrap_or(1);
            let mut context: Vec<String> = enclosing_function(&file.text, line)
                .map(|f| format!("in function `{f}`"))
                .into_iter()
                .collect();
            if let Some(name) = &written.constant {
                let declared = const_line(&file.text, name).unwrap_or(1);
                context.push(format!(
                    "the constant `{name}`, declared on line {declared}"
                ));
            }
            let inside = if context.is_empty() {
                String::new()
            } else {
                format!(" ({})", context.join("; "))
            };
            Some(
                Diagnostic::error("rules::pattern", format!("{message}{inside}"))
                    .at(Some(SourceLocation::new(
                        &file.path,
                        line,
                        pos.position().unwrap_or(1),
                    )))
                    .hint(
                        "patterns use the syntax of the Rust `regex` crate; the text they \
                           read is normalised (NFKC, lower case)",
                    ),
            )
        })
        .collect()
}

impl RuleSet {
    /// Compile rule files and guard expressions into a rule set.
    ///
    /// `guards` are the workflow's guard expressions: (transition index,
    /// expression, where it is written). Every problem found is reported,
    /// not only the first.
    pub fn compile(
        files: &[SourceFile],
        def: &RulesDef,
        guards: &[(usize, String, Option<SourceLocation>)],
        directory: &DirectoryDef,
        calendars: &Calendars,
    ) -> Result<RuleSet, Diagnostics> {
        let mut diags = Diagnostics::default();
        let limits = Limits::from_def(def.limits.as_ref());
        let engine = shared_engine(&limits);
        let mut shared = match Shared::new(&def.settings, directory, calendars) {
            Ok(s) => s,
            Err(message) => {
                diags.push(
                    Diagnostic::error("rules::settings", message)
                        .hint("fix `rules.settings` in the configuration"),
                );
                return Err(diags);
            }
        };
        let mut compiled = Vec::new();
        let mut found: HashMap<&str, RuleFn> = HashMap::new();
        let mut warnings = Diagnostics::default();
        // Where each constant is declared, to refuse a second one.
        let mut declared_in: HashMap<String, SourceLocation> = HashMap::new();
        for file in files {
            let hash = short_hash(&[file.path.as_bytes(), file.text.as_bytes()]);
            // The file's constants first: the compile below must know their
            // names to accept them inside functions.
            let constants = top_level_constants(&file.text);
            let names: Vec<&str> = constants.iter().map(|(n, _)| n.as_str()).collect();
            let scope = shared.compile_scope(&names);
            let mut ast = match engine.compile_with_scope(&scope, &*file.text) {
                Ok(ast) => ast,
                Err(err) => {
                    diags.push(parse_diagnostic(file, &err, 0));
                    continue;
                }
            };
            ast.set_source(file.path.as_str());
            for (name, value) in constants {
                let location =
                    SourceLocation::new(&file.path, const_line(&file.text, &name).unwrap_or(1), 1);
                if let Err(d) =
                    declare_constant(&mut shared, &mut declared_in, name, value, location)
                {
                    diags.push(d);
                }
            }
            for warning in literal_keyword_lists(file, &ast) {
                warnings.push(warning);
            }
            for error in compile_patterns(&shared, file, &ast) {
                diags.push(error);
            }
            let index = compiled.len();
            for meta in ast.iter_functions() {
                let Some((name, params)) = WELL_KNOWN.iter().find(|(n, _)| *n == meta.name) else {
                    continue;
                };
                let line = definition_line(&file.text, name);
                let location = SourceLocation::new(&file.path, line.unwrap_or(1), 1);
                if meta.params.len() != params.len() {
                    diags.push(
                        Diagnostic::error(
                            "rules::signature",
                            format!(
                                "`{name}` takes {} parameter(s) here; the engine calls it with {}",
                                meta.params.len(),
                                params.len()
                            ),
                        )
                        .at(Some(location))
                        .hint(format!("define it as `fn {name}({})`", params.join(", "))),
                    );
                    continue;
                }
                if let Some(prev) = found.get(name) {
                    diags.push(
                        Diagnostic::error(
                            "rules::duplicate",
                            format!("`{name}` is defined in {} and again here", prev.rule.file),
                        )
                        .at(Some(location))
                        .hint("keep one definition; the engine calls exactly one rule per name"),
                    );
                    continue;
                }
                found.insert(
                    name,
                    RuleFn {
                        file: index,
                        rule: RuleRef {
                            file: file.path.clone(),
                            name: (*name).to_owned(),
                            line,
                            hash: hash.clone(),
                        },
                    },
                );
            }
            compiled.push(CompiledFile {
                path: file.path.clone(),
                hash,
                ast,
            });
        }

        // Guards see the functions and the constants of every file.
        let shared = Arc::new(shared);
        let mut guard_names: Vec<&str> = vec!["c", "event", "now"];
        guard_names.extend(shared.constants.keys().map(String::as_str));
        let guard_scope = shared.compile_scope(&guard_names);
        let mut library = AST::empty();
        for file in &compiled {
            library = library.merge(&file.ast.clone_functions_only());
        }
        let mut compiled_guards = HashMap::new();
        for (transition, expr, location) in guards {
            let pseudo = SourceFile::new(
                location.as_ref().map_or("workflow", |l| l.file.as_str()),
                expr.as_str(),
            );
            match engine.compile_expression_with_scope(&guard_scope, expr) {
                Ok(ast) => {
                    let file = pseudo.path.clone();
                    compiled_guards.insert(
                        *transition,
                        Guard {
                            ast: library.merge(&ast),
                            rule: RuleRef {
                                hash: short_hash(&[file.as_bytes(), expr.as_bytes()]),
                                file,
                                name: format!("guard of transition {transition}"),
                                line: location.as_ref().map(|l| l.line),
                            },
                            location: location.clone(),
                        },
                    );
                }
                Err(err) => {
                    let mut d = parse_diagnostic(&pseudo, &err, 0);
                    if let (Some(loc), Some(at)) = (location, d.location.as_mut()) {
                        // The expression's own line 1 is the line it starts on.
                        at.line += loc.line - 1;
                        if err.1.line() == Some(1) {
                            at.column += loc.column.saturating_sub(1);
                        }
                    }
                    d.message = format!("guard of transition {transition}: {}", d.message);
                    diags.push(d);
                }
            }
        }

        if !files.is_empty() && found.is_empty() {
            warnings.push(
                Diagnostic::warning(
                    "rules::no-rules",
                    "no rule file defines `route`, `urgency` or `check_promise`",
                )
                .hint("define at least one of them, or remove the rules section"),
            );
        }

        if diags.has_errors() {
            return Err(diags);
        }

        let settings_json = serde_json::to_string(&def.settings).unwrap_or_default();
        let mut parts: Vec<&[u8]> = Vec::new();
        for file in files {
            parts.push(file.path.as_bytes());
            parts.push(file.text.as_bytes());
        }
        if !def.settings.is_empty() {
            parts.push(settings_json.as_bytes());
        }
        let hash = short_hash(&parts);

        Ok(RuleSet {
            engine,
            limits,
            files: compiled,
            route: found.remove("route"),
            urgency: found.remove("urgency"),
            check_promise: found.remove("check_promise"),
            guards: compiled_guards,
            shared,
            hash,
            warnings,
            inputs: CompileInputs {
                files: files.to_vec(),
                def: def.clone(),
                guards: guards.to_vec(),
                directory: directory.clone(),
                calendars: calendars.clone(),
            },
        })
    }

    /// The rule files this set was compiled from.
    pub fn files(&self) -> &[SourceFile] {
        &self.inputs.files
    }

    /// What this version was compiled from, for the store.
    pub fn source(&self) -> RuleSetSource {
        RuleSetSource {
            hash: self.hash.clone(),
            rules: self.inputs.def.clone(),
            files: self
                .inputs
                .files
                .iter()
                .map(|f| RuleFileText {
                    path: f.path.clone(),
                    text: f.text.to_string(),
                })
                .collect(),
            classifiers: self
                .classifiers()
                .map(|c| c.sources().to_vec())
                .unwrap_or_default(),
        }
    }

    /// This set with the pack's trained classifiers, which `classify`
    /// reads. Their hash becomes part of the version ([`RuleSet::hash`]),
    /// so every decision names the models it was made with and a replay
    /// trains the same ones. An empty set changes nothing.
    pub fn with_classifiers(mut self, set: Arc<crate::classify::ClassifierSet>) -> RuleSet {
        if set.is_empty() {
            return self;
        }
        let hash = short_hash(&[self.hash.as_bytes(), b"classifiers", set.hash().as_bytes()]);
        if self.shared.classifiers.set(set).is_ok() {
            self.hash = hash;
        }
        self
    }

    /// The classifiers `classify` reads, when the pack has any.
    pub fn classifiers(&self) -> Option<&Arc<crate::classify::ClassifierSet>> {
        self.shared.classifiers.get()
    }

    /// Compile a stored version's files and settings against this set's
    /// workflow guards, directory and calendars (which are not versioned
    /// with the rules).
    pub fn recompile(&self, source: &RuleSetSource) -> Result<RuleSet, Diagnostics> {
        let files: Vec<SourceFile> = source
            .files
            .iter()
            .map(|f| SourceFile::new(f.path.clone(), f.text.as_str()))
            .collect();
        let i = &self.inputs;
        let set = RuleSet::compile(&files, &source.rules, &i.guards, &i.directory, &i.calendars)?;
        if source.classifiers.is_empty() {
            return Ok(set);
        }
        let classifiers = crate::classify::ClassifierSet::train(&source.classifiers)?;
        Ok(set.with_classifiers(Arc::new(classifiers)))
    }

    /// The rule set's version: the first 16 hex digits of SHA-256 over the
    /// file names and contents (and the settings, which change what the
    /// rules decide just as much).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Each file with its own content hash.
    pub fn file_hashes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files
            .iter()
            .map(|f| (f.path.as_str(), f.hash.as_str()))
    }

    /// Warnings found while compiling (the set is usable).
    pub fn warnings(&self) -> &Diagnostics {
        &self.warnings
    }

    /// The limits scripts run under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The rule that `route`, `urgency` or `check_promise` resolves to.
    pub fn rule_ref(&self, name: &str) -> Option<&RuleRef> {
        match name {
            "route" => self.route.as_ref(),
            "urgency" => self.urgency.as_ref(),
            "check_promise" => self.check_promise.as_ref(),
            _ => None,
        }
        .map(|r| &r.rule)
    }

    /// Whether a transition has a guard.
    pub fn has_guard(&self, transition: usize) -> bool {
        self.guards.contains_key(&transition)
    }

    fn case_view(input: &RuleInput, frame: &Frame) -> CaseView {
        CaseView {
            case: Borrowed::new(input.case, frame),
            stats: Borrowed::new(input.customer, frame),
        }
    }

    fn event_value(input: &RuleInput, frame: &Frame) -> Dynamic {
        input
            .event
            .map_or(Dynamic::UNIT, |e| Dynamic::from(Borrowed::new(e, frame)))
    }

    fn call(&self, rule: &RuleFn, args: impl FuncArgs) -> Result<Dynamic, RuleError> {
        let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
        contained(&rule.rule, || {
            self.engine
                .call_fn_with_options::<Dynamic>(
                    options,
                    &mut Scope::new(),
                    &self.files[rule.file].ast,
                    &rule.rule.name,
                    args,
                )
                .map_err(|err| self.runtime_error(&rule.rule, &err, 0))
        })
    }

    /// Run `route(c, event)`: `None` when there is no `route` rule or it
    /// returned `()` (no change).
    pub fn route(&self, input: &RuleInput) -> Result<Option<Route>, RuleError> {
        let Some(rule) = &self.route else {
            return Ok(None);
        };
        let frame = views::enter(input.now, self.shared.clone());
        let out = self.call(
            rule,
            (
                Dynamic::from(Self::case_view(input, &frame)),
                Self::event_value(input, &frame),
            ),
        )?;
        let route = self.to_route(&rule.rule, out);
        drop(frame);
        route
    }

    /// Run `urgency(c, event)`.
    pub fn urgency(&self, input: &RuleInput) -> Result<Option<UrgencyVerdict>, RuleError> {
        let Some(rule) = &self.urgency else {
            return Ok(None);
        };
        let frame = views::enter(input.now, self.shared.clone());
        let out = self.call(
            rule,
            (
                Dynamic::from(Self::case_view(input, &frame)),
                Self::event_value(input, &frame),
            ),
        )?;
        let verdict = to_urgency(&self.engine, &rule.rule, out);
        drop(frame);
        verdict
    }

    /// Run `check_promise(p, c, now)` for one promise.
    pub fn check_promise(
        &self,
        promise: &Promise,
        input: &RuleInput,
    ) -> Result<Option<PromiseCheck>, RuleError> {
        let Some(rule) = &self.check_promise else {
            return Ok(None);
        };
        let frame = views::enter(input.now, self.shared.clone());
        let out = self.call(
            rule,
            (
                Dynamic::from(Borrowed::new(promise, &frame)),
                Dynamic::from(Self::case_view(input, &frame)),
                Dynamic::from(input.now),
            ),
        )?;
        let check = to_promise_check(&self.engine, &rule.rule, out);
        drop(frame);
        check
    }

    /// Evaluate the guard of `transition`: true when it has none.
    pub fn guard(&self, transition: usize, input: &RuleInput) -> Result<bool, RuleError> {
        let Some(guard) = self.guards.get(&transition) else {
            return Ok(true);
        };
        let frame = views::enter(input.now, self.shared.clone());
        let mut scope = Scope::new();
        scope.push_constant("c", Self::case_view(input, &frame));
        scope.push_constant_dynamic("event", Self::event_value(input, &frame));
        scope.push_constant("now", input.now);
        let offset = guard
            .location
            .as_ref()
            .map_or(0, |l| l.line.saturating_sub(1));
        let out = contained(&guard.rule, || {
            self.engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, &guard.ast)
                .map_err(|err| self.runtime_error(&guard.rule, &err, offset))
        })?;
        let result = out.as_bool().map_err(|found| RuleError::BadReturn {
            rule: guard.rule.name.clone(),
            file: guard.rule.file.clone(),
            line: guard.rule.line,
            message: format!(
                "a guard must be true or false, but this one gave a {}",
                self.engine.map_type_name(found)
            ),
        });
        drop(scope);
        drop(frame);
        result
    }

    /// Turn a Rhai error into a [`RuleError`] that names the rule, the
    /// file and the line, and says what to do.
    fn runtime_error(&self, rule: &RuleRef, err: &EvalAltResult, line_offset: usize) -> RuleError {
        // The innermost error is the one that happened; its position is
        // in the rule's file (helpers are defined in the same file).
        let mut inner = err;
        let mut pos = err.position();
        while let EvalAltResult::ErrorInFunctionCall(_, _, next, p) = inner {
            if !p.is_none() {
                pos = *p;
            }
            inner = next;
        }
        if !inner.position().is_none() {
            pos = inner.position();
        }
        let line = pos.line().map(|l| l + line_offset).or(rule.line);
        let rule_name = rule.name.clone();
        let file = rule.file.clone();
        let limit = |limit: &str, message: String| RuleError::LimitExceeded {
            rule: rule_name.clone(),
            file: file.clone(),
            line,
            limit: limit.to_owned(),
            message,
        };
        let l = &self.limits;
        match inner {
            EvalAltResult::ErrorTooManyOperations(_) => limit(
                "operations",
                format!(
                    "ran more than {} operations; look for a loop that never ends",
                    l.max_operations
                ),
            ),
            EvalAltResult::ErrorStackOverflow(_) => limit(
                "call_depth",
                format!(
                    "called functions more than {} deep; look for a function that calls itself \
                     without a way to stop",
                    l.max_call_depth
                ),
            ),
            EvalAltResult::ErrorDataTooLarge(what, _) => {
                let (name, max) = if what.contains("string") {
                    ("string_size", l.max_string_size)
                } else if what.contains("array") {
                    ("array_size", l.max_array_size)
                } else {
                    ("map_size", l.max_map_size)
                };
                limit(
                    name,
                    format!(
                        "built a value larger than allowed ({what} over {max}); look for a loop \
                         that keeps adding to a text, list or map"
                    ),
                )
            }
            EvalAltResult::ErrorTooManyModules(_) | EvalAltResult::ErrorModuleNotFound(..) => {
                limit(
                    "modules",
                    "tried to load a module; rules cannot import files, put the helpers in the \
                     same file"
                        .to_owned(),
                )
            }
            EvalAltResult::ErrorTerminated(..) => {
                limit("operations", "was stopped by the engine".to_owned())
            }
            other => {
                let message = match other {
                    EvalAltResult::ErrorRuntime(value, _) => {
                        format!("{value}")
                    }
                    EvalAltResult::ErrorFunctionNotFound(sig, _) => format!(
                        "called `{sig}`, which does not exist; check the name, the number of \
                         arguments and their types (a missing value is `()`: test `x != ()` \
                         before comparing it)"
                    ),
                    EvalAltResult::ErrorPropertyNotFound(prop, _) => format!(
                        "read the property `{prop}`, which this value does not have; check the \
                         spelling in the rules documentation"
                    ),
                    EvalAltResult::ErrorVariableNotFound(var, _) => format!(
                        "used the variable `{var}`, which is not defined; declare it with `let`"
                    ),
                    _ => {
                        // Rhai appends "(line l, position p)"; the line is ours.
                        let text = other.to_string();
                        match text.rfind(" (line ") {
                            Some(at) => text[..at].to_owned(),
                            None => text,
                        }
                    }
                };
                RuleError::Runtime {
                    rule: rule_name,
                    file,
                    line,
                    message,
                }
            }
        }
    }

    fn to_route(&self, rule: &RuleRef, out: Dynamic) -> Result<Option<Route>, RuleError> {
        let engine = &*self.engine;
        let bad = |message: String| bad_return(rule, message);
        if out.is_unit() {
            return Ok(None);
        }
        let (team, skill, agent, reason) = if out.is_string() {
            (out.to_string(), None, None, None)
        } else if let Some(map) = out.read_lock::<Map>() {
            check_keys(rule, &map, &["team", "skill", "agent", "reason"])?;
            let team = match map.get("team") {
                Some(t) if t.is_string() => t.to_string(),
                Some(t) if t.is_unit() => return Ok(None),
                Some(t) => {
                    return Err(bad(format!(
                        "`team` must be a team name (text), not a {}",
                        type_name(engine, t)
                    )));
                }
                None => return Err(bad("the map has no `team`; add `team: \"...\"`".into())),
            };
            (
                team,
                opt_text(engine, rule, &map, "skill")?,
                opt_text(engine, rule, &map, "agent")?,
                opt_text(engine, rule, &map, "reason")?,
            )
        } else {
            return Err(bad(format!(
                "got a {}; return a team name, a map #{{ team, skill, agent, reason }}, or () \
                 for no change",
                type_name(engine, &out)
            )));
        };
        let dir = &self.shared.directory;
        if !dir.teams.contains_key(&team) {
            let known: Vec<_> = dir.teams.keys().map(String::as_str).collect();
            return Err(bad(format!(
                "team `{team}` is not in the directory; the teams are: {}",
                known.join(", ")
            )));
        }
        if let Some(agent) = &agent
            && !dir.teams.values().any(|t| t.agents.contains_key(agent))
        {
            return Err(bad(format!(
                "agent `{agent}` is not in the directory; add them under a team's `agents`"
            )));
        }
        let reason = reason.unwrap_or_else(|| format!("rule `route` chose {team}"));
        Ok(Some(Route {
            team,
            skill,
            agent,
            reason,
            rule: rule.clone(),
        }))
    }
}

/// The name a rule author knows a value's type by (`Case`, not the Rust path).
fn type_name(engine: &Engine, value: &Dynamic) -> String {
    engine.map_type_name(value.type_name()).to_owned()
}

/// Run `f`, turning a panic inside the script engine into an error for
/// this rule: a bug in Rhai must not take the engine down.
fn contained<T>(rule: &RuleRef, f: impl FnOnce() -> Result<T, RuleError>) -> Result<T, RuleError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".to_owned());
        Err(RuleError::Runtime {
            rule: rule.name.clone(),
            file: rule.file.clone(),
            line: rule.line,
            message: format!(
                "the script engine failed inside this rule ({what}); simplify the rule around \
                 this point and report it to the casework developers"
            ),
        })
    })
}

fn bad_return(rule: &RuleRef, message: String) -> RuleError {
    RuleError::BadReturn {
        rule: rule.name.clone(),
        file: rule.file.clone(),
        line: rule.line,
        message,
    }
}

/// The map a rule returned, holding only `keys`; `None` for `()` (no
/// opinion). `shape` is what the author should return instead, for the
/// error.
fn returned_map(
    engine: &Engine,
    rule: &RuleRef,
    out: Dynamic,
    shape: &str,
    keys: &[&str],
) -> Result<Option<Map>, RuleError> {
    if out.is_unit() {
        return Ok(None);
    }
    let got = type_name(engine, &out);
    let Some(map) = out.try_cast::<Map>() else {
        return Err(bad_return(rule, format!("got a {got}; return {shape}")));
    };
    check_keys(rule, &map, keys)?;
    Ok(Some(map))
}

fn check_keys(rule: &RuleRef, map: &Map, allowed: &[&str]) -> Result<(), RuleError> {
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(bad_return(
                rule,
                format!("unknown key `{key}`; the keys are: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn opt_text(
    engine: &Engine,
    rule: &RuleRef,
    map: &Map,
    key: &str,
) -> Result<Option<String>, RuleError> {
    match map.get(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) if v.is_string() => Ok(Some(v.to_string())),
        Some(v) => Err(bad_return(
            rule,
            format!("`{key}` must be text, not a {}", type_name(engine, v)),
        )),
    }
}

fn to_urgency(
    engine: &Engine,
    rule: &RuleRef,
    out: Dynamic,
) -> Result<Option<UrgencyVerdict>, RuleError> {
    let Some(map) = returned_map(
        engine,
        rule,
        out,
        "#{ level: \"normal\", score: 0, reasons: [] } or ()",
        &["level", "score", "reasons"],
    )?
    else {
        return Ok(None);
    };
    let valid = "low, normal, high, urgent";
    let level = match map.get("level") {
        Some(l) if l.is_string() => {
            let text = l.to_string();
            UrgencyLevel::parse(&text).ok_or_else(|| {
                bad_return(
                    rule,
                    format!("unknown level \"{text}\"; the levels are: {valid}"),
                )
            })?
        }
        Some(l) => {
            return Err(bad_return(
                rule,
                format!(
                    "`level` must be text ({valid}), not a {}",
                    type_name(engine, l)
                ),
            ));
        }
        None => {
            return Err(bad_return(
                rule,
                format!("the map has no `level`; add `level:` one of {valid}"),
            ));
        }
    };
    let score = match map.get("score") {
        None => 0,
        Some(s) if s.is_unit() => 0,
        Some(s) => match (s.as_int(), s.as_float()) {
            (Ok(i), _) => i,
            (_, Ok(f)) if f.is_finite() => f.round() as i64,
            _ => {
                return Err(bad_return(
                    rule,
                    format!("`score` must be a number, not a {}", type_name(engine, s)),
                ));
            }
        },
    };
    let reasons = text_list(engine, rule, map.get("reasons"), "reasons")?;
    Ok(Some(UrgencyVerdict {
        level,
        score,
        reasons,
        rule: rule.clone(),
    }))
}

fn text_list(
    engine: &Engine,
    rule: &RuleRef,
    value: Option<&Dynamic>,
    key: &str,
) -> Result<Vec<String>, RuleError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    if value.is_unit() {
        return Ok(Vec::new());
    }
    if value.is_string() {
        return Ok(vec![value.to_string()]);
    }
    let Some(items) = value.read_lock::<rhai::Array>() else {
        return Err(bad_return(
            rule,
            format!(
                "`{key}` must be a list of texts, not a {}",
                type_name(engine, value)
            ),
        ));
    };
    Ok(items.iter().map(ToString::to_string).collect())
}

fn to_promise_check(
    engine: &Engine,
    rule: &RuleRef,
    out: Dynamic,
) -> Result<Option<PromiseCheck>, RuleError> {
    let Some(map) = returned_map(
        engine,
        rule,
        out,
        "#{ status, reason, actions } or () for no opinion",
        &["status", "reason", "actions"],
    )?
    else {
        return Ok(None);
    };
    let valid = "pending, at_risk, kept, broken";
    let status = match map.get("status") {
        Some(s) if s.is_string() => {
            let text = s.to_string();
            match PromiseStatus::parse(&text) {
                Some(
                    st @ (PromiseStatus::Pending
                    | PromiseStatus::AtRisk
                    | PromiseStatus::Kept
                    | PromiseStatus::Broken),
                ) => st,
                _ => {
                    return Err(bad_return(
                        rule,
                        format!("unknown status \"{text}\"; the statuses are: {valid}"),
                    ));
                }
            }
        }
        Some(s) => {
            return Err(bad_return(
                rule,
                format!(
                    "`status` must be text ({valid}), not a {}",
                    type_name(engine, s)
                ),
            ));
        }
        None => {
            return Err(bad_return(
                rule,
                format!("the map has no `status`; add `status:` one of {valid}"),
            ));
        }
    };
    let reason = opt_text(engine, rule, &map, "reason")?
        .unwrap_or_else(|| format!("rule `check_promise` says {status}"));
    let mut actions = Vec::new();
    if let Some(list) = map.get("actions").filter(|a| !a.is_unit()) {
        let Some(items) = list.read_lock::<rhai::Array>() else {
            return Err(bad_return(
                rule,
                format!(
                    "`actions` must be a list, not a {}",
                    type_name(engine, list)
                ),
            ));
        };
        for (i, item) in items.iter().enumerate() {
            let Some(action) = item.read_lock::<Map>() else {
                return Err(bad_return(
                    rule,
                    format!(
                        "actions[{i}] is a {}; write #{{ action: \"warehouse.hold\", params: #{{ .. }} }}",
                        type_name(engine, item)
                    ),
                ));
            };
            check_keys(rule, &action, &["action", "params"])
                .map_err(|e| prefix_message(e, &format!("actions[{i}]: ")))?;
            let name = match action.get("action") {
                Some(a) if a.is_string() && a.to_string().contains('.') => a.to_string(),
                _ => {
                    return Err(bad_return(
                        rule,
                        format!(
                            "actions[{i}] needs `action: \"plugin.action\"` (e.g. \"team.notify\")"
                        ),
                    ));
                }
            };
            let params = match action.get("params") {
                None => serde_json::Map::new(),
                Some(p) if p.is_unit() => serde_json::Map::new(),
                Some(p) => match p.read_lock::<Map>() {
                    Some(m) => rhai_map_to_json(&m).map_err(|e| {
                        bad_return(rule, format!("actions[{i}] ({name}) params: {e}"))
                    })?,
                    None => {
                        return Err(bad_return(
                            rule,
                            format!("actions[{i}] ({name}): `params` must be a map"),
                        ));
                    }
                },
            };
            actions.push(ActionDef {
                action: name,
                params,
            });
        }
    }
    Ok(Some(PromiseCheck {
        status,
        reason,
        actions,
        rule: rule.clone(),
    }))
}

fn prefix_message(err: RuleError, prefix: &str) -> RuleError {
    match err {
        RuleError::BadReturn {
            rule,
            file,
            line,
            message,
        } => RuleError::BadReturn {
            rule,
            file,
            line,
            message: format!("{prefix}{message}"),
        },
        other => other,
    }
}
