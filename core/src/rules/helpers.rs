//! The helper functions rules call, grouped by concept.
//!
//! Dates are a registered `Date` type (a calendar day) and moments a
//! `Time` type (an instant with its UTC offset); both compare with
//! `== != < <= > >=`, print as ISO 8601 (`2027-01-06`,
//! `2026-11-25T10:00:00+09:00`) and turn into those strings in action
//! params. Write literal days as `date("2027-01-06")`.

use rhai::plugin::*;

/// Days and moments: parsing, arithmetic, business days.
#[export_module]
pub mod dates {
    use chrono::{Datelike, Days, Duration, NaiveDate, Weekday};
    use rhai::{Dynamic, EvalAltResult};

    use crate::Timestamp;
    use crate::rules::views::{context, script_error};

    pub type Date = NaiveDate;
    pub type Time = Timestamp;

    /// A day from `YYYY-MM-DD`.
    #[rhai_fn(return_raw)]
    pub fn date(text: &str) -> Result<Date, Box<EvalAltResult>> {
        text.trim().parse::<NaiveDate>().map_err(|_| {
            script_error(format!(
                "`{text}` is not a day; write it as YYYY-MM-DD, e.g. date(\"2027-01-06\")"
            ))
        })
    }

    /// A day from `YYYY-MM-DD`, or `()` when the text is not one.
    pub fn parse_date(text: &str) -> Dynamic {
        text.trim()
            .parse::<NaiveDate>()
            .map_or(Dynamic::UNIT, Dynamic::from)
    }

    /// A moment from RFC 3339 (`2026-11-25T10:00:00+09:00`).
    #[rhai_fn(return_raw)]
    pub fn time(text: &str) -> Result<Time, Box<EvalAltResult>> {
        chrono::DateTime::parse_from_rfc3339(text.trim()).map_err(|_| {
            script_error(format!(
                "`{text}` is not a moment; write it as RFC 3339, e.g. 2026-11-25T10:00:00+09:00"
            ))
        })
    }

    /// The moment the rule runs at (the engine's clock, not the wall clock).
    #[rhai_fn(return_raw)]
    pub fn now() -> Result<Time, Box<EvalAltResult>> {
        Ok(context()?.now)
    }

    /// Today, in the UTC offset the engine's clock gives.
    #[rhai_fn(return_raw)]
    pub fn today() -> Result<Date, Box<EvalAltResult>> {
        Ok(context()?.now.date_naive())
    }

    #[rhai_fn(name = "add_days", return_raw)]
    pub fn add_days(day: Date, n: i64) -> Result<Date, Box<EvalAltResult>> {
        let moved = if n >= 0 {
            day.checked_add_days(Days::new(n.unsigned_abs()))
        } else {
            day.checked_sub_days(Days::new(n.unsigned_abs()))
        };
        moved.ok_or_else(|| script_error(format!("{day} plus {n} days is out of range")))
    }

    /// Days from `a` to `b` (negative when `b` is earlier).
    pub fn days_between(a: Date, b: Date) -> i64 {
        (b - a).num_days()
    }

    #[rhai_fn(get = "year", pure)]
    pub fn year(day: &mut Date) -> i64 {
        i64::from(day.year())
    }
    #[rhai_fn(get = "month", pure)]
    pub fn month(day: &mut Date) -> i64 {
        i64::from(day.month())
    }
    #[rhai_fn(get = "day", pure)]
    pub fn day_of_month(day: &mut Date) -> i64 {
        i64::from(day.day())
    }

    /// `mon` .. `sun`.
    #[rhai_fn(get = "weekday", pure)]
    pub fn weekday(day: &mut Date) -> String {
        match day.weekday() {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
        .to_owned()
    }

    #[rhai_fn(name = "earliest")]
    pub fn earliest_date(a: Date, b: Date) -> Date {
        a.min(b)
    }
    #[rhai_fn(name = "latest")]
    pub fn latest_date(a: Date, b: Date) -> Date {
        a.max(b)
    }

    #[rhai_fn(name = "==")]
    pub fn date_eq(a: Date, b: Date) -> bool {
        a == b
    }
    #[rhai_fn(name = "!=")]
    pub fn date_ne(a: Date, b: Date) -> bool {
        a != b
    }
    #[rhai_fn(name = "<")]
    pub fn date_lt(a: Date, b: Date) -> bool {
        a < b
    }
    #[rhai_fn(name = "<=")]
    pub fn date_le(a: Date, b: Date) -> bool {
        a <= b
    }
    #[rhai_fn(name = ">")]
    pub fn date_gt(a: Date, b: Date) -> bool {
        a > b
    }
    #[rhai_fn(name = ">=")]
    pub fn date_ge(a: Date, b: Date) -> bool {
        a >= b
    }
    /// `2027-01-06`: the form reasons and actions carry.
    #[rhai_fn(name = "to_string", name = "to_debug", pure)]
    pub fn date_to_string(day: &mut Date) -> String {
        super::iso_date(*day)
    }

    /// The calendar day of a moment, in its own UTC offset.
    #[rhai_fn(get = "date", pure)]
    pub fn time_date(t: &mut Time) -> Date {
        t.date_naive()
    }

    /// The calendar day of a moment in a time zone (`Asia/Tokyo`).
    #[rhai_fn(return_raw)]
    pub fn date_in(t: Time, tz: &str) -> Result<Date, Box<EvalAltResult>> {
        let zone: chrono_tz::Tz = tz.parse().map_err(|_| {
            script_error(format!(
                "`{tz}` is not a time zone; use an IANA name such as Asia/Tokyo"
            ))
        })?;
        Ok(t.with_timezone(&zone).date_naive())
    }

    #[rhai_fn(name = "add_hours")]
    pub fn add_hours(t: Time, n: i64) -> Time {
        t + Duration::hours(n.clamp(-1_000_000, 1_000_000))
    }
    #[rhai_fn(name = "add_minutes")]
    pub fn add_minutes(t: Time, n: i64) -> Time {
        t + Duration::minutes(n.clamp(-60_000_000, 60_000_000))
    }
    #[rhai_fn(name = "add_days")]
    pub fn add_days_to_time(t: Time, n: i64) -> Time {
        t + Duration::days(n.clamp(-100_000, 100_000))
    }

    /// Whole hours from `a` to `b` (negative when `b` is earlier).
    pub fn hours_between(a: Time, b: Time) -> i64 {
        (b - a).num_hours()
    }
    /// Whole minutes from `a` to `b`.
    pub fn minutes_between(a: Time, b: Time) -> i64 {
        (b - a).num_minutes()
    }

    #[rhai_fn(name = "==")]
    pub fn time_eq(a: Time, b: Time) -> bool {
        a == b
    }
    #[rhai_fn(name = "!=")]
    pub fn time_ne(a: Time, b: Time) -> bool {
        a != b
    }
    #[rhai_fn(name = "<")]
    pub fn time_lt(a: Time, b: Time) -> bool {
        a < b
    }
    #[rhai_fn(name = "<=")]
    pub fn time_le(a: Time, b: Time) -> bool {
        a <= b
    }
    #[rhai_fn(name = ">")]
    pub fn time_gt(a: Time, b: Time) -> bool {
        a > b
    }
    #[rhai_fn(name = ">=")]
    pub fn time_ge(a: Time, b: Time) -> bool {
        a >= b
    }
    #[rhai_fn(name = "to_string", name = "to_debug", pure)]
    pub fn time_to_string(t: &mut Time) -> String {
        t.to_rfc3339()
    }

    // Business days, counted on the configured calendars (the default one
    // unless a calendar name is given).

    #[rhai_fn(name = "add_business_days", return_raw)]
    pub fn add_business_days(day: Date, n: i64) -> Result<Date, Box<EvalAltResult>> {
        add_business_days_in(day, n, "")
    }
    #[rhai_fn(name = "add_business_days", return_raw)]
    pub fn add_business_days_in(
        day: Date,
        n: i64,
        calendar: &str,
    ) -> Result<Date, Box<EvalAltResult>> {
        let ctx = context()?;
        let cal = ctx.shared.calendar(calendar)?;
        cal.add_business_days(day, n)
            .ok_or_else(|| script_error(format!("{day} plus {n} business days is out of range")))
    }
    #[rhai_fn(name = "business_days_between", return_raw)]
    pub fn business_days_between(a: Date, b: Date) -> Result<i64, Box<EvalAltResult>> {
        business_days_between_in(a, b, "")
    }
    #[rhai_fn(name = "business_days_between", return_raw)]
    pub fn business_days_between_in(
        a: Date,
        b: Date,
        calendar: &str,
    ) -> Result<i64, Box<EvalAltResult>> {
        Ok(context()?
            .shared
            .calendar(calendar)?
            .business_days_between(a, b))
    }
    #[rhai_fn(name = "is_business_day", return_raw)]
    pub fn is_business_day(day: Date) -> Result<bool, Box<EvalAltResult>> {
        is_business_day_in(day, "")
    }
    #[rhai_fn(name = "is_business_day", return_raw)]
    pub fn is_business_day_in(day: Date, calendar: &str) -> Result<bool, Box<EvalAltResult>> {
        Ok(context()?.shared.calendar(calendar)?.is_business_day(day))
    }
}

/// Text: normalisation, keyword matching, deadlines.
#[export_module]
pub mod text {
    use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, Map};

    use crate::rules::keywords::{self, Keywords};
    use crate::rules::views::{context, script_error};

    /// NFKC + lower case: `ＵＲＧＥＮＴ` → `urgent`, `ｼｷｭｳ` → `シキュウ`.
    pub fn normalize(text: &str) -> String {
        keywords::normalize(text)
    }

    /// True when `text` contains `phrase`, both normalised.
    pub fn mentions(text: &str, phrase: &str) -> bool {
        let needle = keywords::normalize(phrase);
        !needle.is_empty() && keywords::normalize(text).contains(&needle)
    }

    /// Match groups of phrases in one pass:
    /// `match_keywords(text, #{ billing: ["refund", "返金"], ... })`
    /// returns `#{ billing: ["返金"], ... }` (every group, empty when
    /// nothing matched). The groups are compiled once and cached by content.
    #[rhai_fn(name = "match_keywords", return_raw)]
    pub fn match_keywords(text: &str, groups: Map) -> Result<Map, Box<EvalAltResult>> {
        let mut spec: Vec<(&str, Vec<ImmutableString>)> = Vec::with_capacity(groups.len());
        for (name, phrases) in &groups {
            spec.push((name.as_str(), super::phrase_list(name, phrases)?));
        }
        let set = context()?
            .shared
            .keywords
            .get_with(spec.iter().map(|(g, p)| (*g, p.iter().map(|s| s.as_str()))))
            .map_err(script_error)?;
        Ok(super::hits_to_map(&set, text))
    }

    /// Match the keyword groups declared in `settings.keywords.<name>`
    /// (compiled when the rule set is).
    #[rhai_fn(name = "match_keywords", return_raw)]
    pub fn match_named_keywords(text: &str, name: &str) -> Result<Map, Box<EvalAltResult>> {
        let ctx = context()?;
        let set = ctx.shared.named_keywords.get(name).ok_or_else(|| {
            script_error(format!(
                "no keyword groups named `{name}`; declare them under settings.keywords.{name}"
            ))
        })?;
        Ok(super::hits_to_map(set, text))
    }

    /// Match a keyword constant of the file (`const TOPICS = #{ .. };`),
    /// compiled when the rule set was: `match_keywords(text, TOPICS)`.
    #[rhai_fn(name = "match_keywords", return_raw)]
    pub fn match_declared_keywords(
        text: &str,
        keywords: Keywords,
    ) -> Result<Map, Box<EvalAltResult>> {
        if !keywords.is_grouped() {
            return Err(script_error(
                "match_keywords needs named groups (`const WORDS = #{ group: [..] }`); for one \
                 list of phrases use `matches(text, WORDS)`",
            ));
        }
        Ok(super::hits_to_map(keywords.set(), text))
    }

    /// True when the normalised `text` matches `pattern` (the `regex`
    /// crate's syntax; write it in lower case, with ASCII digits):
    /// `has_pattern(text, POSTAL_CODE)`. A pattern written in the file is
    /// compiled with the rule set; see [`crate::rules::Pattern`].
    #[rhai_fn(return_raw)]
    pub fn has_pattern(text: &str, pattern: &str) -> Result<bool, Box<EvalAltResult>> {
        Ok(super::compiled_pattern(pattern)?.is_in(text))
    }

    /// The first match of `pattern` in the normalised `text`, or `()`.
    #[rhai_fn(return_raw)]
    pub fn find_pattern(text: &str, pattern: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        let found = super::compiled_pattern(pattern)?.find_in(text);
        Ok(found.map_or(Dynamic::UNIT, Dynamic::from))
    }

    /// The phrases of a keyword constant found in `text`, as written (for
    /// named groups, the phrases of every group, group after group).
    #[rhai_fn(name = "matches")]
    pub fn matches_declared(text: &str, keywords: Keywords) -> Array {
        keywords
            .set()
            .found(text)
            .into_iter()
            .flatten()
            .map(|phrase| phrase.to_owned().into())
            .collect()
    }

    /// `WORDS.billing` / `WORDS["billing"]`: one group of named groups, as
    /// a keyword list of its own (compiled with the constant, so
    /// `matches(text, WORDS.billing)` rebuilds nothing); `()` for a group
    /// the constant does not have.
    #[rhai_fn(index_get, pure)]
    pub fn keyword_group(keywords: &mut Keywords, group: &str) -> Dynamic {
        keywords
            .group(group)
            .map_or(Dynamic::UNIT, |part| Dynamic::from(part.clone()))
    }

    /// `WORDS[i]`: the phrase at `i` of a list (from the end when negative).
    #[rhai_fn(index_get, pure, return_raw)]
    pub fn keyword_at(keywords: &mut Keywords, i: i64) -> Result<String, Box<EvalAltResult>> {
        let all: Vec<&str> = keywords.all_phrases().collect();
        let n = all.len() as i64;
        let at = if i < 0 { n + i } else { i };
        if (0..n).contains(&at) {
            Ok(all[at as usize].to_owned())
        } else {
            Err(script_error(format!(
                "index {i} is outside the {n} phrases of this keyword list"
            )))
        }
    }

    /// How many phrases (or, for named groups, how many groups).
    #[rhai_fn(name = "len", pure)]
    pub fn keywords_len(keywords: &mut Keywords) -> i64 {
        if keywords.is_grouped() {
            keywords.groups().len() as i64
        } else {
            keywords.all_phrases().count() as i64
        }
    }

    /// True when the list holds `phrase` as written (for named groups:
    /// when there is a group of that name).
    #[rhai_fn(name = "contains", pure)]
    pub fn keywords_contain(keywords: &mut Keywords, phrase: &str) -> bool {
        if keywords.is_grouped() {
            keywords.groups().iter().any(|(name, _)| name == phrase)
        } else {
            keywords.all_phrases().any(|p| p == phrase)
        }
    }

    /// Every phrase as a plain list, to change or combine.
    #[rhai_fn(name = "to_array", pure)]
    pub fn keywords_to_array(keywords: &mut Keywords) -> Array {
        keywords
            .all_phrases()
            .map(|p| Dynamic::from(p.to_owned()))
            .collect()
    }

    /// `LIST + [..]` and `[..] + LIST`: a plain list of both.
    #[rhai_fn(name = "+")]
    pub fn keywords_then_array(keywords: Keywords, more: Array) -> Array {
        let mut all: Array = keywords
            .all_phrases()
            .map(|p| Dynamic::from(p.to_owned()))
            .collect();
        all.extend(more);
        all
    }

    #[rhai_fn(name = "+")]
    pub fn array_then_keywords(mut list: Array, keywords: Keywords) -> Array {
        list.extend(keywords.all_phrases().map(|p| Dynamic::from(p.to_owned())));
        list
    }

    #[rhai_fn(name = "to_string", name = "to_debug", pure)]
    pub fn keywords_to_string(keywords: &mut Keywords) -> String {
        if keywords.is_grouped() {
            let names: Vec<&str> = keywords.groups().iter().map(|(n, _)| n.as_str()).collect();
            format!("keywords #{{ {} }}", names.join(", "))
        } else {
            format!(
                "keywords [{}]",
                keywords.all_phrases().collect::<Vec<_>>().join(", ")
            )
        }
    }

    /// The phrases of `phrases` found in `text`, as written in the list.
    #[rhai_fn(return_raw)]
    pub fn matches(text: &str, phrases: Array) -> Result<Array, Box<EvalAltResult>> {
        let list = super::phrase_list("list", &Dynamic::from_array(phrases))?;
        let set = context()?
            .shared
            .keywords
            .get_with(std::iter::once(("", list.iter().map(|s| s.as_str()))))
            .map_err(script_error)?;
        Ok(set
            .found(text)
            .into_iter()
            .flatten()
            .map(|phrase| phrase.to_owned().into())
            .collect())
    }

    /// A deadline written in the text (`1/6`, `1月6日`, `6日までに`,
    /// `by friday`, `by the 14th`), as found, or `()`.
    pub fn find_deadline(text: &str) -> Dynamic {
        keywords::find_deadline(&keywords::normalize(text)).map_or(Dynamic::UNIT, Dynamic::from)
    }

    /// Join the items of a list into one text.
    pub fn join(items: Array, separator: &str) -> String {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(separator)
    }
}

/// The running rule set's compiled `pattern` (compiled now if the files
/// did not write it out).
fn compiled_pattern(
    pattern: &str,
) -> Result<std::sync::Arc<crate::rules::Pattern>, Box<rhai::EvalAltResult>> {
    crate::rules::views::context()?
        .shared
        .patterns
        .get(pattern)
        .map_err(crate::rules::views::script_error)
}

/// A day as ISO 8601 (`2027-01-06`), written digit by digit: a promise
/// check puts dates into most of its reasons, and chrono's `Display` goes
/// through the formatting machinery for each of them. Years outside
/// 0..=9999 (which need a sign or a fifth digit) are left to chrono.
fn iso_date(day: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    let Ok(year) = u32::try_from(day.year()) else {
        return day.to_string();
    };
    if year > 9999 {
        return day.to_string();
    }
    let digit = |n: u32| char::from(b'0' + (n % 10) as u8);
    let mut out = String::with_capacity(10);
    out.extend([year / 1000, year / 100, year / 10, year].map(digit));
    out.push('-');
    out.extend([day.month() / 10, day.month()].map(digit));
    out.push('-');
    out.extend([day.day() / 10, day.day()].map(digit));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_dates_read_as_chrono_writes_them() {
        let mut day = chrono::NaiveDate::from_ymd_opt(1999, 12, 1).unwrap();
        while day.to_string() != "2031-01-01" {
            assert_eq!(super::iso_date(day), day.to_string());
            day = day.succ_opt().unwrap();
        }
        for (y, m, d) in [
            (0, 1, 1),
            (7, 3, 9),
            (9999, 12, 31),
            (10000, 1, 1),
            (-1, 6, 15),
        ] {
            let day = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(super::iso_date(day), day.to_string());
        }
    }
}

/// Every group of `set`, with the phrases found in `text` (an empty
/// list when none was).
fn hits_to_map(set: &super::KeywordSet, text: &str) -> rhai::Map {
    set.groups()
        .iter()
        .zip(set.found(text))
        .map(|(group, found)| {
            let found: rhai::Array = found.into_iter().map(|p| p.to_owned().into()).collect();
            (group.as_str().into(), rhai::Dynamic::from_array(found))
        })
        .collect()
}

/// The phrases of a group: a list of texts, or one text. Strings are
/// shared, not copied.
fn phrase_list(
    group: &str,
    phrases: &rhai::Dynamic,
) -> Result<Vec<rhai::ImmutableString>, Box<rhai::EvalAltResult>> {
    if phrases.is_string() {
        return Ok(vec![phrases.clone().into_immutable_string()?]);
    }
    let Some(array) = phrases.read_lock::<rhai::Array>() else {
        return Err(crate::rules::views::script_error(format!(
            "keyword group `{group}` must be a list of phrases, not {}",
            phrases.type_name()
        )));
    };
    array
        .iter()
        .map(|p| {
            p.clone().into_immutable_string().map_err(|_| {
                crate::rules::views::script_error(format!(
                    "keyword group `{group}` holds a {} where a phrase (text) was expected",
                    p.type_name()
                ))
            })
        })
        .collect()
}

/// Promises: due moments and the actions a check may request.
#[export_module]
pub mod promises {
    use rhai::{Dynamic, EvalAltResult, Map};

    use crate::Timestamp;
    use crate::rules::views::PromiseView;

    /// Whole hours until the promise is due (negative once it is past),
    /// or `()` when it has no due moment.
    #[rhai_fn(return_raw)]
    pub fn hours_until_due(p: PromiseView, now: Timestamp) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(p.get()?.due_at().map_or(Dynamic::UNIT, |due| {
            Dynamic::from_int((due - now).num_hours())
        }))
    }

    /// True once the due moment has passed.
    #[rhai_fn(return_raw)]
    pub fn is_overdue(p: PromiseView, now: Timestamp) -> Result<bool, Box<EvalAltResult>> {
        Ok(p.get()?.due_at().is_some_and(|due| now >= due))
    }

    /// An action for a check's `actions` list: `action("team.notify", #{ agent: "jo" })`.
    pub fn action(name: &str, params: Map) -> Map {
        let mut map = Map::new();
        map.insert("action".into(), Dynamic::from(name.to_owned()));
        map.insert("params".into(), Dynamic::from_map(params));
        map
    }
}

/// Contact counts across the customer's cases, as the engine counted them.
#[export_module]
pub mod customers {
    use rhai::EvalAltResult;

    use crate::rules::views::CaseView;

    /// Every contact from this customer, over all their cases.
    #[rhai_fn(name = "contacts", return_raw)]
    pub fn contacts(c: CaseView) -> Result<i64, Box<EvalAltResult>> {
        Ok(i64::from(c.stats.get()?.contacts))
    }

    /// Contacts from this customer through one channel (`phone`, `email`, ...).
    #[rhai_fn(name = "contacts", return_raw)]
    pub fn contacts_by(c: CaseView, channel: &str) -> Result<i64, Box<EvalAltResult>> {
        let stats = c.stats.get()?;
        let channel: Option<crate::case::Channel> =
            serde_json::from_value(serde_json::Value::String(channel.to_owned())).ok();
        Ok(channel
            .and_then(|ch| stats.by_channel.get(&ch))
            .map_or(0, |n| i64::from(*n)))
    }
}
