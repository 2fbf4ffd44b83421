//! One routing decision, three ways: casework's Rhai rule (`rules/route.rhai`
//! in the default pack), the same decision as a JDM decision table in
//! GoRules' zen-engine (`route.json`), and plain Rust.
//!
//! Before timing anything it checks that all three decide the same on
//! every input (a benchmark of different decisions would be meaningless).
//! Each implementation then gets a warm-up, and the per-decision time is
//! the median of `RUNS` runs, each run cycling through the inputs. Every
//! implementation gets the same raw input (the case and the event) and
//! does its own preparation inside the timed loop: Rhai builds its views
//! of the case; zen gets a JSON context with the normalised text (it has
//! no NFKC folding of its own) and the case's team; plain Rust normalises
//! inside the keyword matcher.
//!
//! Besides prose, it prints one machine-readable line per figure,
//! `BENCH <key> <value> <unit> <label>`, which `scripts/bench` collects.
//!
//! ```text
//! cargo bench --manifest-path benches/peers/Cargo.toml --bench routing
//! RUNS=31 cargo bench --manifest-path benches/peers/Cargo.toml --bench routing
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use casework_core::rules::normalize;
use casework_peers::{Input, Verdict, inputs, message_text, plain_route, repo_root, rhai_route};
use serde_json::json;
use zen_engine::model::DecisionContent;
use zen_engine::{Decision, DecisionEngine, Variable};

/// How long each implementation runs untimed first.
const WARM_UP: Duration = Duration::from_millis(1500);
/// How long one timed run lasts, about.
const RUN_LENGTH: Duration = Duration::from_millis(100);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The decision table, loaded and compiled (expressions precompiled) once.
fn zen_decision() -> Decision {
    let path = repo_root().join("benches/peers/route.json");
    let text = std::fs::read_to_string(&path).expect("route.json");
    let content: DecisionContent = serde_json::from_str(&text).expect("route.json is JDM");
    let mut decision = DecisionEngine::default()
        .create_decision(Arc::new(content))
        .expect("a decision graph");
    decision.validate().expect("route.json validates");
    decision.compile();
    decision
}

/// The context zen evaluates: what the table's columns read.
fn zen_context(input: &Input) -> Variable {
    let text = normalize(message_text(&input.case, Some(&input.event)));
    json!({ "text": text, "team": input.case.assignment.team }).into()
}

/// Evaluate the table on one input. zen's `evaluate` is async; nothing in
/// a decision table awaits I/O, so the smallest executor runs the future:
/// `futures::executor::block_on` on this thread.
fn zen_route(decision: &Decision, input: &Input) -> Verdict {
    let response = futures::executor::block_on(decision.evaluate(zen_context(input)))
        .expect("route.json evaluates");
    let field = |name: &str| {
        response
            .result
            .dot(name)
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    field("team").map(|team| (team, field("skill")))
}

/// Median, fastest and slowest per-decision time, in nanoseconds.
struct Timing {
    median: f64,
    min: f64,
    max: f64,
}

/// Time `decide` over `inputs`: warm up, size a run to about
/// [`RUN_LENGTH`], then take the median of `runs` runs.
fn measure(inputs: &[Input], runs: usize, mut decide: impl FnMut(&Input) -> Verdict) -> Timing {
    let began = Instant::now();
    let mut passes = 0u32;
    while began.elapsed() < WARM_UP {
        for input in inputs {
            black_box(decide(black_box(input)));
        }
        passes += 1;
    }
    let per_pass = began.elapsed() / passes.max(1);
    let passes_per_run = (RUN_LENGTH.as_secs_f64() / per_pass.as_secs_f64()).ceil() as usize;
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let began = Instant::now();
            for _ in 0..passes_per_run {
                for input in inputs {
                    black_box(decide(black_box(input)));
                }
            }
            began.elapsed().as_secs_f64() * 1e9 / (passes_per_run * inputs.len()) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    Timing {
        median: samples[samples.len() / 2],
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

fn main() {
    let runs = env("RUNS", 15).max(1);
    let (_pack, rules) = casework_peers::default_pack();
    let decision = zen_decision();
    let inputs = inputs();

    // All three must make the same decision on every input.
    let mut agreed = 0;
    let mut routed = std::collections::BTreeMap::<String, usize>::new();
    for input in &inputs {
        let rhai = rhai_route(&rules, &input.rule_input());
        let zen = zen_route(&decision, input);
        let plain = plain_route(&input.case, Some(&input.event));
        assert_eq!(
            rhai,
            zen,
            "zen-engine disagrees with route.rhai on {:?} (team {:?})",
            input.event.text("text"),
            input.case.assignment.team
        );
        assert_eq!(
            rhai,
            plain,
            "plain Rust disagrees with route.rhai on {:?} (team {:?})",
            input.event.text("text"),
            input.case.assignment.team
        );
        agreed += 1;
        let team = rhai.map_or_else(|| "(stays)".to_owned(), |(team, _)| team);
        *routed.entry(team).or_default() += 1;
    }
    let spread: Vec<String> = routed.iter().map(|(t, n)| format!("{t} {n}")).collect();
    println!(
        "routing decision: Rhai (casework), zen-engine 2.1.6 (JDM decision table), plain Rust\n\
         all three agree on {agreed} of {} inputs ({})\n\
         zen-engine: decision loaded and compiled once; each evaluation awaited with \
         futures::executor::block_on (no runtime)\n\
         timing: {:.1} s warm-up each, median of {runs} runs of ~{} ms\n",
        inputs.len(),
        spread.join(", "),
        WARM_UP.as_secs_f64(),
        RUN_LENGTH.as_millis(),
    );
    println!("BENCH route.inputs {agreed} inputs inputs on which all three agree");

    let plain = measure(&inputs, runs, |i| plain_route(&i.case, Some(&i.event)));
    let rhai = measure(&inputs, runs, |i| rhai_route(&rules, &i.rule_input()));
    let zen = measure(&inputs, runs, |i| zen_route(&decision, i));

    for (key, label, t) in [
        ("route.rust", "route decision, plain Rust", &plain),
        ("route.rhai", "route decision, casework (Rhai rule)", &rhai),
        (
            "route.zen",
            "route decision, zen-engine (JDM table, block_on)",
            &zen,
        ),
    ] {
        println!(
            "{label:<50} median {:>10.0} ns/decision  (min {:.0}, max {:.0}; {:.2}x plain Rust)",
            t.median,
            t.min,
            t.max,
            t.median / plain.median
        );
        println!("BENCH {key} {:.0} ns/decision {label}", t.median);
    }
}
