//! The nearest example: which example of the predicted label a message is
//! most like, for the `why` of a verdict.
//!
//! Similarity is the dot product of an example's TF-IDF vector (unit
//! length, as trained) with the message's [`QUERY_FEATURES`] heaviest
//! n-grams, taken in feature-id order; the highest wins, the first in the
//! canonical example order on a tie, and an example sharing none of them
//! is never "nearest". The heaviest n-grams are the rarest, the ones that
//! make a message recognisable; a full cosine would read every posting of
//! `the` and `です` and name the same example almost always.
//!
//! The examples' weights are kept in single precision (enough to rank
//! them, and half the memory a search reads). The index answers exactly
//! as a brute-force pass over the label's examples at that precision
//! would (a test holds it to that, bit for bit), but faster: the
//! examples' weights are kept per (label, feature) as a column over that
//! label's examples, stored sparse (example, weight) when few examples
//! have the n-gram, and dense (a weight for every example, 0 for the
//! rest) when many do. A dense column is added with one straight loop the
//! compiler vectorises instead of one scattered add per example, which is
//! what the common n-grams of a big label cost before. Adding a dense
//! column's zeros changes no sum (`s + x × 0 = s` for the non-negative
//! sums here), so both layouts give the brute force's bits.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::model::PassThrough;

/// Query n-grams the search weighs (the heaviest of the message).
pub(crate) const QUERY_FEATURES: usize = 16;

/// A column is dense when at least one example in `DENSE_SHARE` of its
/// label has the n-gram: a dense entry costs a fraction of a sparse one
/// (a vectorised add against a load, an index and a scattered add), and
/// the dense column then takes at most twice the memory of the sparse
/// (4 bytes an example against 8 an entry).
const DENSE_SHARE: usize = 4;

/// Where a (label, feature) column is stored.
#[derive(Clone, Copy, Debug)]
enum Column {
    /// `sparse[from..to]`: (example within its label, weight).
    Sparse { from: u32, to: u32 },
    /// `dense[from..from + examples of the label]`.
    Dense { from: u32 },
}

/// The examples' TF-IDF weights by label and feature.
#[derive(Debug, Default)]
pub(crate) struct ExampleIndex {
    /// Label -> its examples, a run `start..end` of the canonical order.
    runs: Vec<(usize, usize)>,
    /// `key(label, feature)` -> its column; pairs no example has are absent.
    columns: HashMap<u64, Column, BuildHasherDefault<PassThrough>>,
    sparse: Vec<(u32, f32)>,
    dense: Vec<f32>,
}

/// Buffers a search reuses from one message to the next.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    query: Vec<(u32, f64)>,
    sims: Vec<f64>,
}

/// One (label, feature) pair as a map key: the pair, spread over the 64
/// bits by an odd multiplier (a bijection), since the map's hasher passes
/// keys through and its buckets read both ends of the hash.
fn key(label: usize, feature: u32) -> u64 {
    ((label as u64) << 32 | u64::from(feature)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl ExampleIndex {
    /// Index `vectors` (sorted by feature id), whose labels `labels` come
    /// in runs (the canonical order sorts examples by label first).
    pub fn build(vectors: &[Vec<(u32, f64)>], labels: &[u32], n_labels: usize) -> ExampleIndex {
        let mut runs = vec![(0, 0); n_labels];
        for (label, run) in runs.iter_mut().enumerate() {
            let start = labels.partition_point(|&y| (y as usize) < label);
            let end = labels.partition_point(|&y| (y as usize) <= label);
            *run = (start, end);
        }
        let mut index = ExampleIndex {
            runs,
            ..ExampleIndex::default()
        };
        for (label, &(start, end)) in index.runs.iter().enumerate() {
            // This label's columns: feature -> (example within label, weight),
            // gathered in feature order so the layout is deterministic.
            let mut entries: Vec<(u32, u32, f64)> = Vec::new();
            for (i, v) in vectors[start..end].iter().enumerate() {
                entries.extend(v.iter().map(|&(f, w)| (f, i as u32, w)));
            }
            entries.sort_unstable_by_key(|&(f, i, _)| (f, i));
            let n = end - start;
            let mut at = 0;
            while at < entries.len() {
                let f = entries[at].0;
                let len = entries[at..].partition_point(|e| e.0 == f);
                let column = &entries[at..at + len];
                let stored = if len * DENSE_SHARE >= n {
                    let from = index.dense.len();
                    index.dense.resize(from + n, 0.0);
                    for &(_, i, w) in column {
                        index.dense[from + i as usize] = w as f32;
                    }
                    Column::Dense { from: from as u32 }
                } else {
                    let from = index.sparse.len();
                    index
                        .sparse
                        .extend(column.iter().map(|&(_, i, w)| (i, w as f32)));
                    Column::Sparse {
                        from: from as u32,
                        to: index.sparse.len() as u32,
                    }
                };
                index.columns.insert(key(label, f), stored);
                at += len;
            }
        }
        index
    }

    /// The example of `label` nearest to the message `v` (its TF-IDF,
    /// sorted by feature id): its index in the canonical order, and the
    /// similarity.
    pub fn nearest(
        &self,
        v: &[(u32, f64)],
        label: usize,
        scratch: &mut Scratch,
    ) -> Option<(usize, f64)> {
        let &(start, end) = self.runs.get(label)?;
        let query = heaviest(v, &mut scratch.query);
        let sims = &mut scratch.sims;
        sims.clear();
        sims.resize(end - start, 0.0);
        for &(f, x) in query.iter() {
            match self.columns.get(&key(label, f)) {
                None => {}
                Some(&Column::Sparse { from, to }) => {
                    for &(i, w) in &self.sparse[from as usize..to as usize] {
                        sims[i as usize] += x * f64::from(w);
                    }
                }
                Some(&Column::Dense { from }) => {
                    let column = &self.dense[from as usize..from as usize + sims.len()];
                    for (s, &w) in sims.iter_mut().zip(column) {
                        *s += x * f64::from(w);
                    }
                }
            }
        }
        let (mut best, mut best_sim) = (None, 0.0);
        for (i, &s) in sims.iter().enumerate() {
            if s > best_sim {
                (best, best_sim) = (Some(start + i), s);
            }
        }
        best.map(|i| (i, best_sim))
    }
}

#[cfg(test)]
impl ExampleIndex {
    /// How many columns are dense and how many sparse.
    pub fn layout(&self) -> (usize, usize) {
        let dense = self
            .columns
            .values()
            .filter(|c| matches!(c, Column::Dense { .. }))
            .count();
        (dense, self.columns.len() - dense)
    }
}

/// The [`QUERY_FEATURES`] heaviest entries of `v` (ties to the lower
/// feature id), in feature-id order, in `out`.
pub(crate) fn heaviest<'a>(v: &[(u32, f64)], out: &'a mut Vec<(u32, f64)>) -> &'a [(u32, f64)] {
    heaviest_k(v.iter().copied(), QUERY_FEATURES, out);
    out.sort_unstable_by_key(|&(f, _)| f);
    out
}

/// The `k` heaviest of `entries` (feature id, weight), heaviest first and
/// ties to the lower id, in `out`: a selection (linear) over the entries,
/// then a sort of the `k` kept. The order is total, so the answer is a
/// full sort's cut short, bit for bit.
pub(crate) fn heaviest_k(
    entries: impl Iterator<Item = (u32, f64)>,
    k: usize,
    out: &mut Vec<(u32, f64)>,
) {
    let order = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    out.clear();
    if k == 0 {
        return;
    }
    out.extend(entries);
    if out.len() > k {
        out.select_nth_unstable_by(k - 1, order);
        out.truncate(k);
    }
    out.sort_unstable_by(order);
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn the_k_heaviest_are_a_full_sort_cut_short(
            weights in proptest::collection::vec(0u8..6, 0..60),
            k in 0usize..30,
        ) {
            // Distinct ids in a scrambled order, weights with many ties.
            let entries: Vec<(u32, f64)> = weights
                .iter()
                .enumerate()
                .map(|(i, &w)| ((i as u32 * 37) % 64, f64::from(w) / 4.0))
                .collect();
            let mut sorted = entries.clone();
            sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            sorted.truncate(k);
            let mut out = Vec::new();
            heaviest_k(entries.iter().copied(), k, &mut out);
            proptest::prop_assert_eq!(out, sorted);
        }
    }
}
