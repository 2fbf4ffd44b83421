//! Business calendars: working hours, weekends, holidays, time zones.
//! (Placeholder: being written.)

use serde::{Deserialize, Serialize};

/// A calendar as written in YAML.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarDef {}
