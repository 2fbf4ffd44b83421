//! SLA clocks: first reply, next reply, resolution, counted in business
//! time and paused while the case waits on the customer.

use chrono::Duration;

use crate::Timestamp;
use crate::calendar::BusinessCalendar;
use crate::case::{Case, SlaClock, SlaKind, SlaStatus};

/// The SLA targets of a pack, compiled from `workflow.sla`.
#[derive(Clone, Debug)]
pub struct SlaPlan {
    pub calendar: std::sync::Arc<BusinessCalendar>,
    pub first_reply: Option<Duration>,
    pub next_reply: Option<Duration>,
    pub resolution: Option<Duration>,
    pub warn_before: Duration,
}

impl SlaPlan {
    pub fn target(&self, kind: SlaKind) -> Option<Duration> {
        match kind {
            SlaKind::FirstReply => self.first_reply,
            SlaKind::NextReply => self.next_reply,
            SlaKind::Resolution => self.resolution,
        }
    }

    /// Start a clock of `kind` unless one is already counting.
    /// Returns true when a clock started.
    pub fn start(&self, case: &mut Case, kind: SlaKind, now: Timestamp, paused: bool) -> bool {
        let Some(target) = self.target(kind) else {
            return false;
        };
        if case
            .sla
            .iter()
            .any(|c| c.kind == kind && is_counting(c.status))
        {
            return false;
        }
        case.sla.retain(|c| c.kind != kind);
        let mut clock = SlaClock {
            kind,
            started_at: now,
            target_secs: target.num_seconds(),
            used_secs: 0,
            running_since: (!paused).then_some(now),
            due_at: None,
            status: if paused {
                SlaStatus::Paused
            } else {
                SlaStatus::Running
            },
        };
        clock.due_at = self.due_at(&clock);
        case.sla.push(clock);
        true
    }

    /// Stop the clock of `kind` as met. Returns the clock if one was counting.
    pub fn meet(&self, case: &mut Case, kind: SlaKind, now: Timestamp) -> Option<SlaClock> {
        let clock = case
            .sla
            .iter_mut()
            .find(|c| c.kind == kind && is_counting(c.status))?;
        if let Some(since) = clock.running_since.take() {
            clock.used_secs += self
                .calendar
                .business_time_between(since, now)
                .num_seconds();
        }
        clock.status = SlaStatus::Met;
        clock.due_at = None;
        Some(clock.clone())
    }

    /// Pause every running clock (entering a waiting-on-customer state).
    pub fn pause(&self, case: &mut Case, now: Timestamp) -> Vec<SlaKind> {
        let mut paused = Vec::new();
        for clock in case.sla.iter_mut().filter(|c| c.running_since.is_some()) {
            let since = clock.running_since.take().expect("filtered");
            clock.used_secs += self
                .calendar
                .business_time_between(since, now)
                .num_seconds();
            if clock.status != SlaStatus::Breached {
                clock.status = SlaStatus::Paused;
            }
            clock.due_at = None;
            paused.push(clock.kind);
        }
        paused
    }

    /// Resume every paused clock (leaving a waiting-on-customer state).
    pub fn resume(&self, case: &mut Case, now: Timestamp) -> Vec<SlaKind> {
        let mut resumed = Vec::new();
        for clock in case
            .sla
            .iter_mut()
            .filter(|c| c.status == SlaStatus::Paused)
        {
            clock.running_since = Some(now);
            clock.status = SlaStatus::Running;
            clock.due_at = self.due_at(clock);
            resumed.push(clock.kind);
        }
        resumed
    }

    /// When a running clock breaches.
    pub fn due_at(&self, clock: &SlaClock) -> Option<Timestamp> {
        let since = clock.running_since?;
        let left = (clock.target_secs - clock.used_secs).max(0);
        Some(
            self.calendar
                .add_business_time(since, Duration::seconds(left)),
        )
    }

    /// When a running clock should warn.
    pub fn warn_at(&self, clock: &SlaClock) -> Option<Timestamp> {
        let since = clock.running_since?;
        let left = (clock.target_secs - clock.used_secs - self.warn_before.num_seconds()).max(0);
        Some(
            self.calendar
                .add_business_time(since, Duration::seconds(left)),
        )
    }
}

/// A clock that still counts toward a breach (or is paused).
pub fn is_counting(status: SlaStatus) -> bool {
    matches!(
        status,
        SlaStatus::Running | SlaStatus::Paused | SlaStatus::Warned
    )
}
