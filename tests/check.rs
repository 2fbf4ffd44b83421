//! `casework check` and `casework graph`: the default pack is valid, every
//! kind of broken configuration is reported at its exact place, and the
//! graph validator agrees with a naive reachability check.

use std::path::Path;

use casework::diagnostic::Severity;

use crate::util::{casework, find, root, scratch};

#[test]
fn default_pack_on_disk_is_valid() {
    let run = casework(["check", "rules/casework.yaml"]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout
            .starts_with("rules/casework.yaml: ok: 10 states, "),
        "{}",
        run.output()
    );
    assert!(
        run.stdout.contains("5 teams, 3 rule files"),
        "{}",
        run.output()
    );
}

#[test]
fn embedded_pack_is_valid() {
    let run = casework(["check"]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout.starts_with("rules/casework.yaml: ok"),
        "{}",
        run.output()
    );
}

#[test]
fn embedded_pack_is_the_rules_directory() {
    let mut on_disk: Vec<String> = ["rules", "rules/examples"]
        .iter()
        .flat_map(|dir| {
            std::fs::read_dir(root().join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "rhai"))
                .map(move |p| format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = casework::pack::FILES
        .iter()
        .map(|(p, _)| (*p).to_owned())
        .collect();
    embedded.sort();
    assert_eq!(embedded, on_disk, "add new files of rules/ to src/pack.rs");
    for (path, text) in casework::pack::FILES {
        assert_eq!(
            std::fs::read_to_string(root().join(path)).unwrap(),
            *text,
            "{path}"
        );
    }
}

#[test]
fn loaded_pack_carries_sources_rules_and_locations() {
    let loaded = casework::pack::load().unwrap();
    let rules: Vec<&str> = loaded.rule_files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        rules,
        [
            "rules/route.rhai",
            "rules/urgency.rhai",
            "rules/promise.rhai"
        ]
    );
    assert!(loaded.source("rules/workflow.yaml").is_some());
    let wf = &loaded.workflow;
    assert_eq!(wf.initial().as_str(), "new");
    assert!(wf.is_terminal("closed"));
    assert!(wf.state("waiting_on_customer").unwrap().pauses_sla);
    // `*` transitions apply everywhere but in terminal states.
    assert!(
        wf.transitions_from("waiting_on_carrier", "promise.at_risk")
            .next()
            .is_some()
    );
    assert!(
        wf.transitions_from("closed", "agent.close")
            .next()
            .is_none()
    );
    let first = wf.transitions_from("new", "case.routed").next().unwrap();
    assert_eq!(first.location.as_ref().unwrap().file, "rules/workflow.yaml");
    assert!(loaded.actions.contains("team.notify"));
    assert!(loaded.warnings.is_empty(), "{}", loaded.warnings);
}

/// Load a fixture of `tests/fixtures/broken/` as `casework check` does
/// (with the built-in plugin kinds checking their settings) and assert it
/// has exactly one error, with `code`, at `line:column`.
fn assert_broken(file: &str, code: &str, line: usize, column: usize) {
    let path = format!("tests/fixtures/broken/{file}");
    let errors =
        casework::load_config(Some(&root().join(&path))).expect_err("the fixture must not load");
    let errors: Vec<_> = errors
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{file}: {errors:#?}");
    let d = errors[0];
    assert_eq!(d.code, code, "{file}: {d}");
    let loc = d.location.as_ref().expect("located");
    assert!(loc.file.ends_with(&path), "{loc}");
    assert_eq!((loc.line, loc.column), (line, column), "{file}: {d}");
    assert!(d.hint.is_some(), "{file}: every error says what to do");
}

/// `check` compiles the rule files as the engine would, so a Rhai syntax
/// error is reported at its place in the `.rhai` file.
#[test]
fn broken_rule_syntax() {
    let run = casework(["check", "tests/fixtures/broken/rule_syntax.yaml"]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr
            .contains("tests/fixtures/broken/rule_syntax.rhai:3:16: error[rules::syntax]"),
        "{}",
        run.output()
    );
    assert!(run.stderr.contains("hint: "), "{}", run.output());
}

#[test]
fn broken_yaml_syntax() {
    assert_broken("syntax.yaml", "yaml::syntax", 4, 18);
}

#[test]
fn broken_unknown_key() {
    assert_broken("unknown_key.yaml", "yaml::unknown-key", 6, 7);
}

#[test]
fn broken_stuck_state() {
    assert_broken("stuck_state.yaml", "workflow::stuck-state", 5, 5);
}

#[test]
fn broken_guard_syntax() {
    assert_broken("guard_syntax.yaml", "workflow::guard-syntax", 10, 40);
}

#[test]
fn broken_missing_state() {
    assert_broken("missing_state.yaml", "workflow::unknown-state", 8, 25);
}

#[test]
fn broken_two_initial_states() {
    assert_broken("two_initial.yaml", "workflow::multiple-initial", 5, 24);
}

#[test]
fn broken_unreachable_state() {
    assert_broken("unreachable.yaml", "workflow::unreachable-state", 5, 5);
}

#[test]
fn broken_unknown_event_kind() {
    assert_broken("unknown_event.yaml", "workflow::unknown-event", 8, 35);
}

#[test]
fn broken_unknown_action() {
    assert_broken("unknown_action.yaml", "workflow::unknown-action", 13, 19);
}

#[test]
fn broken_unknown_plugin_kind() {
    assert_broken("unknown_plugin_kind.yaml", "plugin::unknown-kind", 4, 11);
}

#[test]
fn broken_smtp_port() {
    assert_broken("bad_smtp_port.yaml", "plugin::invalid-settings", 6, 11);
}

#[test]
fn broken_missing_smtp_host() {
    // At the plugin: the setting that is missing has no place of its own.
    assert_broken("missing_host.yaml", "plugin::missing-setting", 3, 3);
}

#[test]
fn broken_action_params_misspelt() {
    assert_broken(
        "bad_action_params.yaml",
        "workflow::bad-action-params",
        15,
        76,
    );
}

#[test]
fn broken_action_param_of_the_wrong_kind() {
    assert_broken(
        "bad_action_param_type.yaml",
        "workflow::bad-action-params",
        15,
        45,
    );
}

#[test]
fn broken_unknown_plugin_setting() {
    assert_broken("unknown_setting.yaml", "plugin::unknown-setting", 6, 5);
}

#[test]
fn broken_plugin_url() {
    assert_broken("bad_url.yaml", "plugin::invalid-settings", 5, 10);
}

#[test]
fn broken_tls_mode() {
    assert_broken("bad_tls_mode.yaml", "plugin::invalid-settings", 6, 15);
}

#[test]
fn broken_secret_in_yaml() {
    // The unset `username_env` beside it is a warning, not an error.
    assert_broken("secret_in_yaml.yaml", "plugin::secret-in-yaml", 9, 19);
}

#[test]
fn broken_webhook_signature() {
    assert_broken(
        "bad_webhook_signature.yaml",
        "plugin::invalid-settings",
        8,
        15,
    );
}

#[test]
fn broken_signed_webhooks_of_a_kind_without_webhooks() {
    assert_broken("signed_email.yaml", "plugin::invalid-settings", 8, 5);
}

/// The CLI shows the place, the line, the hint; secrets' variables that
/// are not set where `check` runs are warnings, and a configuration with
/// only warnings passes.
#[test]
fn check_reports_plugin_settings_and_warns_about_unset_secrets() {
    let run = casework(["check", "tests/fixtures/broken/unknown_setting.yaml"]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr.contains(
            "tests/fixtures/broken/unknown_setting.yaml:6:5: error[plugin::unknown-setting]: plugin `warehouse` (kind warehouse): unknown setting `tiemout`"
        ),
        "{}",
        run.output()
    );
    assert!(
        run.stderr.contains("did you mean `timeout`?"),
        "{}",
        run.output()
    );

    let run = casework(["check", "tests/fixtures/signed/casework.yaml"]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(run.stdout.contains(", 2 warnings"), "{}", run.output());
    assert!(
        run.stderr.contains("warning[plugin::env-unset]")
            && run.stderr.contains("CASEWORK_TEST_CARRIER_WEBHOOK_SECRET"),
        "{}",
        run.output()
    );
}

/// A keyword list written inside a rule function is rebuilt on every
/// call: `check` passes and warns at each such list, with its place and
/// the fast form (a top-level `const`). The default pack has none.
#[test]
fn check_warns_about_keyword_lists_written_inside_functions() {
    let run = casework(["check", "tests/fixtures/slow_rules/casework.yaml"]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(run.stdout.contains(", 2 warnings"), "{}", run.output());
    for place in [
        "tests/fixtures/slow_rules/route.rhai:3:43: warning[rules::literal-keywords]: \
         `match_keywords` is given a keyword list written out in function `route`",
        "tests/fixtures/slow_rules/route.rhai:10:29: warning[rules::literal-keywords]: \
         `matches` is given a keyword list written out in function `route`",
    ] {
        assert!(run.stderr.contains(place), "{place}\n{}", run.output());
    }
    assert!(
        run.stderr.contains("const SOME_WORDS = #{ group: [..] };"),
        "{}",
        run.output()
    );

    let run = casework(["check", "rules/casework.yaml"]);
    assert!(!run.stderr.contains("warning"), "{}", run.output());
}

/// The default pack declares plugins with their kind alone: not errors,
/// but listed as not configured.
#[test]
fn check_lists_plugins_declared_but_not_configured() {
    let run = casework(["check"]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout
            .contains("plugin `warehouse` is not configured yet (missing setting `url`)"),
        "{}",
        run.output()
    );
    assert!(run.stderr.is_empty(), "{}", run.output());
}

/// A kind registered in Rust under a new name passes `check` with its
/// actions and settings; without the registration its name is an unknown
/// kind, and an action it does not declare is an unknown action.
#[test]
fn kinds_registered_in_rust_are_checked_like_built_in_ones() {
    use casework::plugin::{KindInfo, SettingsCheck, SettingsProblem};
    use casework::plugins::Registry;

    let dir = scratch("check-registered-kind");
    let workflow = |action: &str| {
        format!(
            "plugins:\n  books:\n    kind: erp\n    url: https://erp.example\n    api_token_env: ERP_TOKEN_SURELY_UNSET\nworkflow:\n  states:\n    open: {{ initial: true }}\n    done: {{ terminal: true }}\n  transitions:\n    - {{ from: open, to: done, on: erp.synced, actions: [{{ action: {action} }}] }}\n"
        )
    };
    let path = dir.join("casework.yaml");
    let write = |text: &str| std::fs::write(&path, text).unwrap();

    let mut registry = Registry::builtin();
    registry.register_kind(
        KindInfo::new("erp")
            .actions(["export"])
            .events(["erp.synced"])
            .settings(|_, settings| {
                let mut check = SettingsCheck::default();
                match settings.get("url").and_then(|v| v.as_str()) {
                    Some(u) if u.starts_with("https://") => {}
                    Some(_) => check.problems.push(
                        SettingsProblem::invalid("url", "the ERP is reached over https")
                            .hint("write `https://...`"),
                    ),
                    None => check.problems.push(SettingsProblem::missing("url")),
                }
                check
            }),
        |spec| Err(format!("{} is not built in this test", spec.name)),
    );

    write(&workflow("books.export"));
    let report = casework::check_config(Some(&path), &registry);
    assert!(!report.diagnostics.has_errors(), "{}", report.diagnostics);
    // The unset token variable: one warning, at its value.
    let warnings: Vec<_> = report.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(warnings, ["plugin::env-unset"]);
    let loaded = report.config.unwrap();
    assert!(loaded.actions.contains("books.export"));
    assert!(loaded.workflow.known_kind("erp.synced"));

    // Not registered: the kind is unknown (reported once, at `kind:`).
    let errors = casework::load_config(Some(&path)).unwrap_err();
    let codes: Vec<_> = errors
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| (d.code, d.location.as_ref().unwrap().line))
        .collect();
    assert_eq!(
        codes,
        [("plugin::unknown-kind", 3), ("workflow::unknown-event", 11)]
    );

    // A setting the kind refuses (its actions are then not checked: one
    // mistake, one error).
    write(&workflow("books.import").replace("https://erp", "http://erp"));
    let errors = casework::load_config_with(Some(&path), &registry).unwrap_err();
    let found: Vec<_> = errors
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let l = d.location.as_ref().unwrap();
            (d.code, l.line, l.column)
        })
        .collect();
    assert_eq!(found, [("plugin::invalid-settings", 4, 10)]);

    // An action the kind does not declare.
    let text = workflow("books.import");
    write(&text);
    let errors = casework::load_config_with(Some(&path), &registry).unwrap_err();
    let unknown: Vec<_> = errors
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert_eq!(unknown.len(), 1, "{errors}");
    assert_eq!(unknown[0].code, "workflow::unknown-action");
    let l = unknown[0].location.as_ref().unwrap();
    assert_eq!((l.line, l.column), find(&text, "books.import"));
    assert!(
        unknown[0].hint.as_ref().unwrap().contains("books.export"),
        "{}",
        unknown[0]
    );
}

#[test]
fn every_fixture_has_a_test() {
    let tested = [
        "bad_action_params",
        "bad_action_param_type",
        "bad_smtp_port",
        "missing_host",
        "unknown_setting",
        "bad_url",
        "bad_tls_mode",
        "secret_in_yaml",
        "bad_webhook_signature",
        "signed_email",
        "syntax",
        "unknown_key",
        "stuck_state",
        "guard_syntax",
        "missing_state",
        "two_initial",
        "unreachable",
        "unknown_event",
        "unknown_action",
        "unknown_plugin_kind",
        "rule_syntax",
    ];
    for entry in std::fs::read_dir(root().join("tests/fixtures/broken")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            tested.contains(&stem.as_str()),
            "no test for fixture {stem}"
        );
    }
}

#[test]
fn check_prints_location_source_line_caret_and_hint() {
    let run = casework(["check", "tests/fixtures/broken/missing_state.yaml"]);
    assert_eq!(run.code, 1, "{}", run.output());
    let expected = "\
tests/fixtures/broken/missing_state.yaml:8:25: error[workflow::unknown-state]: transitions[1] goes to `archived`, which is not a state of the workflow
 8 |     - { from: open, to: archived, on: agent.close }
   |                         ^
  hint: use one of the states: open, done
";
    assert!(run.stderr.starts_with(expected), "{}", run.output());
    assert!(
        run.stderr.ends_with("missing_state.yaml: 1 error found\n"),
        "{}",
        run.output()
    );
}

#[test]
fn check_of_a_missing_file_fails() {
    let run = casework(["check", "no/such/casework.yaml"]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr
            .contains("error[config::read-error]: cannot read configuration no/such/casework.yaml"),
        "{}",
        run.output()
    );
}

/// A copy of the default pack with one mistake in each of several files:
/// every one is reported, at its place, and the exit status is 1.
#[test]
fn broken_copy_of_the_pack_lists_every_error() {
    let dir = scratch("broken-pack");
    for (path, text) in casework::pack::FILES {
        // Keep the layout under rules/ (the classifiers' examples/).
        let name = Path::new(path).strip_prefix("rules").unwrap();
        std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }
    // (file, text to replace, replacement, where the error points inside
    // the replacement, code)
    let mistakes = [
        (
            "workflow.yaml",
            "on: case.routed\n      to: triage",
            "on: case.routed\n      to: trage",
            "trage",
            "workflow::unknown-state",
        ),
        (
            "workflow.yaml",
            "event) == \"quantity\"",
            "event) == ) \"quantity\"",
            ") \"quantity",
            "workflow::guard-syntax",
        ),
        (
            "workflow.yaml",
            "on: agent.reopen",
            "on: agent.repoen",
            "agent.repoen",
            "workflow::unknown-event",
        ),
        (
            "directory.yaml",
            "fallback: support",
            "fallback: suport",
            "suport",
            "config::unknown-team",
        ),
        (
            "plugins.yaml",
            "kind: notify",
            "kind: notifier",
            "notifier",
            "plugin::unknown-kind",
        ),
        (
            "calendars.yaml",
            "holidays:",
            "holiday:",
            "holiday:",
            "yaml::unknown-key",
        ),
    ];
    let mut expected = Vec::new();
    for (file, from, to, at, code) in mistakes {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from} must be unique in {file}"
        );
        let text = text.replace(from, to);
        std::fs::write(&path, &text).unwrap();
        let start = text.find(to).unwrap() + to.find(at).unwrap();
        let (line, column) = find(&text[..], &text[start..]);
        expected.push(format!("{}:{line}:{column}: error[{code}]", path.display()));
    }
    let config = dir.join("casework.yaml");
    let run = casework([std::ffi::OsStr::new("check"), config.as_os_str()]);
    assert_eq!(run.code, 1, "{}", run.output());
    for e in &expected {
        assert!(
            run.stderr.contains(e.as_str()),
            "missing `{e}` in\n{}",
            run.output()
        );
    }
    let errors = run
        .stderr
        .lines()
        .filter(|l| l.contains(": error["))
        .count();
    assert_eq!(errors, expected.len(), "{}", run.output());
    assert!(run.stderr.ends_with("6 errors found\n"), "{}", run.output());
}

#[test]
fn graph_draws_dot_and_mermaid() {
    let run = casework(["graph", "rules/casework.yaml", "--format", "dot"]);
    assert_eq!(run.code, 0, "{}", run.output());
    let dot = &run.stdout;
    assert!(dot.starts_with("digraph workflow {"), "{dot}");
    assert!(dot.contains("__start -> \"new\";"), "{dot}");
    assert!(dot.contains("\"closed\" [peripheries=2"), "{dot}");
    assert!(
        dot.contains("\"waiting_on_customer\" [style=\"rounded,dashed,filled\""),
        "{dot}"
    );
    assert!(
        dot.contains("label=\"urgency.raised [c.urgency == \\\"urgent\\\"]\""),
        "{dot}"
    );
    // Graphviz, when installed, must accept it.
    if let Ok(mut child) = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "dot rejected the graph");
    }

    let run = casework(["graph", "--format", "mermaid"]);
    assert_eq!(run.code, 0, "{}", run.output());
    let m = &run.stdout;
    assert!(m.starts_with("stateDiagram-v2\n    [*] --> new\n"), "{m}");
    assert!(m.contains("    closed --> [*]\n"), "{m}");
    assert!(
        m.contains("class waiting_on_warehouse,waiting_on_carrier,waiting_on_customer waiting"),
        "{m}"
    );
}

/// The drawing in the README is of the workflow the pack really has:
/// `scripts/draw` redraws both files after a change to the workflow.
#[test]
fn the_committed_drawing_is_the_current_workflow() {
    let run = casework(["graph", "--format", "dot"]);
    assert_eq!(run.code, 0, "{}", run.output());
    let committed = std::fs::read_to_string("docs/workflow.dot").unwrap();
    assert!(
        run.stdout == committed,
        "docs/workflow.dot is not the default workflow any more: run scripts/draw"
    );
    let svg = std::fs::read_to_string("docs/workflow.svg").unwrap();
    let (pack, _) = casework::load(None).unwrap();
    for (state, _) in pack.workflow.states() {
        assert!(
            svg.contains(&format!("<title>{}</title>", state.as_str())),
            "docs/workflow.svg lacks state `{}`: run scripts/draw",
            state.as_str()
        );
    }
}

#[test]
fn graph_of_a_broken_config_fails_and_bad_usage_exits_2() {
    let run = casework(["graph", "tests/fixtures/broken/stuck_state.yaml"]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("error[workflow::stuck-state]"),
        "{}",
        run.output()
    );
    let run = casework(["graph", "--format", "png"]);
    assert_eq!(run.code, 2, "{}", run.output());
}

/// The validator's "no stuck state" verdict against a naive fixpoint over
/// the edge list, on random workflows loaded end to end from YAML.
mod stuck_states {
    use std::collections::BTreeSet;
    use std::path::Path;

    use casework::config::{self, SourceReader};
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    struct Graph {
        terminal: Vec<bool>,
        /// (from: None is `*`, to)
        edges: Vec<(Option<usize>, usize)>,
        timeouts: Vec<Option<usize>>,
    }

    fn graphs() -> impl Strategy<Value = Graph> {
        (2usize..8).prop_flat_map(|n| {
            (
                proptest::collection::vec(proptest::bool::weighted(0.25), n),
                proptest::collection::vec(
                    (proptest::option::weighted(0.9, 0..n), 0..n),
                    0..(2 * n),
                ),
                proptest::collection::vec(proptest::option::weighted(0.2, 0..n), n),
            )
                .prop_map(|(mut terminal, edges, timeouts)| {
                    terminal[0] = false; // s0 is the initial state
                    if !terminal.contains(&true) {
                        *terminal.last_mut().unwrap() = true;
                    }
                    Graph {
                        terminal,
                        edges,
                        timeouts,
                    }
                })
        })
    }

    fn yaml(g: &Graph) -> String {
        let mut y = String::from("workflow:\n  states:\n");
        for (i, t) in g.terminal.iter().enumerate() {
            let mut fields = Vec::new();
            if i == 0 {
                fields.push("initial: true".to_owned());
            }
            if *t {
                fields.push("terminal: true".to_owned());
            }
            if let Some(to) = g.timeouts[i] {
                fields.push(format!("timeout: {{ after: 1h, to: s{to} }}"));
            }
            y.push_str(&format!("    s{i}: {{ {} }}\n", fields.join(", ")));
        }
        y.push_str("  transitions:\n");
        if g.edges.is_empty() {
            y.push_str("    []\n");
        }
        for (from, to) in &g.edges {
            let from = from.map_or("\"*\"".to_owned(), |f| format!("s{f}"));
            y.push_str(&format!(
                "    - {{ from: {from}, to: s{to}, on: agent.note }}\n"
            ));
        }
        y
    }

    /// Naive: a state can finish if it is terminal or has an edge to a
    /// state that can; iterate until nothing changes.
    fn naive_stuck(g: &Graph) -> BTreeSet<String> {
        let n = g.terminal.len();
        let mut edges = Vec::new();
        for (from, to) in &g.edges {
            match from {
                Some(f) => edges.push((*f, *to)),
                None => edges.extend((0..n).filter(|s| !g.terminal[*s]).map(|s| (s, *to))),
            }
        }
        for (s, t) in g.timeouts.iter().enumerate() {
            if let Some(t) = t {
                edges.push((s, *t));
            }
        }
        let mut good = g.terminal.clone();
        loop {
            let mut changed = false;
            for (a, b) in &edges {
                if good[*b] && !good[*a] {
                    good[*a] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        (0..n)
            .filter(|s| !good[*s])
            .map(|s| format!("s{s}"))
            .collect()
    }

    struct One(String);
    impl SourceReader for One {
        fn read(&self, _: &Path) -> std::io::Result<String> {
            Ok(self.0.clone())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn validator_agrees_with_naive_reachability(g in graphs()) {
            let text = yaml(&g);
            let report = config::check_with(&One(text.clone()), Path::new("p.yaml"));
            let mut stuck = BTreeSet::new();
            for d in report.diagnostics.iter() {
                // Terminal states with exits and unreachable states are
                // other findings; anything else would be a validator bug.
                prop_assert!(
                    matches!(d.code, "workflow::stuck-state" | "workflow::terminal-exit" | "workflow::unreachable-state"),
                    "unexpected {d}\n{text}"
                );
                if d.code == "workflow::stuck-state" {
                    // The error points at the state's key: read its name there.
                    let loc = d.location.as_ref().unwrap();
                    let line = text.lines().nth(loc.line - 1).unwrap();
                    let name = line[loc.column - 1..].split(':').next().unwrap();
                    stuck.insert(name.to_owned());
                }
            }
            prop_assert_eq!(stuck, naive_stuck(&g), "{}", text);
        }
    }
}
