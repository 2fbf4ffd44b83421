//! The bodies of the fuzz targets, one function per target.
//!
//! This one file is compiled twice: by the cargo-fuzz crate (`fuzz/`,
//! nightly, libFuzzer) and, through `#[path]`, by the stable integration
//! tests (`tests/fuzz_regressions.rs`), which replay every seed and every
//! saved crash through the very same function. So a crash the fuzzer once
//! found stays fixed in CI without nightly.
//!
//! Each function feeds the bytes through a real entry point — the whole
//! parse-and-validate path a user's input takes — and may only return or
//! panic. A panic, a failed assertion of a property below, or a run that
//! does not finish (libFuzzer's `-timeout`) is a finding.
//!
//! Inputs that are not UTF-8 are dropped by the text targets: the CLI
//! reads those files with `read_to_string`, which refuses them first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use casework::Timestamp;
use casework::clock::ManualClock;
use casework::config::{self, SourceReader};
use casework::engine::{Engine, Outcome, Pack};
use casework::event::Event;
use casework::pack;
use casework::scenario::Scenario;

/// A target: takes the fuzzer's bytes, returns or panics.
pub type Target = fn(&[u8]);

/// Every target, by the name `cargo fuzz run` and `scripts/fuzz` use.
pub const TARGETS: &[(&str, Target)] = &[
    ("event", event),
    ("config", config),
    ("rules", rules),
    ("scenario", scenario),
    ("email", email),
    ("classify", classify),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// `event`: one line of `casework run --events` (or one `POST /events`
/// body): [`Event::from_json`], the per-kind payload, and the engine on
/// the embedded default pack, which refuses a malformed event.
///
/// Properties: an event that parses re-serialises and parses back to the
/// same value; an event the engine accepted is a duplicate the second time.
pub fn event(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(event) = Event::from_json(text) else {
        return;
    };
    round_trip(&event);
    let _ = event.payload();
    let mut engine = default_engine(event.at);
    if engine.handle(event.clone()).is_ok() {
        let again = engine.handle(event);
        assert!(
            matches!(again, Ok(Outcome::Duplicate)),
            "an accepted event handled again must be a duplicate: {again:?}"
        );
    }
}

/// `config`: the bytes are the text of `rules/casework.yaml`; every other
/// file (includes, rule files) comes from the embedded default pack, so
/// `include: [workflow.yaml]` resolves as it does on disk.
///
/// `check_with` (parse, merge, cross-checks, workflow analysis, guard
/// compilation), then, for a configuration that loads, `Pack::compile`
/// (calendars, SLA plan, the rule set under the configured limits) and one
/// event through an engine built from it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reader = PackReader::with(pack::ROOT, text);
    compile_and_run(&reader);
}

/// `rules`: the bytes are `rules/route.rhai` of the default pack. Loading
/// compiles it with the sandboxed engine; a rule set that compiles runs
/// the route, urgency and promise rules on three events. The sandbox's
/// operation, depth and size limits must stop any runaway script, at
/// compile time and at run time.
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reader = PackReader::with("rules/route.rhai", text);
    compile_and_run(&reader);
}

/// `scenario`: a scenario file, [`Scenario::parse`], then, on the embedded
/// default pack (a `config:` key is dropped: no disk), the run and the
/// check of its expectations.
///
/// A scenario spanning more than [`MAX_SCENARIO_DAYS`] or holding more
/// than [`MAX_SCENARIO_EVENTS`] events is parsed but not run: the timers
/// of a case legitimately fire for as long as the run lasts, so a run to
/// the year 9999 is slow, not wrong.
pub fn scenario(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut scenario) = Scenario::parse(Path::new("fuzz/scenario.yaml"), text) else {
        return;
    };
    scenario.def.config = None;
    let def = &scenario.def;
    let last = def
        .until
        .into_iter()
        .chain(def.events.iter().map(|e| e.at))
        .chain(def.expect.iter().filter_map(|x| x.by))
        .max()
        .unwrap_or(def.start);
    if def.events.len() > MAX_SCENARIO_EVENTS
        || last - def.start > chrono::Duration::days(MAX_SCENARIO_DAYS)
    {
        return;
    }
    for e in &def.events {
        round_trip(e);
    }
    if let Ok(run) = scenario.run() {
        let _ = run.check(&scenario.def.expect);
    }
}

/// Scenarios longer than this (from `start` to the last time named) are
/// not run by the `scenario` target.
pub const MAX_SCENARIO_DAYS: i64 = 400;
/// Scenarios with more events than this are not run by the `scenario`
/// target.
pub const MAX_SCENARIO_EVENTS: usize = 64;

/// `email`: a raw RFC 5322 message, [`casework_email::inbound::parse`],
/// then the `email.received` event made from it.
///
/// Properties: the text is cut at `MAX_TEXT_CHARS`; the event is one the
/// engine can read (its payload decodes) and survives the JSON round trip
/// that `casework run` and the store put it through.
pub fn email(data: &[u8]) {
    use casework_email::inbound;
    let Ok(mail) = inbound::parse(data) else {
        return;
    };
    assert!(
        mail.text.chars().count() <= inbound::MAX_TEXT_CHARS,
        "the text must be cut at MAX_TEXT_CHARS"
    );
    let _ = (mail.case_tag(), mail.thread());
    let event = mail.to_event(fixed_time());
    assert!(!event.id.is_unset(), "an e-mail event always has an id");
    if let Err(e) = event.payload() {
        panic!("the event made from an e-mail does not decode: {e}");
    }
    round_trip(&event);
}

// ---------------------------------------------------------------------------

/// Serialise `event` as JSON and parse it back: it must be the same.
fn round_trip(event: &Event) {
    let json = serde_json::to_string(event).expect("an event serialises as JSON");
    match Event::from_json(&json) {
        Ok(back) => assert_eq!(
            &back, event,
            "the JSON round trip changed the event: {json}"
        ),
        Err(e) => panic!("an event re-serialised as JSON does not parse: {e}\n{json}"),
    }
}

/// 2026-11-25T10:00:00+09:00.
fn fixed_time() -> Timestamp {
    Timestamp::parse_from_rfc3339("2026-11-25T10:00:00+09:00").expect("a valid time")
}

/// `classify`: the bytes are a message for the default pack's `topic` and
/// `tone` classifiers, and also an example file (JSON Lines and YAML)
/// that, when it holds labeled examples, trains a model of its own which
/// then reads the same text.
///
/// Properties: a prediction is a probability per label, each finite and
/// between 0 and 1, summing to 1; the confident verdict, when there is
/// one, reaches the threshold; training twice gives the same bytes.
pub fn classify(data: &[u8]) {
    use casework::classify::{Model, examples};
    use casework::diagnostic::SourceFile;
    use std::sync::OnceLock;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    static PACK: OnceLock<casework::rules::RuleSet> = OnceLock::new();
    let rules = PACK.get_or_init(|| casework::load(None).expect("the default pack compiles").1);
    let set = rules
        .classifiers()
        .expect("the default pack has classifiers");
    for name in set.names() {
        let model = set.get(name).expect("a named model");
        check_prediction(model, text);
        if let Ok(Some(v)) = set.classify(name, text) {
            assert!(
                v.confidence >= model.threshold() && v.confidence <= 1.0,
                "{v:?}"
            );
            assert!(model.labels().contains(&v.label));
        }
    }
    for path in ["fuzz.jsonl", "fuzz.yaml"] {
        let (found, _) = examples::parse(&SourceFile::new(path, text));
        if found.is_empty() {
            continue;
        }
        let found = &found[..found.len().min(200)];
        let mut labels: Vec<String> = found.iter().map(|e| e.label.clone()).collect();
        labels.sort();
        labels.dedup();
        let model = Model::train(&labels, found, 0.5);
        check_prediction(&model, text);
        assert_eq!(
            model.to_bytes(),
            Model::train(&labels, found, 0.5).to_bytes()
        );
    }
}

fn check_prediction(model: &casework::classify::Model, text: &str) {
    let Some(p) = model.predict(text) else {
        assert!(model.labels().is_empty());
        return;
    };
    let sum: f64 = p.probabilities.iter().sum();
    assert!((sum - 1.0).abs() < 1e-9, "probabilities sum to {sum}");
    assert!(
        p.probabilities
            .iter()
            .all(|x| x.is_finite() && (0.0..=1.0).contains(x))
    );
    assert!(p.best < model.labels().len());
    let _ = model.explain(text);
}

/// A fresh engine on the embedded default pack, its clock at `at`.
fn default_engine(at: Timestamp) -> Engine {
    let (pack, rules) = casework::load(None).expect("the default pack compiles");
    Engine::builder(pack, rules)
        .clock(Arc::new(ManualClock::new(at)))
        .build()
        .expect("an in-memory engine builds")
}

/// Events that make the default rules run: route and urgency on a
/// message, a promise, and a warehouse plan that checks it.
const EVENTS: &[&str] = &[
    r#"{"id":"f-1","at":"2026-11-20T09:05:00+09:00","kind":"customer.message","case":"C-1","customer":{"name":"Jo","email":"jo@example.com"},"channel":"email","text":"Please deliver the table urgently, January 5 to 8. 至急"}"#,
    r#"{"id":"f-2","at":"2026-11-20T09:25:00+09:00","kind":"agent.promise","case":"C-1","agent":"jeniffer","promise":{"id":"P-1","kind":"deliver_on","date":"2027-01-06","window":{"from":"2027-01-05","to":"2027-01-08"},"order":"O-77"}}"#,
    r#"{"id":"f-3","at":"2026-12-10T08:00:00+09:00","kind":"warehouse.planned","order":"O-77","ship_date":"2026-12-11"}"#,
];

/// Check the configuration `reader` serves at the pack's root; if it
/// loads, compile it and play [`EVENTS`] and a day of timers on it.
fn compile_and_run(reader: &PackReader) {
    let report = config::check_with(reader, Path::new(pack::ROOT));
    for d in report.diagnostics.iter() {
        let _ = d.to_string();
    }
    let Some(loaded) = report.config else {
        return;
    };
    let Ok((pack, rules)) = Pack::compile(loaded) else {
        return;
    };
    let events: Vec<Event> = EVENTS
        .iter()
        .map(|line| Event::from_json(line).expect("a valid event"))
        .collect();
    let mut now = events[0].at;
    let clock = Arc::new(ManualClock::new(now));
    let Ok(mut engine) = Engine::builder(pack, rules).clock(clock.clone()).build() else {
        return;
    };
    for event in events {
        now = event.at;
        clock.set(now);
        let _ = engine.handle(event);
    }
    let _ = engine.tick(now + chrono::Duration::days(1));
}

/// The embedded default pack with one file replaced by the fuzz input.
struct PackReader<'a> {
    path: PathBuf,
    text: &'a str,
    pack: config::MemoryReader,
}

impl<'a> PackReader<'a> {
    fn with(path: &str, text: &'a str) -> Self {
        PackReader {
            path: config::tidy_path(Path::new(path)),
            text,
            pack: pack::reader(),
        }
    }
}

impl SourceReader for PackReader<'_> {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        if config::tidy_path(path) == self.path {
            Ok(self.text.to_owned())
        } else {
            self.pack.read(path)
        }
    }
}
