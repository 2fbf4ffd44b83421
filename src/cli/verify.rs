//! `casework verify [CONFIG] [--db PATH] [--sample N]`: after an upgrade,
//! replay stored cases from their events and compare each with its
//! stored row.
//!
//! Replay is `Engine::replay`: every event with the pack and rule-set
//! versions that handled it, compiled again from the files the store
//! kept. A replayed case that differs from the stored one means the new
//! release decides the same history differently (or a row was changed
//! behind the engine's back); a version that no longer loads means old
//! cases can no longer be explained. Both are reported with the case id
//! and the walk goes on, so one run lists everything to look at.
//!
//! The cases are walked a page of ids at a time
//! ([`Store::case_ids_after`]), so memory does not grow with the store.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use casework::case::{Case, CaseId};
use casework::engine::{Engine, EngineError, Pack, builtin_pack_loader};
use casework::store::{Store, StoreError};
use serde_json::Value;

use super::{ConfigArg, DbArg};

#[derive(Debug, clap::Args)]
pub struct Args {
    // The configuration now in force (the new release's pack); the
    // versions that decided each event come from the store.
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub db: DbArg,
    /// Check N cases instead of all: the cases at positions ⌊k·total/N⌋
    /// (k = 0…N-1) in case-id order, i.e. the first and then about every
    /// (total/N)-th. The same store gives the same sample.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub sample: Option<u64>,
}

/// Case ids read from the store at a time.
const PAGE: usize = 500;

/// Differences printed for one case; the rest are counted.
const MAX_LINES: usize = 20;

/// Longest value shown in a difference, in characters.
const MAX_VALUE: usize = 80;

/// Times a case that changes while it is verified (a `run` or `serve` on
/// the same store) is verified again before its difference counts.
const RETRIES: usize = 3;

pub fn run(args: Args) -> ExitCode {
    let store = match args.db.open_existing(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let loaded = match args.config.load() {
        Ok(l) => l,
        Err(code) => return code,
    };
    let (pack, rules) = match Pack::compile(loaded) {
        Ok(compiled) => compiled,
        Err(d) => {
            eprintln!("{d}");
            eprintln!("{}: does not compile", args.config.shown());
            return ExitCode::FAILURE;
        }
    };
    // Older versions load with the built-in plugin kinds, as `check` and
    // `run` know them.
    let engine = match Engine::builder(pack, rules)
        .store(store)
        .pack_loader(Arc::new(builtin_pack_loader))
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let total = match engine.store().case_count() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if total == 0 {
        out!("no cases in the store: nothing to verify");
        return ExitCode::SUCCESS;
    }
    let sample = Sample::new(args.sample, total);
    if let Some(line) = sample.describe() {
        out!("{line}");
    }
    match walk(&engine, sample) {
        Ok(tally) => {
            out!("{}", tally.summary());
            if tally.equal == tally.verified {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: cannot list the cases: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which cases a walk verifies: all, or N at evenly spread positions in
/// case-id order.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Cases to verify (`total` when all).
    wanted: usize,
    /// Cases in the store when the walk began.
    total: usize,
}

impl Sample {
    fn new(sample: Option<u64>, total: usize) -> Self {
        let wanted = sample.map_or(total, |n| usize::try_from(n).unwrap_or(usize::MAX));
        Sample {
            wanted: wanted.min(total),
            total,
        }
    }

    fn all(&self) -> bool {
        self.wanted == self.total
    }

    /// The position (0-based, in id order) of the `k`-th case to verify.
    fn position(&self, k: usize) -> usize {
        if self.all() {
            return k;
        }
        // u128: k·total overflows usize long before a store that large.
        (k as u128 * self.total as u128 / self.wanted as u128) as usize
    }

    /// The line that says how the sample was chosen, when it is one.
    fn describe(&self) -> Option<String> {
        if self.all() {
            return None;
        }
        let step = self.total as f64 / self.wanted as f64;
        Some(format!(
            "sample: {} of {} cases, evenly spread in case-id order (the first, then one in every {})",
            self.wanted,
            self.total,
            trim_float(step)
        ))
    }
}

/// `3.5`, `2`, `3.33`: a step as a person writes it.
fn trim_float(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Counts of one walk.
#[derive(Debug, Default)]
struct Tally {
    verified: usize,
    equal: usize,
    /// Replayed to a different case.
    differ: usize,
    /// Could not be verified: its row could not be read, or it could not
    /// be replayed (a version that no longer loads).
    failed: usize,
}

impl Tally {
    fn summary(&self) -> String {
        let diverge = self.differ + self.failed;
        let mut line = format!(
            "verified {} case{}: {} equal",
            self.verified,
            plural(self.verified),
            self.equal
        );
        if diverge > 0 {
            let verb = if diverge == 1 { "diverges" } else { "diverge" };
            let _ = write!(line, ", {diverge} {verb}");
            if self.failed > 0 {
                let _ = write!(line, " ({} could not be verified)", self.failed);
            }
        }
        line
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Walk the case ids a page at a time, verify the sampled ones and print
/// each divergence as it is found. Fails only when the ids cannot be
/// read; a case that cannot be verified is counted and reported.
fn walk(engine: &Engine, sample: Sample) -> Result<Tally, StoreError> {
    let store = engine.store();
    let mut tally = Tally::default();
    let mut position = 0;
    let mut next = sample.position(0);
    let mut after: Option<CaseId> = None;
    while tally.verified < sample.wanted {
        let page = store.case_ids_after(after.as_ref(), PAGE)?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        for id in page {
            if position == next && tally.verified < sample.wanted {
                tally.verified += 1;
                next = sample.position(tally.verified);
                match verify_case(engine, &id) {
                    Ok(Verdict::Equal) => tally.equal += 1,
                    Ok(Verdict::Differ(diffs)) => {
                        tally.differ += 1;
                        out_raw!("{}", report_differences(&id, &diffs));
                    }
                    Err(e) => {
                        tally.failed += 1;
                        out_raw!("{}", report_failure(&id, &e));
                    }
                }
            }
            position += 1;
        }
        after = Some(last);
    }
    Ok(tally)
}

/// Why a case could not be verified.
#[derive(Debug, thiserror::Error)]
enum CaseError {
    #[error("cannot be replayed: {0}")]
    Replay(#[source] EngineError),
    #[error("its stored row cannot be read: {0}")]
    Load(#[source] StoreError),
    #[error("its stored row disappeared while it was verified")]
    Gone,
    #[error("cannot be put in JSON form: {0}")]
    Json(#[source] serde_json::Error),
}

/// What replaying one case found.
#[derive(Debug)]
enum Verdict {
    Equal,
    Differ(Vec<Difference>),
}

/// Replay one case and compare it with its stored row. The comparison is
/// of JSON values, as the store holds cases; the replayed case goes
/// through JSON text first, as a stored one did, so a float does not
/// differ in its last digit only because one side was never parsed.
fn verify_case(engine: &Engine, id: &CaseId) -> Result<Verdict, CaseError> {
    let store = engine.store();
    let mut stored = load(store, id)?;
    let mut looked = 0;
    loop {
        let replayed = engine.replay(id).map_err(CaseError::Replay)?;
        let diffs = compare(&stored, &replayed)?;
        if diffs.is_empty() {
            return Ok(Verdict::Equal);
        }
        // An event committed between the load and the replay: look again.
        looked += 1;
        let now = load(store, id)?;
        if now == stored || looked > RETRIES {
            return Ok(Verdict::Differ(diffs));
        }
        stored = now;
    }
}

fn compare(stored: &Case, replayed: &Case) -> Result<Vec<Difference>, CaseError> {
    let stored = serde_json::to_value(stored).map_err(CaseError::Json)?;
    let replayed = serde_json::to_string(replayed)
        .and_then(|text| serde_json::from_str::<Value>(&text))
        .map_err(CaseError::Json)?;
    Ok(differences(&stored, &replayed))
}

fn load(store: &dyn Store, id: &CaseId) -> Result<Case, CaseError> {
    store
        .load(id)
        .map_err(CaseError::Load)?
        .ok_or(CaseError::Gone)
}

/// One place where the stored and the replayed case differ. `None`: the
/// field is absent on that side.
#[derive(Debug, Clone, PartialEq)]
struct Difference {
    path: String,
    stored: Option<Value>,
    replayed: Option<Value>,
}

/// Every leaf where `stored` and `replayed` differ, depth first, with its
/// JSON path (`urgency.level`, `promises[0].status`, `fields["a b"]`).
/// Objects are compared key by key and arrays item by item; a value that
/// changes type is one difference at its path.
fn differences(stored: &Value, replayed: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    diff_at(&mut String::new(), Some(stored), Some(replayed), &mut out);
    out
}

fn diff_at(
    path: &mut String,
    stored: Option<&Value>,
    replayed: Option<&Value>,
    out: &mut Vec<Difference>,
) {
    match (stored, replayed) {
        (Some(a), Some(b)) if a == b => {}
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
            for key in keys {
                let len = path.len();
                push_key(path, key);
                diff_at(path, a.get(key), b.get(key), out);
                path.truncate(len);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                diff_at(path, a.get(i), b.get(i), out);
                path.truncate(len);
            }
        }
        (a, b) => out.push(Difference {
            path: if path.is_empty() {
                "(the whole case)".to_owned()
            } else {
                path.clone()
            },
            stored: a.cloned(),
            replayed: b.cloned(),
        }),
    }
}

/// `.key` for a plain key, `["key"]` (JSON-quoted) for any other.
fn push_key(path: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        let _ = write!(path, "[{}]", Value::String(key.to_owned()));
    }
}

/// A value as a person reads it in one line: compact JSON, cut short.
fn shown(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "(absent)".to_owned();
    };
    let text = value.to_string();
    if text.chars().count() <= MAX_VALUE {
        return text;
    }
    let cut: String = text.chars().take(MAX_VALUE).collect();
    format!("{cut}…")
}

/// A diverging case: its id, then one line per difference (at most
/// [`MAX_LINES`]).
fn report_differences(id: &CaseId, diffs: &[Difference]) -> String {
    let mut text = format!(
        "{id}: replay differs from the stored case in {} place{}\n",
        diffs.len(),
        plural(diffs.len())
    );
    for d in diffs.iter().take(MAX_LINES) {
        let _ = writeln!(
            text,
            "  {}: stored {}, replayed {}",
            d.path,
            shown(d.stored.as_ref()),
            shown(d.replayed.as_ref())
        );
    }
    if diffs.len() > MAX_LINES {
        let _ = writeln!(
            text,
            "  … and {} more (`casework show {id} --json` prints the stored case)",
            diffs.len() - MAX_LINES
        );
    }
    text
}

/// A case that could not be verified: its id and why, the cause's lines
/// indented (a pack that no longer loads brings its diagnostics), at most
/// [`MAX_LINES`] of them.
fn report_failure(id: &CaseId, e: &CaseError) -> String {
    let message = e.to_string();
    let mut lines = message.lines().filter(|l| !l.trim().is_empty());
    let mut text = format!("{id}: {}\n", lines.next().unwrap_or_default());
    let rest: Vec<_> = lines.collect();
    for line in rest.iter().take(MAX_LINES) {
        let _ = writeln!(text, "  {line}");
    }
    if rest.len() > MAX_LINES {
        let _ = writeln!(text, "  … and {} more lines", rest.len() - MAX_LINES);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diff(path: &str, stored: Option<Value>, replayed: Option<Value>) -> Difference {
        Difference {
            path: path.into(),
            stored,
            replayed,
        }
    }

    #[test]
    fn equal_values_have_no_difference() {
        let v = json!({"state": "triage", "urgency": {"level": "high"}, "tags": ["a"]});
        assert!(differences(&v, &v.clone()).is_empty());
    }

    #[test]
    fn differences_name_their_json_path() {
        let stored = json!({
            "state": "triage",
            "urgency": {"level": "high", "score": 3},
            "promises": [{"status": "open"}, {"status": "kept"}],
            "fields": {"gift wrap": true},
            "gone": 1
        });
        let replayed = json!({
            "state": "triage",
            "urgency": {"level": "normal", "score": 3},
            "promises": [{"status": "broken"}],
            "fields": {"gift wrap": false},
            "new": [1]
        });
        assert_eq!(
            differences(&stored, &replayed),
            [
                diff(
                    "fields[\"gift wrap\"]",
                    Some(json!(true)),
                    Some(json!(false))
                ),
                diff("gone", Some(json!(1)), None),
                diff(
                    "promises[0].status",
                    Some(json!("open")),
                    Some(json!("broken"))
                ),
                diff("promises[1]", Some(json!({"status": "kept"})), None),
                diff("urgency.level", Some(json!("high")), Some(json!("normal"))),
                diff("new", None, Some(json!([1]))),
            ]
        );
    }

    #[test]
    fn a_change_of_type_is_one_difference() {
        let d = differences(&json!({"a": {"b": 1}}), &json!({"a": [1]}));
        assert_eq!(d, [diff("a", Some(json!({"b": 1})), Some(json!([1])))]);
    }

    #[test]
    fn the_report_shows_stored_and_replayed_and_stops_at_the_limit() {
        let id = CaseId("C-7".into());
        let one = report_differences(
            &id,
            &[diff(
                "urgency.level",
                Some(json!("high")),
                Some(json!("normal")),
            )],
        );
        assert_eq!(
            one,
            "C-7: replay differs from the stored case in 1 place\n  \
             urgency.level: stored \"high\", replayed \"normal\"\n"
        );
        let many: Vec<_> = (0..MAX_LINES + 5)
            .map(|i| diff(&format!("tags[{i}]"), None, Some(json!(i))))
            .collect();
        let text = report_differences(&id, &many);
        assert_eq!(text.lines().count(), 1 + MAX_LINES + 1);
        assert!(
            text.contains("tags[0]: stored (absent), replayed 0"),
            "{text}"
        );
        assert!(
            text.ends_with("… and 5 more (`casework show C-7 --json` prints the stored case)\n")
        );
    }

    #[test]
    fn long_values_are_cut() {
        let long = json!("x".repeat(500));
        let s = shown(Some(&long));
        assert_eq!(s.chars().count(), MAX_VALUE + 1);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn a_sample_is_spread_evenly_and_starts_with_the_first() {
        let s = Sample::new(Some(2), 7);
        let picks: Vec<_> = (0..s.wanted).map(|k| s.position(k)).collect();
        assert_eq!(picks, [0, 3]);
        let s = Sample::new(Some(3), 10);
        let picks: Vec<_> = (0..s.wanted).map(|k| s.position(k)).collect();
        assert_eq!(picks, [0, 3, 6]);
        assert_eq!(
            s.describe().unwrap(),
            "sample: 3 of 10 cases, evenly spread in case-id order (the first, then one in every 3.33)"
        );
        // More than there are: all of them, no sample line.
        let s = Sample::new(Some(50), 7);
        assert!(s.all());
        assert!(s.describe().is_none());
        assert_eq!(s.position(4), 4);
    }

    #[test]
    fn the_summary_counts_what_diverged() {
        let all = Tally {
            verified: 3,
            equal: 3,
            ..Tally::default()
        };
        assert_eq!(all.summary(), "verified 3 cases: 3 equal");
        let some = Tally {
            verified: 4,
            equal: 2,
            differ: 1,
            failed: 1,
        };
        assert_eq!(
            some.summary(),
            "verified 4 cases: 2 equal, 2 diverge (1 could not be verified)"
        );
        let one = Tally {
            verified: 1,
            equal: 0,
            differ: 1,
            failed: 0,
        };
        assert_eq!(one.summary(), "verified 1 case: 0 equal, 1 diverges");
    }
}
