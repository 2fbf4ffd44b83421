//! Text normalisation and keyword sets for rules.
//!
//! Customers write the same word many ways: `ＵＲＧＥＮＴ`, `Urgent`,
//! `urgent`; `ｼｷｭｳ` and `シキュウ`. Every comparison a rule makes goes
//! through [`normalize`] (Unicode NFKC, then lower case), applied to the
//! text *and* to the keywords, so the spelling in a rule file does not
//! matter either.
//!
//! A [`KeywordSet`] matches every phrase of several named groups in one
//! pass over the text (Aho-Corasick, leftmost-longest). Leftmost-longest is
//! what makes negations work without extra code: in `not urgent` or
//! `急ぎません`, a group that lists the longer phrase wins over a group that
//! lists `urgent` or `急ぎ`, so the shorter word is not reported there.
//! Building an automaton costs far more than running it, so sets are built
//! once and cached by content ([`KeywordCache`]).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use unicode_normalization::UnicodeNormalization;

use crate::memo::Recent;

/// NFKC, then lower case: the form every rule comparison uses.
///
/// ```
/// use casework_core::rules::normalize;
/// assert_eq!(normalize("ＵＲＧＥＮＴ"), "urgent");
/// assert_eq!(normalize("ｼｷｭｳ"), "シキュウ");
/// assert_eq!(normalize("１／６"), "1/6");
/// ```
pub fn normalize(text: &str) -> String {
    // ASCII is its own NFKC form, and its lower case is the ASCII one.
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    // A rule normalises the same few texts several times per call (each
    // keyword match, each pattern, each deadline search, the message
    // padded with spaces): the last few results are kept per thread.
    // `normalize` is a pure function, so the memo is never stale.
    thread_local! {
        static RECENT: std::cell::RefCell<Recent<String, String>> =
            const { std::cell::RefCell::new(Recent::new(4)) };
    }
    if let Some(folded) = RECENT.with_borrow(|recent| recent.find(|raw| raw == text)) {
        return folded;
    }
    let folded = nfkc_lower(text);
    RECENT.with_borrow_mut(|recent| recent.keep(text.to_owned(), folded.clone()));
    folded
}

fn nfkc_lower(text: &str) -> String {
    // Lower-casing after NFKC folds the full-width Latin that NFKC produced.
    let nfkc: String = text.nfkc().collect();
    if nfkc.chars().any(char::is_uppercase) {
        nfkc.to_lowercase()
    } else {
        nfkc
    }
}

/// Named groups of phrases, compiled into one automaton.
#[derive(Debug)]
pub struct KeywordSet {
    automaton: AhoCorasick,
    /// Group names, in the order given.
    groups: Vec<String>,
    /// For each pattern: (group index, the phrase as written in the rule).
    patterns: Vec<(usize, String)>,
}

/// Matches of a [`KeywordSet`] in one text: for each group, the phrases
/// found, as written in the rule, each once, in the order they were found.
pub type KeywordHits = Vec<(String, Vec<String>)>;

impl KeywordSet {
    /// Build a set from `(group, phrases)`. Empty phrases are ignored.
    pub fn new<G, P, S>(groups: G) -> Result<KeywordSet, String>
    where
        G: IntoIterator<Item = (String, P)>,
        P: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names = Vec::new();
        let mut patterns = Vec::new();
        let mut needles = Vec::new();
        for (name, phrases) in groups {
            let index = names.len();
            names.push(name);
            for phrase in phrases {
                let written = phrase.as_ref();
                let needle = normalize(written);
                if needle.trim().is_empty() {
                    continue;
                }
                needles.push(needle);
                patterns.push((index, written.to_owned()));
            }
        }
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&needles)
            .map_err(|e| format!("cannot build the keyword set: {e}"))?;
        Ok(KeywordSet {
            automaton,
            groups: names,
            patterns,
        })
    }

    /// The group names, in the order given.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Find the phrases of every group in `text` (normalised first).
    pub fn find(&self, text: &str) -> KeywordHits {
        self.find_normalized(&normalize(text))
    }

    /// Like [`find`](Self::find) for text already passed through [`normalize`].
    pub fn find_normalized(&self, normalized: &str) -> KeywordHits {
        self.groups
            .iter()
            .zip(self.found_in(normalized))
            .map(|(group, found)| {
                (
                    group.clone(),
                    found.into_iter().map(str::to_owned).collect(),
                )
            })
            .collect()
    }

    /// The phrases found in `text` (normalised first), borrowed: for each
    /// group in order, each phrase once, as written, in the order found.
    /// What a rule call reads, without copying a group name or a phrase.
    pub fn found(&self, text: &str) -> Vec<Vec<&str>> {
        self.found_in(&normalize(text))
    }

    fn found_in(&self, normalized: &str) -> Vec<Vec<&str>> {
        let mut hits: Vec<Vec<&str>> = vec![Vec::new(); self.groups.len()];
        for m in self.automaton.find_iter(normalized) {
            let (group, written) = &self.patterns[m.pattern().as_usize()];
            let found = &mut hits[*group];
            if !found.contains(&written.as_str()) {
                found.push(written);
            }
        }
        hits
    }
}

/// A keyword constant of a rule file, compiled once, when the rule set is.
///
/// Written at the top of a `.rhai` file as a list of phrases or a map of
/// named groups of phrases:
///
/// ```text
/// const TOPICS = #{ billing: ["refund", "返金"], sizing: ["size", "サイズ"] };
/// const CALM = ["no rush", "急ぎません"];
/// ```
///
/// A rule passes it by name (`match_keywords(text, TOPICS)`,
/// `matches(text, CALM)`): the automaton was built when the pack loaded,
/// so the call costs one pass over the text and nothing else. A list
/// literal written inside a function is rebuilt as a value on every call
/// and looked up by content; `check` warns about that form.
#[derive(Clone, Debug)]
pub struct Keywords {
    set: Arc<KeywordSet>,
    /// Named groups (`#{ .. }`) rather than one list (`[..]`).
    grouped: bool,
    /// The phrases as written, per group (one unnamed group for a list).
    phrases: Arc<Groups>,
    /// For named groups, each group on its own (`TOPICS.billing`), so
    /// that a rule can match one group without rebuilding it.
    parts: Arc<Vec<Keywords>>,
}

impl Keywords {
    /// The keyword form of a constant's value: a non-empty list of
    /// phrases, or a non-empty map whose every value is a phrase or a list
    /// of phrases. `None` for any other value (it stays a plain constant).
    pub(crate) fn from_constant(value: &rhai::Dynamic) -> Option<Result<Keywords, String>> {
        fn phrases(value: &rhai::Dynamic) -> Option<Vec<String>> {
            if value.is_string() {
                return Some(vec![value.to_string()]);
            }
            let list = value.read_lock::<rhai::Array>()?;
            list.iter()
                .map(|p| p.is_string().then(|| p.to_string()))
                .collect()
        }
        let (grouped, groups): (bool, Groups) = if let Some(map) = value.read_lock::<rhai::Map>() {
            // A map iterates by name, as a map written in a call does,
            // so both forms give the same matches.
            let groups: Option<Groups> = map
                .iter()
                .map(|(name, list)| Some((name.to_string(), phrases(list)?)))
                .collect();
            (true, groups.filter(|g| !g.is_empty())?)
        } else if value.is_array() {
            let list = phrases(value).filter(|l| !l.is_empty())?;
            (false, vec![(String::new(), list)])
        } else {
            return None;
        };
        Some(Keywords::build(grouped, groups))
    }

    fn build(grouped: bool, groups: Groups) -> Result<Keywords, String> {
        let parts = if grouped {
            groups
                .iter()
                .map(|(_, phrases)| Keywords::build(false, vec![(String::new(), phrases.clone())]))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        Ok(Keywords {
            set: Arc::new(KeywordSet::new(groups.clone())?),
            grouped,
            phrases: Arc::new(groups),
            parts: Arc::new(parts),
        })
    }

    /// One named group on its own, as a list.
    pub fn group(&self, name: &str) -> Option<&Keywords> {
        if !self.grouped {
            return None;
        }
        let i = self.phrases.iter().position(|(n, _)| n == name)?;
        self.parts.get(i)
    }

    /// The compiled set.
    pub fn set(&self) -> &KeywordSet {
        &self.set
    }

    /// True for named groups, false for one list of phrases.
    pub fn is_grouped(&self) -> bool {
        self.grouped
    }

    /// The phrases as written, per group (one group named `""` for a list).
    pub fn groups(&self) -> &[(String, Vec<String>)] {
        &self.phrases
    }

    /// Every phrase, group after group.
    pub fn all_phrases(&self) -> impl Iterator<Item = &str> {
        self.phrases
            .iter()
            .flat_map(|(_, p)| p.iter().map(String::as_str))
    }
}

impl IntoIterator for Keywords {
    type Item = String;
    type IntoIter = std::vec::IntoIter<String>;

    /// `for phrase in WORDS { .. }` in a rule: every phrase, as written.
    fn into_iter(self) -> Self::IntoIter {
        self.all_phrases()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter()
    }
}

/// Named groups of phrases, as a rule writes them.
type Groups = Vec<(String, Vec<String>)>;

/// The sets whose groups hash alike (almost always one).
type Bucket = Vec<(Groups, Arc<KeywordSet>)>;

/// Keyword sets by content, so a list written inside a rule function is
/// compiled the first time it is used and looked up afterwards.
#[derive(Debug, Default)]
pub struct KeywordCache {
    sets: Mutex<HashMap<u64, Bucket>>,
}

/// More distinct sets than this means a rule builds its lists from data;
/// the cache then starts over rather than growing without end.
const MAX_CACHED_SETS: usize = 512;

impl KeywordCache {
    /// The set for these groups, built on first use.
    #[cfg(test)]
    pub fn get(&self, groups: Groups) -> Result<Arc<KeywordSet>, String> {
        let view: Vec<(&str, Vec<&str>)> = groups
            .iter()
            .map(|(g, p)| (g.as_str(), p.iter().map(String::as_str).collect()))
            .collect();
        self.get_with(view.iter().map(|(g, p)| (*g, p.iter().copied())))
    }

    /// The set for groups given as borrowed text, built on first use. A
    /// hit costs a hash and a comparison, and allocates nothing: this is
    /// what runs each time a rule matches its keyword lists.
    pub fn get_with<'a, G, P>(&self, groups: G) -> Result<Arc<KeywordSet>, String>
    where
        G: Iterator<Item = (&'a str, P)> + Clone,
        P: Iterator<Item = &'a str> + Clone,
    {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for (name, phrases) in groups.clone() {
            name.hash(&mut hasher);
            for phrase in phrases {
                phrase.hash(&mut hasher);
            }
            0xffu8.hash(&mut hasher);
        }
        let key = hasher.finish();
        let same = |stored: &Groups| {
            let mut given = groups.clone();
            stored.iter().all(|(name, phrases)| {
                given.next().is_some_and(|(n, p)| {
                    n == name
                        && p.clone().count() == phrases.len()
                        && p.zip(phrases).all(|(a, b)| a == b)
                })
            }) && given.next().is_none()
        };
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = sets.get(&key)
            && let Some((_, set)) = bucket.iter().find(|(g, _)| same(g))
        {
            return Ok(set.clone());
        }
        let owned: Groups = groups
            .map(|(n, p)| (n.to_owned(), p.map(str::to_owned).collect()))
            .collect();
        let set = Arc::new(KeywordSet::new(owned.clone())?);
        if sets.len() >= MAX_CACHED_SETS {
            sets.clear();
        }
        sets.entry(key).or_default().push((owned, set.clone()));
        Ok(set)
    }

    /// How many sets are cached (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(Vec::len)
            .sum()
    }
}

/// A deadline written in the text, as found: `1/6`, `1月6日`, `6日までに`,
/// `by friday`, `by tomorrow`, `by the 14th`, `by jan 6`. Works on
/// normalised text (full-width digits are plain digits by then).
pub fn find_deadline(normalized: &str) -> Option<String> {
    let chars: Vec<char> = normalized.chars().collect();
    let s = |a: usize, b: usize| chars[a..b].iter().collect::<String>();
    let digits_from = |mut i: usize| {
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        (start, i)
    };
    let number = |a: usize, b: usize| s(a, b).parse::<u32>().ok();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_digit()) {
            let (a, b) = digits_from(i);
            let first = number(a, b);
            // m/d, not part of a longer fraction or date with a year.
            if b < chars.len() && chars[b] == '/' {
                let (c2, d2) = digits_from(b + 1);
                let month_day = first.is_some_and(|m| (1..=12).contains(&m))
                    && number(c2, d2).is_some_and(|d| (1..=31).contains(&d))
                    && d2 - c2 <= 2
                    && !(d2 < chars.len() && chars[d2] == '/')
                    && !(a > 0 && chars[a - 1] == '/');
                if month_day && b - a <= 2 {
                    return Some(s(a, d2));
                }
            }
            // 1月6日 / 6日までに / 6日中
            if b < chars.len() && chars[b] == '月' {
                let (c2, d2) = digits_from(b + 1);
                if d2 > c2 && d2 < chars.len() && chars[d2] == '日' {
                    return Some(s(a, d2 + 1));
                }
            }
            if b < chars.len() && chars[b] == '日' {
                let rest = s(b + 1, chars.len());
                if rest.starts_with("まで") || rest.starts_with("中") {
                    let end = b + 1 + if rest.starts_with("までに") { 3 } else { 2 };
                    return Some(s(a, end.min(chars.len())));
                }
            }
            i = b;
            continue;
        }
        i += 1;
    }
    // 明日までに, 金曜日までに, 今週中
    for marker in ["までに", "まで に"] {
        if let Some(pos) = normalized.find(marker) {
            let before: Vec<char> = normalized[..pos].chars().collect();
            if before.last().is_some_and(|c| *c == '日' || *c == '末') {
                let start = before.len().saturating_sub(3);
                let phrase: String = before[start..].iter().collect();
                return Some(format!("{phrase}{marker}"));
            }
        }
    }
    for phrase in ["今週中", "明日中", "週末まで"] {
        if normalized.contains(phrase) {
            return Some(phrase.to_owned());
        }
    }
    // English: "by <day>".
    const DAYS: &[&str] = &[
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "tomorrow",
        "tonight",
        "today",
        "the end of the week",
        "end of the week",
        "the weekend",
        "next week",
        "mon ",
        "tue ",
        "wed ",
        "thu ",
        "fri ",
        "sat ",
        "sun ",
    ];
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let padded = format!("{normalized} ");
    let mut from = 0;
    while let Some(found) = padded[from..].find("by ") {
        let at = from + found;
        from = at + 3;
        if at > 0
            && padded[..at]
                .chars()
                .last()
                .is_some_and(char::is_alphanumeric)
        {
            continue;
        }
        let rest = &padded[at + 3..];
        if let Some(day) = DAYS.iter().find(|d| rest.starts_with(*d)) {
            return Some(format!("by {}", day.trim()));
        }
        // by the 14th / by 14th
        let r = rest.strip_prefix("the ").unwrap_or(rest);
        let n: String = r.chars().take_while(char::is_ascii_digit).collect();
        if !n.is_empty() {
            let after = &r[n.len()..];
            if ["st", "nd", "rd", "th"]
                .iter()
                .any(|x| after.starts_with(x))
            {
                return Some(format!("by {}", &rest[..rest.len() - after.len() + 2]));
            }
        }
        // by jan 6 / by january 6th
        if let Some(m) = MONTHS.iter().find(|m| rest.starts_with(*m)) {
            let word: String = rest.chars().take_while(|c| c.is_alphabetic()).collect();
            let tail = rest[word.len()..].trim_start();
            if tail.starts_with(|c: char| c.is_ascii_digit()) {
                let n: String = tail.chars().take_while(char::is_ascii_digit).collect();
                return Some(format!("by {word} {n}"));
            }
            let _ = m;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_normalize_folds_width_and_case() {
        assert_eq!(normalize("ＡＳＡＰ"), "asap");
        assert_eq!(normalize("ｷｭｳ"), "キュウ");
        assert_eq!(normalize("至急"), "至急");
    }

    #[test]
    fn rules_keyword_set_prefers_longest_phrase() {
        let set = KeywordSet::new([
            ("urgent".to_owned(), vec!["urgent", "急ぎ"]),
            ("calm".to_owned(), vec!["not urgent", "急ぎません"]),
        ])
        .unwrap();
        let hits = set.find("It is NOT URGENT. 急ぎません");
        assert_eq!(hits[0], ("urgent".into(), vec![]));
        assert_eq!(hits[1].1, vec!["not urgent", "急ぎません"]);
        let hits = set.find("ＵＲＧＥＮＴ please, 急ぎです");
        assert_eq!(hits[0].1, vec!["urgent", "急ぎ"]);
    }

    #[test]
    fn rules_keyword_cache_builds_once() {
        let cache = KeywordCache::default();
        let g = || vec![("a".to_owned(), vec!["x".to_owned(), "y".to_owned()])];
        let one = cache.get(g()).unwrap();
        let two = cache.get(g()).unwrap();
        assert!(Arc::ptr_eq(&one, &two));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn rules_deadlines() {
        let f = |t: &str| find_deadline(&normalize(t));
        assert_eq!(f("please deliver on １／６"), Some("1/6".into()));
        assert_eq!(f("1月6日に届けてください"), Some("1月6日".into()));
        assert_eq!(f("6日までにお願いします"), Some("6日までに".into()));
        assert_eq!(f("金曜日までにお願いします"), Some("金曜日までに".into()));
        assert_eq!(f("I need it by Friday"), Some("by friday".into()));
        assert_eq!(f("can it come by the 14th?"), Some("by the 14th".into()));
        assert_eq!(f("by Jan 6 please"), Some("by jan 6".into()));
        assert_eq!(f("the table is 120/80 cm"), None);
        assert_eq!(f("nearby shop, no rush"), None);
        assert_eq!(f("order 2026/11/25"), None);
    }
}
