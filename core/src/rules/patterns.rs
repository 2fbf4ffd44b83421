//! Text patterns for rules: regular expressions, compiled once.
//!
//! Some things customers write are shapes rather than words: a postal code
//! (`150-0001`), a quantity (`2台`, `x2`, `3 chairs`), an order number. A
//! rule that looked for them character by character in Rhai ran hundreds
//! of interpreted steps per message; `has_pattern(text, PATTERN)` and
//! `find_pattern(text, PATTERN)` do it in one native pass.
//!
//! Patterns use the syntax of the `regex` crate, which matches in time
//! linear in the text whatever the pattern, so a pattern cannot run away.
//! The text is normalised first, as for keywords ([`normalize`]: NFKC,
//! then lower case), so `１５０－０００１` is `150-0001` and `ＱＴＹ` is
//! `qty`: write patterns in that form. The pattern itself is taken as
//! written (lower-casing it would turn `\S` into `\s`).
//!
//! Every pattern a rule file passes as written (a string literal, or a
//! top-level `const` holding one) is compiled when the rule set is, so a
//! broken one is a compile error with its place; a pattern built while a
//! rule runs is compiled on first use. Either way the compiled form is
//! kept by its text in the rule set's [`PatternCache`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use regex::Regex;
use rhai::{AST, Dynamic, Expr};

use super::keywords::normalize;
use super::syntax;

/// The helpers that take a pattern as their second argument.
pub(crate) const PATTERN_HELPERS: [&str; 2] = ["has_pattern", "find_pattern"];

/// More distinct patterns than this means a rule builds them from data;
/// beyond it, a new pattern is compiled for its call and not kept.
const MAX_CACHED_PATTERNS: usize = 256;

/// A compiled pattern.
#[derive(Debug)]
pub struct Pattern {
    regex: Regex,
}

impl Pattern {
    /// Compile `pattern`; the error is the `regex` crate's own account of
    /// what is wrong and where.
    pub fn new(pattern: &str) -> Result<Pattern, String> {
        Regex::new(pattern)
            .map(|regex| Pattern { regex })
            .map_err(|e| format!("`{pattern}` is not a valid pattern: {e}"))
    }

    /// True when the normalised `text` has a match.
    ///
    /// ```
    /// use casework_core::rules::Pattern;
    /// let postal = Pattern::new(r"(?:^|[^0-9])[0-9]{3}-[0-9]{4}(?:[^0-9]|$)").unwrap();
    /// assert!(postal.is_in("〒１５０－０００１ 東京都"));
    /// assert!(!postal.is_in("order 1150-00012"));
    /// ```
    pub fn is_in(&self, text: &str) -> bool {
        self.regex.is_match(&normalize(text))
    }

    /// The first match in the normalised `text`.
    pub fn find_in(&self, text: &str) -> Option<String> {
        self.regex
            .find(&normalize(text))
            .map(|m| m.as_str().to_owned())
    }
}

/// A rule set's compiled patterns, by their text.
#[derive(Debug, Default)]
pub struct PatternCache {
    compiled: RwLock<HashMap<String, Arc<Pattern>>>,
}

impl PatternCache {
    /// The compiled `pattern`, compiling it on first use.
    pub fn get(&self, pattern: &str) -> Result<Arc<Pattern>, String> {
        let known = self.compiled.read().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = known.get(pattern) {
            return Ok(found.clone());
        }
        let full = known.len() >= MAX_CACHED_PATTERNS;
        drop(known);
        let compiled = Arc::new(Pattern::new(pattern)?);
        if !full {
            self.compiled
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pattern.to_owned(), compiled.clone());
        }
        Ok(compiled)
    }

    /// How many patterns are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.compiled.read().map_or(0, |m| m.len())
    }
}

/// A pattern a file passes as written to one of [`PATTERN_HELPERS`].
pub(crate) struct WrittenPattern {
    pub text: String,
    /// Where it is passed.
    pub at: rhai::Position,
    /// The top-level constant that holds it, when it is passed by name.
    pub constant: Option<String>,
}

/// The patterns a file passes as written to [`PATTERN_HELPERS`]: string
/// literals, and names of top-level constants, resolved through
/// `constant` (a name it does not know is left for run time).
pub(crate) fn written_patterns(
    ast: &AST,
    constant: impl Fn(&str) -> Option<Dynamic>,
) -> Vec<WrittenPattern> {
    let mut found = Vec::new();
    syntax::each_call(ast, |name, arg| {
        if !PATTERN_HELPERS.contains(&name) {
            return;
        }
        let written = match arg {
            Some(Expr::StringConstant(text, at)) => Some(WrittenPattern {
                text: text.to_string(),
                at: *at,
                constant: None,
            }),
            Some(Expr::DynamicConstant(value, at)) => value
                .clone()
                .into_immutable_string()
                .ok()
                .map(|text| WrittenPattern {
                    text: text.to_string(),
                    at: *at,
                    constant: None,
                }),
            Some(var @ Expr::Variable(name, ..)) => constant(&name.1)
                .and_then(|value| value.into_immutable_string().ok())
                .map(|text| WrittenPattern {
                    text: text.to_string(),
                    at: var.position(),
                    constant: Some(name.1.to_string()),
                }),
            _ => None,
        };
        found.extend(written);
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_is_compiled_once_and_kept_by_its_text() {
        let cache = PatternCache::default();
        let a = cache.get("[0-9]+台").unwrap();
        let b = cache.get("[0-9]+台").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.len(), 1);
        assert!(a.is_in("椅子を２台"), "full-width digits are normalised");
        assert_eq!(a.find_in("椅子を２台と机").as_deref(), Some("2台"));
    }

    #[test]
    fn a_broken_pattern_says_what_is_wrong() {
        let err = PatternCache::default().get("(unclosed").unwrap_err();
        assert!(err.contains("`(unclosed` is not a valid pattern"), "{err}");
        assert!(err.contains("unclosed group"), "{err}");
    }

    #[test]
    fn the_cache_stops_growing_at_its_bound() {
        let cache = PatternCache::default();
        for i in 0..MAX_CACHED_PATTERNS + 10 {
            assert!(
                cache
                    .get(&format!("x{i}y"))
                    .unwrap()
                    .is_in(&format!("ax{i}yb"))
            );
        }
        assert_eq!(cache.len(), MAX_CACHED_PATTERNS);
    }
}
