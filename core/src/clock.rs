//! Where the engine gets the time from.
//!
//! The core never reads the wall clock: the shell injects a [`Clock`], so
//! a simulation can run a month in a second and a replay sees the same
//! time the original run saw.

use std::sync::Mutex;

use crate::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock, for `casework run` and `serve`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now().fixed_offset()
    }
}

/// A clock that moves only when told to: simulations and tests.
///
/// ```
/// use casework_core::clock::{Clock, ManualClock};
/// let start = "2026-11-25T10:00:00+09:00".parse().unwrap();
/// let clock = ManualClock::new(start);
/// clock.advance(chrono::Duration::hours(2));
/// assert_eq!(clock.now().to_rfc3339(), "2026-11-25T12:00:00+09:00");
/// ```
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Mutex::new(start))
    }

    /// Move to `t`; the clock never goes back, so an earlier `t` is ignored.
    pub fn set(&self, t: Timestamp) {
        let mut now = self.0.lock().expect("clock lock");
        if t > *now {
            *now = t;
        }
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().expect("clock lock");
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("clock lock")
    }
}
