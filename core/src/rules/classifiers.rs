//! `classify(name, text)` for rules: the pack's learned classifiers
//! ([`crate::classify`]), read through the rule call's context.
//!
//! ```rhai
//! let topic = classify("topic", text);
//! if topic != () && topic.label == "billing" {
//!     return #{ team: "billing", reason: `billing (classifier, ${topic.confidence}): ${topic.why}` };
//! }
//! ```
//!
//! The verdict is `#{ label, confidence, runner_up, why }`: the label, its
//! probability (0 to 1), the second most probable label, and one line on
//! why (the n-grams that weighed most, the nearest example and where it is
//! written). `()` when the classifier is less sure than its `threshold`:
//! it abstains rather than guesses, and the rule goes on to its fallback.

use rhai::{Dynamic, Engine, Map};

use super::views;

/// Register `classify` on the rules engine.
pub(crate) fn register(engine: &mut Engine) {
    engine.register_fn(
        "classify",
        |name: &str, text: &str| -> Result<Dynamic, Box<rhai::EvalAltResult>> {
            let context = views::context()?;
            let Some(set) = context.shared.classifiers.get() else {
                return Err(views::script_error(format!(
                    "no classifier named `{name}`: this pack defines none; add a `classifiers:` \
                     section to casework.yaml"
                )));
            };
            let verdict = set.classify(name, text).map_err(views::script_error)?;
            Ok(verdict.map_or(Dynamic::UNIT, |v| {
                let mut map = Map::new();
                map.insert("label".into(), v.label.into());
                map.insert(
                    "confidence".into(),
                    Dynamic::from_float(round3(v.confidence)),
                );
                map.insert(
                    "runner_up".into(),
                    v.runner_up.map_or(Dynamic::UNIT, Dynamic::from),
                );
                map.insert("why".into(), v.why.into());
                Dynamic::from_map(map)
            }))
        },
    );
    // A missing text (`c.latest_text` of a case with no message) is `()`:
    // nothing to classify.
    engine.register_fn("classify", |_: &str, _: ()| Dynamic::UNIT);
}

/// Three decimals: what a reason shows, and stable to compare in rules.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
