//! Learned triage: classifiers trained at load time from labeled example
//! messages the ops team writes.
//!
//! A pack's `classifiers:` section names each classifier, its labels and
//! its example files ([`examples`]). When the pack loads, each is trained
//! ([`Model::train`]): character and word n-grams ([`features`]), TF-IDF,
//! and a multinomial logistic regression. Training is deterministic — the
//! same examples give byte-identical models, whatever the order of the
//! files — and each model's hash is part of the rule set's version, so a
//! replay decides with the same model. Rules call `classify(name, text)`
//! and get `#{ label, confidence, runner_up, why }`, or `()` when the
//! model is less sure than its threshold; rules stay in charge.
//!
//! ```
//! use casework_core::classify::{ClassifierSource, ClassifierSet, ExampleFile};
//! use casework_core::config::ClassifierDef;
//!
//! let source = ClassifierSource {
//!     name: "topic".into(),
//!     def: ClassifierDef {
//!         labels: vec!["billing".into(), "shipping".into()],
//!         examples: vec!["topic.yaml".into()],
//!         threshold: Some(0.6), min_accuracy: None, min_examples: Some(2), folds: None,
//!     },
//!     files: vec![ExampleFile {
//!         path: "pack/topic.yaml".into(),
//!         text: "billing: [refund my payment, 返金してください, I was charged twice]\n\
//!                shipping: [where is my parcel, 荷物が届きません, the delivery is late]\n".into(),
//!     }],
//! };
//! let set = ClassifierSet::train(&[source]).unwrap();
//! let topic = set.get("topic").unwrap();
//! let p = topic.predict("まだ荷物が届かない").unwrap();
//! assert_eq!(topic.labels()[p.best], "shipping");
//! assert_eq!(set.hash().len(), 16);
//! ```

pub mod eval;
pub mod examples;
pub mod features;
mod model;
mod nearest;
mod recent;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, OnceLock};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::ClassifierDef;
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, SourceLocation};

pub use examples::Example;
pub use model::{Model, Prediction, Reasons};

/// The confidence under which `classify` abstains, when a classifier
/// names none.
pub const DEFAULT_THRESHOLD: f64 = 0.5;
/// Examples each label needs, when a classifier names no `min_examples`.
pub const DEFAULT_MIN_EXAMPLES: usize = 5;
/// Folds of cross-validation, when a classifier names none.
pub const DEFAULT_FOLDS: usize = 5;

/// One example file as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExampleFile {
    /// As shown (relative to where casework runs).
    pub path: String,
    pub text: String,
}

/// What one classifier is trained from: its definition and the text of
/// its example files. The store keeps it with the rule set version, so a
/// replay trains the same model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierSource {
    pub name: String,
    pub def: ClassifierDef,
    pub files: Vec<ExampleFile>,
}

impl ClassifierSource {
    /// The threshold in force.
    pub fn threshold(&self) -> f64 {
        self.def.threshold.unwrap_or(DEFAULT_THRESHOLD)
    }

    /// Parse every example file and check the examples against the
    /// definition: labels it declares, enough examples per label. `at` is
    /// where the definition is written in the configuration (for problems
    /// with the labels as a whole).
    pub fn examples(
        &self,
        at: &dyn Fn(&str) -> Option<SourceLocation>,
    ) -> (Vec<Example>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let mut all = Vec::new();
        for file in &self.files {
            let (examples, d) = examples::parse(&SourceFile::new(&file.path, file.text.as_str()));
            diags.0.extend(d.0);
            all.extend(examples);
        }
        let name = &self.name;
        let labels = &self.def.labels;
        if labels.is_empty() {
            diags.push(
                Diagnostic::error(
                    "classify::no-labels",
                    format!("classifier `{name}` has no labels"),
                )
                .at(at("labels"))
                .hint("list what it tells apart under `labels:`, e.g. [billing, shipping]"),
            );
        }
        let mut kept = Vec::with_capacity(all.len());
        for e in all {
            if labels.contains(&e.label) {
                kept.push(e);
                continue;
            }
            let hint = match crate::diagnostic::did_you_mean(
                &e.label,
                labels.iter().map(String::as_str),
            ) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "use one of its labels ({}) or add `{}` to `classifiers.{name}.labels`",
                    labels.join(", "),
                    e.label
                ),
            };
            diags.push(
                Diagnostic::error(
                    "classify::unknown-label",
                    format!("label `{}` is not a label of classifier `{name}`", e.label),
                )
                .at(Some(e.location.clone()))
                .hint(hint),
            );
        }
        let min = self.def.min_examples.unwrap_or(DEFAULT_MIN_EXAMPLES).max(1);
        for (i, label) in labels.iter().enumerate() {
            let n = kept.iter().filter(|e| &e.label == label).count();
            if n < min {
                diags.push(
                    Diagnostic::error(
                        "classify::too-few-examples",
                        format!(
                            "label `{label}` of classifier `{name}` has {n} example(s); it needs at least {min}"
                        ),
                    )
                    .at(at(&format!("labels[{i}]")))
                    .hint("add examples written the way customers write (both languages, short and long), or lower `min_examples`"),
                );
            }
        }
        if let Some(t) = self.def.threshold
            && !(0.0..=1.0).contains(&t)
        {
            diags.push(
                Diagnostic::error(
                    "classify::bad-threshold",
                    format!("the threshold of classifier `{name}` is {t}; it is a probability"),
                )
                .at(at("threshold"))
                .hint("write a number between 0 and 1, e.g. 0.5"),
            );
        }
        if let Some(t) = self.def.min_accuracy
            && !(0.0..=1.0).contains(&t)
        {
            diags.push(
                Diagnostic::error(
                    "classify::bad-threshold",
                    format!("`min_accuracy` of classifier `{name}` is {t}; it is a fraction"),
                )
                .at(at("min_accuracy"))
                .hint("write a number between 0 and 1, e.g. 0.9"),
            );
        }
        if let Some(k) = self.def.folds
            && k < 2
        {
            diags.push(
                Diagnostic::error(
                    "classify::bad-folds",
                    format!(
                        "classifier `{name}` asks for {k} fold(s); cross-validation needs 2 or more"
                    ),
                )
                .at(at("folds"))
                .hint("write `folds: 5`, or remove it"),
            );
        }
        (kept, diags)
    }

    /// Train, or take the model trained from the same inputs earlier in
    /// this process (training is deterministic, so the two are equal).
    pub fn train(&self) -> Result<Arc<Model>, Diagnostics> {
        let (examples, diags) = self.examples(&|_| None);
        if diags.has_errors() {
            return Err(diags);
        }
        Ok(trained(&self.def.labels, &examples, self.threshold()))
    }
}

/// Models trained in this process, by a digest of what they were trained
/// from: a pack loaded again (a reload, a replay of an older version, a
/// test compiling the default pack) does not train again.
fn trained(labels: &[String], examples: &[Example], threshold: f64) -> Arc<Model> {
    type Cache = Mutex<Vec<([u8; 32], Arc<Model>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    const KEEP: usize = 16;
    let mut keys: Vec<String> = examples
        .iter()
        .map(|e| format!("{}\u{0}{}\u{0}{}", e.text, e.label, e.location))
        .collect();
    keys.sort_unstable();
    let mut h = Sha256::new();
    for l in labels {
        h.update((l.len() as u64).to_le_bytes());
        h.update(l.as_bytes());
    }
    h.update(threshold.to_bits().to_le_bytes());
    for k in &keys {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
    }
    let key: [u8; 32] = h.finalize().into();
    let cache = CACHE.get_or_init(Default::default);
    if let Some((_, m)) = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(k, _)| *k == key)
    {
        return m.clone();
    }
    let model = Arc::new(Model::train(labels, examples, threshold));
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= KEEP {
        cache.remove(0);
    }
    cache.push((key, model.clone()));
    model
}

/// The trained classifiers of a pack, by name.
#[derive(Debug, Default)]
pub struct ClassifierSet {
    models: IndexMap<String, Arc<Model>>,
    sources: Vec<ClassifierSource>,
    hash: String,
}

impl ClassifierSet {
    /// Train every classifier. Problems in the examples come back as
    /// diagnostics (the `check` command reports them with their place).
    pub fn train(sources: &[ClassifierSource]) -> Result<ClassifierSet, Diagnostics> {
        let mut diags = Diagnostics::default();
        let mut models = IndexMap::new();
        for s in sources {
            match s.train() {
                Ok(m) => {
                    models.insert(s.name.clone(), m);
                }
                Err(d) => diags.0.extend(d.0),
            }
        }
        if diags.has_errors() {
            return Err(diags);
        }
        let mut h = Sha256::new();
        for (name, m) in &models {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(m.hash().as_bytes());
        }
        let digest = h.finalize();
        Ok(ClassifierSet {
            models,
            sources: sources.to_vec(),
            hash: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// The classifier called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Model>> {
        self.models.get(name)
    }

    /// Names, in the order the configuration gives them.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// What the set was trained from.
    pub fn sources(&self) -> &[ClassifierSource] {
        &self.sources
    }

    /// A hash over every model's hash (16 hex digits).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// `classify(name, text)` as rules see it: the verdict, or `None` when
    /// the model is unsure. `Err` names the classifiers when `name` is not
    /// one.
    pub fn classify(&self, name: &str, text: &str) -> Result<Option<Verdict>, String> {
        let Some(model) = self.models.get(name) else {
            let known: Vec<&str> = self.names().collect();
            return Err(if known.is_empty() {
                format!(
                    "no classifier named `{name}`: this pack defines none; add a `classifiers:` section to casework.yaml"
                )
            } else {
                format!(
                    "no classifier named `{name}`; the classifiers are: {}",
                    known.join(", ")
                )
            });
        };
        Ok(recent::verdict(model.hash(), text, || {
            model
                .confident(text)
                .map(|(p, r)| Verdict::new(model, &p, r))
        }))
    }
}

/// A confident classification, as `classify` gives it to a rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub label: String,
    /// The label's probability, 0 to 1.
    pub confidence: f64,
    /// The second most probable label.
    pub runner_up: Option<String>,
    /// One line: the n-grams that weighed most and the nearest example.
    pub why: String,
}

impl Verdict {
    fn new(model: &Model, p: &Prediction, reasons: Reasons<'_>) -> Verdict {
        use std::fmt::Write;
        let label = model.labels()[p.best].clone();
        let mut why = String::new();
        for (i, (g, _)) in reasons.ngrams.iter().enumerate() {
            why.push_str(if i == 0 { "words \"" } else { ", \"" });
            why.push_str(g);
            why.push('"');
        }
        if let Some((e, _)) = reasons.nearest {
            if !why.is_empty() {
                why.push_str("; ");
            }
            // Writing to a String cannot fail.
            let _ = write!(
                why,
                "like the example \"{}\" ({})",
                snippet(&e.text, 60),
                e.location
            );
        }
        Verdict {
            label,
            confidence: p.probabilities[p.best],
            runner_up: p.runner_up.map(|r| model.labels()[r].clone()),
            why,
        }
    }
}

/// The first `max` characters of `text` on one line, with `…` when cut.
pub fn snippet(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = flat.chars().take(max).collect();
    if flat.chars().count() > max {
        out.push('…');
    }
    out
}
