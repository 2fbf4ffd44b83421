//! Several workers on one PostgreSQL database: what a worker does with
//! the shared inbox, and what it knows of its leases.
//!
//! A worker that takes a request ([`acknowledge`]) decides where each
//! event goes ([`admit`]: its case, found through the correlation tables,
//! or the case it opens), refuses at once what the event alone
//! makes invalid, and writes the rest to the inbox in one transaction:
//! the answer 202 comes after that commit. The owner of each case's
//! partition takes its events from the inbox in the order they were
//! acknowledged ([`drain`]) and handles them as a batch, whose commit
//! removes them from the inbox; a commit refused by the fence (the
//! partition moved) leaves them for the new owner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use casework_core::Timestamp;
use casework_core::case::CaseId;
use casework_core::engine::{Admission, Engine, EngineError, Outcome, Pack, admit};
use casework_core::event::{Event, EventError, EventId};
use casework_core::store::postgres::LeaseRound;
use casework_core::store::{Arrival, Batch, Queued, Rejected, Store, StoreError};
use serde_json::{Value, json};

/// How many events of one partition a drain takes at a time.
const DRAIN_PER_PARTITION: usize = 64;
/// About how many events a drain takes in all, shared out among the
/// partitions held: a batch holds the engine, and the worker's timers and
/// case views wait for it. Batches of a few hundred events already spread
/// a commit's round trips thin.
const DRAIN_EVENTS: usize = 512;

/// What became of one acknowledged event.
#[derive(Debug)]
pub enum Acknowledged {
    /// In the inbox, for this case.
    Queued(CaseId),
    Duplicate,
    Rejected(EventError),
}

/// Acknowledge `events` into the shared inbox through `store` (a
/// connection of the request threads' own, so acknowledging never waits
/// for the engine): refusals are stored as such, the rest queued for
/// their case's owner, all durably before this returns. The error is a
/// store failure: then nothing was acknowledged.
pub fn acknowledge(
    pack: &Pack,
    store: &mut dyn Store,
    now: Timestamp,
    events: Vec<Event>,
) -> Result<Vec<Acknowledged>, EngineError> {
    let mut out = Vec::with_capacity(events.len());
    let mut arrivals = Vec::new();
    let mut rejected = Vec::new();
    let mut claimed = HashMap::new();
    for mut event in events {
        match admit(pack, store, &event, &mut claimed) {
            Ok(Admission::Case {
                case,
                claims,
                links,
            }) => {
                event.case = Some(case);
                out.push(Acknowledged::Queued(CaseId(String::new())));
                arrivals.push(Arrival {
                    event,
                    claims,
                    links,
                });
            }
            Err(EngineError::Rejected(error)) => {
                out.push(Acknowledged::Rejected(error.clone()));
                rejected.push(Rejected {
                    event,
                    at: now,
                    error,
                });
            }
            Err(e) => return Err(e),
        }
    }
    if !rejected.is_empty() {
        store.commit_batch(Batch {
            rejected,
            ..Batch::default()
        })?;
    }
    let inbox = store
        .inbox()
        .ok_or_else(|| StoreError::Backend("this store has no inbox".into()))?;
    let mut queued = inbox.enqueue(arrivals)?.into_iter();
    for slot in &mut out {
        if let Acknowledged::Queued(_) = slot {
            *slot = match queued.next() {
                Some(Queued::Queued(case)) => Acknowledged::Queued(case),
                _ => Acknowledged::Duplicate,
            };
        }
    }
    Ok(out)
}

/// What one drain did.
#[derive(Debug, Default)]
pub struct Drained {
    /// Events taken from the inbox.
    pub taken: usize,
    /// The outcomes, with each event's kind.
    pub results: Vec<(String, Result<Outcome, EventError>)>,
    /// A partition moved to another worker before the commit: nothing of
    /// the batch was kept here; its owner handles the events.
    pub fenced: Option<String>,
}

/// Handle the waiting events of the partitions this worker holds, in
/// acknowledgement order, as one batch.
pub fn drain(engine: &mut Engine) -> Result<Drained, EngineError> {
    let Some(inbox) = engine.store_mut().inbox() else {
        return Ok(Drained::default());
    };
    let held = inbox.leases().len().max(1);
    let events = inbox.next_arrivals((DRAIN_EVENTS / held).clamp(1, DRAIN_PER_PARTITION))?;
    if events.is_empty() {
        return Ok(Drained::default());
    }
    let kinds: Vec<(EventId, String)> = events
        .iter()
        .map(|e| (e.id.clone(), e.kind.0.clone()))
        .collect();
    let taken = events.len();
    let results = match engine.handle_batch(events) {
        Ok(r) => r,
        Err(EngineError::Store(e @ StoreError::Fenced { .. })) => {
            return Ok(Drained {
                taken,
                results: Vec::new(),
                fenced: Some(e.to_string()),
            });
        }
        Err(e) => return Err(e),
    };
    // An event acknowledged twice (sent to two workers before either
    // stored it) is stored once; its second copy leaves the inbox here.
    let duplicates: Vec<EventId> = kinds
        .iter()
        .zip(&results)
        .filter(|(_, r)| matches!(r, Ok(Outcome::Duplicate)))
        .map(|((id, _), _)| id.clone())
        .collect();
    if !duplicates.is_empty()
        && let Some(inbox) = engine.store_mut().inbox()
    {
        inbox.forget(&duplicates)?;
    }
    Ok(Drained {
        taken,
        results: kinds.into_iter().map(|(_, k)| k).zip(results).collect(),
        fenced: None,
    })
}

/// What a worker knows of its leases, kept by the lease thread and shown
/// by `/health`.
#[derive(Debug, Default)]
pub struct LeaseView {
    pub worker: String,
    pub lease_seconds: f64,
    pub renewed: Option<Instant>,
    pub workers: usize,
    pub last_error: Option<String>,
}

/// Shared between the lease thread and the HTTP front.
pub type SharedLeaseView = Arc<Mutex<LeaseView>>;

/// Record one lease round in `view` and say what changed on stderr.
pub fn note_round(view: &SharedLeaseView, result: Result<LeaseRound, StoreError>) {
    let mut v = view.lock().unwrap_or_else(PoisonError::into_inner);
    match result {
        Ok(round) => {
            v.renewed = Some(Instant::now());
            v.workers = round.workers;
            if v.last_error.take().is_some() {
                eprintln!("leases: the database answers again");
            }
            let say = |what: &str, parts: &[u32]| {
                if !parts.is_empty() {
                    eprintln!("leases: {what} partitions {parts:?}");
                }
            };
            say("took", &round.taken);
            say("handed back", &round.released);
            say("lost (lease ran out)", &round.lost);
        }
        Err(e) => {
            let text = e.to_string();
            if v.last_error.as_ref() != Some(&text) {
                eprintln!(
                    "leases: cannot renew ({text}); commits stop being accepted once the lease runs out"
                );
            }
            v.last_error = Some(text);
        }
    }
}

/// The `cluster` part of `/health`.
pub fn health(engine: &mut Engine, view: &SharedLeaseView) -> Result<Value, StoreError> {
    let (worker, lease, renewed, workers, error) = {
        let v = view.lock().unwrap_or_else(PoisonError::into_inner);
        (
            v.worker.clone(),
            v.lease_seconds,
            v.renewed.map(|r| r.elapsed().as_secs_f64()),
            v.workers,
            v.last_error.clone(),
        )
    };
    let Some(inbox) = engine.store_mut().inbox() else {
        return Ok(Value::Null);
    };
    let held = inbox.leases();
    let backlog = inbox.backlog()?;
    Ok(json!({
        "worker": worker,
        "partitions": held,
        "lease_seconds": lease,
        "renewed_seconds_ago": renewed,
        "workers": workers,
        "inbox": backlog,
        "lease_error": error,
    }))
}
