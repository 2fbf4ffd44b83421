//! The model: TF-IDF over n-grams, and a multinomial logistic regression
//! trained by stochastic gradient descent.
//!
//! Why our own solver: the kept Rust crates for logistic regression
//! (`linfa-logistic` 0.8, `smartcore` 0.7) fit on dense `ndarray`
//! matrices. Examples × n-gram vocabulary is a very sparse matrix (a
//! message has a few hundred of the tens of thousands of n-grams), so a
//! dense matrix would cost hundreds of megabytes for a few thousand
//! examples. Softmax regression on sparse vectors is a page of code, and
//! owning it lets training be bit-for-bit deterministic: the examples are
//! put in a canonical order first (so the order of the example files does
//! not matter), the per-epoch shuffle comes from a fixed seed, and the
//! only transcendental functions used ([`exp`], [`ln`]) are computed here
//! from additions, multiplications and divisions, which IEEE 754 rounds
//! the same way on every machine (the platform's `libm` does not promise
//! that). Same examples, same model bytes, same [`Model::hash`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use sha2::{Digest, Sha256};

use super::examples::Example;
use super::features::{Prepared, each_feature, feature_text};
use super::nearest::{self, ExampleIndex};

/// Passes over the examples. Cross-validation on the default pack: 12 to
/// 40 give the same accuracy within half a point.
const EPOCHS: usize = 24;
/// The first learning rate; it decays as 1 / (1 + epoch).
const ETA0: f64 = 2.0;
/// L2 regularisation, kept light: the small example sets of a pack gain
/// more from the weights the rare n-grams earn than from shrinking them.
const LAMBDA: f64 = 2e-5;
/// Seed of the per-epoch shuffle.
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// A hasher for keys that are already hashes (the n-gram FNV values).
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type FeatureMap = HashMap<u64, u32, BuildHasherDefault<PassThrough>>;

/// A trained classifier. Immutable; shared between threads.
#[derive(Debug)]
pub struct Model {
    labels: Vec<String>,
    threshold: f64,
    /// n-gram hash -> feature id.
    vocab: FeatureMap,
    /// Feature id -> the n-gram as text, for explanations.
    names: Vec<String>,
    /// Feature id -> whether it is a word n-gram (else characters).
    is_word: Vec<bool>,
    idf: Vec<f64>,
    /// `weights[f * labels + l]`.
    weights: Vec<f64>,
    bias: Vec<f64>,
    /// The examples, in canonical order, for "nearest example".
    examples: Vec<Example>,
    /// Their TF-IDF vectors by label and feature, to find the nearest.
    index: ExampleIndex,
    hash: String,
}

/// What a model says about one message.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Every label's probability, in the model's label order.
    pub probabilities: Vec<f64>,
    /// The most probable label's index.
    pub best: usize,
    /// The second most probable label's index (none with one label).
    pub runner_up: Option<usize>,
}

/// The reasons for a prediction: the n-grams that weighed most for the
/// label over the runner-up, and the most similar example of that label.
/// They borrow from the model (a verdict formats them once; copying an
/// example and its place per message would cost more than finding it).
#[derive(Clone, Debug, PartialEq)]
pub struct Reasons<'m> {
    /// (n-gram, how much it moved the score), heaviest first.
    pub ngrams: Vec<(&'m str, f64)>,
    /// The nearest example of the chosen label, and its similarity (see
    /// [`super::nearest`]).
    pub nearest: Option<(&'m Example, f64)>,
}

/// A message as TF-IDF: (feature id, weight), sorted by id, L2-normalised.
type Vector = Vec<(u32, f64)>;

/// The buffers of one classification, kept per thread: a message is
/// prepared, counted, weighed and explained without allocating once they
/// have grown to the longest message seen.
#[derive(Debug, Default)]
struct Scratch {
    text: Prepared,
    /// Feature id -> (the call that last saw it, occurrences in that
    /// call): counting by id without clearing a vocabulary-sized array
    /// per call.
    marks: Vec<(u32, u32)>,
    call: u32,
    /// The feature ids of this message, each once.
    ids: Vec<u32>,
    vector: Vector,
    scores: Vec<f64>,
    moved: Vec<(u32, f64)>,
    nearest: nearest::Scratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Run `f` with this thread's scratch (or a fresh one, should a
/// classification ever run inside another on the same thread).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

impl Model {
    /// Train on `examples` (those whose label is not in `labels` are
    /// ignored: `check` reports them). The result depends on the examples
    /// as a set, not on their order.
    pub fn train(labels: &[String], examples: &[Example], threshold: f64) -> Model {
        let label_index: HashMap<&str, u32> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i as u32))
            .collect();
        let mut examples: Vec<Example> = examples
            .iter()
            .filter(|e| label_index.contains_key(e.label.as_str()))
            .cloned()
            .collect();
        // Canonical order: by label (so each label's examples are one
        // run, for the nearest-example search), then text and place.
        examples.sort_by(|a, b| {
            let (la, lb) = (label_index[a.label.as_str()], label_index[b.label.as_str()]);
            (
                la,
                &a.text,
                &a.location.file,
                a.location.line,
                a.location.column,
            )
                .cmp(&(
                    lb,
                    &b.text,
                    &b.location.file,
                    b.location.line,
                    b.location.column,
                ))
        });
        let example_labels: Vec<u32> = examples
            .iter()
            .map(|e| label_index[e.label.as_str()])
            .collect();

        // Vocabulary: every n-gram seen, ids in the order of their text.
        let mut seen: HashMap<u64, (String, u32, bool)> = HashMap::new();
        let mut per_example: Vec<Vec<u64>> = Vec::with_capacity(examples.len());
        let mut prepared = Prepared::default();
        for e in &examples {
            prepared.read(&e.text);
            let mut hashes = Vec::new();
            each_feature(&prepared, |h, start, len, word| {
                hashes.push(h);
                seen.entry(h)
                    .or_insert_with(|| (feature_text(&prepared, start, len, word), 0, word));
            });
            hashes.sort_unstable();
            let mut distinct = hashes.clone();
            distinct.dedup();
            for h in &distinct {
                if let Some(entry) = seen.get_mut(h) {
                    entry.1 += 1;
                }
            }
            per_example.push(hashes);
        }
        let mut order: Vec<(u64, String, u32, bool)> = seen
            .into_iter()
            .map(|(h, (name, df, word))| (h, name, df, word))
            .collect();
        order.sort_by(|a, b| (&a.1, a.0).cmp(&(&b.1, b.0)));
        let n = examples.len() as f64;
        let mut vocab = FeatureMap::default();
        let mut names = Vec::with_capacity(order.len());
        let mut idf = Vec::with_capacity(order.len());
        let mut is_word = Vec::with_capacity(order.len());
        for (id, (h, name, df, word)) in order.into_iter().enumerate() {
            vocab.insert(h, id as u32);
            names.push(name);
            is_word.push(word);
            idf.push(ln((1.0 + n) / (1.0 + f64::from(df))) + 1.0);
        }

        let vectors: Vec<Vector> = per_example
            .iter()
            .map(|hashes| tf_idf(hashes.iter().filter_map(|h| vocab.get(h).copied()), &idf))
            .collect();

        let (weights, bias) = sgd(&vectors, &example_labels, labels.len(), names.len());

        let index = ExampleIndex::build(&vectors, &example_labels, labels.len());

        let mut model = Model {
            labels: labels.to_vec(),
            threshold,
            vocab,
            names,
            is_word,
            idf,
            weights,
            bias,
            examples,
            index,
            hash: String::new(),
        };
        let digest = Sha256::digest(model.to_bytes());
        model.hash = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        model
    }

    /// The labels, in the order they were declared.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The confidence under which [`Model::confident`] abstains.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// How many examples it learned from.
    pub fn example_count(&self) -> usize {
        self.examples.len()
    }

    /// How many distinct n-grams it knows.
    pub fn vocabulary_size(&self) -> usize {
        self.names.len()
    }

    /// First 16 hex digits of the SHA-256 of [`Model::to_bytes`]: part of
    /// the rule set's version.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The model's canonical bytes: labels, threshold, vocabulary with its
    /// IDF, weights and the examples. Equal models have equal bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.weights.len() * 8 + self.names.len() * 16);
        let text = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        out.extend_from_slice(&(self.labels.len() as u64).to_le_bytes());
        for l in &self.labels {
            text(&mut out, l);
        }
        out.extend_from_slice(&self.threshold.to_bits().to_le_bytes());
        out.extend_from_slice(&(self.names.len() as u64).to_le_bytes());
        for ((name, idf), word) in self.names.iter().zip(&self.idf).zip(&self.is_word) {
            text(&mut out, name);
            out.push(u8::from(*word));
            out.extend_from_slice(&idf.to_bits().to_le_bytes());
        }
        for w in self.weights.iter().chain(&self.bias) {
            out.extend_from_slice(&w.to_bits().to_le_bytes());
        }
        out.extend_from_slice(&(self.examples.len() as u64).to_le_bytes());
        for e in &self.examples {
            text(&mut out, &e.text);
            text(&mut out, &e.label);
            text(&mut out, &e.location.to_string());
        }
        out
    }

    /// The message as TF-IDF over this model's vocabulary, in
    /// `scratch.vector`.
    fn vectorize(&self, text: &str, scratch: &mut Scratch) {
        let Scratch {
            text: prepared,
            marks,
            call,
            ids,
            vector,
            ..
        } = scratch;
        prepared.read(text);
        if marks.len() < self.names.len() {
            marks.resize(self.names.len(), (0, 0));
        }
        *call = call.wrapping_add(1);
        if *call == 0 {
            // Once in 2^32 calls the stamps wrap: forget them all.
            marks.fill((0, 0));
            *call = 1;
        }
        let call = *call;
        ids.clear();
        each_feature(prepared, |h, _, _, _| {
            if let Some(&id) = self.vocab.get(&h) {
                let mark = &mut marks[id as usize];
                if mark.0 == call {
                    mark.1 += 1;
                } else {
                    *mark = (call, 1);
                    ids.push(id);
                }
            }
        });
        ids.sort_unstable();
        weigh(
            ids.iter().map(|&id| (id, marks[id as usize].1)),
            &self.idf,
            vector,
        );
    }

    /// `scores[l]`: label `l`'s score for the vector `v`.
    fn scores_into(&self, v: &[(u32, f64)], scores: &mut Vec<f64>) {
        let l = self.labels.len();
        scores.clear();
        scores.extend_from_slice(&self.bias);
        for &(f, x) in v {
            let row = &self.weights[f as usize * l..f as usize * l + l];
            for (s, w) in scores.iter_mut().zip(row) {
                *s += w * x;
            }
        }
    }

    /// Every label's probability for `text`; `None` for a model with no
    /// labels.
    pub fn predict(&self, text: &str) -> Option<Prediction> {
        with_scratch(|scratch| {
            self.vectorize(text, scratch);
            self.predict_vector(scratch)
        })
    }

    fn predict_vector(&self, scratch: &mut Scratch) -> Option<Prediction> {
        if self.labels.is_empty() {
            return None;
        }
        self.scores_into(&scratch.vector, &mut scratch.scores);
        let probabilities = softmax(&scratch.scores);
        // The most probable label and the next, ties to the first
        // declared.
        let above = |a: usize, b: usize| probabilities[a].total_cmp(&probabilities[b]).is_gt();
        let mut best = 0;
        let mut runner_up: Option<usize> = None;
        for i in 1..probabilities.len() {
            if above(i, best) {
                runner_up = Some(best);
                best = i;
            } else if runner_up.is_none_or(|r| above(i, r)) {
                runner_up = Some(i);
            }
        }
        Some(Prediction {
            best,
            runner_up,
            probabilities,
        })
    }

    /// The prediction and its reasons when the best label's probability
    /// reaches the threshold; `None` when the model is unsure.
    pub fn confident(&self, text: &str) -> Option<(Prediction, Reasons<'_>)> {
        with_scratch(|scratch| {
            self.vectorize(text, scratch);
            let p = self.predict_vector(scratch)?;
            if p.probabilities[p.best] < self.threshold {
                return None;
            }
            let reasons = self.reasons(scratch, &p);
            Some((p, reasons))
        })
    }

    /// Why `text` got its prediction (whatever the confidence).
    pub fn explain(&self, text: &str) -> Option<(Prediction, Reasons<'_>)> {
        with_scratch(|scratch| {
            self.vectorize(text, scratch);
            let p = self.predict_vector(scratch)?;
            let reasons = self.reasons(scratch, &p);
            Some((p, reasons))
        })
    }

    /// The reasons, from the message's vector in `scratch`.
    fn reasons(&self, scratch: &mut Scratch, p: &Prediction) -> Reasons<'_> {
        let l = self.labels.len();
        let weight = |f: u32, label: usize| self.weights[f as usize * l + label];
        let moved = &mut scratch.moved;
        // Only the heaviest few can be shown.
        nearest::heaviest_k(
            scratch.vector.iter().filter_map(|&(f, x)| {
                let against = p.runner_up.map_or(0.0, |r| weight(f, r));
                let c = x * (weight(f, p.best) - against);
                (c > 0.0).then_some((f, c))
            }),
            24,
            moved,
        );
        let mut ngrams: Vec<(&str, f64)> = Vec::with_capacity(4);
        for &(f, c) in moved.iter() {
            let name = self.names[f as usize].trim();
            if !readable(name, self.is_word[f as usize])
                || ngrams.iter().any(|(n, _)| n.contains(name))
            {
                continue;
            }
            // A longer n-gram that holds a chosen one replaces it.
            ngrams.retain(|(n, _)| !name.contains(n));
            ngrams.push((name, c));
            if ngrams.len() == 3 {
                break;
            }
        }
        let nearest = self
            .index
            .nearest(&scratch.vector, p.best, &mut scratch.nearest)
            .map(|(i, s)| (&self.examples[i], s));
        Reasons { ngrams, nearest }
    }
}

/// Whether an n-gram says something to a reader: a word n-gram
/// (`money back`), or characters of a script without spaces (`返金`); not
/// a fragment of a Latin word (`efu`) or across a word boundary (`s i`).
fn readable(name: &str, is_word: bool) -> bool {
    is_word
        || (!name.is_empty()
            && !name.contains(' ')
            && name.chars().any(|c| !c.is_ascii() && c.is_alphanumeric()))
}

/// TF-IDF of a bag of feature ids: (1 + ln tf) × idf, L2-normalised.
fn tf_idf(ids: impl Iterator<Item = u32>, idf: &[f64]) -> Vector {
    let mut ids: Vec<u32> = ids.collect();
    ids.sort_unstable();
    let mut counts: Vec<(u32, u32)> = Vec::with_capacity(ids.len());
    for f in ids {
        match counts.last_mut() {
            Some(last) if last.0 == f => last.1 += 1,
            _ => counts.push((f, 1)),
        }
    }
    let mut v = Vector::with_capacity(counts.len());
    weigh(counts.into_iter(), idf, &mut v);
    v
}

/// (1 + ln tf) × idf of each (feature id, tf), sorted by id, then
/// L2-normalised, into `out`: training and classifying weigh a message
/// with this one function, so a message and an example of the same text
/// get the same bits.
fn weigh(counts: impl Iterator<Item = (u32, u32)>, idf: &[f64], out: &mut Vector) {
    out.clear();
    out.extend(counts.map(|(f, tf)| (f, damped(tf) * idf[f as usize])));
    let norm = out.iter().map(|(_, x)| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        for (_, x) in out.iter_mut() {
            *x /= norm;
        }
    }
}

/// 1 + ln tf, from a table for the counts a message has (the same [`ln`],
/// so the same bits, computed once).
fn damped(tf: u32) -> f64 {
    const TABLED: usize = 64;
    static TABLE: LazyLock<[f64; TABLED]> = LazyLock::new(|| {
        let mut t = [1.0; TABLED];
        for (n, x) in t.iter_mut().enumerate().skip(2) {
            *x = 1.0 + ln(n as f64);
        }
        t
    });
    // Most n-grams occur once in a message: ln 1 = 0 needs no series.
    match tf as usize {
        1 => 1.0,
        n if n < TABLED => TABLE[n],
        n => 1.0 + ln(n as f64),
    }
}

/// Softmax regression by SGD with L2 (the weight decay applied through one
/// scale factor, so a step costs only the example's non-zero features).
fn sgd(
    vectors: &[Vector],
    labels: &[u32],
    n_labels: usize,
    n_features: usize,
) -> (Vec<f64>, Vec<f64>) {
    let l = n_labels;
    let mut v = vec![0f64; n_features * l];
    let mut bias = vec![0f64; l];
    let mut scale = 1.0f64;
    let mut order: Vec<usize> = (0..vectors.len()).collect();
    let mut rng = SEED;
    let mut scores = vec![0f64; l];
    let mut step = vec![0f64; l];
    // Each label weighs as much as the others, however many examples it
    // has: a new topic taught with 20 examples beside topics with 200 is
    // not drowned out (the gradient of an example is scaled by
    // n / (labels × examples of its label)).
    let mut counts = vec![0usize; l];
    for &y in labels {
        counts[y as usize] += 1;
    }
    let weight: Vec<f64> = counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                vectors.len() as f64 / (l as f64 * c as f64)
            }
        })
        .collect();
    for epoch in 0..EPOCHS {
        // Fisher-Yates with xorshift64*: the same order on every machine.
        for i in (1..order.len()).rev() {
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            let r = rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
            order.swap(i, (r % (i as u64 + 1)) as usize);
        }
        let eta = ETA0 / (1.0 + epoch as f64);
        for &ei in &order {
            let x = &vectors[ei];
            scores.copy_from_slice(&bias);
            for &(f, xf) in x {
                let row = &v[f as usize * l..f as usize * l + l];
                for (s, w) in scores.iter_mut().zip(row) {
                    *s += scale * w * xf;
                }
            }
            let p = softmax(&scores);
            scale *= 1.0 - eta * LAMBDA;
            let w = weight[labels[ei] as usize];
            let mut any = false;
            for (k, pk) in p.iter().enumerate() {
                let g = w * (pk - if k as u32 == labels[ei] { 1.0 } else { 0.0 });
                bias[k] -= eta * g * 0.1;
                step[k] = eta * g / scale;
                // An example the model already gets right to 1e-9 moves
                // nothing: skip its features (most of the late epochs).
                any |= g.abs() > 1e-9;
            }
            if any {
                for &(f, xf) in x {
                    let row = &mut v[f as usize * l..f as usize * l + l];
                    for (w, s) in row.iter_mut().zip(&step) {
                        *w -= s * xf;
                    }
                }
            }
            if scale < 1e-6 {
                for w in &mut v {
                    *w *= scale;
                }
                scale = 1.0;
            }
        }
    }
    for w in &mut v {
        *w *= scale;
    }
    (v, bias)
}

fn softmax(scores: &[f64]) -> Vec<f64> {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scores.iter().map(|s| exp(s - max)).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// e^x from +, ×, ÷ only (see the module docs): x = k ln2 + r with
/// |r| ≤ ln2/2, e^r by its Taylor series to 1e-17, then × 2^k.
pub(crate) fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < -745.0 {
        return 0.0;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    // ln 2 split in two (fdlibm's constants): k × LN2_HI is exact.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    let k = (x * std::f64::consts::LOG2_E).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=18 {
        term = term * r / f64::from(i);
        sum += term;
    }
    let k = k as i32;
    // 2^k, split in two so subnormal results stay in range.
    let half = k / 2;
    sum * pow2(half) * pow2(k - half)
}

fn pow2(k: i32) -> f64 {
    f64::from_bits(((i64::from(k) + 1023).clamp(1, 2046) as u64) << 52)
}

/// ln x for x > 0 from +, ×, ÷ only: x = m 2^e with m in [√½, √2), then
/// ln m = 2 atanh((m-1)/(m+1)) by its series.
pub(crate) fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    let mut m = x;
    let mut e = 0i32;
    while m >= std::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    while m < std::f64::consts::FRAC_1_SQRT_2 {
        m *= 2.0;
        e -= 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut k = 1.0;
    while k < 60.0 {
        sum += term / k;
        term *= s2;
        k += 2.0;
    }
    2.0 * sum + f64::from(e) * std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::SourceLocation;

    fn ex(text: &str, label: &str, line: usize) -> Example {
        Example {
            text: text.to_owned(),
            label: label.to_owned(),
            location: SourceLocation::new("t.jsonl", line, 1),
        }
    }

    #[test]
    fn exp_and_ln_match_the_platform_closely() {
        for x in [-30.0, -2.5, -0.1, 0.0, 1e-9, 0.5, 1.0, 3.3, 20.0, 700.0] {
            let (ours, std) = (exp(x), x.exp());
            assert!(
                ((ours - std) / std).abs() < 1e-14,
                "exp({x}): {ours} vs {std}"
            );
        }
        for x in [1e-300, 1e-5, 0.3, 1.0, 2.0, 10.0, 12345.678, 1e300] {
            let (ours, std) = (ln(x), x.ln());
            assert!(
                (ours - std).abs() < 1e-13 * std.abs().max(1.0),
                "ln({x}): {ours} vs {std}"
            );
        }
        assert_eq!(exp(-1000.0), 0.0);
        assert!(ln(-1.0).is_nan());
    }

    fn tiny() -> (Vec<String>, Vec<Example>) {
        let labels = vec!["billing".to_owned(), "shipping".to_owned()];
        let examples = vec![
            ex("I want my money back", "billing", 1),
            ex("please refund my payment", "billing", 2),
            ex("返金してください", "billing", 3),
            ex("where is my parcel", "shipping", 4),
            ex("the package has not arrived", "shipping", 5),
            ex("荷物が届きません", "shipping", 6),
        ];
        (labels, examples)
    }

    #[test]
    fn learns_both_languages_and_explains() {
        let (labels, examples) = tiny();
        let m = Model::train(&labels, &examples, 0.5);
        let p = m.predict("can I get a refund of my money").unwrap();
        assert_eq!(m.labels()[p.best], "billing");
        let p = m.predict("まだ届きません").unwrap();
        assert_eq!(m.labels()[p.best], "shipping");
        let (_, why) = m.explain("my parcel is late").unwrap();
        assert!(!why.ngrams.is_empty());
        assert_eq!(why.nearest.unwrap().0.text, "where is my parcel");
    }

    #[test]
    fn training_ignores_example_order() {
        let (labels, mut examples) = tiny();
        let a = Model::train(&labels, &examples, 0.5);
        examples.reverse();
        let b = Model::train(&labels, &examples, 0.5);
        assert_eq!(a.to_bytes(), b.to_bytes());
        assert_eq!(a.hash(), b.hash());
    }

    /// Examples of three labels from word pools, so that some n-grams are
    /// in most of a label's examples (dense columns) and some in few
    /// (sparse ones), in both scripts.
    fn varied() -> (Vec<String>, Vec<Example>) {
        let labels: Vec<String> = ["billing", "shipping", "product"]
            .map(String::from)
            .to_vec();
        let own = [
            ["refund", "charge", "invoice", "返金", "請求書", "payment"],
            [
                "parcel",
                "tracking",
                "late",
                "荷物",
                "届きません",
                "delivery",
            ],
            ["size", "colour", "wood", "寸法", "素材", "assembly"],
        ];
        let shared = ["my", "the", "please", "order", "注文", "です", "table"];
        let mut rng = 0x1234_5678_9abc_def1u64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let mut examples = Vec::new();
        for (l, label) in labels.iter().enumerate() {
            for i in 0..60 {
                let words: Vec<&str> = (0..3 + next(10))
                    .map(|_| {
                        if next(3) == 0 {
                            own[l][next(6)]
                        } else {
                            shared[next(7)]
                        }
                    })
                    .collect();
                examples.push(ex(&words.join(" "), label, l * 100 + i + 1));
            }
        }
        (labels, examples)
    }

    /// The nearest example as a pass over every example of the label
    /// finds it: each example's vector made again from its text (its
    /// weights in single precision, as the index keeps them), the query's
    /// heaviest n-grams weighed against it one by one.
    fn brute_force(m: &Model, v: &[(u32, f64)], label: usize) -> Option<(usize, f64)> {
        let mut query = Vec::new();
        let query = nearest::heaviest(v, &mut query).to_vec();
        let mut scratch = Scratch::default();
        let mut best: Option<(usize, f64)> = None;
        for (i, e) in m.examples.iter().enumerate() {
            if e.label != m.labels[label] {
                continue;
            }
            m.vectorize(&e.text, &mut scratch);
            let mut sim = 0.0;
            for &(f, x) in &query {
                if let Ok(k) = scratch.vector.binary_search_by_key(&f, |&(g, _)| g) {
                    sim += x * f64::from(scratch.vector[k].1 as f32);
                }
            }
            if sim > best.map_or(0.0, |b| b.1) {
                best = Some((i, sim));
            }
        }
        best
    }

    #[test]
    fn the_nearest_example_is_the_brute_force_one_bit_for_bit() {
        let (labels, examples) = varied();
        let m = Model::train(&labels, &examples, 0.5);
        let (dense, sparse) = m.index.layout();
        assert!(dense > 0 && sparse > 0, "{dense} dense, {sparse} sparse");
        let mut queries: Vec<String> = examples.iter().map(|e| e.text.clone()).collect();
        queries.extend(
            [
                "refund my parcel please",
                "返金と荷物と寸法",
                "the wood colour of my table is wrong, can I get a refund?",
                "nothing in common",
                "",
            ]
            .map(String::from),
        );
        let mut scratch = Scratch::default();
        for q in &queries {
            m.vectorize(q, &mut scratch);
            let v = scratch.vector.clone();
            for label in 0..labels.len() {
                let found = m.index.nearest(&v, label, &mut scratch.nearest);
                let expected = brute_force(&m, &v, label);
                assert_eq!(
                    found.map(|(i, s)| (i, s.to_bits())),
                    expected.map(|(i, s)| (i, s.to_bits())),
                    "{q:?}, label {label}"
                );
            }
        }
    }

    #[test]
    fn reused_buffers_do_not_leak_between_messages_or_models() {
        let (labels, examples) = varied();
        let big = Model::train(&labels, &examples, 0.5);
        let (labels, examples) = tiny();
        let small = Model::train(&labels, &examples, 0.5);
        let texts = [
            "refund my parcel please",
            "まだ届きません",
            "I want my money back, the money, the money",
            "",
        ];
        let alone: Vec<_> = texts
            .iter()
            .flat_map(|t| {
                let mut fresh = Scratch::default();
                [&big, &small].map(|m| {
                    m.vectorize(t, &mut fresh);
                    fresh.vector.clone()
                })
            })
            .collect();
        // The same messages through the thread's scratch, interleaved.
        let mut shared = Vec::new();
        for t in &texts {
            for m in [&big, &small] {
                shared.push(with_scratch(|s| {
                    m.vectorize(t, s);
                    s.vector.clone()
                }));
            }
        }
        assert_eq!(alone, shared);
        for t in texts {
            let (p, r) = big.explain(t).unwrap();
            assert_eq!(Some(p.clone()), big.predict(t));
            assert_eq!(big.explain(t), Some((p, r)));
        }
    }
}
