//! Learned triage from the outside: `check` locates bad classifier
//! entries, `casework eval` reports on the default pack's classifiers and
//! rules and guards their quality with its exit status.

use casework::diagnostic::Severity;

use crate::util::{casework, root};

#[test]
fn check_locates_bad_classifier_entries() {
    let path = root().join("tests/fixtures/classifiers/broken.yaml");
    let errors = casework::load_config(Some(&path)).expect_err("the fixture must not load");
    let found: Vec<(String, String)> = errors
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let at = d.location.as_ref().expect("every error is located");
            let file = at.file.rsplit('/').next().unwrap_or_default().to_owned();
            assert!(d.hint.is_some(), "{d}");
            (
                d.code.to_owned(),
                format!("{file}:{}:{}", at.line, at.column),
            )
        })
        .collect();
    let want = [
        ("classify::too-few-examples", "broken.yaml:12:23"),
        ("classify::missing-examples", "broken.yaml:17:16"),
        ("classify::unknown-label", "broken.examples.yaml:5:5"),
    ];
    for (code, at) in want {
        assert!(
            found.contains(&(code.to_owned(), at.to_owned())),
            "{code} at {at}: {found:#?}"
        );
    }
    // A missing file does not also report its labels as too small.
    assert_eq!(found.len(), 3, "{found:#?}");
    let run = casework(["check", "tests/fixtures/classifiers/broken.yaml"]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr.contains("did you mean `shipping`?"),
        "{}",
        run.output()
    );
}

#[test]
fn eval_cross_validates_the_default_pack_above_its_minimums() {
    let run = casework(["eval", "rules/casework.yaml", "--json"]);
    assert_eq!(run.code, 0, "{}", run.output());
    let reports: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON report per line"))
        .collect();
    let accuracy = |name: &str| {
        reports
            .iter()
            .find(|r| r["classifier"] == name)
            .and_then(|r| r["accuracy"].as_f64())
            .unwrap_or_else(|| panic!("no report for {name}: {}", run.output()))
    };
    assert!(accuracy("topic") >= 0.90, "{}", run.stdout);
    assert!(accuracy("tone") >= 0.85, "{}", run.stdout);
    let topic = reports.iter().find(|r| r["classifier"] == "topic").unwrap();
    let confusion = topic["confusion"].as_array().unwrap();
    let total: u64 = confusion
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, topic["examples"].as_u64().unwrap());
}

#[test]
fn eval_on_a_labeled_file_reports_classifiers_and_rules() {
    let run = casework([
        "eval",
        "rules/casework.yaml",
        "--on",
        "tests/fixtures/classifiers/held_out.jsonl",
    ]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout
            .contains("classifier `topic`: held-out messages, 2 examples"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("rule `route`: agrees with 4 of 4"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("rule `urgency`: agrees with 2 of 2"),
        "{}",
        run.stdout
    );
}

#[test]
fn eval_fails_under_min_accuracy() {
    let dir = crate::util::scratch("eval-min-accuracy");
    crate::util::copy_pack(&dir);
    let yaml = dir.join("casework.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        text.replace("min_accuracy: 0.85", "min_accuracy: 0.999"),
    )
    .unwrap();
    let run = casework(["eval".as_ref(), yaml.as_os_str()]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(run.stdout.contains("FAILED"), "{}", run.stdout);
    assert!(
        run.stderr.contains("under its min_accuracy"),
        "{}",
        run.stderr
    );
}
