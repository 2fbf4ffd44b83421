//! `casework test` on the default pack's own scenarios: a copy of `rules/`
//! with one keyword removed fails the scenario that covers it, and says
//! which file, which expectation, what was expected and found, and which
//! rule decided.

use std::path::Path;

use crate::util::{casework, root, scratch};

/// Copy a directory tree (files and sub-directories).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_copied_pack_passes_its_own_scenarios() {
    let dir = scratch("rule_tests_copy");
    copy_tree(&root().join("rules"), &dir.join("rules"));
    let scenario = dir.join("rules/tests/route_sizing_ja.yaml");
    let run = casework(["test".as_ref(), scenario.as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.output());
}

#[test]
fn removing_a_keyword_fails_the_scenario_that_covers_it() {
    let dir = scratch("rule_tests_broken");
    copy_tree(&root().join("rules"), &dir.join("rules"));
    let route = dir.join("rules/route.rhai");
    let text = std::fs::read_to_string(&route).unwrap();
    // Forget that サイズ is a sizing word.
    let edited = text.replacen("\"サイズ\", ", "", 1);
    assert_ne!(edited, text, "the sizing list must contain \"サイズ\"");
    // Without the keyword the `topic` classifier would still route the
    // message right; this test is about the keyword, so it asks no
    // classifier.
    let edited = edited.replacen("classify(\"topic\", text)", "()", 1);
    std::fs::write(&route, edited).unwrap();

    let scenario = dir.join("rules/tests/route_sizing_ja.yaml");
    let run = casework(["test".as_ref(), scenario.as_os_str()]);
    assert_eq!(run.code, 1, "{}", run.output());
    let out = format!("{}{}", run.stdout, run.stderr);
    let file = format!("FAIL {}", scenario.display());
    for needle in [
        // The scenario file, by the path it was given as.
        file.as_str(),
        // The first expectation: C-1 asked about サイズ.
        "expect #1 (case C-1",
        // Expected against found.
        "team: expected product, found support",
        // The rule that decided, with its file and line.
        "route.rhai:16 `route`",
        "no topic words matched",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // ｻｲｽﾞ (half-width) normalises to サイズ, so C-2 fails too; the other
    // sizing words still route.
    assert!(out.contains("expect #2 (case C-2"), "{out}");
    assert!(!out.contains("expect #3 "), "{out}");
}
