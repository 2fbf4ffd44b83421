//! Tests of the rules host and of the default rule pack (`rules/*.rhai`).

use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::json;

use super::*;
use crate::case::{Author, Case, CaseId, Channel, Message, Order, OrderId, StateId};
use crate::config::{AgentDef, DirectoryDef, LimitsDef, RulesDef, TeamDef};
use crate::diagnostic::{SourceFile, SourceLocation};
use crate::event::{Event, EventId};
use crate::promise::{Promise, PromiseId, PromiseKind, PromiseSpec, PromiseStatus, Window};

const ROUTE: &str = include_str!("../../../rules/route.rhai");
const URGENCY: &str = include_str!("../../../rules/urgency.rhai");
const PROMISE: &str = include_str!("../../../rules/promise.rhai");

fn ts(s: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(s).unwrap()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn directory() -> DirectoryDef {
    let mut dir = DirectoryDef {
        fallback: "support".into(),
        ..Default::default()
    };
    for (team, skill) in [
        ("support", "general"),
        ("warehouse", "shipping"),
        ("product", "sizing"),
        ("billing", "payments"),
        ("sales", "orders"),
    ] {
        let mut def = TeamDef {
            skills: vec![skill.into()],
            ..Default::default()
        };
        if team == "sales" {
            def.agents.insert(
                "jeniffer".into(),
                AgentDef {
                    name: Some("Jeniffer".into()),
                    skills: vec!["orders".into()],
                    ..Default::default()
                },
            );
        }
        dir.teams.insert(team.into(), def);
    }
    dir
}

fn pack_def() -> RulesDef {
    let settings = json!({
        "warehouse_lead_days_max": 21,
        "carrier_transit_days": 3,
        "regional_transit_days": 5,
        "appointment_days": 2,
        "callback_warn_hours": 2,
        "repeat_contact_threshold": 3,
    });
    RulesDef {
        files: vec![],
        settings: settings.as_object().unwrap().clone(),
        limits: None,
    }
}

fn pack_files() -> Vec<SourceFile> {
    vec![
        SourceFile::new("rules/route.rhai", ROUTE),
        SourceFile::new("rules/urgency.rhai", URGENCY),
        SourceFile::new("rules/promise.rhai", PROMISE),
    ]
}

fn pack() -> RuleSet {
    RuleSet::compile(
        &pack_files(),
        &pack_def(),
        &[],
        &directory(),
        &Calendars::new(),
    )
    .unwrap_or_else(|d| panic!("default pack compiles:\n{d}"))
    .with_classifiers(pack_classifiers())
}

/// The default pack's classifiers (`topic`, `tone`), trained from its
/// example files as the pack loads them.
fn pack_classifiers() -> Arc<crate::classify::ClassifierSet> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/casework.yaml");
    let loaded =
        crate::config::load(root).unwrap_or_else(|d| panic!("the default pack loads:\n{d}"));
    Arc::new(
        crate::classify::ClassifierSet::train(&loaded.classifiers).expect("its classifiers train"),
    )
}

fn one(path: &str, text: &str) -> Result<RuleSet, crate::diagnostic::Diagnostics> {
    RuleSet::compile(
        &[SourceFile::new(path, text)],
        &RulesDef::default(),
        &[],
        &directory(),
        &Calendars::new(),
    )
}

fn case_with(text: &str) -> Case {
    let at = ts("2026-11-25T10:00:00+09:00");
    let mut case = Case::open(CaseId::from("C-1"), at, StateId::from("new"));
    case.customer.name = Some("Jo Tanaka".into());
    case.customer.email = Some("jo@example.com".into());
    case.contacts = 1;
    if !text.is_empty() {
        case.add_message(Message {
            at,
            author: Author::Customer,
            from: None,
            channel: Channel::WebForm,
            subject: None,
            text: text.into(),
            message_id: None,
            event: EventId::from("E-1"),
        });
    }
    case
}

fn message(text: &str) -> Event {
    Event::new(
        "E-1",
        ts("2026-11-25T10:00:00+09:00"),
        "customer.message",
        Some(CaseId::from("C-1")),
    )
    .with("text", text)
    .with("channel", "web_form")
}

struct Run {
    case: Case,
    event: Option<Event>,
    stats: CustomerStats,
    now: Timestamp,
}

impl Run {
    fn message(text: &str) -> Run {
        Run {
            case: case_with(text),
            event: Some(message(text)),
            stats: CustomerStats {
                contacts: 1,
                cases: 1,
                open_cases: 1,
                ..Default::default()
            },
            now: ts("2026-11-25T10:00:00+09:00"),
        }
    }

    fn input(&self) -> RuleInput<'_> {
        RuleInput {
            case: &self.case,
            event: self.event.as_ref(),
            now: self.now,
            customer: &self.stats,
        }
    }
}

fn route_of(set: &RuleSet, text: &str) -> Option<Route> {
    set.route(&Run::message(text).input()).unwrap()
}

fn urgency_of(set: &RuleSet, text: &str) -> UrgencyVerdict {
    set.urgency(&Run::message(text).input()).unwrap().unwrap()
}

// --- sandbox -------------------------------------------------------------

#[test]
fn rules_sandbox_stops_an_endless_loop() {
    let set = one(
        "rules/loop.rhai",
        "fn route(c, event) {\n  let n = 0;\n  loop { n += 1; }\n}",
    )
    .unwrap();
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    let RuleError::LimitExceeded { limit, line, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(limit, "operations");
    // Rhai does not say where inside the rule the limit was hit, so the
    // line is where the rule starts.
    assert_eq!(*line, Some(1));
    assert_eq!(err.rule(), "route");
    assert_eq!(err.file(), "rules/loop.rhai");
    let text = err.to_string();
    assert!(
        text.starts_with("rule `route` in rules/loop.rhai:1 ran more than 100000 operations"),
        "{text}"
    );
    assert!(text.contains("loop that never ends"));
}

#[test]
fn rules_sandbox_stops_endless_recursion() {
    let set = one(
        "rules/deep.rhai",
        "fn down(n) { down(n + 1) }\nfn urgency(c, event) { down(0) }",
    )
    .unwrap();
    let err = set.urgency(&Run::message("hi").input()).unwrap_err();
    assert!(
        matches!(&err, RuleError::LimitExceeded { limit, .. } if limit == "call_depth"),
        "{err:?}"
    );
    assert_eq!(err.rule(), "urgency");
    assert!(err.to_string().contains("calls itself"), "{err}");
}

#[test]
fn rules_sandbox_stops_a_huge_string() {
    // Doubling a string towards 1 GB.
    let set = one(
        "rules/big.rhai",
        "fn route(c, event) {\n  let s = \"x\";\n  while s.len() < 1_000_000_000 { s += s; }\n  s\n}",
    )
    .unwrap();
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    assert!(
        matches!(&err, RuleError::LimitExceeded { limit, .. } if limit == "string_size"),
        "{err:?}"
    );
    assert_eq!(err.rule(), "route");
    assert_eq!(err.line(), Some(1));

    // Asking for 1 GB in one call.
    let set = one(
        "rules/pad.rhai",
        "fn route(c, event) { let s = \"\"; s.pad(1_000_000_000, 'x'); s }",
    )
    .unwrap();
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    assert!(matches!(&err, RuleError::LimitExceeded { .. }), "{err:?}");

    // And a huge list.
    let set = one(
        "rules/list.rhai",
        "fn route(c, event) { let a = []; a.pad(1_000_000_000, 0); a }",
    )
    .unwrap();
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    assert!(
        matches!(&err, RuleError::LimitExceeded { limit, .. } if limit == "array_size"),
        "{err:?}"
    );
}

#[test]
fn rules_sandbox_refuses_import() {
    let diags = one(
        "rules/imp.rhai",
        "fn route(c, event) {\n  import \"secrets\" as s;\n  s::team()\n}",
    )
    .unwrap_err();
    let d = diags.iter().next().unwrap();
    assert_eq!(d.location.as_ref().unwrap().file, "rules/imp.rhai");
    assert_eq!(d.location.as_ref().unwrap().line, 2);
    assert!(d.message.contains("`route`"), "{d}");
    assert!(d.hint.as_ref().unwrap().contains("cannot import"), "{d}");
}

#[test]
fn rules_sandbox_refuses_eval() {
    let diags = one(
        "rules/ev.rhai",
        "fn route(c, event) {\n  eval(\"\\\"sales\\\"\")\n}",
    )
    .unwrap_err();
    let d = diags.iter().next().unwrap();
    assert_eq!(d.location.as_ref().unwrap().line, 2);
    assert!(d.message.contains("`route`"), "{d}");
    assert!(d.hint.as_ref().unwrap().contains("eval"), "{d}");
}

#[test]
fn rules_sandbox_refuses_wall_clock_and_sleep() {
    let set = one(
        "rules/t.rhai",
        "fn route(c, event) { timestamp(); \"sales\" }",
    )
    .unwrap();
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    assert!(err.to_string().contains("wall clock"), "{err}");
    let set = one(
        "rules/t.rhai",
        "fn route(c, event) { sleep(10); \"sales\" }",
    )
    .unwrap();
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    assert!(err.to_string().contains("cannot sleep"), "{err}");
}

#[test]
fn rules_limits_can_be_overridden() {
    let def = RulesDef {
        limits: Some(LimitsDef {
            max_operations: Some(50),
            max_call_depth: None,
            max_string_size: None,
            max_array_size: None,
            max_map_size: None,
        }),
        ..Default::default()
    };
    let files = [SourceFile::new(
        "rules/r.rhai",
        "fn route(c, event) { let n = 0; for i in 0..100 { n += i; } \"sales\" }",
    )];
    let set = RuleSet::compile(&files, &def, &[], &directory(), &Calendars::new()).unwrap();
    assert_eq!(set.limits().max_operations, 50);
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    assert!(err.to_string().contains("more than 50 operations"), "{err}");
}

#[test]
fn rules_print_and_debug_do_not_fail() {
    let set = one(
        "rules/p.rhai",
        "fn route(c, event) { print(`routing ${c}`); debug(c.id); \"sales\" }",
    )
    .unwrap();
    assert_eq!(route_of(&set, "hi").unwrap().team, "sales");
}

#[test]
fn rules_views_do_not_outlive_their_call() {
    let case = case_with("hi");
    let stats = CustomerStats::default();
    let shared = Arc::new(
        engine::Shared::new(&Default::default(), &directory(), &Calendars::new()).unwrap(),
    );
    let frame = views::enter(ts("2026-11-25T10:00:00+09:00"), shared);
    let view = views::Borrowed::new(&case, &frame);
    let _ = &stats;
    assert!(view.get().is_ok());
    drop(frame);
    assert!(view.get().is_err());

    // A rule that returns the case itself gets a clear error, not the case.
    let set = one("rules/r.rhai", "fn route(c, event) { c }").unwrap();
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    assert!(matches!(err, RuleError::BadReturn { .. }), "{err:?}");
    assert!(err.to_string().contains("got a Case"), "{err}");
}

// --- compile errors --------------------------------------------------------

#[test]
fn rules_compile_errors_have_location_and_hint() {
    let diags = one("rules/bad.rhai", "fn route(c, event) {\n  let x = ;\n}").unwrap_err();
    let d = diags.iter().next().unwrap();
    assert_eq!(d.code, "rules::syntax");
    let loc = d.location.as_ref().unwrap();
    assert_eq!((loc.file.as_str(), loc.line), ("rules/bad.rhai", 2));
    assert!(loc.column > 1);
    assert!(d.hint.is_some());

    // A typo in a variable name is caught before anything runs.
    let diags = one("rules/bad.rhai", "fn route(c, event) {\n  tema\n}").unwrap_err();
    let d = diags.iter().next().unwrap();
    assert_eq!(d.location.as_ref().unwrap().line, 2);
    assert!(d.hint.as_ref().unwrap().contains("settings"), "{d}");

    // Wrong number of parameters.
    let diags = one("rules/bad.rhai", "fn route(c) { () }").unwrap_err();
    let d = diags.iter().next().unwrap();
    assert_eq!(d.code, "rules::signature");
    assert_eq!(d.hint.as_deref(), Some("define it as `fn route(c, event)`"));

    // Two definitions of one rule.
    let diags = RuleSet::compile(
        &[
            SourceFile::new("a.rhai", "fn route(c, event) { () }"),
            SourceFile::new("b.rhai", "\n\nfn route(c, event) { () }"),
        ],
        &RulesDef::default(),
        &[],
        &directory(),
        &Calendars::new(),
    )
    .unwrap_err();
    let d = diags.iter().next().unwrap();
    assert_eq!(d.code, "rules::duplicate");
    assert_eq!(d.location.as_ref().unwrap().to_string(), "b.rhai:3:1");
}

#[test]
fn rules_settings_are_read_only() {
    let set = one(
        "rules/s.rhai",
        "fn route(c, event) { settings.x = 1; \"sales\" }",
    );
    match set {
        Err(d) => assert!(d.to_string().contains("settings"), "{d}"),
        Ok(set) => assert!(set.route(&Run::message("hi").input()).is_err()),
    }
}

// --- bad return values -----------------------------------------------------

#[test]
fn rules_bad_return_values_are_explained() {
    let set = one("rules/r.rhai", "fn route(c, event) { \"nowhere\" }").unwrap();
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("team `nowhere` is not in the directory"),
        "{text}"
    );
    assert!(
        text.contains("support, warehouse, product, billing, sales"),
        "{text}"
    );

    let set = one("rules/r.rhai", "fn route(c, event) { 42 }").unwrap();
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    assert!(err.to_string().contains("return a team name"), "{err}");

    let set = one(
        "rules/r.rhai",
        "fn route(c, event) { #{ team: \"sales\", reson: \"x\" } }",
    )
    .unwrap();
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    assert!(err.to_string().contains("unknown key `reson`"), "{err}");

    let set = one(
        "rules/u.rhai",
        "\nfn urgency(c, event) { #{ level: \"hgih\", score: 1 } }",
    )
    .unwrap();
    let err = set.urgency(&Run::message("hi").input()).unwrap_err();
    assert!(
        matches!(err, RuleError::BadReturn { line: Some(2), .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("unknown level \"hgih\"; the levels are: low, normal, high, urgent"),
        "{text}"
    );

    let set = one(
        "rules/p.rhai",
        "fn check_promise(p, c, now) { #{ status: \"fine\" } }",
    )
    .unwrap();
    let run = promise_run(None);
    let err = set
        .check_promise(&run.case.promises[0], &run.input())
        .unwrap_err();
    assert!(
        err.to_string().contains("pending, at_risk, kept, broken"),
        "{err}"
    );

    let set = one(
        "rules/p.rhai",
        "fn check_promise(p, c, now) { #{ status: \"at_risk\", actions: [#{ action: \"hold\" }] } }",
    )
    .unwrap();
    let err = set
        .check_promise(&run.case.promises[0], &run.input())
        .unwrap_err();
    assert!(err.to_string().contains("plugin.action"), "{err}");
}

#[test]
fn rules_runtime_errors_name_the_rule_and_line() {
    let set = one(
        "rules/r.rhai",
        "fn route(c, event) {\n  let d = c.order(\"nope\");\n  d.planned_ship > date(\"2026-01-01\")\n}",
    )
    .unwrap();
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    assert!(matches!(err, RuleError::Runtime { .. }), "{err:?}");
    assert_eq!(err.line(), Some(3));
    assert!(
        err.to_string().contains("rule `route` in rules/r.rhai:3"),
        "{err}"
    );

    let set = one(
        "rules/r.rhai",
        "fn route(c, event) { throw \"no team today\" }",
    )
    .unwrap();
    let err = set.route(&Run::message("hi").input()).unwrap_err();
    assert!(err.to_string().ends_with("no team today"), "{err}");
    let json = serde_json::to_value(&err).unwrap();
    assert_eq!(json["error"], "runtime");
    assert_eq!(json["rule"], "route");
}

// --- helpers and views -----------------------------------------------------

#[test]
fn rules_views_and_helpers_read_the_model() {
    let set = one(
        "rules/v.rhai",
        r#"
fn route(c, event) {
    let parts = [
        c.id, c.state, `${c.team}`, c.customer.name, `${c.customer.contacts}`,
        `${c.customer.contacts_by("phone")}`, `${contacts(c)}`, `${contacts(c, "phone")}`,
        event.kind, event.channel, `${c.message_count}`, c.latest_text,
        `${date("2026-12-04").add_days(3)}`, date("2026-12-04").weekday,
        `${days_between(date("2026-12-04"), date("2027-01-06"))}`,
        `${add_business_days(date("2026-12-04"), 1)}`,
        `${business_days_between(date("2026-12-04"), date("2026-12-11"))}`,
        `${is_business_day(date("2026-12-05"))}`,
        `${today()}`, `${now().date}`, `${hours_between(time("2026-11-25T08:00:00+09:00"), now())}`,
        normalize("ＡＢＣ"), `${mentions("ＵＲＧＥＮＴ!", "urgent")}`,
        join(matches("ｻｲｽﾞと配送", ["サイズ", "配送", "返金"]), "+"),
        `${settings.repeat_contact_threshold}`, directory.fallback,
        `${directory.team_for_skill("sizing")}`, directory.team_of("jeniffer"),
        `${directory.team("sales").agents}`,
    ];
    #{ team: "sales", reason: join(parts, "|") }
}
"#,
    );
    let set = match set {
        Ok(s) => s,
        Err(d) => panic!("{d}"),
    };
    // Compile it again with settings, the way the engine does.
    let set = RuleSet::compile(
        &[SourceFile::new(
            "rules/v.rhai",
            set.inputs.files[0].text.clone(),
        )],
        &pack_def(),
        &[],
        &directory(),
        &Calendars::new(),
    )
    .unwrap();
    let mut run = Run::message("ＳＩＺＥ?");
    run.stats.contacts = 8;
    run.stats.by_channel.insert(Channel::Phone, 5);
    let reason = set.route(&run.input()).unwrap().unwrap().reason;
    let parts: Vec<&str> = reason.split('|').collect();
    assert_eq!(
        parts,
        [
            "C-1",
            "new",
            "",
            "Jo Tanaka",
            "8",
            "5",
            "8",
            "5",
            "customer.message",
            "web_form",
            "1",
            "ＳＩＺＥ?",
            "2026-12-07",
            "fri",
            "33",
            "2026-12-07",
            "5",
            "false",
            "2026-11-25",
            "2026-11-25",
            "2",
            "abc",
            "true",
            "サイズ+配送",
            "3",
            "support",
            "product",
            "sales",
            "[\"jeniffer\"]",
        ]
    );
}

#[test]
fn rules_keywords_declared_in_settings() {
    let def = RulesDef {
        settings: json!({ "keywords": { "topics": { "refund": ["返金", "refund"], "size": ["サイズ"] } } })
            .as_object()
            .unwrap()
            .clone(),
        ..Default::default()
    };
    let files = [SourceFile::new(
        "rules/k.rhai",
        r#"fn route(c, event) {
            let hits = match_keywords(event.text, "topics");
            if hits.refund.is_empty() { () } else { #{ team: "billing", reason: join(hits.refund, ",") } }
        }"#,
    )];
    let set = RuleSet::compile(&files, &def, &[], &directory(), &Calendars::new()).unwrap();
    let r = route_of(&set, "ＲＥＦＵＮＤ and 返金 please").unwrap();
    assert_eq!(
        (r.team.as_str(), r.reason.as_str()),
        ("billing", "refund,返金")
    );
    assert!(route_of(&set, "hello").is_none());
}

/// A keyword constant at the top of a file decides exactly as the same
/// list written inside the function, and is compiled once, with the set.
#[test]
fn rules_keyword_constants_match_like_literal_lists() {
    let declared = one(
        "rules/k.rhai",
        r#"
        fn route(c, event) {
            let hits = match_keywords(event.text, TOPICS);
            let calm = matches(event.text, TOPICS.calm);
            let reason = `${join(hits.urgent, ",")}|${join(hits.calm, ",")}|${join(calm, ",")}`;
            #{ team: "support", reason: `${reason}|${LIMIT}|${CALM_WORDS.len()}|${type_of(TOPICS)}` }
        }
        const TOPICS = #{ urgent: ["urgent", "急ぎ"], calm: ["not urgent", "急ぎません"] };
        const CALM_WORDS = ["no rush", "whenever"];
        const LIMIT = 3;
        "#,
    )
    .unwrap();
    assert!(declared.warnings().is_empty(), "{}", declared.warnings());
    let literal = one(
        "rules/k.rhai",
        r#"
        fn route(c, event) {
            let hits = match_keywords(event.text, #{ urgent: ["urgent", "急ぎ"], calm: ["not urgent", "急ぎません"] });
            let calm = matches(event.text, ["not urgent", "急ぎません"]);
            let reason = `${join(hits.urgent, ",")}|${join(hits.calm, ",")}|${join(calm, ",")}`;
            #{ team: "support", reason: `${reason}|3|2|Keywords` }
        }
        "#,
    )
    .unwrap();
    for text in [
        "ＵＲＧＥＮＴ please, 急ぎです",
        "It is NOT URGENT. 急ぎません",
        "urgent, or not urgent?",
        "hello",
    ] {
        assert_eq!(
            route_of(&declared, text).unwrap().reason,
            route_of(&literal, text).unwrap().reason,
            "{text}"
        );
    }
    assert_eq!(
        route_of(&declared, "NOT URGENT, urgent").unwrap().reason,
        "urgent|not urgent|not urgent|3|2|Keywords"
    );
}

/// Keyword lists stay usable as lists: iterated, indexed, combined.
#[test]
fn rules_keyword_constants_read_as_lists() {
    let set = one(
        "rules/k.rhai",
        r#"
        const WORDS = ["b", "a", "ＣＣ"];
        const GROUPS = #{ x: ["one"], y: ["two", "three"] };
        fn route(c, event) {
            let seen = [];
            for w in WORDS { seen.push(w); }
            let more = WORDS + ["d"];
            let reason = `${join(seen, "")}|${WORDS[0]}${WORDS[-1]}|${more.len()}|${WORDS.contains("a")}`
                + `|${GROUPS.len()}|${GROUPS.y.len()}|${GROUPS.z == ()}|${join(matches(event.text, GROUPS), "+")}`;
            #{ team: "support", reason: reason }
        }
        "#,
    )
    .unwrap();
    assert_eq!(
        route_of(&set, "three and one").unwrap().reason,
        "baＣＣ|bＣＣ|4|true|2|2|true|one+three"
    );
}

#[test]
fn rules_keyword_constants_are_read_only_and_named_once() {
    let set = one(
        "rules/k.rhai",
        "const WORDS = [\"a\"];\nfn route(c, event) { WORDS = [\"b\"]; \"support\" }",
    );
    // Assigning to a constant is refused when the file compiles or runs.
    if let Ok(set) = set {
        assert!(set.route(&Run::message("a").input()).is_err());
    }

    let reserved = one(
        "rules/k.rhai",
        "const settings = 1;\nfn route(c, event) { () }",
    )
    .expect_err("`settings` is the engine's");
    let d = reserved.iter().next().unwrap();
    assert_eq!(d.code, "rules::reserved-name");
    assert_eq!(d.location.as_ref().unwrap().line, 1);

    let twice = RuleSet::compile(
        &[
            SourceFile::new(
                "rules/a.rhai",
                "const WORDS = [\"a\"];\nfn route(c, event) { () }",
            ),
            SourceFile::new("rules/b.rhai", "\nconst WORDS = [\"b\"];"),
        ],
        &RulesDef::default(),
        &[],
        &directory(),
        &Calendars::new(),
    )
    .expect_err("one name, two constants");
    let d = twice.iter().next().unwrap();
    assert_eq!(d.code, "rules::duplicate");
    let at = d.location.as_ref().unwrap();
    assert_eq!((at.file.as_str(), at.line), ("rules/b.rhai", 2));
    assert!(d.message.contains("rules/a.rhai:1"), "{d}");
}

/// A keyword list written inside a function (rebuilt on every call) is a
/// warning with its place; a list passed as a constant is not.
#[test]
fn rules_literal_keyword_lists_are_warned_about() {
    let set = one(
        "rules/k.rhai",
        "fn route(c, event) {\n    let t = event.text;\n    let a = match_keywords(t, #{ x: [\"a\"] });\n    let b = t.matches([\"b\", \"c\"]);\n    let d = matches(t, (settings.words ?? []) + [\"d\"]);\n    let e = matches(t, WORDS);\n    ()\n}\nconst WORDS = [\"e\"];\n",
    )
    .unwrap();
    let places: Vec<(usize, usize)> = set
        .warnings()
        .iter()
        .map(|d| {
            assert_eq!(d.code, "rules::literal-keywords", "{d}");
            assert!(d.message.contains("in function `route`"), "{d}");
            assert!(d.hint.as_ref().unwrap().contains("const"), "{d}");
            let at = d.location.as_ref().unwrap();
            (at.line, at.column)
        })
        .collect();
    assert_eq!(places, [(3, 31), (4, 23), (5, 49)]);
    assert!(pack().warnings().is_empty(), "{}", pack().warnings());
}

/// `has_pattern` / `find_pattern` read the normalised text, from a
/// constant or a literal; the default pack's order checks use them.
#[test]
fn rules_patterns_read_the_normalised_text() {
    let set = one(
        "rules/p.rhai",
        "const POSTAL = `[0-9]{3}-[0-9]{4}`;\nfn route(c, event) {\n    let t = event.text;\n    #{ team: \"sales\", reason: `${has_pattern(t, POSTAL)} ${find_pattern(t, POSTAL)} ${t.find_pattern(\"qty\\\\s*[0-9]+\")} ${find_pattern(t, \"nowhere\")}` }\n}\n",
    )
    .unwrap();
    assert!(set.warnings().is_empty(), "{}", set.warnings());
    assert_eq!(
        route_of(&set, "〒１５０－０００１, ＱＴＹ ３")
            .unwrap()
            .reason,
        "true 150-0001 qty 3 "
    );
    assert_eq!(route_of(&set, "no code").unwrap().reason, "false   ");
    // The default pack: what an order taken from a message still lacks.
    let pack = pack();
    let reason = |text: &str| route_of(&pack, text).unwrap().reason;
    assert!(
        reason(
            "please take this message as my order: sku 4411, 2 units, ship to 〒１５０－０００１"
        )
        .ends_with("; the message has what an order needs")
    );
    assert!(
        reason("please take this message as my order: sku 4411, ship to 150-00012")
            .ends_with("; the order lacks: quantity, delivery address")
    );
}

/// A pattern written in the file that does not compile is refused when
/// the rule set is, with its place; one built while a rule runs is a rule
/// error naming the pattern.
#[test]
fn rules_a_broken_pattern_is_refused_with_its_place() {
    let err = one(
        "rules/p.rhai",
        "const BAD = `[0-9`;\nfn route(c, event) {\n    let t = event.text;\n    if has_pattern(t, \"(oops\") { return (); }\n    t.find_pattern(BAD)\n}\n",
    )
    .expect_err("two broken patterns");
    let found: Vec<(usize, usize, bool, bool)> = err
        .iter()
        .map(|d| {
            assert_eq!(d.code, "rules::pattern", "{d}");
            assert!(d.message.contains("in function `route`"), "{d}");
            let at = d.location.as_ref().unwrap();
            (
                at.line,
                at.column,
                d.message.contains("`(oops`"),
                d.message.contains("the constant `BAD`, declared on line 1"),
            )
        })
        .collect();
    // The literal where it is written; the constant where it is used,
    // naming the line it is declared on.
    assert_eq!(found, [(4, 23, true, false), (5, 20, false, true)]);

    let set = one(
        "rules/p.rhai",
        "fn route(c, event) {\n    has_pattern(event.text, \"(\" + event.text);\n    ()\n}\n",
    )
    .unwrap();
    let err = set.route(&Run::message("x").input()).unwrap_err();
    assert!(
        err.to_string().contains("`(x` is not a valid pattern"),
        "{err}"
    );
    assert!(err.to_string().contains("rules/p.rhai"), "{err}");
}

#[test]
fn rules_business_days_use_the_configured_calendar() {
    #[derive(Debug)]
    struct EveryDayButSunday;
    impl BusinessDays for EveryDayButSunday {
        fn add_business_days(&self, day: NaiveDate, n: i64) -> Option<NaiveDate> {
            calendars::step_business_days(self, day, n)
        }
        fn business_days_between(&self, a: NaiveDate, b: NaiveDate) -> i64 {
            calendars::count_business_days(self, a, b)
        }
        fn is_business_day(&self, day: NaiveDate) -> bool {
            use chrono::Datelike;
            day.weekday() != chrono::Weekday::Sun
        }
    }
    let mut cals = Calendars::new();
    cals.insert("shop".into(), Arc::new(EveryDayButSunday));
    let files = [SourceFile::new(
        "rules/b.rhai",
        r#"fn route(c, event) {
            #{ team: "sales", reason: `${add_business_days(date("2026-12-04"), 1)} ${add_business_days(date("2026-12-04"), 1, "shop")} ${is_business_day(date("2026-12-05"))}` }
        }"#,
    )];
    let set = RuleSet::compile(&files, &RulesDef::default(), &[], &directory(), &cals).unwrap();
    // The default calendar is the first configured one.
    assert_eq!(
        route_of(&set, "x").unwrap().reason,
        "2026-12-05 2026-12-05 true"
    );
    let files = [SourceFile::new(
        "rules/b.rhai",
        r#"fn route(c, event) { add_business_days(date("2026-12-04"), 1, "nope"); () }"#,
    )];
    let set = RuleSet::compile(&files, &RulesDef::default(), &[], &directory(), &cals).unwrap();
    let err = set.route(&Run::message("x").input()).unwrap_err();
    assert!(err.to_string().contains("the calendars are: shop"), "{err}");
}

// --- guards -----------------------------------------------------------------

#[test]
fn rules_guards_are_compiled_expressions() {
    let files = [SourceFile::new(
        "rules/lib.rhai",
        "fn is_big(c) { c.contacts >= 3 }",
    )];
    let guards = vec![
        (0, "c.urgency == \"urgent\"".to_owned(), None),
        (
            3,
            "is_big(c) && event.kind == \"customer.message\"".to_owned(),
            Some(SourceLocation::new("rules/workflow.yaml", 12, 14)),
        ),
        (4, "settings.repeat_contact_threshold".to_owned(), None),
    ];
    let set = RuleSet::compile(
        &files,
        &pack_def(),
        &guards,
        &directory(),
        &Calendars::new(),
    )
    .unwrap();
    let mut run = Run::message("hi");
    assert!(!set.guard(0, &run.input()).unwrap());
    assert!(set.guard(1, &run.input()).unwrap(), "no guard: true");
    assert!(!set.guard(3, &run.input()).unwrap());
    run.case.contacts = 3;
    run.case.urgency.level = crate::case::UrgencyLevel::Urgent;
    assert!(set.guard(0, &run.input()).unwrap());
    assert!(set.guard(3, &run.input()).unwrap());
    let err = set.guard(4, &run.input()).unwrap_err();
    assert!(err.to_string().contains("true or false"), "{err}");

    // A broken guard is reported where the workflow file has it.
    let bad = vec![(
        2,
        "c.state == ".to_owned(),
        Some(SourceLocation::new("rules/workflow.yaml", 30, 16)),
    )];
    let diags =
        RuleSet::compile(&files, &pack_def(), &bad, &directory(), &Calendars::new()).unwrap_err();
    let d = diags.iter().next().unwrap();
    let loc = d.location.as_ref().unwrap();
    assert_eq!((loc.file.as_str(), loc.line), ("rules/workflow.yaml", 30));
    assert!(loc.column > 16, "{loc}");
    assert!(d.message.contains("transition 2"), "{d}");

    // A guard that loops is stopped and named.
    let looping = vec![(
        5,
        "{ let n = 0; loop { n += 1 } }".to_owned(),
        Some(SourceLocation::new("rules/workflow.yaml", 40, 3)),
    )];
    let set = RuleSet::compile(
        &files,
        &pack_def(),
        &looping,
        &directory(),
        &Calendars::new(),
    );
    if let Ok(set) = set {
        let err = set.guard(5, &run.input()).unwrap_err();
        assert!(matches!(err, RuleError::LimitExceeded { .. }), "{err:?}");
        assert_eq!(err.rule(), "guard of transition 5");
        assert_eq!(err.file(), "rules/workflow.yaml");
    }
}

// --- hash and reload -------------------------------------------------------

#[test]
fn rules_hash_follows_the_content() {
    let a = one("rules/r.rhai", "fn route(c, event) { \"sales\" }").unwrap();
    let b = one("rules/r.rhai", "fn route(c, event) { \"sales\" }").unwrap();
    let c = one("rules/r.rhai", "fn route(c, event) { \"billing\" }").unwrap();
    let d = one("rules/other.rhai", "fn route(c, event) { \"sales\" }").unwrap();
    assert_eq!(a.hash().len(), 16);
    assert!(a.hash().chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(a.hash(), b.hash());
    assert_ne!(a.hash(), c.hash());
    assert_ne!(a.hash(), d.hash());
    let (path, file_hash) = a.file_hashes().next().unwrap();
    assert_eq!(path, "rules/r.rhai");
    assert_eq!(a.rule_ref("route").unwrap().hash, file_hash);
    assert_ne!(file_hash, c.file_hashes().next().unwrap().1);
    let r = route_of(&a, "hi").unwrap();
    assert_eq!(r.rule.name, "route");
    assert_eq!(r.rule.line, Some(1));
    assert_eq!(r.rule.file, "rules/r.rhai");

    // Settings are part of the version too.
    let mut def = pack_def();
    let x = RuleSet::compile(&pack_files(), &def, &[], &directory(), &Calendars::new()).unwrap();
    def.settings
        .insert("repeat_contact_threshold".into(), json!(5));
    let y = RuleSet::compile(&pack_files(), &def, &[], &directory(), &Calendars::new()).unwrap();
    assert_ne!(x.hash(), y.hash());
}

#[test]
fn rules_hot_reload_swaps_or_keeps_the_old_set() {
    let rules = Rules::new(pack());
    let before = rules.current();
    let old_hash = before.hash().to_owned();
    assert_eq!(
        route_of(&before, "返金してください").unwrap().team,
        "billing"
    );

    // A broken route.rhai is refused; the old set keeps running.
    let broken = SourceFile::new("rules/route.rhai", "fn route(c, event) { \"sales\" ");
    let diags = rules.reload_file(broken).unwrap_err();
    assert!(diags.has_errors());
    assert_eq!(rules.current().hash(), old_hash);
    assert_eq!(
        route_of(&rules.current(), "返金してください").unwrap().team,
        "billing"
    );

    // A good change is swapped in; a reader holding the old set keeps it.
    let changed = SourceFile::new("rules/route.rhai", "fn route(c, event) { \"sales\" }");
    rules.reload_file(changed).unwrap();
    let after = rules.current();
    assert_ne!(after.hash(), old_hash);
    assert_eq!(route_of(&after, "返金してください").unwrap().team, "sales");
    assert_eq!(
        route_of(&before, "返金してください").unwrap().team,
        "billing"
    );
    // The other files and settings came along.
    assert!(after.rule_ref("check_promise").is_some());
    assert_eq!(after.inputs.def.settings, pack_def().settings);

    // Reloading the whole list works the same way.
    rules.reload(&pack_files()).unwrap();
    assert_eq!(rules.current().hash(), old_hash);
}

// --- the default pack: route -----------------------------------------------

#[test]
fn rules_pack_routes_orders_to_sales() {
    let set = pack();
    // The scenario's message (story 3, in Japanese).
    let r = route_of(
        &set,
        "注文の方法が分からなかったので、こちらから注文させてください。至急の納期を希望します。",
    )
    .unwrap();
    assert_eq!(r.team, "sales");
    assert!(r.reason.contains("注文させて"), "{}", r.reason);
    assert_eq!(r.rule.file, "rules/route.rhai");
    let r = route_of(
        &set,
        "I couldn't work out how to order, so please take this message as my order. I need it urgently.",
    )
    .unwrap();
    assert_eq!(r.team, "sales");
    assert!(
        r.reason.contains("take this message as my order"),
        "{}",
        r.reason
    );
    assert_eq!(
        route_of(&set, "I want to buy the oak table").unwrap().team,
        "sales"
    );
}

#[test]
fn rules_pack_routes_by_topic_in_both_languages() {
    let set = pack();
    let team = |t: &str| route_of(&set, t).map(|r| r.team);
    assert_eq!(
        team("Where is my order? It has not been delivered").as_deref(),
        Some("warehouse")
    );
    assert_eq!(team("荷物がまだ届きません").as_deref(), Some("warehouse"));
    assert_eq!(
        team("テーブルのｻｲｽﾞを教えてください").as_deref(),
        Some("product")
    );
    assert_eq!(
        team("What are the dimensions? Will it fit?").as_deref(),
        Some("product")
    );
    assert_eq!(team("ＲＥＦＵＮＤ please").as_deref(), Some("billing"));
    assert_eq!(team("請求書を送ってください").as_deref(), Some("billing"));
    assert_eq!(
        team("I was charged twice for shipping").as_deref(),
        Some("billing")
    );
    // Nothing matched: a new case goes to the fallback team ...
    let r = route_of(&set, "Hello there").unwrap();
    assert_eq!(r.team, "support");
    assert!(r.reason.contains("no topic words"));
    // ... and a case that has a team stays there.
    let mut run = Run::message("Thanks!");
    run.case.assignment.team = Some("billing".into());
    assert_eq!(set.route(&run.input()).unwrap(), None);
}

#[test]
fn rules_pack_route_reads_the_latest_message_without_an_event() {
    let set = pack();
    let mut run = Run::message("返金をお願いします");
    run.event = None;
    assert_eq!(set.route(&run.input()).unwrap().unwrap().team, "billing");
    // An agent's note is not read as the customer's words.
    let mut run = Run::message("サイズは?");
    run.event = Some(
        Event::new("E-2", run.now, "agent.note", Some(CaseId::from("C-1")))
            .with("agent", "jeniffer")
            .with("text", "refund issued"),
    );
    assert_eq!(set.route(&run.input()).unwrap().unwrap().team, "product");
}

// --- the default pack: urgency ---------------------------------------------

#[test]
fn rules_pack_urgency_words() {
    let set = pack();
    let u = urgency_of(&set, "至急お願いします");
    assert_eq!(u.level, crate::case::UrgencyLevel::Urgent);
    assert!(u.reasons[0].contains("至急"), "{:?}", u.reasons);
    for text in [
        "急ぎで",
        "今日中に返事をください",
        "please reply ASAP",
        "ＡＳＡＰ",
        "as soon as possible please",
        "I need it urgently.",
        "ＵＲＧＥＮＴ",
    ] {
        assert_eq!(
            urgency_of(&set, text).level,
            crate::case::UrgencyLevel::Urgent,
            "{text}"
        );
    }
    let calm = urgency_of(&set, "急ぎません。not urgent at all");
    assert_eq!(calm.level, crate::case::UrgencyLevel::Low, "{calm:?}");
    let plain = urgency_of(&set, "hello");
    assert_eq!(
        (plain.level, plain.score),
        (crate::case::UrgencyLevel::Normal, 0)
    );
    assert!(plain.reasons.is_empty());
    assert_eq!(plain.rule.name, "urgency");
}

#[test]
fn rules_pack_urgency_deadlines() {
    let set = pack();
    for (text, found) in [
        ("1/6に届けてください", "1/6"),
        ("１／６に届けてください", "1/6"),
        ("6日までにお願いします", "6日までに"),
        ("Can it arrive by Friday?", "by friday"),
    ] {
        let u = urgency_of(&set, text);
        assert_eq!(u.level, crate::case::UrgencyLevel::High, "{text}: {u:?}");
        assert!(u.reasons.iter().any(|r| r.contains(found)), "{text}: {u:?}");
    }
}

#[test]
fn rules_pack_urgency_rises_with_repeated_contacts() {
    let set = pack();
    let score = |contacts: u32| {
        let mut run = Run::message("hello again");
        run.stats.contacts = contacts;
        run.stats.cases = 3;
        set.urgency(&run.input()).unwrap().unwrap()
    };
    assert_eq!(score(2).score, 0);
    assert_eq!(score(3).score, 10);
    assert!(score(5).score > score(3).score);
    let eight = score(8);
    assert_eq!(eight.level, crate::case::UrgencyLevel::Urgent);
    assert!(eight.reasons[0].contains("8 times"), "{:?}", eight.reasons);

    // The threshold comes from settings.
    let mut def = pack_def();
    def.settings
        .insert("repeat_contact_threshold".into(), json!(10));
    let strict = RuleSet::compile(&pack_files(), &def, &[], &directory(), &Calendars::new())
        .unwrap()
        .with_classifiers(pack_classifiers());
    let mut run = Run::message("hello again");
    run.stats.contacts = 8;
    assert_eq!(strict.urgency(&run.input()).unwrap().unwrap().score, 0);
}

#[test]
fn rules_pack_urgency_counts_promises_due_soon() {
    let set = pack();
    let mut run = promise_run(None);
    run.event = None;
    run.case.messages.clear();
    run.now = ts("2027-01-07T12:00:00+09:00"); // due at the end of Jan 8
    let u = set.urgency(&run.input()).unwrap().unwrap();
    assert_eq!(u.level, crate::case::UrgencyLevel::High, "{u:?}");
    assert!(u.reasons[0].contains("P-1 is due in 36 hours"), "{u:?}");
    run.now = ts("2027-01-10T12:00:00+09:00");
    let u = set.urgency(&run.input()).unwrap().unwrap();
    assert_eq!(u.level, crate::case::UrgencyLevel::Urgent, "{u:?}");
}

// --- the default pack: promises --------------------------------------------

/// The table story: on Nov 25 an agent promises delivery on Jan 6, in a
/// window of Jan 5-8, for order O-77.
fn promise_run(order: Option<Order>) -> Run {
    let mut run = Run::message("");
    run.event = None;
    let made = ts("2026-11-25T10:20:00+09:00");
    let spec = PromiseSpec {
        id: PromiseId::from("P-1"),
        kind: PromiseKind::DeliverOn,
        date: Some(day("2027-01-06")),
        window: Some(Window {
            from: day("2027-01-05"),
            to: day("2027-01-08"),
        }),
        by: None,
        order: Some(OrderId::from("O-77")),
        tz: None,
        text: None,
        revises: None,
    };
    let p = Promise::make(
        &spec,
        "jeniffer",
        made,
        Some(Channel::Phone),
        chrono_tz::Asia::Tokyo,
    )
    .unwrap();
    run.case.promises.push(p);
    run.case.assignment.team = Some("sales".into());
    run.case
        .orders
        .push(order.unwrap_or_else(|| Order::new(OrderId::from("O-77"))));
    run.now = ts("2026-12-10T08:00:00+09:00");
    run
}

fn check(run: &Run) -> PromiseCheck {
    pack()
        .check_promise(&run.case.promises[0], &run.input())
        .unwrap()
        .unwrap()
}

#[test]
fn rules_pack_promise_shipped_too_early_asks_for_a_hold() {
    let mut order = Order::new(OrderId::from("O-77"));
    order.planned_ship = Some(day("2026-12-11"));
    let run = promise_run(Some(order));
    let c = check(&run);
    assert_eq!(c.status, PromiseStatus::AtRisk, "{c:?}");
    assert!(c.reason.contains("2026-12-14"), "{}", c.reason);
    assert_eq!(c.rule.name, "check_promise");
    let hold = &c.actions[0];
    assert_eq!(hold.action, "warehouse.hold");
    assert_eq!(hold.params["order"], "O-77");
    // Jan 5 + 3 days of transit arrives on Jan 8, the last day of the window.
    assert_eq!(hold.params["until"], "2027-01-05");
    let notify = &c.actions[1];
    assert_eq!(notify.action, "team.notify");
    assert_eq!(notify.params["agent"], "jeniffer");
    assert_eq!(notify.params["promise"], "P-1");

    // Once the warehouse holds it, the promise is on track again.
    let mut run = run;
    run.case.orders[0].held_until = Some(day("2027-01-05"));
    let c = check(&run);
    assert_eq!(c.status, PromiseStatus::Pending, "{c:?}");
    assert!(c.actions.is_empty());
    assert!(c.reason.contains("ships 2027-01-05"), "{}", c.reason);
}

#[test]
fn rules_pack_promise_late_eta_tells_the_customer() {
    let mut order = Order::new(OrderId::from("O-77"));
    order.shipped_on = Some(day("2027-01-04"));
    order.carrier_eta = Some(day("2027-01-10"));
    let c = check(&promise_run(Some(order)));
    assert_eq!(c.status, PromiseStatus::AtRisk);
    assert!(c.reason.contains("2027-01-10"), "{}", c.reason);
    assert_eq!(c.actions[0].action, "email.send");
    assert_eq!(c.actions[0].params["to"], "jo@example.com");

    let mut order = Order::new(OrderId::from("O-77"));
    order.shipped_on = Some(day("2026-12-30"));
    order.carrier_eta = Some(day("2027-01-02"));
    let c = check(&promise_run(Some(order)));
    assert_eq!(c.status, PromiseStatus::AtRisk);
    let names: Vec<_> = c.actions.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(names, ["carrier.reschedule", "email.send"]);
    assert_eq!(c.actions[0].params["deliver_on"], "2027-01-05");
}

#[test]
fn rules_pack_promise_trouble_and_lead_times() {
    let mut order = Order::new(OrderId::from("O-77"));
    order.planned_ship = Some(day("2027-01-03"));
    order.backordered = true;
    order.problem = Some("damaged in the warehouse".into());
    let c = check(&promise_run(Some(order)));
    assert_eq!(c.status, PromiseStatus::AtRisk);
    assert!(c.reason.contains("backordered"), "{}", c.reason);
    assert!(c.reason.contains("damaged"), "{}", c.reason);

    // Held past the last day that still arrives in time.
    let mut order = Order::new(OrderId::from("O-77"));
    order.planned_ship = Some(day("2026-12-11"));
    order.held_until = Some(day("2027-01-07"));
    let c = check(&promise_run(Some(order)));
    assert_eq!(c.status, PromiseStatus::AtRisk);
    assert!(c.reason.contains("after the promised"), "{}", c.reason);

    // Made on Nov 25 for Jan 5-8: 21 + 5 + 2 = 28 days fits, so pending.
    let c = check(&promise_run(None));
    assert_eq!(c.status, PromiseStatus::Pending, "{c:?}");

    // Made on Dec 20 for the same window: it cannot be guaranteed.
    let mut run = promise_run(None);
    run.case.promises[0].made_at = ts("2026-12-20T10:00:00+09:00");
    run.now = ts("2026-12-20T10:00:00+09:00");
    let c = check(&run);
    assert_eq!(c.status, PromiseStatus::AtRisk);
    assert!(c.reason.contains("up to 28 days"), "{}", c.reason);
    assert!(c.reason.contains("2027-01-17"), "{}", c.reason);
    assert_eq!(c.actions[0].action, "team.notify");
}

#[test]
fn rules_pack_promise_kept_or_broken_on_delivery() {
    let mut order = Order::new(OrderId::from("O-77"));
    order.delivered_at = Some(ts("2027-01-06T14:00:00+09:00"));
    let c = check(&promise_run(Some(order.clone())));
    assert_eq!(c.status, PromiseStatus::Kept, "{c:?}");

    // Early is broken too: the customer could not receive it.
    order.delivered_at = Some(ts("2026-12-14T14:00:00+09:00"));
    let c = check(&promise_run(Some(order.clone())));
    assert_eq!(c.status, PromiseStatus::Broken);
    assert!(c.reason.contains("before the promised"), "{}", c.reason);

    // The day is taken in the promise's time zone: 23:30 UTC on Jan 8 is
    // already Jan 9 in Tokyo.
    order.delivered_at = Some(ts("2027-01-08T23:30:00+00:00"));
    let c = check(&promise_run(Some(order)));
    assert_eq!(c.status, PromiseStatus::Broken);
    assert!(c.reason.contains("2027-01-09"), "{}", c.reason);

    // Not delivered by the end of the window.
    let mut run = promise_run(None);
    run.now = ts("2027-01-09T00:00:01+09:00");
    let c = check(&run);
    assert_eq!(c.status, PromiseStatus::Broken);
    assert!(c.reason.contains("not delivered by the end of 2027-01-08"));
}

#[test]
fn rules_pack_callback_promises() {
    let mut run = Run::message("電話をください");
    let spec = PromiseSpec {
        id: PromiseId::from("P-2"),
        kind: PromiseKind::CallbackBy,
        date: None,
        window: None,
        by: Some(ts("2026-11-25T15:00:00+09:00")),
        order: None,
        tz: None,
        text: None,
        revises: None,
    };
    let made = ts("2026-11-25T10:00:00+09:00");
    run.case
        .promises
        .push(Promise::make(&spec, "jeniffer", made, None, chrono_tz::Asia::Tokyo).unwrap());
    let set = pack();
    let status = |run: &Run| {
        set.check_promise(&run.case.promises[0], &run.input())
            .unwrap()
            .unwrap()
    };
    run.now = ts("2026-11-25T11:00:00+09:00");
    assert_eq!(status(&run).status, PromiseStatus::Pending);
    run.now = ts("2026-11-25T13:30:00+09:00");
    let c = status(&run);
    assert_eq!(c.status, PromiseStatus::AtRisk, "{c:?}");
    assert!(c.reason.contains("in 90 minutes"), "{}", c.reason);
    assert_eq!(c.actions[0].action, "team.notify");
    run.now = ts("2026-11-25T15:00:00+09:00");
    assert_eq!(status(&run).status, PromiseStatus::Broken);
    run.case.add_message(Message {
        at: ts("2026-11-25T14:00:00+09:00"),
        author: Author::Agent,
        from: Some("jeniffer".into()),
        channel: Channel::Phone,
        subject: None,
        text: "called back".into(),
        message_id: None,
        event: EventId::from("E-9"),
    });
    assert_eq!(status(&run).status, PromiseStatus::Kept);
}

#[test]
fn rules_missing_rules_give_none() {
    let set = one("rules/r.rhai", "fn helper() { 1 }").unwrap();
    assert_eq!(set.warnings().iter().count(), 1);
    let run = promise_run(None);
    assert!(set.route(&run.input()).unwrap().is_none());
    assert!(set.urgency(&run.input()).unwrap().is_none());
    assert!(
        set.check_promise(&run.case.promises[0], &run.input())
            .unwrap()
            .is_none()
    );
}
