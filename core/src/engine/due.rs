//! When a case needs attention next.
//!
//! `tick(now)` must not scan every open case, so after every step the
//! case's next moments (state timeout, SLA warning and breach, promise
//! checks) are derived from its new state here and stored as its timers,
//! which the store indexes by due time; `tick` takes what is due.

use chrono::Duration;

use crate::Timestamp;
use crate::case::{Case, SlaStatus};

use super::Pack;

/// How long before a promise is due the engine checks it again (besides
/// every event on the case and the due moment itself).
pub const PROMISE_CHECKS_BEFORE: [Duration; 3] =
    [Duration::days(2), Duration::days(1), Duration::hours(2)];

/// One moment a case needs attention, and the timer name to fire then.
pub type DueItem = (Timestamp, String);

/// The moments at which `case` needs attention, as of `now` (the case's
/// last change).
///
/// A state timeout or an SLA warning or breach fires once and changes the
/// case, so one already due is kept and moved to `now`: it fires at the
/// next tick. It is overdue when the event that changed the case came
/// after it with no tick in between (`serve` handles events between its
/// ticks), when a new team's calendar moves a business-time timeout into
/// the past, or when a clock starts inside its own warning window; dropping
/// it would leave the case in its state, or the team unwarned, for good.
/// It fires at `now`, not at its due time, so a case's time never runs
/// backwards. Promise checks recur while the promise is open, so only
/// those after `now` are kept (the step at `now` has just checked, and a
/// promise past due is already broken).
pub fn due_items(pack: &Pack, case: &Case, now: Timestamp) -> Vec<DueItem> {
    let mut items = Vec::new();
    if let Some(t) = pack.timeout_due(case) {
        items.push((t, format!("timeout:{}", case.state)));
    }
    if let Some(plan) = &pack.sla {
        for clock in &case.sla {
            if clock.status == SlaStatus::Running
                && let Some(t) = plan.warn_at(clock)
            {
                items.push((t, format!("sla:{}:warn", clock.kind.as_str())));
            }
            if matches!(clock.status, SlaStatus::Running | SlaStatus::Warned)
                && let Some(t) = plan.due_at(clock)
            {
                items.push((t, format!("sla:{}:breach", clock.kind.as_str())));
            }
        }
    }
    for (t, _) in &mut items {
        *t = (*t).max(now);
    }
    for p in case.promises.iter().filter(|p| p.status.is_open()) {
        let Some(due) = p.due_at() else { continue };
        for t in std::iter::once(due).chain(PROMISE_CHECKS_BEFORE.iter().map(|b| due - *b)) {
            if t > now {
                items.push((t, format!("promise:{}", p.id)));
            }
        }
    }
    items.sort();
    items.dedup();
    items
}
