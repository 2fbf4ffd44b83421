//! The last few verdicts, kept per thread.
//!
//! The urgency rule reads the tone of the customer's latest message on
//! every event of the case: a warehouse update, a carrier's date, a timer.
//! The text is the same each time, and so is the verdict: a model is a
//! pure function of the text, and its hash names everything it was
//! trained from. So each thread keeps its last [`KEPT`] verdicts, keyed by
//! model hash and text, and answers a repeated question from them. A
//! replay gets the verdict it would have computed.

use std::cell::RefCell;

use super::Verdict;
use crate::memo::Recent;

/// How many verdicts a thread keeps.
const KEPT: usize = 32;

/// Longer texts are classified every time, so that what a thread keeps
/// stays small (at most `KEPT` × this, about half a megabyte).
const LONGEST_KEPT: usize = 16 * 1024;

thread_local! {
    /// Verdicts by (model hash, text).
    static RECENT: RefCell<Recent<(String, String), Option<Verdict>>> =
        const { RefCell::new(Recent::new(KEPT)) };
}

/// The verdict of the model with hash `model` on `text`: a kept one, or
/// `classify()`'s, which is then kept.
pub(crate) fn verdict(
    model: &str,
    text: &str,
    classify: impl FnOnce() -> Option<Verdict>,
) -> Option<Verdict> {
    let kept = RECENT.with_borrow(|recent| recent.find(|(m, t)| t == text && m == model));
    if let Some(verdict) = kept {
        return verdict;
    }
    let verdict = classify();
    if text.len() <= LONGEST_KEPT {
        RECENT.with_borrow_mut(|recent| {
            recent.keep((model.to_owned(), text.to_owned()), verdict.clone());
        });
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict_of(label: &str) -> Option<Verdict> {
        Some(Verdict {
            label: label.to_owned(),
            confidence: 0.9,
            runner_up: None,
            why: String::new(),
        })
    }

    #[test]
    fn a_repeated_question_is_answered_from_what_was_kept() {
        let mut asked = 0;
        for _ in 0..3 {
            let v = verdict("m1", "where is my parcel", || {
                asked += 1;
                verdict_of("shipping")
            });
            assert_eq!(v, verdict_of("shipping"));
        }
        assert_eq!(asked, 1);
    }

    #[test]
    fn another_model_or_text_is_asked_again() {
        let mut asked = 0;
        let mut ask = |model: &str, text: &str| {
            verdict(model, text, || {
                asked += 1;
                None
            })
        };
        ask("m2", "hello");
        ask("m3", "hello");
        ask("m2", "hello!");
        ask("m2", "hello");
        assert_eq!(asked, 3);
    }

    #[test]
    fn only_the_last_few_are_kept() {
        let mut asked = 0;
        for i in 0..=KEPT {
            verdict("m4", &format!("text {i}"), || {
                asked += 1;
                None
            });
        }
        // "text 0" was pushed out by the KEPT after it.
        verdict("m4", "text 0", || {
            asked += 1;
            None
        });
        assert_eq!(asked, KEPT + 2);
    }
}
