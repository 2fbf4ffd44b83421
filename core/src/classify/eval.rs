//! How good a classifier is: k-fold cross-validation on its own examples,
//! or accuracy on a labeled set it was not trained on.
//!
//! Folds are stratified and deterministic: the examples are sorted as
//! training sorts them, and each label's examples are dealt to the folds
//! in turn, so every fold sees every label and two runs agree.

use serde::Serialize;

use super::examples::Example;
use super::model::Model;

/// One example the classifier got wrong.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Miss {
    pub text: String,
    pub expected: String,
    pub predicted: String,
    /// The probability it gave its wrong answer.
    pub confidence: f64,
    /// Where the example is written.
    pub location: String,
}

/// Per-label figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelStats {
    pub label: String,
    /// Examples with this label.
    pub support: usize,
    pub precision: f64,
    pub recall: f64,
}

/// The result of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub labels: Vec<String>,
    pub examples: usize,
    /// Share of examples whose best label is right (the threshold aside).
    pub accuracy: f64,
    /// Examples under the threshold (`classify` would return `()`).
    pub abstained: usize,
    /// Accuracy over the examples it did not abstain on.
    pub confident_accuracy: f64,
    pub per_label: Vec<LabelStats>,
    /// `confusion[expected][predicted]`, in label order.
    pub confusion: Vec<Vec<usize>>,
    /// The wrong answers, the most confident first.
    pub misses: Vec<Miss>,
}

/// Cross-validate: train on k-1 folds, test on the one left, k times.
pub fn cross_validate(
    labels: &[String],
    examples: &[Example],
    threshold: f64,
    folds: usize,
) -> Report {
    let folds = folds.max(2);
    let mut sorted: Vec<&Example> = examples
        .iter()
        .filter(|e| labels.contains(&e.label))
        .collect();
    sorted.sort_by(|a, b| (&a.text, &a.label).cmp(&(&b.text, &b.label)));
    let mut fold_of = vec![0usize; sorted.len()];
    for label in labels {
        for (n, (i, _)) in sorted
            .iter()
            .enumerate()
            .filter(|(_, e)| &e.label == label)
            .enumerate()
        {
            fold_of[i] = n % folds;
        }
    }
    let mut results = Vec::with_capacity(sorted.len());
    for k in 0..folds {
        let train: Vec<Example> = sorted
            .iter()
            .zip(&fold_of)
            .filter(|(_, f)| **f != k)
            .map(|(e, _)| (*e).clone())
            .collect();
        let model = Model::train(labels, &train, threshold);
        for (e, _) in sorted.iter().zip(&fold_of).filter(|(_, f)| **f == k) {
            results.push(((*e).clone(), model.predict(&e.text)));
        }
    }
    report(
        labels,
        threshold,
        results.iter().map(|(e, p)| (e, p.as_ref())),
    )
}

/// Test a trained model on labeled examples it has not seen.
pub fn holdout(model: &Model, examples: &[Example]) -> Report {
    let labels = model.labels();
    let results: Vec<_> = examples
        .iter()
        .filter(|e| labels.contains(&e.label))
        .map(|e| (e, model.predict(&e.text)))
        .collect();
    report(
        labels,
        model.threshold(),
        results.iter().map(|(e, p)| (*e, p.as_ref())),
    )
}

fn report<'a>(
    labels: &[String],
    threshold: f64,
    results: impl Iterator<Item = (&'a Example, Option<&'a super::Prediction>)>,
) -> Report {
    let n_labels = labels.len();
    let mut confusion = vec![vec![0usize; n_labels]; n_labels];
    let mut total = 0;
    let mut right = 0;
    let mut abstained = 0;
    let mut confident_right = 0;
    let mut misses = Vec::new();
    for (e, p) in results {
        let Some(expected) = labels.iter().position(|l| *l == e.label) else {
            continue;
        };
        let Some(p) = p else { continue };
        total += 1;
        confusion[expected][p.best] += 1;
        let confidence = p.probabilities[p.best];
        let confident = confidence >= threshold;
        if !confident {
            abstained += 1;
        }
        if p.best == expected {
            right += 1;
            if confident {
                confident_right += 1;
            }
        } else {
            misses.push(Miss {
                text: e.text.clone(),
                expected: e.label.clone(),
                predicted: labels[p.best].clone(),
                confidence,
                location: e.location.to_string(),
            });
        }
    }
    misses.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then_with(|| a.location.cmp(&b.location))
    });
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_label = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let support: usize = confusion[i].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[i]).sum();
            LabelStats {
                label: label.clone(),
                support,
                precision: ratio(confusion[i][i], predicted),
                recall: ratio(confusion[i][i], support),
            }
        })
        .collect();
    Report {
        labels: labels.to_vec(),
        examples: total,
        accuracy: ratio(right, total),
        abstained,
        confident_accuracy: ratio(confident_right, total - abstained),
        per_label,
        confusion,
        misses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::SourceLocation;

    #[test]
    fn cross_validation_counts_every_example_once() {
        let labels = vec!["a".to_owned(), "b".to_owned()];
        let mut examples = Vec::new();
        for i in 0..10 {
            for (label, word) in [("a", "apple"), ("b", "banana")] {
                examples.push(Example {
                    text: format!("{word} {word}s number {i}"),
                    label: label.to_owned(),
                    location: SourceLocation::new("x.jsonl", examples.len() + 1, 1),
                });
            }
        }
        let r = cross_validate(&labels, &examples, 0.5, 5);
        assert_eq!(r.examples, 20);
        assert_eq!(r.confusion.iter().flatten().sum::<usize>(), 20);
        assert!(r.accuracy > 0.9, "{r:?}");
        assert_eq!(r.per_label[0].support, 10);
        assert_eq!(r, cross_validate(&labels, &examples, 0.5, 5));
    }
}
