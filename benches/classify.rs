//! Learned triage, timed (issue 14's targets):
//!
//! 1. training on 5,000 examples (10 labels): at most 1 s;
//! 2. `classify` on one message with a 10-label model, reasons included
//!    (the n-grams and the nearest example): at most 20 µs;
//! 3. the same for the default pack's `topic` classifier, and the time
//!    the default pack's two classifiers take to train at load.
//!
//! The 10-label examples are generated from a fixed seed: each label has
//! its own words in English and Japanese, mixed with words every label
//! uses, in messages of 4 to 40 words, so the vocabulary and the message
//! lengths are those of real triage. `cargo bench --bench classify`
//! (release build; a few seconds). Prints `BENCH <key> <value> <unit>
//! <label>` lines for `scripts/bench`.

use std::hint::black_box;
use std::time::Instant;

use casework::classify::{Example, Model};
use casework::diagnostic::SourceLocation;

const SHARED: &[&str] = &[
    "hello",
    "please",
    "thanks",
    "order",
    "table",
    "chair",
    "the",
    "my",
    "is",
    "it",
    "when",
    "can",
    "you",
    "we",
    "お世話になっております",
    "よろしくお願いします",
    "注文",
    "テーブル",
    "椅子",
    "です",
    "ます",
    "か",
    "の",
    "に",
    "を",
];

/// Words of label `l`: a stem of its own in each language, with endings.
fn label_words(l: usize) -> Vec<String> {
    let en = [
        "refund", "parcel", "size", "quote", "invoice", "damage", "colour", "manager", "cancel",
        "assembly",
    ];
    let ja = [
        "返金",
        "荷物",
        "寸法",
        "見積",
        "請求書",
        "破損",
        "色",
        "責任者",
        "取消",
        "組立",
    ];
    let mut out = Vec::new();
    for suffix in ["", "s", "ed", "ing", " please", " now"] {
        out.push(format!("{}{suffix}", en[l]));
    }
    for suffix in ["", "して", "について", "が", "の件", "です"] {
        out.push(format!("{}{suffix}", ja[l]));
    }
    out
}

/// A deterministic pseudo-random stream (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

fn synthetic(labels: usize, per_label: usize, rng: &mut Rng) -> Vec<Example> {
    let mut out = Vec::with_capacity(labels * per_label);
    for l in 0..labels {
        let own = label_words(l);
        for i in 0..per_label {
            let len = 4 + rng.next(37);
            let words: Vec<&str> = (0..len)
                .map(|_| {
                    if rng.next(4) == 0 {
                        own[rng.next(own.len())].as_str()
                    } else {
                        SHARED[rng.next(SHARED.len())]
                    }
                })
                .collect();
            out.push(Example {
                text: words.join(" "),
                label: format!("label{l}"),
                location: SourceLocation::new("synthetic.jsonl", l * per_label + i + 1, 1),
            });
        }
    }
    out
}

fn bench_line(key: &str, value: f64, unit: &str, label: &str) {
    println!("BENCH {key} {value:.3} {unit} {label}");
}

fn main() {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let labels: Vec<String> = (0..10).map(|l| format!("label{l}")).collect();

    // 1. Training on 5,000 examples, 10 labels (best of 3).
    let train = synthetic(10, 500, &mut rng);
    let mut best = f64::MAX;
    let mut model = None;
    for _ in 0..3 {
        let began = Instant::now();
        let m = Model::train(&labels, &train, 0.5);
        best = best.min(began.elapsed().as_secs_f64());
        model = Some(m);
    }
    let model = model.expect("trained");
    println!(
        "training: 5,000 examples, 10 labels, {} n-grams: {:.0} ms",
        model.vocabulary_size(),
        best * 1e3
    );
    bench_line(
        "classify.train",
        best * 1e3,
        "ms",
        "training, 5,000 examples, 10 labels",
    );

    // 2. classify with the 10-label model, reasons included.
    let (_, rules) = casework::load(None).expect("the default pack loads");
    let set = rules
        .classifiers()
        .expect("the default pack has classifiers");
    let mut messages: Vec<String> = synthetic(10, 50, &mut rng)
        .into_iter()
        .map(|e| e.text)
        .collect();
    let topic = set.get("topic").expect("topic");
    messages.extend([
        "Can I get my money back?".to_owned(),
        "この机、うちの部屋に置けますか？".to_owned(),
        "My package still hasn't shown up, it was supposed to come on Friday and the tracking has not moved.".to_owned(),
        "お世話になっております。\n先週注文したテーブルがまだ届きません。いつ頃になりますでしょうか。\n\n--\n山田".to_owned(),
    ]);
    let rounds = 40;
    let began = Instant::now();
    for _ in 0..rounds {
        for m in &messages {
            black_box(model.explain(black_box(m)));
        }
    }
    let per = began.elapsed().as_secs_f64() * 1e6 / (rounds * messages.len()) as f64;
    println!("classify, 10 labels, with reasons: {per:.1} µs per message");
    bench_line(
        "classify.10",
        per,
        "us",
        "classify, 10 labels, with reasons",
    );

    // 2b. The label and its probabilities alone, without the reasons.
    let began = Instant::now();
    for _ in 0..rounds {
        for m in &messages {
            black_box(model.predict(black_box(m)));
        }
    }
    let per = began.elapsed().as_secs_f64() * 1e6 / (rounds * messages.len()) as f64;
    println!("classify, 10 labels, label and confidence only: {per:.1} µs per message");
    bench_line(
        "classify.10.label",
        per,
        "us",
        "classify, 10 labels, without reasons",
    );

    // 3. The default pack's topic classifier, and its training at load.
    let began = Instant::now();
    for _ in 0..rounds {
        for m in &messages {
            black_box(set.classify("topic", black_box(m)).ok());
        }
    }
    let per = began.elapsed().as_secs_f64() * 1e6 / (rounds * messages.len()) as f64;
    println!(
        "classify(\"topic\", ..), default pack ({} examples, 4 labels): {per:.1} µs per message",
        topic.example_count()
    );
    bench_line(
        "classify.topic",
        per,
        "us",
        "classify(\"topic\"), default pack",
    );
    let began = Instant::now();
    for source in set.sources() {
        let (examples, _) = source.examples(&|_| None);
        black_box(Model::train(
            &source.def.labels,
            &examples,
            source.threshold(),
        ));
    }
    let load = began.elapsed().as_secs_f64() * 1e3;
    println!("training the default pack's classifiers: {load:.0} ms");
    bench_line(
        "classify.pack",
        load,
        "ms",
        "training the default pack's classifiers",
    );
}
