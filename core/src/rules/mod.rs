//! The rules host: Rhai rules written by ops, compiled once, run sandboxed.
//!
//! A [`RuleSet`] is the compiled, immutable form of the rule files (plus
//! the workflow's guard expressions). The engine calls it through four
//! entry points — [`route`](RuleSet::route), [`urgency`](RuleSet::urgency),
//! [`check_promise`](RuleSet::check_promise) and [`guard`](RuleSet::guard)
//! — and every verdict names the rule that made it ([`RuleRef`]: file,
//! function, line, file hash). [`Rules`] holds the current set and swaps
//! in a new one on reload, refusing a broken file.
//!
//! # Writing rules
//!
//! A rule file defines plain Rhai functions. The well-known ones are:
//!
//! | function                | returns |
//! |-------------------------|---------|
//! | `route(c, event)`       | a team name, `#{ team, skill, agent, reason }`, or `()` for no change |
//! | `urgency(c, event)`     | `#{ level: "low"/"normal"/"high"/"urgent", score, reasons: [..] }` |
//! | `check_promise(p, c, now)` | `#{ status: "pending"/"at_risk"/"kept"/"broken", reason, actions: [#{ action, params }] }` |
//!
//! The case arrives as **`c`**: `case` is a reserved word in Rhai. `event`
//! is `()` when the rule runs without one (a timer tick). Inside every
//! function two read-only values are also visible: `settings` (the
//! `rules.settings` map of the configuration) and `directory` (teams,
//! skills, agents). Only the functions run; a file's top-level statements
//! never do. Of the file's top level, functions see its `const`s whose
//! value is written out (text, numbers, lists, maps), read-only; put
//! values ops tune in `settings`. Helper functions are visible within
//! their own file (guards see the functions and constants of every file);
//! a constant's name is unique in the pack.
//!
//! # Keyword lists
//!
//! Declare keyword lists once, as top-level constants, and pass them by
//! name: a list (`const CALM = ["no rush", "急ぎません"];`) or named groups
//! (`const TOPICS = #{ billing: ["refund", "返金"], sizing: ["サイズ"] };`)
//! is compiled into a [`Keywords`] automaton when the rule set is, so
//! `match_keywords(text, TOPICS)`, `matches(text, CALM)` and
//! `matches(text, TOPICS.billing)` cost one pass over the text. A list
//! written inside a function works the same but is rebuilt as a value on
//! every call; compiling warns about it (`rules::literal-keywords`, with
//! its place), and `casework check` shows the warning.
//!
//! # Patterns
//!
//! What customers write as a shape rather than a word (a postal code, a
//! quantity like `2台` or `x2`, an order number) is a pattern:
//! `has_pattern(text, POSTAL_CODE)` is true when the text has a match,
//! `find_pattern(text, POSTAL_CODE)` gives the first match or `()`.
//! Patterns use the syntax of the `regex` crate, which matches in time
//! linear in the text, and read the text normalised like keywords (NFKC,
//! lower case: `１５０－０００１` is `150-0001`), so write them in lower case
//! with ASCII digits; a back-tick string keeps `\s` and `\d` as written
//! (`` const POSTAL_CODE = `[0-9]{3}-[0-9]{4}`; ``). A pattern written in the
//! file, or held by a top-level `const`, is compiled when the rule set is,
//! and a broken one is refused with its place (`rules::pattern`); one
//! built while a rule runs is compiled on first use. One native pass
//! replaces a loop over the text's characters, which costs hundreds of
//! interpreted steps per message (see [`Pattern`]).
//!
//! Values: `c.id`, `c.state`, `c.team`, `c.agent`, `c.urgency`,
//! `c.urgency_score`, `c.tags`, `c.has_tag(t)`, `c.fields`, `c.field(k)`,
//! `c.contacts`, `c.contacts_since_reply` (customer contacts since our last
//! reply or call on this case), `c.customer` (`.name .email .phone .preferred_channel`,
//! and over all the customer's cases `.contacts .contacts_by(ch) .cases
//! .open_cases`), `c.messages`, `c.message_count`, `c.latest_text` (the
//! latest inbound message), `c.orders`, `c.order(id)` (`.planned_ship
//! .shipped_on .carrier_eta .held_until .delivered_at .backordered
//! .problem .tracking`), `c.promises`, `c.open_promises`, `c.promise(id)`;
//! `event.kind .text .channel .at .fields .field(k) .order`; a promise
//! `p.id .kind .date .window_from .window_to .by .due_at .order .status
//! .made_at .made_by .tz`. Missing values are `()`.
//!
//! Days are `Date` values and moments `Time` values; see
//! [`helpers`](self::helpers) for the functions on them (`date("2027-01-06")`,
//! `d.add_days(3)`, `days_between(a, b)`, `add_business_days(d, n)`,
//! `today()`, ...), on text (`normalize`, `match_keywords`, `matches`,
//! `has_pattern`, `find_pattern`, `find_deadline`) and on promises
//! (`hours_until_due`, `is_overdue`, `action`), and `classify(name,
//! text)` for the pack's learned classifiers (`#{ label, confidence,
//! runner_up, why }`, or `()` when unsure; see [`crate::classify`]).
//!
//! # Sandbox
//!
//! No `import`, no `eval`, no wall clock, no sleeping; limits on
//! operations, call depth, expression depth and string/array/map sizes
//! ([`Limits`], overridable by `rules.limits`). A rule that exceeds one
//! is stopped and reported as a [`RuleError::LimitExceeded`] naming the
//! rule, file and line; the engine then falls back.
//!
//! ```
//! use casework_core::config::{DirectoryDef, RulesDef, TeamDef};
//! use casework_core::diagnostic::SourceFile;
//! use casework_core::rules::{Calendars, RuleSet};
//!
//! let mut directory = DirectoryDef { fallback: "support".into(), ..Default::default() };
//! directory.teams.insert("support".into(), TeamDef::default());
//! let files = [SourceFile::new("rules/route.rhai", r#"fn route(c, event) { "support" }"#)];
//! let rules = RuleSet::compile(&files, &RulesDef::default(), &[], &directory, &Calendars::new())
//!     .expect("compiles");
//! assert_eq!(rules.hash().len(), 16);
//! ```

mod calendars;
mod classifiers;
mod convert;
mod engine;
pub mod helpers;
mod keywords;
mod patterns;
mod reload;
mod ruleset;
mod syntax;
mod views;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;

pub use calendars::{BusinessDays, Calendars, WeekdaysOnly};
pub use engine::Limits;
pub use keywords::{KeywordSet, Keywords, find_deadline, normalize};
pub use patterns::Pattern;
pub use reload::Rules;
pub use ruleset::{RuleFileText, RuleSet, RuleSetSource};

use crate::Timestamp;
use crate::audit::RuleRef;
use crate::case::{Case, Channel, UrgencyLevel};
use crate::config::ActionDef;
use crate::event::Event;
use crate::promise::PromiseStatus;

/// What a rule sees: the case, the event being handled (none for a timer
/// tick), the engine's clock, and the customer's contact counts.
#[derive(Clone, Copy, Debug)]
pub struct RuleInput<'a> {
    pub case: &'a Case,
    pub event: Option<&'a Event>,
    pub now: Timestamp,
    pub customer: &'a CustomerStats,
}

/// Contacts from one customer across all their cases, counted by the
/// engine (a rule sees one case; repeated contacts span several).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CustomerStats {
    /// Every contact (messages, calls, e-mails) over all cases.
    pub contacts: u32,
    pub by_channel: BTreeMap<Channel, u32>,
    /// Cases this customer has had, this one included.
    pub cases: u32,
    pub open_cases: u32,
}

/// The `route` rule's verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Route {
    pub team: String,
    pub skill: Option<String>,
    pub agent: Option<String>,
    pub reason: String,
    pub rule: RuleRef,
}

/// The `urgency` rule's verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UrgencyVerdict {
    pub level: UrgencyLevel,
    pub score: i64,
    pub reasons: Vec<String>,
    pub rule: RuleRef,
}

/// The `check_promise` rule's verdict, with the actions it suggests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PromiseCheck {
    pub status: PromiseStatus,
    pub reason: String,
    pub actions: Vec<ActionDef>,
    pub rule: RuleRef,
}

/// Why a rule gave no verdict. The engine falls back (fallback team,
/// urgency normal, promise unchanged) and records this.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RuleError {
    /// The script failed: a missing function, a wrong type, a `throw`.
    #[error("rule `{rule}` in {file}:{line} failed: {message}", line = line_or_q(*.line))]
    Runtime {
        rule: String,
        file: String,
        line: Option<usize>,
        message: String,
    },
    /// The script hit a sandbox limit and was stopped.
    #[error("rule `{rule}` in {file}:{line} {message}", line = line_or_q(*.line))]
    LimitExceeded {
        rule: String,
        file: String,
        line: Option<usize>,
        /// `operations`, `call_depth`, `string_size`, `array_size`, `map_size`.
        limit: String,
        message: String,
    },
    /// The script returned something the engine cannot use.
    #[error("rule `{rule}` in {file}:{line} returned a bad value: {message}", line = line_or_q(*.line))]
    BadReturn {
        rule: String,
        file: String,
        line: Option<usize>,
        message: String,
    },
}

fn line_or_q(line: Option<usize>) -> String {
    line.map_or_else(|| "?".to_owned(), |l| l.to_string())
}

impl RuleError {
    /// The rule (function or guard) that failed.
    pub fn rule(&self) -> &str {
        match self {
            RuleError::Runtime { rule, .. }
            | RuleError::LimitExceeded { rule, .. }
            | RuleError::BadReturn { rule, .. } => rule,
        }
    }

    /// The file it is written in.
    pub fn file(&self) -> &str {
        match self {
            RuleError::Runtime { file, .. }
            | RuleError::LimitExceeded { file, .. }
            | RuleError::BadReturn { file, .. } => file,
        }
    }

    /// The line the problem is on, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            RuleError::Runtime { line, .. }
            | RuleError::LimitExceeded { line, .. }
            | RuleError::BadReturn { line, .. } => *line,
        }
    }

    /// A short stable name of the variant, for decision records.
    pub fn kind(&self) -> &'static str {
        match self {
            RuleError::Runtime { .. } => "rule_runtime",
            RuleError::LimitExceeded { .. } => "rule_limit",
            RuleError::BadReturn { .. } => "rule_bad_return",
        }
    }
}
