//! The last few results of a pure function, kept in order of use.
//!
//! Several parts of a rule call ask the same question of the same text
//! again and again within an event and from one event to the next:
//! normalising a message, classifying its tone. The answer never changes
//! for the same input, so a thread keeps its last few answers in a
//! [`Recent`] and looks them up before computing. It is a short list
//! searched from the newest, not a map: a few entries, compared cheaply.

use std::collections::VecDeque;

/// At most `capacity` (key, value) pairs, newest first.
pub(crate) struct Recent<K, V> {
    kept: VecDeque<(K, V)>,
    capacity: usize,
}

impl<K, V: Clone> Recent<K, V> {
    pub(crate) const fn new(capacity: usize) -> Self {
        Recent {
            kept: VecDeque::new(),
            capacity,
        }
    }

    /// The value kept for the newest key `is` accepts. A predicate rather
    /// than a key, so a lookup borrows what it compares and allocates
    /// nothing.
    pub(crate) fn find(&self, is: impl Fn(&K) -> bool) -> Option<V> {
        self.kept
            .iter()
            .find(|(k, _)| is(k))
            .map(|(_, v)| v.clone())
    }

    /// Keep `value` for `key`, forgetting the oldest pair beyond capacity.
    pub(crate) fn keep(&mut self, key: K, value: V) {
        if self.kept.len() == self.capacity {
            self.kept.pop_back();
        }
        self.kept.push_front((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::Recent;

    #[test]
    fn the_newest_pairs_are_kept_up_to_capacity() {
        let mut recent = Recent::new(2);
        recent.keep("a", 1);
        recent.keep("b", 2);
        assert_eq!(recent.find(|k| *k == "a"), Some(1));
        recent.keep("c", 3);
        assert_eq!(recent.find(|k| *k == "a"), None, "the oldest went first");
        assert_eq!(recent.find(|k| *k == "b"), Some(2));
        assert_eq!(recent.find(|k| *k == "c"), Some(3));
    }
}
