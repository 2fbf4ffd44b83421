//! Timers: a state's timeout, and an SLA clock's warning and breach.
//!
//! The engine's due-time index fires `timer.fired` events named after
//! what fell due (`timeout:<state>`, `sla:<clock>:warn`,
//! `sla:<clock>:breach`, `promise:<id>`). A timer is checked again when it
//! fires: one whose moment has passed (the case left the state, the clock
//! was met) does nothing.

use crate::audit::DecisionKind;
use crate::case::SlaStatus;
use crate::engine::sla::is_counting;

use super::Stepper;

/// What a timer's name says fell due, read once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer<'t> {
    /// The case has been in `state` for the state's timeout.
    Timeout { state: &'t str },
    /// An SLA clock reached a point of its run.
    Sla { clock: &'t str, mark: SlaMark },
    /// A promise's check time: every event re-checks the open promises,
    /// and a timer event is an event, so this needs nothing of its own.
    Promise,
    /// A name the engine did not give (a custom timer): only the
    /// workflow's transitions on `timer.fired` react to it.
    Other,
}

/// The points of an SLA clock's run that have a timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlaMark {
    /// Time to warn: the clock is near its end.
    Warn,
    /// The clock ran out.
    Breach,
}

impl<'t> Timer<'t> {
    fn parse(name: &'t str) -> Self {
        if let Some(state) = name.strip_prefix("timeout:") {
            Timer::Timeout { state }
        } else if let Some(rest) = name.strip_prefix("sla:") {
            match rest.split_once(':').unwrap_or((rest, "")) {
                (clock, "warn") => Timer::Sla {
                    clock,
                    mark: SlaMark::Warn,
                },
                (clock, "breach") => Timer::Sla {
                    clock,
                    mark: SlaMark::Breach,
                },
                _ => Timer::Other,
            }
        } else if name.starts_with("promise:") {
            Timer::Promise
        } else {
            Timer::Other
        }
    }
}

impl Stepper<'_> {
    /// Act on the timer named `name`, if it is still due.
    pub(super) fn run_timer(&mut self, name: &str) {
        match Timer::parse(name) {
            Timer::Timeout { state } => self.state_timeout(name, state),
            Timer::Sla { clock, mark } => self.sla_timer(clock, mark),
            Timer::Promise | Timer::Other => {}
        }
    }

    /// A state timeout fires only if the case is still in that state and
    /// has been there long enough (a stale timer does nothing).
    fn state_timeout(&mut self, name: &str, state: &str) {
        if self.case.state.as_str() != state {
            return;
        }
        let Some(def) = self.pack.workflow.timeout(state).cloned() else {
            return;
        };
        let Some(due) = self.pack.timeout_due(&self.case) else {
            return;
        };
        if self.now < due {
            return;
        }
        self.record(
            DecisionKind::Timer {
                timer: name.to_owned(),
                due,
                fired: true,
            },
            None,
        );
        let rule = self.pack.state_ref(state);
        self.enter(def.to.clone(), "timer.fired", rule, &def.actions);
    }

    /// An SLA clock's warning or breach, if the clock is still counting
    /// and has reached that point.
    fn sla_timer(&mut self, clock: &str, mark: SlaMark) {
        let Some(plan) = self.pack.sla.clone() else {
            return;
        };
        let now = self.now;
        let Some(c) = self.case.sla.iter_mut().find(|c| {
            c.kind.as_str() == clock && is_counting(c.status) && c.running_since.is_some()
        }) else {
            return;
        };
        let (status, raised) = match mark {
            SlaMark::Warn
                if c.status == SlaStatus::Running && plan.warn_at(c).is_some_and(|w| now >= w) =>
            {
                c.status = SlaStatus::Warned;
                ("warning", "sla.warning")
            }
            SlaMark::Breach if plan.due_at(c).is_some_and(|d| now >= d) => {
                let since = c.running_since.take().expect("running");
                c.used_secs += plan
                    .calendar
                    .business_time_between(since, now)
                    .num_seconds();
                c.status = SlaStatus::Breached;
                c.due_at = None;
                ("breached", "sla.breached")
            }
            // Not reached (the clock was paused, or warned already): a
            // stale timer.
            SlaMark::Warn | SlaMark::Breach => return,
        };
        let due = c.due_at;
        self.record(
            DecisionKind::Sla {
                clock: clock.to_owned(),
                status: status.to_owned(),
                due,
            },
            None,
        );
        self.raise(raised);
    }
}
