//! Business calendars: working hours, weekends, holidays, time zones.
//!
//! SLA clocks, business-time timeouts and "within N business days" promises
//! all ask the same questions: is the office open now, when does it open
//! next, what moment is four working hours from now, how much working time
//! has passed. A [`BusinessCalendar`] answers them for one team or shop.
//!
//! # The model
//!
//! A calendar is a weekly pattern of opening ranges in **local wall time**
//! of one IANA time zone (`Asia/Tokyo`, `America/New_York`), minus
//! holidays (whole local dates). Each weekday has zero or more ranges
//! `HH:MM-HH:MM` that lie within that day (`24:00` may end a range; a range
//! never spans midnight: write `22:00-24:00` on one day and `00:00-06:00`
//! on the next). Lunch breaks are just two ranges: `09:00-12:00, 13:00-18:00`.
//!
//! * A **business day** is a local date that has opening hours and is not a
//!   holiday. Day arithmetic ([`add_business_days`], [`business_days_between`])
//!   works on dates only and is exact for any distance.
//! * **Working time** is the union of the open intervals. Each local range
//!   of each business day becomes one interval of real instants, so time
//!   arithmetic ([`add_business_time`], [`business_time_between`]) counts
//!   real elapsed seconds: a 09:00-18:00 day is 9 hours on every day, and a
//!   00:00-06:00 range is 5 hours on a spring-forward night.
//!
//! # Daylight saving time
//!
//! All local times are resolved in the calendar's zone, never with a fixed
//! offset, so a New York office keeps opening at 09:00 local on both sides
//! of a DST change. Where a range edge names a local time that does not
//! exist or exists twice, the rule is:
//!
//! * **skipped** (spring forward, e.g. 02:30 in New York on the second
//!   Sunday of March): the edge moves to the moment the clock jumps
//!   (03:00 new time). A range entirely inside the gap is empty that day.
//! * **repeated** (fall back, e.g. 01:30 in New York in November): a range
//!   opens at the *first* time the clock shows its start and closes at the
//!   *last* time the clock shows its end, so a range is never shortened by
//!   the repeated hour.
//!
//! # Bounds
//!
//! Calendars with no opening hours at all are rejected when compiled, so
//! every search terminates. Time arithmetic additionally looks at most
//! [`HORIZON_DAYS`] (ten years) past its start: a deadline that far out
//! saturates to the end of the horizon, and [`business_time_between`]
//! counts only the first ten years. That keeps a calendar whose every day
//! for years is a holiday from hanging the engine. Day arithmetic is exact
//! and fast for any distance (holidays are counted per range, weeks by
//! formula) and saturates at the ends of [`NaiveDate`]'s range.
//!
//! # Example
//!
//! ```
//! use casework_core::calendar::{BusinessCalendar, CalendarDef};
//! use chrono::{DateTime, Duration, NaiveDate};
//!
//! let def: CalendarDef = serde_yaml::from_str(r#"
//! timezone: Asia/Tokyo
//! hours: { mon: "09:00-18:00", tue: "09:00-18:00", wed: "09:00-18:00",
//!          thu: "09:00-18:00", fri: "09:00-12:00, 13:00-18:00" }
//! holidays: [2026-12-29..2027-01-03]
//! "#).unwrap();
//! let cal = BusinessCalendar::from_def("jp-office", &def).unwrap();
//!
//! // Friday 11:00: one hour before lunch, five after it.
//! let fri = DateTime::parse_from_rfc3339("2026-12-25T11:00:00+09:00").unwrap();
//! let due = cal.add_business_time(fri, Duration::hours(4));
//! assert_eq!(due.to_rfc3339(), "2026-12-25T16:00:00+09:00");
//!
//! // Eight hours from Friday 11:00 runs into the New Year break.
//! let due = cal.add_business_time(fri, Duration::hours(8));
//! assert_eq!(due.to_rfc3339(), "2026-12-28T11:00:00+09:00");
//!
//! // Two business days after Monday 28 December is Tuesday 5 January.
//! let d = NaiveDate::from_ymd_opt(2026, 12, 28).unwrap();
//! assert_eq!(cal.add_business_days(d, 2), NaiveDate::from_ymd_opt(2027, 1, 5).unwrap());
//! ```
//!
//! [`add_business_days`]: BusinessCalendar::add_business_days
//! [`business_days_between`]: BusinessCalendar::business_days_between
//! [`add_business_time`]: BusinessCalendar::add_business_time
//! [`business_time_between`]: BusinessCalendar::business_time_between

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{
    DateTime, Datelike, Duration, MappedLocalTime, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// A calendar as written in YAML:
///
/// ```yaml
/// jp-office:
///   timezone: Asia/Tokyo
///   hours: { mon: "09:00-18:00", tue: "09:00-18:00", wed: "09:00-18:00",
///            thu: "09:00-18:00", fri: "09:00-12:00, 13:00-18:00" }
///   holidays: [2026-12-29..2027-01-03, 2027-01-11]
/// ```
///
/// Days left out of `hours` are closed (the weekend).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarDef {
    pub timezone: Tz,
    /// Opening hours by weekday (`mon` .. `sun`): one or more `HH:MM-HH:MM`
    /// ranges separated by commas.
    pub hours: IndexMap<String, String>,
    /// Closed days: `YYYY-MM-DD` or a range `YYYY-MM-DD..YYYY-MM-DD`
    /// (both ends included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
}

/// How far past its start time arithmetic looks (ten years, in days).
///
/// [`BusinessCalendar::add_business_time`] and
/// [`BusinessCalendar::next_open`] return the end of this horizon when the
/// answer lies beyond it; [`BusinessCalendar::business_time_between`]
/// counts working time only up to it.
pub const HORIZON_DAYS: i64 = 3653;

const SECONDS_PER_DAY: u32 = 86_400;
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const WEEKDAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Why a calendar definition or a duration string cannot be used. Each
/// message names the calendar, the field and the value, and says what to
/// write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[non_exhaustive]
pub enum CalendarError {
    #[error(
        "calendar `{calendar}`: `hours.{key}` is not a weekday; use one of mon, tue, wed, thu, fri, sat, sun"
    )]
    BadWeekday { calendar: String, key: String },
    #[error(
        "calendar `{calendar}`: `hours.{key}` repeats `hours.{first}`; give each weekday once, with all its ranges separated by commas"
    )]
    DuplicateWeekday {
        calendar: String,
        key: String,
        first: String,
    },
    #[error(
        "calendar `{calendar}`: `hours.{day}: \"{value}\"` is not a time range ({reason}); write HH:MM-HH:MM, several separated by commas, e.g. \"09:00-12:00, 13:00-18:00\", or leave the day out if it is closed"
    )]
    BadTimeRange {
        calendar: String,
        day: String,
        value: String,
        reason: String,
    },
    #[error(
        "calendar `{calendar}`: `hours.{day}` range `{range}` ends before it starts; a range must lie within one day: write `22:00-24:00` on one day and `00:00-06:00` on the next for a night shift"
    )]
    InvertedRange {
        calendar: String,
        day: String,
        range: String,
    },
    #[error(
        "calendar `{calendar}`: `hours.{day}` ranges `{first}` and `{second}` overlap; merge them into one range or fix the times"
    )]
    OverlappingRanges {
        calendar: String,
        day: String,
        first: String,
        second: String,
    },
    #[error(
        "calendar `{calendar}`: holiday `{value}` is not a date ({reason}); write YYYY-MM-DD, or YYYY-MM-DD..YYYY-MM-DD for a range (both ends included)"
    )]
    BadHoliday {
        calendar: String,
        value: String,
        reason: String,
    },
    #[error(
        "calendar `{calendar}`: holiday range `{value}` ends before it starts; write the earlier date first: `{to}..{from}`"
    )]
    InvertedHoliday {
        calendar: String,
        value: String,
        from: NaiveDate,
        to: NaiveDate,
    },
    #[error(
        "calendar `{calendar}` has no opening hours on any day, so nothing could ever be due; add ranges under `hours`, e.g. `mon: \"09:00-17:00\"` (or `00:00-24:00` on every day for round the clock)"
    )]
    NoHours { calendar: String },
    #[error(
        "duration `{value}` is not understood ({reason}); write a number and a unit, e.g. `30m`, `4h`, `2days`, `1h 30m` (units: s, m/min, h, d/days, w/weeks)"
    )]
    BadDuration { value: String, reason: String },
}

impl CalendarError {
    /// A short stable code, for [`Diagnostic`](crate::diagnostic::Diagnostic)s.
    pub fn code(&self) -> &'static str {
        match self {
            CalendarError::BadWeekday { .. } => "calendar::bad-weekday",
            CalendarError::DuplicateWeekday { .. } => "calendar::duplicate-weekday",
            CalendarError::BadTimeRange { .. } => "calendar::bad-time-range",
            CalendarError::InvertedRange { .. } => "calendar::inverted-range",
            CalendarError::OverlappingRanges { .. } => "calendar::overlapping-ranges",
            CalendarError::BadHoliday { .. } => "calendar::bad-holiday",
            CalendarError::InvertedHoliday { .. } => "calendar::inverted-holiday",
            CalendarError::NoHours { .. } => "calendar::no-hours",
            CalendarError::BadDuration { .. } => "calendar::bad-duration",
        }
    }
}

/// Parses a duration from configuration (`timeout.after`, SLA targets):
/// `30m`, `4h`, `2days`, `1h 30m`, `1w`. Spans are exact (a day is 24
/// hours); whether they count wall time or business time is up to the
/// caller.
///
/// ```
/// use casework_core::calendar::parse_duration;
/// assert_eq!(parse_duration("1h 30m").unwrap(), chrono::Duration::minutes(90));
/// assert!(parse_duration("soon").unwrap_err().to_string().contains("30m"));
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, CalendarError> {
    let bad = |reason: String| CalendarError::BadDuration {
        value: s.to_string(),
        reason,
    };
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(bad("it is empty".into()));
    }
    let std = humantime::parse_duration(trimmed).map_err(|e| bad(e.to_string()))?;
    Duration::from_std(std).map_err(|_| bad("it is too long".into()))
}

/// Which end of a range a local time is: decides how repeated local times
/// resolve (see the module docs).
#[derive(Clone, Copy)]
enum Edge {
    Start,
    End,
}

/// A compiled calendar: the weekly pattern, merged holidays and the zone.
/// Build one with [`BusinessCalendar::from_def`] or
/// [`BusinessCalendar::always_open`]; share it as `Arc` via [`Calendars`].
#[derive(Clone, PartialEq, Eq)]
pub struct BusinessCalendar {
    name: String,
    tz: Tz,
    /// Opening ranges per weekday (Monday first) in seconds after local
    /// midnight, sorted, disjoint and not touching (touching ones merged).
    week: [Vec<(u32, u32)>; 7],
    /// How many weekdays have any hours (at least 1).
    open_per_week: i64,
    /// Holiday ranges (both ends included), sorted, disjoint, not adjacent.
    holidays: Vec<(NaiveDate, NaiveDate)>,
    /// `holiday_open[i]`: open weekdays inside `holidays[..i]`, so that
    /// counting business days is a lookup, not a walk.
    holiday_open: Vec<i64>,
    /// Every day is `00:00-24:00` and there are no holidays: time
    /// arithmetic is plain arithmetic.
    always: bool,
}

impl fmt::Debug for BusinessCalendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusinessCalendar")
            .field("name", &self.name)
            .field("tz", &self.tz)
            .field("week", &self.week)
            .field("holidays", &self.holidays.len())
            .finish()
    }
}

impl BusinessCalendar {
    /// Compiles a calendar definition; `name` is its key in `calendars`,
    /// used in error messages. Returns the first problem found;
    /// [`Calendars::from_defs`] reports them all.
    pub fn from_def(name: &str, def: &CalendarDef) -> Result<BusinessCalendar, CalendarError> {
        compile(name, def).map_err(|mut errors| errors.swap_remove(0))
    }

    /// Open around the clock, every day: the calendar to use when none is
    /// configured, so business time equals elapsed time.
    pub fn always_open(tz: Tz) -> BusinessCalendar {
        BusinessCalendar::build(
            "always-open".into(),
            tz,
            std::array::from_fn(|_| vec![(0, SECONDS_PER_DAY)]),
            Vec::new(),
        )
    }

    fn build(
        name: String,
        tz: Tz,
        week: [Vec<(u32, u32)>; 7],
        holidays: Vec<(NaiveDate, NaiveDate)>,
    ) -> BusinessCalendar {
        let open_per_week = week.iter().filter(|d| !d.is_empty()).count() as i64;
        let always =
            holidays.is_empty() && week.iter().all(|d| d.as_slice() == [(0, SECONDS_PER_DAY)]);
        let mut cal = BusinessCalendar {
            name,
            tz,
            week,
            open_per_week,
            holidays,
            holiday_open: Vec::new(),
            always,
        };
        let mut acc = 0;
        cal.holiday_open.push(0);
        for &(from, to) in &cal.holidays {
            acc += cal.open_weekdays_in(from, to);
            cal.holiday_open.push(acc);
        }
        cal
    }

    /// The calendar's time zone: dates and opening hours are local to it.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The calendar's key in `calendars` (`always-open` for
    /// [`BusinessCalendar::always_open`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `day` (a local date) has opening hours and is not a holiday.
    pub fn is_business_day(&self, day: NaiveDate) -> bool {
        !self.week[weekday_index(day)].is_empty() && self.holiday_containing(day).is_none()
    }

    /// Whether the office is open at `t`. Ranges include their start and
    /// exclude their end: a 09:00-18:00 office is open at 09:00, closed at
    /// 18:00.
    pub fn is_open(&self, t: Timestamp) -> bool {
        if self.always {
            return true;
        }
        let t = t.with_timezone(&Utc);
        let day = self.local_date(t);
        // An interval of one date can reach into the neighbouring dates
        // only around a DST change at midnight; look at both.
        [day.pred_opt(), Some(day), day.succ_opt()]
            .into_iter()
            .flatten()
            .any(|d| self.open_intervals(d).iter().any(|&(s, e)| s <= t && t < e))
    }

    /// `t` itself if open, else the moment the office next opens (in `t`'s
    /// offset). Saturates at the end of the [`HORIZON_DAYS`] horizon.
    pub fn next_open(&self, t: Timestamp) -> Timestamp {
        if self.always {
            return t;
        }
        let from = t.with_timezone(&Utc);
        let limit = horizon_end(from);
        self.scan(from, limit, |s, _| ControlFlow::Break(s))
            .unwrap_or(limit)
            .with_timezone(t.offset())
    }

    /// The `n`-th business day after `day` (before it if `n` is negative);
    /// `day` itself if `n` is 0. `day` need not be a business day: one
    /// business day after a Saturday is the Monday. Saturates at
    /// [`NaiveDate::MAX`] / [`NaiveDate::MIN`] if holidays leave too few
    /// business days in between.
    pub fn add_business_days(&self, day: NaiveDate, n: i64) -> NaiveDate {
        // Counting business days in a span is a lookup (weeks by formula,
        // holidays by prefix sums), so bisect over dates: about 30 counts
        // whatever the distance and however long the holidays.
        let k = n.unsigned_abs();
        if k == 0 {
            return day;
        }
        let k = i64::try_from(k).unwrap_or(i64::MAX);
        let day_num = i64::from(day.num_days_from_ce());
        let min = i64::from(NaiveDate::MIN.num_days_from_ce());
        let max = i64::from(NaiveDate::MAX.num_days_from_ce());
        if n > 0 {
            // Smallest x > day with k business days in (day, x].
            let Some(lo) = day.succ_opt() else {
                return NaiveDate::MAX;
            };
            if self.business_days_in(lo, NaiveDate::MAX) < k {
                return NaiveDate::MAX;
            }
            let (mut lo_n, mut hi_n) = (day_num + 1, max);
            while lo_n < hi_n {
                let mid = lo_n + (hi_n - lo_n) / 2;
                if self.business_days_in(lo, date_from_num(mid)) >= k {
                    hi_n = mid;
                } else {
                    lo_n = mid + 1;
                }
            }
            date_from_num(lo_n)
        } else {
            // Largest x < day with k business days in [x, day).
            let Some(hi) = day.pred_opt() else {
                return NaiveDate::MIN;
            };
            if self.business_days_in(NaiveDate::MIN, hi) < k {
                return NaiveDate::MIN;
            }
            let (mut lo_n, mut hi_n) = (min, day_num - 1);
            while lo_n < hi_n {
                let mid = hi_n - (hi_n - lo_n) / 2;
                if self.business_days_in(date_from_num(mid), hi) >= k {
                    lo_n = mid;
                } else {
                    hi_n = mid - 1;
                }
            }
            date_from_num(lo_n)
        }
    }

    /// How many business days lie in `(a, b]`; negative (the count in
    /// `(b, a]`) if `b` is before `a`. So a Monday to the next Monday is 5
    /// in a Mon-Fri calendar, and `business_days_between(a,
    /// add_business_days(a, n)) == n` whenever `a` is a business day.
    pub fn business_days_between(&self, a: NaiveDate, b: NaiveDate) -> i64 {
        match a.cmp(&b) {
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Less => a.succ_opt().map_or(0, |a1| self.business_days_in(a1, b)),
            std::cmp::Ordering::Greater => {
                -b.succ_opt().map_or(0, |b1| self.business_days_in(b1, a))
            }
        }
    }

    /// The moment `d` of working time after `start`, in `start`'s offset.
    ///
    /// If `start` is closed the clock starts at the next opening; a
    /// deadline that uses up a range exactly is that range's end (18:00,
    /// not 09:00 the next morning). `d` of zero gives
    /// [`next_open`](Self::next_open)`(start)`; negative `d` counts as zero.
    /// Saturates at the end of the [`HORIZON_DAYS`] horizon.
    pub fn add_business_time(&self, start: Timestamp, d: Duration) -> Timestamp {
        let d = d.max(Duration::zero());
        let from = start.with_timezone(&Utc);
        if self.always {
            return from
                .checked_add_signed(d)
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
                .with_timezone(start.offset());
        }
        let limit = horizon_end(from);
        let mut left = d;
        self.scan(from, limit, |s, e| {
            let len = e - s;
            if len >= left {
                ControlFlow::Break(s + left)
            } else {
                left -= len;
                ControlFlow::Continue(())
            }
        })
        .unwrap_or(limit)
        .with_timezone(start.offset())
    }

    /// Working time in `[a, b)`; zero if `b <= a`. Counts at most
    /// [`HORIZON_DAYS`] past `a`.
    pub fn business_time_between(&self, a: Timestamp, b: Timestamp) -> Duration {
        let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
        if b <= a {
            return Duration::zero();
        }
        if self.always {
            return b - a;
        }
        let limit = horizon_end(a).min(b);
        let mut total = Duration::zero();
        let _ = self.scan::<()>(a, limit, |s, e| {
            total += e - s;
            ControlFlow::Continue(())
        });
        total
    }

    /// Walks the open intervals after `from`, in order, clipped to
    /// `[from, limit)`, handing each to `f` until it breaks. `None` if the
    /// intervals run out before `limit` without a break. Holiday ranges are
    /// jumped over in one step, so the cost is one step per non-holiday day.
    fn scan<R>(
        &self,
        from: DateTime<Utc>,
        limit: DateTime<Utc>,
        mut f: impl FnMut(DateTime<Utc>, DateTime<Utc>) -> ControlFlow<R>,
    ) -> Option<R> {
        let first = self.local_date(from);
        let last = self.local_date(limit).succ_opt().unwrap_or(NaiveDate::MAX);
        let mut day = first.pred_opt().unwrap_or(first);
        // The end of the previous interval: intervals never overlap what
        // was already handed out, even across a DST change at midnight.
        let mut floor = from;
        while day <= last {
            if let Some((_, to)) = self.holiday_containing(day) {
                day = to.succ_opt()?;
                continue;
            }
            for (s, e) in self.intervals_on(day) {
                let s = s.max(floor);
                if s >= limit {
                    return None;
                }
                let e = e.min(limit);
                if e <= s {
                    continue;
                }
                if let ControlFlow::Break(r) = f(s, e) {
                    return Some(r);
                }
                floor = e;
            }
            day = day.succ_opt()?;
        }
        None
    }

    /// The open intervals of `day`, or none if it is a holiday.
    fn open_intervals(&self, day: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.holiday_containing(day).is_some() {
            return Vec::new();
        }
        self.intervals_on(day)
    }

    /// The weekly ranges of `day` as real instants, sorted and merged
    /// (ignoring holidays). Ranges that DST makes empty are left out.
    fn intervals_on(&self, day: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let ranges = &self.week[weekday_index(day)];
        let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(ranges.len());
        let midnight = day.and_time(chrono::NaiveTime::MIN);
        for &(s, e) in ranges {
            let at = |secs: u32| midnight.checked_add_signed(Duration::seconds(secs.into()));
            let (Some(s), Some(e)) = (
                at(s).and_then(|l| self.resolve(l, Edge::Start)),
                at(e).and_then(|l| self.resolve(l, Edge::End)),
            ) else {
                continue;
            };
            if e <= s {
                continue;
            }
            // Ranges are sorted locally, so starts are sorted as instants;
            // only a repeated hour can make neighbours overlap.
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out
    }

    /// The instant a range edge at local time `local` stands for.
    fn resolve(&self, local: NaiveDateTime, edge: Edge) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&local) {
            MappedLocalTime::Single(t) => Some(t.with_timezone(&Utc)),
            MappedLocalTime::Ambiguous(a, b) => {
                let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                Some(match edge {
                    Edge::Start => a.min(b),
                    Edge::End => a.max(b),
                })
            }
            MappedLocalTime::None => self.gap_end(local),
        }
    }

    /// For a local time inside a spring-forward gap: the instant the clock
    /// jumps, i.e. the first instant whose local time is at or after
    /// `local`. Found by bisection between the instants `local` would be
    /// under the offsets before and after the gap (transitions fall on
    /// whole seconds).
    fn gap_end(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let probe = Duration::hours(30);
        let offset_secs = |utc: NaiveDateTime| {
            i64::from(
                self.tz
                    .offset_from_utc_datetime(&utc)
                    .fix()
                    .local_minus_utc(),
            )
        };
        let before = offset_secs(local.checked_sub_signed(probe)?);
        let after = offset_secs(local.checked_add_signed(probe)?);
        let mut lo = local.checked_sub_signed(Duration::seconds(after))?;
        let mut hi = local.checked_sub_signed(Duration::seconds(before))?;
        // Invariant: the clock shows less than `local` at `lo` and at least
        // `local` at `hi`.
        while (hi - lo).num_seconds() > 1 {
            let mid = lo + Duration::seconds((hi - lo).num_seconds() / 2);
            let shows = mid.checked_add_signed(Duration::seconds(offset_secs(mid)))?;
            if shows >= local {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi.and_utc())
    }

    /// The local date at `t`; at the very ends of time, where the local
    /// date is not representable, the UTC date.
    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        let utc = t.naive_utc();
        let offset = self.tz.offset_from_utc_datetime(&utc).fix();
        utc.checked_add_offset(offset).unwrap_or(utc).date()
    }

    /// The holiday range containing `day`, if any.
    fn holiday_containing(&self, day: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
        let i = self.holidays.partition_point(|&(_, to)| to < day);
        self.holidays
            .get(i)
            .copied()
            .filter(|&(from, _)| from <= day)
    }

    /// Dates in `[from, to]` whose weekday has hours (holidays ignored).
    fn open_weekdays_in(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return 0;
        }
        let days = (to - from).num_days() + 1;
        let start = weekday_index(from);
        let rest = (0..(days % 7) as usize)
            .filter(|k| !self.week[(start + k) % 7].is_empty())
            .count() as i64;
        days / 7 * self.open_per_week + rest
    }

    /// Business days in `[from, to]`: open weekdays minus the open
    /// weekdays that are holidays.
    fn business_days_in(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return 0;
        }
        let first = self.holidays.partition_point(|&(_, end)| end < from);
        let past = self.holidays.partition_point(|&(start, _)| start <= to);
        let clipped = |i: usize| {
            let (s, e) = self.holidays[i];
            self.open_weekdays_in(s.max(from), e.min(to))
        };
        let closed = match past.checked_sub(first) {
            None | Some(0) => 0,
            Some(1) => clipped(first),
            Some(_) => {
                clipped(first)
                    + clipped(past - 1)
                    + (self.holiday_open[past - 1] - self.holiday_open[first + 1])
            }
        };
        self.open_weekdays_in(from, to) - closed
    }
}

/// Ten years after `from`, or the end of time.
fn horizon_end(from: DateTime<Utc>) -> DateTime<Utc> {
    from.checked_add_signed(Duration::days(HORIZON_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn weekday_index(day: NaiveDate) -> usize {
    day.weekday().num_days_from_monday() as usize
}

/// `n` is always within `NaiveDate`'s range where this is called.
fn date_from_num(n: i64) -> NaiveDate {
    i32::try_from(n)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .unwrap_or(if n < 0 {
            NaiveDate::MIN
        } else {
            NaiveDate::MAX
        })
}

/// Compiles a definition, collecting every problem.
fn compile(name: &str, def: &CalendarDef) -> Result<BusinessCalendar, Vec<CalendarError>> {
    let mut errors = Vec::new();
    let mut week: [Vec<(u32, u32)>; 7] = Default::default();
    let mut seen: [Option<&str>; 7] = [None; 7];
    for (key, value) in &def.hours {
        let Some(i) = parse_weekday(key) else {
            errors.push(CalendarError::BadWeekday {
                calendar: name.into(),
                key: key.clone(),
            });
            continue;
        };
        if let Some(first) = seen[i] {
            errors.push(CalendarError::DuplicateWeekday {
                calendar: name.into(),
                key: key.clone(),
                first: first.into(),
            });
            continue;
        }
        seen[i] = Some(key);
        match parse_day_hours(name, key, value) {
            Ok(ranges) => week[i] = ranges,
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() && week.iter().all(Vec::is_empty) {
        errors.push(CalendarError::NoHours {
            calendar: name.into(),
        });
    }
    let mut holidays = Vec::new();
    for value in &def.holidays {
        match parse_holiday(name, value) {
            Ok(range) => holidays.push(range),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    holidays.sort();
    let mut merged: Vec<(NaiveDate, NaiveDate)> = Vec::with_capacity(holidays.len());
    for (from, to) in holidays {
        match merged.last_mut() {
            Some(last) if from <= last.1.succ_opt().unwrap_or(NaiveDate::MAX) => {
                last.1 = last.1.max(to);
            }
            _ => merged.push((from, to)),
        }
    }
    Ok(BusinessCalendar::build(
        name.into(),
        def.timezone,
        week,
        merged,
    ))
}

/// `mon` .. `sun`, or the full English name, any case.
fn parse_weekday(key: &str) -> Option<usize> {
    let key = key.trim().to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .position(|d| *d == key)
        .or_else(|| WEEKDAY_NAMES.iter().position(|d| *d == key))
}

/// `"09:00-12:00, 13:00-18:00"` as sorted seconds-after-midnight ranges;
/// ranges that touch are merged, ranges that overlap are an error.
fn parse_day_hours(
    calendar: &str,
    day: &str,
    value: &str,
) -> Result<Vec<(u32, u32)>, CalendarError> {
    let bad = |reason: &str| CalendarError::BadTimeRange {
        calendar: calendar.into(),
        day: day.into(),
        value: value.into(),
        reason: reason.into(),
    };
    let mut ranges: Vec<(u32, u32, &str)> = Vec::new();
    for part in value.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad("a range is empty"));
        }
        let (from, to) = part
            .split_once(['-', '–'])
            .ok_or_else(|| bad(&format!("`{part}` has no `-` between its start and end")))?;
        let from = parse_clock(from.trim(), false).map_err(|r| bad(&r))?;
        let to = parse_clock(to.trim(), true).map_err(|r| bad(&r))?;
        if to <= from {
            return Err(CalendarError::InvertedRange {
                calendar: calendar.into(),
                day: day.into(),
                range: part.into(),
            });
        }
        ranges.push((from, to, part));
    }
    ranges.sort_by_key(|&(from, to, _)| (from, to));
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (i, &(from, to, _)) in ranges.iter().enumerate() {
        match out.last_mut() {
            Some(last) if from < last.1 => {
                return Err(CalendarError::OverlappingRanges {
                    calendar: calendar.into(),
                    day: day.into(),
                    first: ranges[i - 1].2.into(),
                    second: ranges[i].2.into(),
                });
            }
            Some(last) if from == last.1 => last.1 = to,
            _ => out.push((from, to)),
        }
    }
    Ok(out)
}

/// `HH:MM` (or `H:MM`) as seconds after midnight; `24:00` only as an end.
fn parse_clock(s: &str, is_end: bool) -> Result<u32, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not HH:MM"))?;
    let digits = |x: &str, max_len| {
        (!x.is_empty() && x.len() <= max_len && x.bytes().all(|b| b.is_ascii_digit()))
            .then(|| x.parse::<u32>().ok())
            .flatten()
    };
    let (Some(h), Some(m)) = (digits(h, 2), digits(m, 2).filter(|_| m.len() == 2)) else {
        return Err(format!("`{s}` is not HH:MM"));
    };
    if m > 59 {
        return Err(format!("`{s}` has minutes past 59"));
    }
    match (h, m) {
        (24, 0) if is_end => Ok(SECONDS_PER_DAY),
        (24, 0) => Err("24:00 can only end a range; start at 00:00".into()),
        (h, _) if h > 23 => Err(format!("`{s}` has hours past 23 (24:00 may end a range)")),
        (h, m) => Ok(h * 3600 + m * 60),
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD`.
fn parse_holiday(calendar: &str, value: &str) -> Result<(NaiveDate, NaiveDate), CalendarError> {
    let bad = |reason: String| CalendarError::BadHoliday {
        calendar: calendar.into(),
        value: value.into(),
        reason,
    };
    let date = |s: &str| {
        let s = s.trim();
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| bad(format!("`{s}`: {e}")))
    };
    let (from, to) = match value.split_once("..") {
        Some((a, b)) => (date(a)?, date(b)?),
        None => {
            let d = date(value)?;
            (d, d)
        }
    };
    if to < from {
        return Err(CalendarError::InvertedHoliday {
            calendar: calendar.into(),
            value: value.into(),
            from,
            to,
        });
    }
    Ok((from, to))
}

/// Every configured calendar by name, compiled once and shared.
#[derive(Clone, Debug, Default)]
pub struct Calendars {
    by_name: IndexMap<String, Arc<BusinessCalendar>>,
}

impl Calendars {
    /// Compiles every definition, reporting every problem in every
    /// calendar rather than the first.
    pub fn from_defs(
        defs: &IndexMap<String, CalendarDef>,
    ) -> Result<Calendars, Vec<CalendarError>> {
        let mut by_name = IndexMap::with_capacity(defs.len());
        let mut errors = Vec::new();
        for (name, def) in defs {
            match compile(name, def) {
                Ok(cal) => {
                    by_name.insert(name.clone(), Arc::new(cal));
                }
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() {
            Ok(Calendars { by_name })
        } else {
            Err(errors)
        }
    }

    /// The calendar called `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&Arc<BusinessCalendar>> {
        self.by_name.get(name)
    }

    /// Calendar names, in the order they were written.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn cal(name: &str, yaml: &str) -> BusinessCalendar {
        let def: CalendarDef = serde_yaml::from_str(yaml).unwrap();
        BusinessCalendar::from_def(name, &def).unwrap()
    }

    fn compile_err(yaml: &str) -> CalendarError {
        let def: CalendarDef = serde_yaml::from_str(yaml).unwrap();
        BusinessCalendar::from_def("broken", &def).unwrap_err()
    }

    fn jp() -> BusinessCalendar {
        cal(
            "jp-office",
            r#"
timezone: Asia/Tokyo
hours: { mon: "09:00-18:00", tue: "09:00-18:00", wed: "09:00-18:00",
         thu: "09:00-18:00", fri: "09:00-12:00, 13:00-18:00" }
holidays: [2026-12-29..2027-01-03, 2027-01-11]
"#,
        )
    }

    fn plain_jp() -> BusinessCalendar {
        cal(
            "plain",
            r#"
timezone: Asia/Tokyo
hours: { mon: "09:00-18:00", tue: "09:00-18:00", wed: "09:00-18:00",
         thu: "09:00-18:00", fri: "09:00-18:00" }
"#,
        )
    }

    fn ny() -> BusinessCalendar {
        cal(
            "ny-support",
            r#"
timezone: America/New_York
hours: { mon: "09:00-17:00", tue: "09:00-17:00", wed: "09:00-17:00",
         thu: "09:00-17:00", fri: "09:00-17:00", sat: "10:00-14:00",
         sun: "00:00-06:00" }
holidays: [2026-07-03, 2026-12-24..2026-12-26]
"#,
        )
    }

    /// Ranges that sit on the New York DST edges, to exercise gap and
    /// fold resolution (and intervals that a fold makes overlap).
    fn ny_edges() -> BusinessCalendar {
        cal(
            "ny-night",
            r#"
timezone: America/New_York
hours: { sun: "01:00-01:20, 01:40-02:10, 02:30-03:00", wed: "12:00-12:05" }
"#,
        )
    }

    fn lord_howe() -> BusinessCalendar {
        // A half-hour DST shift at 02:00 local.
        cal(
            "lord-howe",
            r#"
timezone: Australia/Lord_Howe
hours: { sun: "00:00-03:00", mon: "08:30-17:30", thu: "01:00-24:00" }
"#,
        )
    }

    #[test]
    fn japanese_office_days_and_hours() {
        let c = jp();
        assert_eq!(c.name(), "jp-office");
        assert_eq!(c.tz(), chrono_tz::Asia::Tokyo);
        assert!(c.is_business_day(date("2026-12-25")));
        assert!(!c.is_business_day(date("2026-12-26")), "Saturday");
        assert!(
            !c.is_business_day(date("2026-12-29")),
            "first day of New Year"
        );
        assert!(
            !c.is_business_day(date("2027-01-03")),
            "last day of New Year"
        );
        assert!(c.is_business_day(date("2027-01-04")));
        assert!(!c.is_business_day(date("2027-01-11")), "Coming of Age Day");

        assert!(c.is_open(ts("2026-12-24T09:00:00+09:00")), "opens at 09:00");
        assert!(
            !c.is_open(ts("2026-12-24T18:00:00+09:00")),
            "closed at 18:00"
        );
        assert!(c.is_open(ts("2026-12-24T00:30:00Z")), "09:30 in Tokyo");
        assert!(!c.is_open(ts("2026-12-25T12:30:00+09:00")), "Friday lunch");
        assert!(!c.is_open(ts("2026-12-30T10:00:00+09:00")), "holiday");

        // Friday evening: next opening is Monday; over New Year, January 4.
        assert_eq!(
            c.next_open(ts("2026-12-18T18:30:00+09:00")),
            ts("2026-12-21T09:00:00+09:00")
        );
        assert_eq!(
            c.next_open(ts("2026-12-28T18:00:00+09:00")),
            ts("2027-01-04T09:00:00+09:00")
        );
        let open = ts("2026-12-24T10:00:00+09:00");
        assert_eq!(c.next_open(open), open);
        // The answer keeps the caller's offset.
        let next = c.next_open(ts("2026-12-25T03:30:00Z"));
        assert_eq!(next, ts("2026-12-25T13:00:00+09:00"));
        assert_eq!(next.offset().local_minus_utc(), 0);
    }

    #[test]
    fn japanese_office_business_time() {
        let c = jp();
        // Into the New Year break and out the other side.
        let start = ts("2026-12-28T15:00:00+09:00");
        let due = c.add_business_time(start, Duration::hours(5));
        assert_eq!(due, ts("2027-01-04T11:00:00+09:00"));
        assert_eq!(c.business_time_between(start, due), Duration::hours(5));
        // A deadline that uses up the day ends at 18:00, not next morning.
        assert_eq!(
            c.add_business_time(ts("2026-12-24T09:00:00+09:00"), Duration::hours(9)),
            ts("2026-12-24T18:00:00+09:00")
        );
        // Zero from a closed moment is the next opening.
        assert_eq!(
            c.add_business_time(ts("2026-12-26T12:00:00+09:00"), Duration::zero()),
            ts("2026-12-28T09:00:00+09:00")
        );
        // 200 business hours = 22 days of 9 hours + 2 hours.
        let p = plain_jp();
        let start = ts("2026-06-01T09:00:00+09:00");
        let due = p.add_business_time(start, Duration::hours(200));
        assert_eq!(due, ts("2026-07-01T11:00:00+09:00"));
        assert_eq!(p.business_time_between(start, due), Duration::hours(200));
        assert_eq!(p.business_time_between(due, start), Duration::zero());
        // Weekend-only span.
        assert_eq!(
            p.business_time_between(
                ts("2026-06-06T00:00:00+09:00"),
                ts("2026-06-08T00:00:00+09:00")
            ),
            Duration::zero()
        );
    }

    #[test]
    fn lunch_breaks_are_closed_time() {
        let c = jp();
        let fri = ts("2026-12-25T11:00:00+09:00");
        assert_eq!(
            c.add_business_time(fri, Duration::hours(1)),
            ts("2026-12-25T12:00:00+09:00"),
            "ends at the start of lunch"
        );
        assert_eq!(
            c.add_business_time(fri, Duration::minutes(61)),
            ts("2026-12-25T13:01:00+09:00")
        );
        assert_eq!(
            c.add_business_time(fri, Duration::hours(4)),
            ts("2026-12-25T16:00:00+09:00")
        );
        assert_eq!(
            c.business_time_between(
                ts("2026-12-25T09:00:00+09:00"),
                ts("2026-12-25T18:00:00+09:00")
            ),
            Duration::hours(8)
        );
        assert_eq!(
            c.next_open(ts("2026-12-25T12:00:00+09:00")),
            ts("2026-12-25T13:00:00+09:00")
        );
        // Ranges that touch are one range.
        let touching = cal(
            "touching",
            "{timezone: UTC, hours: {mon: '13:00-18:00, 09:00-13:00', tue: '00:00-24:00'}}",
        );
        assert!(touching.is_open(ts("2026-06-01T13:00:00Z")));
        assert_eq!(
            touching.business_time_between(ts("2026-06-01T00:00:00Z"), ts("2026-06-03T00:00:00Z")),
            Duration::hours(33)
        );
    }

    #[test]
    fn new_york_across_dst() {
        let c = ny();
        // Friday before spring forward (EST, -05:00) to Monday (EDT, -04:00).
        let fri = ts("2026-03-06T16:00:00-05:00");
        let due = c.add_business_time(fri, Duration::hours(2));
        // 1h Friday, Saturday 10:00-14:00 is 4h: lands Saturday 11:00.
        assert_eq!(due, ts("2026-03-07T11:00:00-05:00"));
        // Sunday 00:00-06:00 on the spring-forward night is 5 real hours.
        let sun = c.business_time_between(
            ts("2026-03-08T00:00:00-05:00"),
            ts("2026-03-08T12:00:00-04:00"),
        );
        assert_eq!(sun, Duration::hours(5));
        // On the fall-back night it is 7.
        let sun = c.business_time_between(
            ts("2026-11-01T00:00:00-04:00"),
            ts("2026-11-01T12:00:00-05:00"),
        );
        assert_eq!(sun, Duration::hours(7));
        // Monday opens at 09:00 local, whatever the offset.
        assert_eq!(
            c.next_open(ts("2026-03-08T06:00:00-04:00")),
            ts("2026-03-09T09:00:00-04:00")
        );
        assert_eq!(
            c.next_open(ts("2026-03-06T13:00:00Z")),
            ts("2026-03-06T14:00:00Z"),
            "09:00 EST"
        );
        assert_eq!(
            c.next_open(ts("2026-03-10T00:00:00Z")),
            ts("2026-03-10T13:00:00Z"),
            "09:00 EDT"
        );
        // Week of the change: Mon-Fri 8h, Sat 4h, Sun 5h.
        let week = c.business_time_between(
            ts("2026-03-02T00:00:00-05:00"),
            ts("2026-03-09T00:00:00-04:00"),
        );
        assert_eq!(week, Duration::hours(5 * 8 + 4 + 5));
        // And the result is in the caller's offset.
        let due = c.add_business_time(ts("2026-03-08T05:00:00-04:00"), Duration::hours(2));
        assert_eq!(due, ts("2026-03-09T10:00:00-04:00"));
        assert_eq!(due.offset().local_minus_utc(), -4 * 3600);
    }

    #[test]
    fn skipped_and_repeated_local_times() {
        let c = ny_edges();
        // Spring forward: 02:00-03:00 does not exist on 2026-03-08.
        // 01:40-02:10 closes when the clock jumps (03:00 EDT = 07:00Z);
        // 02:30-03:00 lies in the gap and is empty.
        assert!(c.is_open(ts("2026-03-08T01:50:00-05:00")));
        assert!(!c.is_open(ts("2026-03-08T07:00:00Z")));
        assert_eq!(
            c.business_time_between(
                ts("2026-03-08T00:00:00-05:00"),
                ts("2026-03-09T00:00:00-04:00")
            ),
            Duration::minutes(20 + 20)
        );
        assert!(c.is_business_day(date("2026-03-08")));
        // Fall back: 01:00-02:00 happens twice on 2026-11-01. 01:00-01:20
        // runs from the first 01:00 (05:00Z) to the last 01:20 (06:20Z),
        // and 01:40-02:10 from the first 01:40 (05:40Z) to 02:10 EST
        // (07:10Z): they overlap and count once.
        assert!(c.is_open(ts("2026-11-01T05:00:00Z")));
        assert!(c.is_open(ts("2026-11-01T05:30:00Z")));
        assert!(!c.is_open(ts("2026-11-01T04:59:59Z")));
        assert!(!c.is_open(ts("2026-11-01T07:10:00Z")));
        assert_eq!(
            c.business_time_between(
                ts("2026-11-01T00:00:00-04:00"),
                ts("2026-11-02T00:00:00-05:00")
            ),
            Duration::minutes(130 + 30)
        );
        // A range starting in the gap opens when the clock jumps.
        let gap = cal(
            "gap",
            "{timezone: America/New_York, hours: {sun: '02:30-05:00'}}",
        );
        assert_eq!(
            gap.next_open(ts("2026-03-08T00:00:00-05:00")),
            ts("2026-03-08T03:00:00-04:00")
        );
        // Half-hour DST in Lord Howe: 02:00 jumps to 02:30 on 2026-10-04.
        let lh = lord_howe();
        assert_eq!(
            lh.business_time_between(ts("2026-10-03T12:00:00Z"), ts("2026-10-04T12:00:00Z")),
            Duration::minutes(150)
        );
    }

    #[test]
    fn holidays_and_day_arithmetic() {
        let c = jp();
        let mon = date("2026-12-21");
        assert_eq!(c.add_business_days(mon, 0), mon);
        let sat = date("2026-12-26");
        assert_eq!(c.add_business_days(sat, 0), sat, "0 keeps a closed day");
        assert_eq!(c.add_business_days(mon, 1), date("2026-12-22"));
        assert_eq!(c.add_business_days(mon, 5), date("2026-12-28"));
        assert_eq!(c.add_business_days(mon, 6), date("2027-01-04"));
        assert_eq!(
            c.add_business_days(date("2027-01-08"), 1),
            date("2027-01-12")
        );
        assert_eq!(c.add_business_days(mon, -1), date("2026-12-18"));
        assert_eq!(
            c.add_business_days(date("2027-01-04"), -1),
            date("2026-12-28")
        );
        assert_eq!(c.add_business_days(sat, 1), date("2026-12-28"));
        assert_eq!(c.add_business_days(sat, -1), date("2026-12-25"));
        assert_eq!(c.add_business_days(sat, 2), date("2027-01-04"));

        assert_eq!(c.business_days_between(mon, mon), 0);
        assert_eq!(c.business_days_between(mon, date("2026-12-28")), 5);
        assert_eq!(c.business_days_between(date("2026-12-28"), mon), -5);
        assert_eq!(
            c.business_days_between(date("2026-12-25"), date("2027-01-04")),
            2
        );
        assert_eq!(c.business_days_between(sat, date("2026-12-27")), 0);
        // A year: 52 weeks of 5 days plus one day, minus the holidays that
        // fall on weekdays (Dec 29-31, Jan 1, Jan 11 in 2027).
        assert_eq!(
            c.business_days_between(date("2026-12-01"), date("2027-12-01")),
            261 - 5
        );
    }

    #[test]
    fn years_of_holidays_neither_hang_nor_lie() {
        let c = cal(
            "closed-for-good",
            "{timezone: Europe/Berlin, hours: {mon: '09:00-17:00', fri: '09:00-17:00'}, holidays: ['2026-01-01..2045-12-31']}",
        );
        let start = ts("2026-03-02T10:00:00+01:00");
        let horizon = start + Duration::days(HORIZON_DAYS);
        assert_eq!(c.add_business_time(start, Duration::hours(1)), horizon);
        assert_eq!(c.next_open(start), horizon);
        assert!(!c.is_open(start));
        assert_eq!(
            c.business_time_between(start, start + Duration::days(30_000)),
            Duration::zero()
        );
        // Day arithmetic is exact: it jumps the range.
        assert_eq!(
            c.add_business_days(date("2025-12-31"), 1),
            date("2046-01-01")
        );
        assert_eq!(
            c.add_business_days(date("2046-01-01"), -1),
            date("2025-12-29")
        );
        assert_eq!(
            c.business_days_between(date("2025-12-31"), date("2046-01-05")),
            2
        );
        // Huge counts saturate instead of looping or panicking.
        assert_eq!(
            c.add_business_days(date("2026-01-01"), i64::MAX),
            NaiveDate::MAX
        );
        assert_eq!(
            c.add_business_days(date("2026-01-01"), i64::MIN),
            NaiveDate::MIN
        );
        assert_eq!(c.add_business_days(NaiveDate::MAX, 1), NaiveDate::MAX);
        assert_eq!(c.add_business_days(NaiveDate::MIN, -1), NaiveDate::MIN);
        let far = c.add_business_days(date("2026-01-01"), 1_000_000);
        assert_eq!(c.business_days_between(date("2026-01-01"), far), 1_000_000);
    }

    /// One quarter hour a week is 15 minutes of working time per 7 days,
    /// so 7816 minutes need 522 windows: the 522nd (Wednesday 2036-01-02
    /// 14:15 JST) opens 5h15m after the ten-year horizon counted from
    /// `t` (09:00 JST that day). The deadline saturates there, and measuring
    /// back finds the 521 windows inside it, 60 s short: what the bounds in
    /// the module docs promise, not a miscount at a window edge. A
    /// duration the horizon can hold round-trips exactly, and the horizon
    /// counts from each call's own start.
    #[test]
    fn deadlines_past_the_horizon_saturate() {
        let c = cal(
            "cal0",
            r#"{timezone: Asia/Tokyo, hours: {wed: "14:15-14:30"}}"#,
        );
        let t = ts("2026-01-01T09:00:00+09:00");
        let d1 = Duration::seconds(468_960);
        let horizon = t + Duration::days(HORIZON_DAYS);
        assert_eq!(horizon, ts("2036-01-02T09:00:00+09:00"));
        let r1 = c.add_business_time(t, d1);
        assert_eq!(r1, horizon);
        assert!(!c.is_open(r1));
        assert_eq!(c.business_time_between(t, r1), Duration::minutes(521 * 15));

        // 521 windows end inside the horizon: exact both ways.
        let whole = Duration::minutes(521 * 15);
        let r = c.add_business_time(t, whole);
        assert_eq!(r, ts("2035-12-26T14:30:00+09:00"));
        assert_eq!(c.business_time_between(t, r), whole);

        // From the first opening, the 522nd window is inside the horizon.
        let open = c.next_open(t);
        assert_eq!(open, ts("2026-01-07T14:15:00+09:00"));
        let r = c.add_business_time(open, d1);
        assert_eq!(r, ts("2036-01-02T14:16:00+09:00"));
        assert_eq!(c.business_time_between(open, r), d1);
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let c = ny();
        let end = DateTime::<Utc>::MAX_UTC.fixed_offset();
        let begin = DateTime::<Utc>::MIN_UTC.fixed_offset();
        let _ = c.is_open(end);
        let _ = c.is_open(begin);
        assert!(c.next_open(end) <= end);
        assert!(c.add_business_time(end - Duration::days(2), Duration::hours(100)) <= end);
        let _ = c.add_business_time(begin, Duration::hours(3));
        let _ = c.business_time_between(begin, begin + Duration::days(20));
        let a = BusinessCalendar::always_open(chrono_tz::UTC);
        assert_eq!(a.add_business_time(end, Duration::MAX), end);
    }

    #[test]
    fn always_open_is_elapsed_time() {
        let c = BusinessCalendar::always_open(chrono_tz::America::New_York);
        assert_eq!(c.name(), "always-open");
        let a = ts("2026-03-07T12:00:00-05:00");
        let b = ts("2026-03-09T12:00:00-04:00");
        assert!(c.is_open(a));
        assert_eq!(c.next_open(a), a);
        assert_eq!(c.business_time_between(a, b), Duration::hours(47));
        assert_eq!(c.add_business_time(a, Duration::hours(47)), b);
        assert!(c.is_business_day(date("2026-03-08")));
        assert_eq!(
            c.add_business_days(date("2026-03-08"), 3),
            date("2026-03-11")
        );
        // Spelled out, the same calendar takes the scanning path and must
        // agree.
        let spelled = cal(
            "spelled",
            "{timezone: America/New_York, hours: {mon: '00:00-24:00', tue: '00:00-24:00', wed: '00:00-24:00', thu: '00:00-24:00', fri: '00:00-24:00', sat: '00:00-24:00', sun: '00:00-12:00, 12:00-24:00'}, holidays: []}",
        );
        assert_eq!(spelled.business_time_between(a, b), Duration::hours(47));
        let with_holiday = cal(
            "holiday",
            "{timezone: America/New_York, hours: {mon: '00:00-24:00', tue: '00:00-24:00', wed: '00:00-24:00', thu: '00:00-24:00', fri: '00:00-24:00', sat: '00:00-24:00', sun: '00:00-24:00'}, holidays: [2026-03-08]}",
        );
        assert_eq!(
            with_holiday.business_time_between(a, b),
            Duration::hours(24)
        );
        assert_eq!(
            with_holiday.add_business_time(a, Duration::hours(13)),
            ts("2026-03-09T01:00:00-04:00")
        );
    }

    #[test]
    fn errors_say_where_and_what_to_write() {
        let e = compile_err("{timezone: UTC, hours: {mond: '09:00-17:00'}}");
        assert!(matches!(e, CalendarError::BadWeekday { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("`broken`") && msg.contains("hours.mond") && msg.contains("mon, tue"),
            "{msg}"
        );
        assert_eq!(e.code(), "calendar::bad-weekday");

        let e = compile_err("{timezone: UTC, hours: {mon: '09:00-17:00', Monday: '10:00-11:00'}}");
        assert!(matches!(e, CalendarError::DuplicateWeekday { .. }), "{e}");

        for bad in [
            "9-17",
            "09:00",
            "09:60-10:00",
            "25:00-26:00",
            "09:00-17:00,",
            "24:00-24:00",
            "0900-1700",
            "09:0-10:00",
        ] {
            let e = compile_err(&format!("{{timezone: UTC, hours: {{tue: '{bad}'}}}}"));
            assert!(
                matches!(e, CalendarError::BadTimeRange { .. }),
                "{bad}: {e}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains("hours.tue") && msg.contains(bad) && msg.contains("HH:MM-HH:MM"),
                "{msg}"
            );
        }
        let e = compile_err("{timezone: UTC, hours: {fri: '22:00-06:00'}}");
        assert!(matches!(e, CalendarError::InvertedRange { .. }), "{e}");
        assert!(e.to_string().contains("22:00-24:00"), "{e}");
        let e = compile_err("{timezone: UTC, hours: {fri: '09:00-09:00'}}");
        assert!(matches!(e, CalendarError::InvertedRange { .. }), "{e}");
        let e = compile_err("{timezone: UTC, hours: {fri: '13:00-18:00, 09:00-13:30'}}");
        let CalendarError::OverlappingRanges { first, second, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("09:00-13:30", "13:00-18:00")
        );

        let e =
            compile_err("{timezone: UTC, hours: {mon: '09:00-17:00'}, holidays: ['2026-02-30']}");
        assert!(matches!(e, CalendarError::BadHoliday { .. }), "{e}");
        assert!(e.to_string().contains("YYYY-MM-DD..YYYY-MM-DD"), "{e}");
        let e = compile_err(
            "{timezone: UTC, hours: {mon: '09:00-17:00'}, holidays: ['2026-12-24...2026-12-26']}",
        );
        assert!(matches!(e, CalendarError::BadHoliday { .. }), "{e}");
        let e = compile_err(
            "{timezone: UTC, hours: {mon: '09:00-17:00'}, holidays: ['2027-01-03..2026-12-29']}",
        );
        assert!(matches!(e, CalendarError::InvertedHoliday { .. }), "{e}");
        assert!(e.to_string().contains("`2026-12-29..2027-01-03`"), "{e}");

        let e = compile_err("{timezone: UTC, hours: {}}");
        assert!(matches!(e, CalendarError::NoHours { .. }), "{e}");
    }

    #[test]
    fn calendars_collect_every_error() {
        let defs: IndexMap<String, CalendarDef> = serde_yaml::from_str(
            r#"
good: { timezone: Asia/Tokyo, hours: { mon: "09:00-18:00" } }
bad-a: { timezone: UTC, hours: { xyz: "09:00-18:00", tue: "nine to five" } }
bad-b: { timezone: UTC, hours: { mon: "09:00-18:00" }, holidays: [tomorrow] }
"#,
        )
        .unwrap();
        let errors = Calendars::from_defs(&defs).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].to_string().contains("bad-a"));
        assert!(errors[2].to_string().contains("bad-b"));

        let defs: IndexMap<String, CalendarDef> = serde_yaml::from_str(
            r#"
jp: { timezone: Asia/Tokyo, hours: { mon: "09:00-18:00" } }
us: { timezone: America/New_York, hours: { mon: "09:00-17:00" } }
"#,
        )
        .unwrap();
        let cals = Calendars::from_defs(&defs).unwrap();
        assert_eq!(cals.len(), 2);
        assert_eq!(cals.names().collect::<Vec<_>>(), ["jp", "us"]);
        assert_eq!(cals.get("us").unwrap().tz(), chrono_tz::America::New_York);
        assert!(cals.get("eu").is_none());
    }

    #[test]
    fn durations_from_config() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::minutes(30));
        assert_eq!(parse_duration("4h").unwrap(), Duration::hours(4));
        assert_eq!(parse_duration("2days").unwrap(), Duration::days(2));
        assert_eq!(parse_duration(" 1h 30m ").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("1w").unwrap(), Duration::days(7));
        assert_eq!(parse_duration("0").unwrap(), Duration::zero());
        for bad in ["", "4 hours later", "-1h", "h", "4x"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(matches!(e, CalendarError::BadDuration { .. }), "{bad}");
            assert!(e.to_string().contains("`4h`"), "{e}");
        }
    }

    // --- properties -----------------------------------------------------

    fn calendars() -> Vec<BusinessCalendar> {
        vec![jp(), ny(), ny_edges(), lord_howe(), plain_jp()]
    }

    /// Minutes from 2025-01-01 to 2029-01-01, half of them within three
    /// days before a New York or Lord Howe DST change, with one of a few
    /// offsets.
    fn instant() -> impl Strategy<Value = Timestamp> {
        const CHANGES: [&str; 6] = [
            "2025-03-09T07:00:00Z",
            "2025-11-02T06:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-04-04T15:00:00Z",
            "2026-10-03T15:30:00Z",
        ];
        let base = ts("2025-01-01T00:00:00Z");
        let near_change = (0usize..CHANGES.len(), 0i64..3 * 1440)
            .prop_map(move |(i, m)| (ts(CHANGES[i]) - base).num_minutes() - m);
        (
            prop_oneof![0i64..4 * 366 * 1440, near_change],
            prop_oneof![
                Just(9 * 3600),
                Just(-5 * 3600),
                Just(0),
                Just(10 * 3600 + 1800)
            ],
        )
            .prop_map(|(m, off)| {
                let t = ts("2025-01-01T00:00:00Z") + Duration::minutes(m);
                t.with_timezone(&chrono::FixedOffset::east_opt(off).unwrap())
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn add_then_measure_gives_the_duration_back(
            which in 0usize..5, start in instant(), mins in 0i64..300 * 60,
        ) {
            let c = &calendars()[which];
            let d = Duration::minutes(mins);
            let due = c.add_business_time(start, d);
            prop_assert!(due >= start);
            prop_assert_eq!(due.offset(), start.offset());
            prop_assert_eq!(c.business_time_between(start, due), d);
            // Open, or the end of an open range.
            prop_assert!(c.is_open(due) || (due > start && c.is_open(due - Duration::seconds(1))),
                "{} is neither open nor a range end", due);
        }

        #[test]
        fn next_open_is_open_and_nothing_is_skipped(which in 0usize..5, t in instant()) {
            let c = &calendars()[which];
            let n = c.next_open(t);
            prop_assert!(n >= t);
            prop_assert!(c.is_open(n));
            prop_assert_eq!(c.business_time_between(t, n), Duration::zero());
            prop_assert_eq!(c.is_open(t), n == t);
        }

        #[test]
        fn business_days_round_trip(
            which in 0usize..5, days in 0i64..6000, n in -400i64..400,
        ) {
            let c = &calendars()[which];
            let a = date("2020-01-01") + Duration::days(days);
            let a = if c.is_business_day(a) { a } else { c.add_business_days(a, 1) };
            let b = c.add_business_days(a, n);
            prop_assert_eq!(c.business_days_between(a, b), n);
            prop_assert_eq!(c.business_days_between(b, a), -n);
            prop_assert!(n == 0 || c.is_business_day(b));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Against a slow oracle: sample every minute with `is_open`.
        #[test]
        fn time_between_matches_minute_sampling(
            which in 0usize..5, start in instant(), mins in 0i64..3 * 1440,
        ) {
            let c = &calendars()[which];
            let end = start + Duration::minutes(mins);
            let sampled = (0..mins)
                .filter(|m| c.is_open(start + Duration::minutes(*m)))
                .count() as i64;
            prop_assert_eq!(c.business_time_between(start, end), Duration::minutes(sampled));
        }

        /// Against a slow oracle: walk the days with `is_business_day`.
        #[test]
        fn days_between_matches_day_walking(
            which in 0usize..5, days in 0i64..6000, span in -80i64..80,
        ) {
            let c = &calendars()[which];
            let a = date("2020-01-01") + Duration::days(days);
            let b = a + Duration::days(span);
            let (lo, hi, sign) = if a <= b { (a, b, 1) } else { (b, a, -1) };
            let walked = lo.iter_days().skip(1).take_while(|d| *d <= hi)
                .filter(|d| c.is_business_day(*d)).count() as i64;
            prop_assert_eq!(c.business_days_between(a, b), sign * walked);
        }
    }
}
