//! Business calendars: working hours, weekends, holidays, time zones.
//! (Schema only: the arithmetic is being written.)

use chrono_tz::Tz;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

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
