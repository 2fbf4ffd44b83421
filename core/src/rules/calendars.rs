//! Business days for rules: the one place the rules host meets calendars.
//!
//! Rules count business days through [`BusinessDays`], so the rules host
//! does not depend on how calendars are built. `crate::calendar`'s
//! `BusinessCalendar` implements it (one `impl` block, below, once that
//! type lands); tests and configurations without calendars use
//! [`WeekdaysOnly`].

use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use indexmap::IndexMap;

/// What rules need from a business calendar. Days are calendar days in
/// the calendar's own time zone.
pub trait BusinessDays: Send + Sync + std::fmt::Debug {
    /// The day `n` business days after `day` (before it when `n < 0`);
    /// `None` when that leaves the calendar's range.
    fn add_business_days(&self, day: NaiveDate, n: i64) -> Option<NaiveDate>;
    /// Business days from `a` (excluded) to `b` (included); negative when
    /// `b` is before `a`.
    fn business_days_between(&self, a: NaiveDate, b: NaiveDate) -> i64;
    fn is_business_day(&self, day: NaiveDate) -> bool;
}

/// Calendars by name, as rules see them. The first one is the default
/// (used when a rule names none), unless `settings.calendar` names another.
pub type Calendars = IndexMap<String, Arc<dyn BusinessDays>>;

/// Monday to Friday, no holidays: the calendar rules count with when the
/// configuration has none.
#[derive(Clone, Copy, Debug, Default)]
pub struct WeekdaysOnly;

impl BusinessDays for WeekdaysOnly {
    fn add_business_days(&self, day: NaiveDate, n: i64) -> Option<NaiveDate> {
        step_business_days(self, day, n)
    }

    fn business_days_between(&self, a: NaiveDate, b: NaiveDate) -> i64 {
        count_business_days(self, a, b)
    }

    fn is_business_day(&self, day: NaiveDate) -> bool {
        !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
    }
}

/// Walk day by day; a year of holidays at most is skipped per step, so a
/// calendar with no business day at all ends instead of looping.
pub fn step_business_days(cal: &dyn BusinessDays, day: NaiveDate, n: i64) -> Option<NaiveDate> {
    let mut day = day;
    for _ in 0..n.unsigned_abs() {
        let mut skipped = 0;
        loop {
            day = if n >= 0 {
                day.checked_add_days(Days::new(1))?
            } else {
                day.checked_sub_days(Days::new(1))?
            };
            if cal.is_business_day(day) {
                break;
            }
            skipped += 1;
            if skipped > 366 {
                return None;
            }
        }
    }
    Some(day)
}

/// Count business days in `(a, b]` (or `-(b, a]`); at most ~30 years apart.
pub fn count_business_days(cal: &dyn BusinessDays, a: NaiveDate, b: NaiveDate) -> i64 {
    let (lo, hi, sign) = if a <= b { (a, b, 1) } else { (b, a, -1) };
    let span = (hi - lo).num_days().min(366 * 30);
    let count = lo
        .iter_days()
        .skip(1)
        .take(span as usize)
        .filter(|d| cal.is_business_day(*d))
        .count() as i64;
    sign * count
}

/// Configured calendars count business days with their own (fast) arithmetic.
impl BusinessDays for crate::calendar::BusinessCalendar {
    fn add_business_days(&self, day: NaiveDate, n: i64) -> Option<NaiveDate> {
        Some(crate::calendar::BusinessCalendar::add_business_days(
            self, day, n,
        ))
    }
    fn business_days_between(&self, a: NaiveDate, b: NaiveDate) -> i64 {
        crate::calendar::BusinessCalendar::business_days_between(self, a, b)
    }
    fn is_business_day(&self, day: NaiveDate) -> bool {
        crate::calendar::BusinessCalendar::is_business_day(self, day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn rules_weekdays_only_counts_business_days() {
        let cal = WeekdaysOnly;
        // 2026-12-04 is a Friday.
        assert_eq!(
            cal.add_business_days(d("2026-12-04"), 1),
            Some(d("2026-12-07"))
        );
        assert_eq!(
            cal.add_business_days(d("2026-12-07"), -1),
            Some(d("2026-12-04"))
        );
        assert_eq!(
            cal.business_days_between(d("2026-12-04"), d("2026-12-11")),
            5
        );
        assert_eq!(
            cal.business_days_between(d("2026-12-11"), d("2026-12-04")),
            -5
        );
        assert!(!cal.is_business_day(d("2026-12-05")));
    }
}
