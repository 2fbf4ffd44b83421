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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sha2::{Digest, Sha256};

use super::examples::Example;
use super::features::{each_feature, feature_text, prepare};

/// Passes over the examples. Cross-validation on the default pack: 12 to
/// 40 give the same accuracy within half a point.
const EPOCHS: usize = 24;
/// The first learning rate; it decays as 1 / (1 + epoch).
const ETA0: f64 = 2.0;
/// L2 regularisation, kept light: the small example sets of a pack gain
/// more from the weights the rare n-grams earn than from shrinking them.
const LAMBDA: f64 = 2e-5;
/// Query n-grams used to look for the nearest example (the heaviest).
const NEAREST_FEATURES: usize = 16;
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
    example_labels: Vec<u32>,
    /// Postings: (label, feature id) -> (example, weight), as offsets
    /// into `postings` (key label × features + feature).
    offsets: Vec<u32>,
    postings: Vec<(u32, f32)>,
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
#[derive(Clone, Debug, PartialEq)]
pub struct Reasons {
    /// (n-gram, how much it moved the score), heaviest first.
    pub ngrams: Vec<(String, f64)>,
    /// The nearest example of the chosen label, and its cosine similarity.
    pub nearest: Option<(Example, f64)>,
}

/// A message as TF-IDF: (feature id, weight), sorted by id, L2-normalised.
type Vector = Vec<(u32, f64)>;

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
        for e in &examples {
            let chars = prepare(&e.text);
            let mut hashes = Vec::new();
            each_feature(&chars, |h, start, len, word| {
                hashes.push(h);
                seen.entry(h)
                    .or_insert_with(|| (feature_text(&chars, start, len, word), 0, word));
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

        // Postings for the nearest example, per label and feature:
        // key = label × features + feature.
        let n_features = names.len();
        let key = |label: u32, f: u32| label as usize * n_features + f as usize;
        let mut counts = vec![0u32; labels.len() * n_features + 1];
        for (v, &y) in vectors.iter().zip(&example_labels) {
            for &(f, _) in v {
                counts[key(y, f) + 1] += 1;
            }
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let offsets = counts.clone();
        let mut fill = counts;
        let mut postings = vec![(0u32, 0f32); *offsets.last().unwrap_or(&0) as usize];
        for (ei, (v, &y)) in vectors.iter().zip(&example_labels).enumerate() {
            for &(f, w) in v {
                let slot = &mut fill[key(y, f)];
                postings[*slot as usize] = (ei as u32, w as f32);
                *slot += 1;
            }
        }

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
            example_labels,
            offsets,
            postings,
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

    /// The message as TF-IDF over this model's vocabulary.
    fn vectorize(&self, text: &str) -> Vector {
        let chars = prepare(text);
        let mut ids = Vec::with_capacity(chars.len() * 4);
        each_feature(&chars, |h, _, _, _| {
            if let Some(&id) = self.vocab.get(&h) {
                ids.push(id);
            }
        });
        tf_idf(ids.into_iter(), &self.idf)
    }

    fn scores(&self, v: &Vector) -> Vec<f64> {
        let l = self.labels.len();
        let mut scores = self.bias.clone();
        for &(f, x) in v {
            let row = &self.weights[f as usize * l..f as usize * l + l];
            for (s, w) in scores.iter_mut().zip(row) {
                *s += w * x;
            }
        }
        scores
    }

    /// Every label's probability for `text`; `None` for a model with no
    /// labels.
    pub fn predict(&self, text: &str) -> Option<Prediction> {
        self.predict_vector(&self.vectorize(text))
    }

    fn predict_vector(&self, v: &Vector) -> Option<Prediction> {
        if self.labels.is_empty() {
            return None;
        }
        let probabilities = softmax(&self.scores(v));
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| {
            probabilities[b]
                .total_cmp(&probabilities[a])
                .then(a.cmp(&b))
        });
        Some(Prediction {
            best: order[0],
            runner_up: order.get(1).copied(),
            probabilities,
        })
    }

    /// The prediction and its reasons when the best label's probability
    /// reaches the threshold; `None` when the model is unsure.
    pub fn confident(&self, text: &str) -> Option<(Prediction, Reasons)> {
        let v = self.vectorize(text);
        let p = self.predict_vector(&v)?;
        if p.probabilities[p.best] < self.threshold {
            return None;
        }
        let reasons = self.reasons(&v, &p);
        Some((p, reasons))
    }

    /// Why `text` got its prediction (whatever the confidence).
    pub fn explain(&self, text: &str) -> Option<(Prediction, Reasons)> {
        let v = self.vectorize(text);
        let p = self.predict_vector(&v)?;
        let reasons = self.reasons(&v, &p);
        Some((p, reasons))
    }

    fn reasons(&self, v: &Vector, p: &Prediction) -> Reasons {
        let l = self.labels.len();
        let weight = |f: u32, label: usize| self.weights[f as usize * l + label];
        let mut moved: Vec<(u32, f64)> = v
            .iter()
            .map(|&(f, x)| {
                let against = p.runner_up.map_or(0.0, |r| weight(f, r));
                (f, x * (weight(f, p.best) - against))
            })
            .filter(|&(_, c)| c > 0.0)
            .collect();
        // Only the heaviest few can be shown: select them, then sort those.
        let by_weight = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if moved.len() > 24 {
            moved.select_nth_unstable_by(23, by_weight);
            moved.truncate(24);
        }
        moved.sort_by(by_weight);
        let mut ngrams: Vec<(String, f64)> = Vec::new();
        for (f, c) in moved {
            let name = self.names[f as usize].trim().to_owned();
            if !readable(&name, self.is_word[f as usize])
                || ngrams.iter().any(|(n, _)| n.contains(&name))
            {
                continue;
            }
            // A longer n-gram that holds a chosen one replaces it.
            ngrams.retain(|(n, _)| !name.contains(n.as_str()));
            ngrams.push((name, c));
            if ngrams.len() == 3 {
                break;
            }
        }
        Reasons {
            ngrams,
            nearest: self.nearest(v, p.best),
        }
    }

    /// The example of `label` most like `v` (cosine over the query's
    /// heaviest n-grams, which are also the rarest, so the postings read
    /// stay short).
    fn nearest(&self, v: &Vector, label: usize) -> Option<(Example, f64)> {
        let mut heavy: Vec<(u32, f64)> = v.clone();
        if heavy.len() > NEAREST_FEATURES {
            heavy.select_nth_unstable_by(NEAREST_FEATURES - 1, |a, b| {
                b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
            });
            heavy.truncate(NEAREST_FEATURES);
        }
        // The label's examples are one run of the canonical order.
        let start = self
            .example_labels
            .partition_point(|&y| (y as usize) < label);
        let end = self
            .example_labels
            .partition_point(|&y| (y as usize) <= label);
        let mut sims = vec![0f64; end - start];
        let n_features = self.names.len();
        for (f, x) in heavy {
            let key = label * n_features + f as usize;
            let from = self.offsets[key] as usize;
            let to = self.offsets[key + 1] as usize;
            for &(e, w) in &self.postings[from..to] {
                sims[e as usize - start] += x * f64::from(w);
            }
        }
        let mut best: Option<(usize, f64)> = None;
        for (i, &s) in sims.iter().enumerate() {
            if s > best.map_or(0.0, |b| b.1) {
                best = Some((start + i, s));
            }
        }
        best.map(|(i, s)| (self.examples[i].clone(), s))
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
    let mut v: Vector = Vec::with_capacity(ids.len());
    let mut i = 0;
    while i < ids.len() {
        let f = ids[i];
        let mut j = i;
        while j < ids.len() && ids[j] == f {
            j += 1;
        }
        // Most n-grams occur once in a message: ln 1 = 0 needs no series.
        let tf = j - i;
        let damped = if tf == 1 { 1.0 } else { 1.0 + ln(tf as f64) };
        v.push((f, damped * idf[f as usize]));
        i = j;
    }
    let norm = v.iter().map(|(_, x)| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        for (_, x) in &mut v {
            *x /= norm;
        }
    }
    v
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
}
