//! Properties of training and classifying: deterministic, insensitive to
//! the order of the examples and of their files, and never a panic.

use proptest::prelude::*;

use super::*;
use crate::diagnostic::SourceLocation;

/// Texts from a small alphabet that mixes scripts, widths and case, so
/// that random examples share n-grams as real ones do.
fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("refund"),
            Just("money"),
            Just("back"),
            Just("where"),
            Just("parcel"),
            Just("返金"),
            Just("荷物"),
            Just("届"),
            Just("ｻｲｽﾞ"),
            Just("ＲＥＦＵＮＤ"),
            Just("Size"),
            Just("!"),
            Just(" "),
            Just("\n> quoted"),
            Just("--\nsig"),
        ],
        0..12,
    )
    .prop_map(|words| words.join(" "))
}

fn examples() -> impl Strategy<Value = Vec<Example>> {
    proptest::collection::vec((text(), 0..3usize), 1..30).prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .map(|(i, (text, label))| Example {
                text,
                label: ["a", "b", "c"][label].to_owned(),
                location: SourceLocation::new("p.jsonl", i + 1, 1),
            })
            .collect()
    })
}

fn labels() -> Vec<String> {
    vec!["a".into(), "b".into(), "c".into()]
}

/// The examples as one JSON Lines file per label (a file's lines keep
/// their locations whatever order the files are listed in).
fn as_files(examples: &[Example]) -> Vec<ExampleFile> {
    ["a", "b", "c"]
        .iter()
        .map(|label| ExampleFile {
            path: format!("{label}.jsonl"),
            text: examples
                .iter()
                .filter(|e| e.label == *label)
                .map(|e| serde_json::json!({ "text": e.text, "label": e.label }).to_string() + "\n")
                .collect(),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn training_is_deterministic_and_ignores_example_order(
        examples in examples(),
        seed in any::<u64>(),
    ) {
        let a = Model::train(&labels(), &examples, 0.5);
        let mut shuffled = examples.clone();
        // A permutation drawn from the seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let b = Model::train(&labels(), &shuffled, 0.5);
        prop_assert_eq!(a.to_bytes(), b.to_bytes());
        prop_assert_eq!(a.hash(), b.hash());
    }

    #[test]
    fn the_order_of_example_files_does_not_change_the_version(examples in examples()) {
        let def = crate::config::ClassifierDef {
            labels: labels(),
            examples: vec![],
            threshold: None,
            min_accuracy: None,
            min_examples: Some(1),
            folds: None,
        };
        let files = as_files(&examples);
        let mut reversed = files.clone();
        reversed.reverse();
        let source = |files: Vec<ExampleFile>| ClassifierSource {
            name: "t".into(),
            def: def.clone(),
            files,
        };
        // Labels with no example fail `min_examples`; both orders agree.
        let a = ClassifierSet::train(&[source(files)]);
        let b = ClassifierSet::train(&[source(reversed)]);
        match (a, b) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a.hash(), b.hash()),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "one order trained and the other did not"),
        }
    }

    #[test]
    fn classify_never_panics(examples in examples(), input in any::<String>(), mixed in text()) {
        let model = Model::train(&labels(), &examples, 0.5);
        for text in [input.as_str(), mixed.as_str(), ""] {
            let p = model.predict(text).expect("three labels");
            let sum: f64 = p.probabilities.iter().sum();
            prop_assert!((sum - 1.0).abs() < 1e-9);
            prop_assert!(p.probabilities.iter().all(|x| x.is_finite()));
            if let Some((p, _)) = model.confident(text) {
                prop_assert!(p.probabilities[p.best] >= 0.5);
            }
        }
    }
}

#[test]
fn a_set_checks_labels_and_counts_and_says_where() {
    let source = ClassifierSource {
        name: "topic".into(),
        def: crate::config::ClassifierDef {
            labels: vec!["billing".into(), "shipping".into()],
            examples: vec!["t.yaml".into()],
            threshold: Some(1.5),
            min_accuracy: None,
            min_examples: Some(2),
            folds: None,
        },
        files: vec![ExampleFile {
            path: "t.yaml".into(),
            text: "billing: [refund, money back]\nshiping: [late]\nshipping: [where]\n".into(),
        }],
    };
    let (_, diags) = source.examples(&|_| None);
    let codes: Vec<(&str, String)> = diags
        .iter()
        .map(|d| {
            (
                d.code,
                d.location
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        codes.contains(&("classify::unknown-label", "t.yaml:2:11".into())),
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .any(|(c, _)| *c == "classify::too-few-examples"),
        "{codes:?}"
    );
    assert!(
        codes.iter().any(|(c, _)| *c == "classify::bad-threshold"),
        "{codes:?}"
    );
    let unknown = diags
        .iter()
        .find(|d| d.code == "classify::unknown-label")
        .unwrap();
    assert_eq!(unknown.hint.as_deref(), Some("did you mean `shipping`?"));
}

#[test]
fn an_unknown_classifier_names_the_known_ones() {
    let set = ClassifierSet::default();
    assert!(
        set.classify("topic", "x")
            .unwrap_err()
            .contains("defines none")
    );
}

#[test]
fn the_models_are_part_of_the_rule_set_version_and_its_stored_source() {
    use crate::config::{DirectoryDef, RulesDef, TeamDef};
    use crate::diagnostic::SourceFile;
    use crate::rules::{Calendars, RuleSet};
    let mut directory = DirectoryDef {
        fallback: "support".into(),
        ..Default::default()
    };
    directory.teams.insert("support".into(), TeamDef::default());
    let files = [SourceFile::new(
        "r.rhai",
        r#"fn route(c, event) { let t = classify("topic", c.latest_text); "support" }"#,
    )];
    let compile = || {
        RuleSet::compile(
            &files,
            &RulesDef::default(),
            &[],
            &directory,
            &Calendars::new(),
        )
        .unwrap()
    };
    let source = |text: &str| ClassifierSource {
        name: "topic".into(),
        def: crate::config::ClassifierDef {
            labels: vec!["billing".into(), "shipping".into()],
            examples: vec!["t.yaml".into()],
            threshold: None,
            min_accuracy: None,
            min_examples: Some(1),
            folds: None,
        },
        files: vec![ExampleFile {
            path: "t.yaml".into(),
            text: text.into(),
        }],
    };
    let train = |text: &str| std::sync::Arc::new(ClassifierSet::train(&[source(text)]).unwrap());
    let plain = compile();
    let with = compile().with_classifiers(train("billing: [refund]\nshipping: [parcel]\n"));
    let other = compile().with_classifiers(train("billing: [refund, money]\nshipping: [parcel]\n"));
    assert_ne!(plain.hash(), with.hash());
    assert_ne!(with.hash(), other.hash());
    // What the store keeps compiles back to the same version.
    let stored = with.source();
    assert_eq!(stored.classifiers.len(), 1);
    assert_eq!(plain.recompile(&stored).unwrap().hash(), with.hash());
    // A version without classifiers stores none and stays as it was.
    assert!(plain.source().classifiers.is_empty());
}
