//! Every scenario shipped with the project passes: the default pack's own
//! tests (`rules/tests/`) and the design's stories (`examples/scenarios/`).

use std::path::{Path, PathBuf};

use casework::scenario::Scenario;

fn scenario_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn run_all(dir: &str, at_least: usize) {
    let files = scenario_files(dir);
    assert!(
        files.len() >= at_least,
        "expected at least {at_least} scenarios in {dir}, found {}",
        files.len()
    );
    let mut report = String::new();
    for file in &files {
        let scenario = Scenario::load(file).unwrap_or_else(|e| panic!("{e}"));
        let run = scenario.run().unwrap_or_else(|e| panic!("{e}"));
        for f in run.check(&scenario.def.expect) {
            report.push_str(&format!(
                "{} expect #{}: {}\n",
                file.display(),
                f.index,
                f.problems.join("; ")
            ));
        }
    }
    assert!(report.is_empty(), "scenario expectations failed:\n{report}");
}

#[test]
fn the_default_packs_own_scenarios_pass() {
    run_all("rules/tests", 10);
}

#[test]
fn the_story_scenarios_pass() {
    run_all("examples/scenarios", 4);
}

/// Rules that loop forever, recurse without end or build a huge string are
/// stopped; the engine falls back, records the error and carries on.
#[test]
fn runaway_rules_are_stopped_and_the_case_goes_on() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runaway/scenario.yaml");
    let scenario = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let run = scenario.run().unwrap_or_else(|e| panic!("{e}"));
    let failures = run.check(&scenario.def.expect);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `casework simulate … | head -1`: the reader goes away, and the command
/// ends quietly (exit 0, no panic), as Unix tools do.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_casework"))
        .args(["simulate", "examples/scenarios/shuffleboard.yaml"])
        .current_dir(crate::util::root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end at once: every line the command writes (it
    // writes one at a time) finds the pipe closed.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
