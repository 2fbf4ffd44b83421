//! `casework eval [CONFIG] [--on FILE]`: how good are the classifiers and
//! the rules?
//!
//! Without `--on`, each classifier is cross-validated on its own examples
//! (k folds, stratified and deterministic): accuracy, precision and recall
//! per label, the confusion matrix and the examples it gets wrong most
//! confidently. With `--on FILE` (labeled messages it was not trained on:
//! `{"text": ..., "topic": ..., "team": ..., "urgency": ...}`), each
//! classifier named in the file is tested on it, and the route and urgency
//! rules are run on each message through the engine, as a new case, and
//! compared with `team` and `urgency`. Exits 1 when a classifier's
//! accuracy is under its `min_accuracy`, so CI guards rule quality.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use casework::case::CaseId;
use casework::classify::eval::{self, Report};
use casework::classify::examples::{LabeledMessage, parse_labeled};
use casework::classify::{ClassifierSource, DEFAULT_FOLDS, snippet};
use casework::clock::ManualClock;
use casework::config::LoadedConfig;
use casework::diagnostic::SourceFile;
use casework::engine::{Engine, Pack};
use casework::event::Event;

use super::{ConfigArg, print_diagnostics, print_error_count};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// A labeled file (JSON Lines or YAML) to test on instead of
    /// cross-validating.
    #[arg(long, value_name = "FILE")]
    pub on: Option<PathBuf>,
    /// Print each report as one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Wrong answers to list per classifier.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub misses: usize,
}

pub fn run(args: Args) -> ExitCode {
    let loaded = match args.config.load() {
        Ok(l) => l,
        Err(code) => return code,
    };
    let shown = args.config.shown();
    let labeled = match &args.on {
        None => None,
        Some(path) => match read_labeled(path) {
            Ok(l) => Some(l),
            Err(code) => return code,
        },
    };
    if loaded.classifiers.is_empty() && labeled.is_none() {
        out!(
            "{shown}: no classifiers to evaluate (add a `classifiers:` section, or pass --on FILE for the rules)"
        );
        return ExitCode::SUCCESS;
    }
    let mut failed = false;
    for source in &loaded.classifiers {
        let Some(report) = evaluate(source, labeled.as_deref()) else {
            continue;
        };
        let min = source.def.min_accuracy;
        let below = min.is_some_and(|m| report.accuracy + 1e-12 < m);
        failed |= below;
        if args.json {
            let mut value = serde_json::to_value(&report).unwrap_or_default();
            value["classifier"] = source.name.clone().into();
            value["min_accuracy"] = min.into();
            value["ok"] = (!below).into();
            out!("{value}");
        } else {
            print_report(source, &report, labeled.is_some(), args.misses);
        }
    }
    if let Some(messages) = &labeled {
        match rules_agreement(&loaded, messages) {
            Ok(agreement) => {
                for a in agreement {
                    if args.json {
                        out!("{}", serde_json::to_value(&a).unwrap_or_default());
                    } else {
                        print_agreement(&a);
                    }
                }
            }
            Err(code) => return code,
        }
    }
    if failed {
        eprintln!(
            "{shown}: a classifier is under its min_accuracy; add examples where it is confused (above), then run `casework eval` again"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn read_labeled(path: &PathBuf) -> Result<Vec<LabeledMessage>, ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", path.display());
        ExitCode::FAILURE
    })?;
    let file = SourceFile::new(path.display().to_string(), text);
    let (messages, diags) = parse_labeled(&file);
    if diags.has_errors() {
        let stderr = &mut std::io::stderr().lock();
        print_diagnostics(stderr, &diags, std::slice::from_ref(&file));
        print_error_count(stderr, &diags, &file.path);
        return Err(ExitCode::FAILURE);
    }
    Ok(messages)
}

/// Cross-validation, or the held-out report when the file labels this
/// classifier; `None` when the file has nothing for it.
fn evaluate(source: &ClassifierSource, labeled: Option<&[LabeledMessage]>) -> Option<Report> {
    let (examples, _) = source.examples(&|_| None);
    match labeled {
        None => Some(eval::cross_validate(
            &source.def.labels,
            &examples,
            source.threshold(),
            source.def.folds.unwrap_or(DEFAULT_FOLDS),
        )),
        Some(messages) => {
            let held: Vec<_> = messages
                .iter()
                .filter_map(|m| m.example(&source.name))
                .collect();
            if held.is_empty() {
                return None;
            }
            let model = source.train().ok()?;
            Some(eval::holdout(&model, &held))
        }
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn print_report(source: &ClassifierSource, r: &Report, held_out: bool, misses: usize) {
    let how = if held_out {
        "held-out messages".to_owned()
    } else {
        format!(
            "{}-fold cross-validation",
            source.def.folds.unwrap_or(DEFAULT_FOLDS)
        )
    };
    out!(
        "classifier `{}`: {how}, {} examples, {} labels",
        source.name,
        r.examples,
        r.labels.len()
    );
    let verdict = match source.def.min_accuracy {
        Some(m) if r.accuracy + 1e-12 < m => format!(" (min {}: FAILED)", pct(m)),
        Some(m) => format!(" (min {}: ok)", pct(m)),
        None => String::new(),
    };
    out!("  accuracy {}{verdict}", pct(r.accuracy));
    out!(
        "  under the threshold {:.2}: {} (classify answers () and the rule falls back); accuracy of the rest {}",
        source.threshold(),
        r.abstained,
        pct(r.confident_accuracy)
    );
    let width = r
        .labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    out!("  {:<width$}  examples  precision  recall", "label");
    for s in &r.per_label {
        out!(
            "  {:<width$}  {:>8}  {:>9}  {:>6}",
            s.label,
            s.support,
            pct(s.precision),
            pct(s.recall)
        );
    }
    out!("  confusion (rows: expected, columns: predicted)");
    let col = r
        .labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let header: Vec<String> = r.labels.iter().map(|l| format!("{l:>col$}")).collect();
    out!("  {:<width$}  {}", "", header.join(" "));
    for (label, row) in r.labels.iter().zip(&r.confusion) {
        let cells: Vec<String> = row.iter().map(|n| format!("{n:>col$}")).collect();
        out!("  {label:<width$}  {}", cells.join(" "));
    }
    if r.misses.is_empty() {
        out!("  no example confused");
    } else {
        out!("  most confused (the surest wrong answers first):");
        for m in r.misses.iter().take(misses) {
            out!(
                "    {}  {} taken for {} ({:.2})  \"{}\"",
                m.location,
                m.expected,
                m.predicted,
                m.confidence,
                snippet(&m.text, 50)
            );
        }
        if r.misses.len() > misses {
            out!("    … and {} more", r.misses.len() - misses);
        }
    }
    out!("");
}

/// How often one rule decided what the labeled file says.
#[derive(Debug, serde::Serialize)]
struct Agreement {
    rule: &'static str,
    messages: usize,
    agreed: usize,
    /// (where, expected, decided, text) for each disagreement.
    disagreements: Vec<(String, String, String, String)>,
}

/// Run the route and urgency rules on each labeled message, as the first
/// message of a new case, through the engine (keywords, classifiers and
/// fallback, exactly as in production).
fn rules_agreement(
    loaded: &LoadedConfig,
    messages: &[LabeledMessage],
) -> Result<Vec<Agreement>, ExitCode> {
    let (pack, rules) = Pack::compile(loaded.clone()).map_err(|d| {
        let stderr = &mut std::io::stderr().lock();
        print_diagnostics(stderr, &d, &loaded.sources);
        ExitCode::FAILURE
    })?;
    let start = "2026-01-05T10:00:00+09:00".parse().expect("a valid time");
    let clock = Arc::new(ManualClock::new(start));
    let mut engine = Engine::builder(pack, rules)
        .clock(clock)
        .build()
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })?;
    let mut team = Agreement {
        rule: "route",
        messages: 0,
        agreed: 0,
        disagreements: Vec::new(),
    };
    let mut urgency = Agreement {
        rule: "urgency",
        messages: 0,
        agreed: 0,
        disagreements: Vec::new(),
    };
    for (i, m) in messages.iter().enumerate() {
        if !m.expect.contains_key("team") && !m.expect.contains_key("urgency") {
            continue;
        }
        let id = CaseId::from(format!("EVAL-{}", i + 1).as_str());
        let event = Event::new(
            format!("eval-{}", i + 1),
            start,
            "customer.message",
            Some(id.clone()),
        )
        .with("text", &m.text);
        if let Err(e) = engine.handle(event) {
            eprintln!("{}: error: the engine refused the message: {e}", m.location);
            return Err(ExitCode::FAILURE);
        }
        let case = engine.case(&id).ok().flatten();
        let decided_team = case
            .as_ref()
            .and_then(|c| c.assignment.team.clone())
            .unwrap_or_else(|| "(none)".into());
        let decided_urgency = case
            .as_ref()
            .map_or_else(|| "(none)".into(), |c| c.urgency.level.as_str().to_owned());
        for (a, key, decided) in [
            (&mut team, "team", decided_team),
            (&mut urgency, "urgency", decided_urgency),
        ] {
            let Some(expected) = m.expect.get(key) else {
                continue;
            };
            a.messages += 1;
            if *expected == decided {
                a.agreed += 1;
            } else {
                a.disagreements.push((
                    m.location.to_string(),
                    expected.clone(),
                    decided,
                    snippet(&m.text, 50),
                ));
            }
        }
    }
    Ok([team, urgency]
        .into_iter()
        .filter(|a| a.messages > 0)
        .collect())
}

fn print_agreement(a: &Agreement) {
    let share = if a.messages == 0 {
        0.0
    } else {
        a.agreed as f64 / a.messages as f64
    };
    out!(
        "rule `{}`: agrees with {} of {} labeled messages ({})",
        a.rule,
        a.agreed,
        a.messages,
        pct(share)
    );
    for (at, expected, decided, text) in &a.disagreements {
        out!("    {at}  expected {expected}, decided {decided}  \"{text}\"");
    }
    out!("");
}
