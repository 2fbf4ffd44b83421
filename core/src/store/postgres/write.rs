//! Writing to PostgreSQL: a batch as one statement per table, the
//! fence, the outbox's outcomes and the inbox.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use postgres::Transaction;

use super::{Conn, Ownership, classify, partition_of};
use crate::case::{Case, CaseId};
use crate::event::EventId;
use crate::store::rows::{encode, millis};
use crate::store::{ActionOutcome, Arrival, Batch, CaseSummary, Queued, StoreError, Timer};

/// The refusals of events that name no case count here.
const NO_PARTITION: i32 = -1;

/// A batch as column arrays, encoded before the transaction starts.
#[derive(Default)]
pub(super) struct Plan {
    rulesets: (Vec<String>, Vec<String>),
    packs: (Vec<String>, Vec<String>),
    fired: (Vec<String>, Vec<i64>, Vec<String>),
    events: EventRows,
    cases: CaseRows,
    decisions: (Vec<String>, Vec<Option<String>>, Vec<String>),
    past: (Vec<String>, Vec<String>),
    links: (Vec<String>, Vec<String>),
    timers: TimerRows,
    actions: ActionRows,
    rejected: (Vec<String>, Vec<String>, Vec<String>, Vec<String>),
    /// Every event id of the batch: their inbox rows go with the commit.
    handled: Vec<String>,
    /// Partitions the batch writes (fenced).
    parts: BTreeSet<i32>,
    /// Counter changes known before writing (events, cases, refusals).
    counts: BTreeMap<(i32, &'static str), i64>,
}

#[derive(Default)]
struct EventRows {
    id: Vec<String>,
    case: Vec<String>,
    part: Vec<i32>,
    handled_at: Vec<String>,
    event: Vec<String>,
    customer: Vec<String>,
    ruleset: Vec<Option<String>>,
    pack: Vec<Option<String>>,
}

#[derive(Default)]
struct CaseRows {
    id: Vec<String>,
    part: Vec<i32>,
    state: Vec<String>,
    updated_at: Vec<String>,
    updated_ms: Vec<i64>,
    body: Vec<String>,
    customer_key: Vec<Option<String>>,
    summary: Vec<String>,
}

#[derive(Default)]
struct TimerRows {
    /// Cases whose timers are replaced.
    cases: Vec<String>,
    case: Vec<String>,
    due: Vec<i64>,
    name: Vec<String>,
    part: Vec<i32>,
    due_at: Vec<String>,
}

#[derive(Default)]
struct ActionRows {
    id: Vec<String>,
    case: Vec<String>,
    part: Vec<i32>,
    plugin: Vec<String>,
    action: Vec<String>,
    next_attempt_at: Vec<i64>,
    next_attempt: Vec<String>,
}

impl Plan {
    pub(super) fn of(batch: &Batch, partitions: u32) -> Result<Plan, StoreError> {
        let part = |c: &CaseId| partition_of(c, partitions) as i32;
        let mut plan = Plan::default();
        for s in &batch.rulesets {
            plan.rulesets.0.push(s.hash.clone());
            plan.rulesets.1.push(encode(s)?);
        }
        for s in &batch.packs {
            plan.packs.0.push(s.hash.clone());
            plan.packs.1.push(encode(s)?);
        }
        for t in &batch.fired {
            plan.fired.0.push(t.case.0.clone());
            plan.fired.1.push(millis(t.due));
            plan.fired.2.push(t.name.clone());
            plan.parts.insert(part(&t.case));
        }
        let mut seen = BTreeSet::new();
        // The last commit of a case in the batch holds its present.
        let mut last: HashMap<&CaseId, usize> = HashMap::new();
        for (i, c) in batch.commits.iter().enumerate() {
            let a = &c.accepted;
            if !seen.insert(a.event.id.0.as_str()) {
                return Err(StoreError::Duplicate(a.event.id.clone()));
            }
            let p = part(&a.case);
            plan.parts.insert(p);
            let e = &mut plan.events;
            e.id.push(a.event.id.0.clone());
            e.case.push(a.case.0.clone());
            e.part.push(p);
            e.handled_at.push(a.handled_at.to_rfc3339());
            e.event.push(encode(&a.event)?);
            e.customer.push(encode(&a.customer)?);
            e.ruleset.push(a.ruleset.clone());
            e.pack.push(a.pack.clone());
            *plan.counts.entry((p, "events")).or_default() += 1;
            if c.case.event_count <= 1 {
                *plan.counts.entry((p, "cases")).or_default() += 1;
            }
            for d in &c.decisions {
                plan.decisions.0.push(c.case.id.0.clone());
                plan.decisions.1.push(d.event.as_ref().map(|e| e.0.clone()));
                plan.decisions.2.push(encode(d)?);
            }
            for item in &c.past {
                plan.past.0.push(c.case.id.0.clone());
                plan.past.1.push(encode(item)?);
            }
            for action in &c.actions {
                let r = &mut plan.actions;
                r.id.push(action.id.clone());
                r.case.push(action.case.0.clone());
                r.part.push(part(&action.case));
                r.plugin.push(action.plugin().to_owned());
                r.action.push(encode(action)?);
                r.next_attempt_at.push(millis(action.requested_at));
                r.next_attempt.push(action.requested_at.to_rfc3339());
            }
            plan.handled.push(a.event.id.0.clone());
            last.insert(&c.case.id, i);
        }
        let mut links: BTreeMap<&str, &str> = BTreeMap::new();
        for c in &batch.commits {
            for key in &c.links {
                links.insert(key, &c.case.id.0);
            }
        }
        for (key, case) in links {
            plan.links.0.push(key.to_owned());
            plan.links.1.push(case.to_owned());
        }
        let mut present: Vec<usize> = last.into_values().collect();
        present.sort_unstable();
        for i in present {
            plan.add_present(&batch.commits[i], part(&batch.commits[i].case.id))?;
        }
        for r in &batch.rejected {
            plan.rejected.0.push(r.event.id.0.clone());
            plan.rejected.1.push(r.at.to_rfc3339());
            plan.rejected.2.push(encode(&r.event)?);
            plan.rejected.3.push(encode(&r.error)?);
            plan.handled.push(r.event.id.0.clone());
            let p = r.event.case.as_ref().map_or(NO_PARTITION, part);
            *plan.counts.entry((p, "rejected")).or_default() += 1;
        }
        Ok(plan)
    }

    /// The case row and timers of a case's last commit in the batch.
    fn add_present(&mut self, c: &crate::store::Commit, part: i32) -> Result<(), StoreError> {
        let r = &mut self.cases;
        r.id.push(c.case.id.0.clone());
        r.part.push(part);
        r.state.push(c.case.state.0.clone());
        r.updated_at.push(c.case.updated_at.to_rfc3339());
        r.updated_ms.push(millis(c.case.updated_at));
        r.body.push(encode(&c.case)?);
        r.customer_key.push(c.case.customer.key());
        r.summary.push(encode(&CaseSummary::of(&c.case, c.open))?);
        let t = &mut self.timers;
        t.cases.push(c.case.id.0.clone());
        for timer in &c.timers {
            t.case.push(timer.case.0.clone());
            t.due.push(millis(timer.due));
            t.name.push(timer.name.clone());
            t.part.push(part);
            t.due_at.push(timer.due.to_rfc3339());
        }
        Ok(())
    }
}

/// Counter changes of a transaction, by (partition, name).
type Counts = BTreeMap<(i32, &'static str), i64>;

/// Write the plan in one transaction, fenced.
pub(super) fn commit(
    conn: &mut Conn,
    plan: &Plan,
    ownership: &Ownership,
) -> Result<(), StoreError> {
    let shown = conn.shown().to_owned();
    let err = |e: postgres::Error| classify(&shown, &e);
    let mut tx = conn.client()?.transaction().map_err(err)?;
    match write_plan(&mut tx, plan, ownership) {
        Ok(()) => tx.commit().map_err(err),
        // Dropping `tx` rolls the whole batch back.
        Err(Failure::Pg(e)) => Err(err(e)),
        Err(Failure::Store(e)) => Err(e),
    }
}

enum Failure {
    Pg(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for Failure {
    fn from(e: postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

fn write_plan(tx: &mut Transaction<'_>, plan: &Plan, ownership: &Ownership) -> Result<(), Failure> {
    let mut counts = plan.counts.clone();
    if !plan.rulesets.0.is_empty() {
        tx.execute(
            "INSERT INTO rulesets (hash, source) SELECT * FROM unnest($1::TEXT[], $2::TEXT[])
             ON CONFLICT (hash) DO NOTHING",
            &[&plan.rulesets.0, &plan.rulesets.1],
        )?;
    }
    if !plan.packs.0.is_empty() {
        tx.execute(
            "INSERT INTO packs (hash, source) SELECT * FROM unnest($1::TEXT[], $2::TEXT[])
             ON CONFLICT (hash) DO NOTHING",
            &[&plan.packs.0, &plan.packs.1],
        )?;
    }
    if !plan.fired.0.is_empty() {
        let rows = tx.query(
            "DELETE FROM timers t USING unnest($1::TEXT[], $2::BIGINT[], $3::TEXT[]) AS f(c, d, n)
             WHERE t.case_id = f.c AND t.due = f.d AND t.name = f.n RETURNING t.part",
            &[&plan.fired.0, &plan.fired.1, &plan.fired.2],
        )?;
        count_rows(&mut counts, &rows, "timers", -1);
    }
    write_events(tx, plan)?;
    write_cases(tx, plan, &mut counts)?;
    write_actions(tx, plan, &mut counts)?;
    if !plan.rejected.0.is_empty() {
        let r = &plan.rejected;
        tx.execute(
            "INSERT INTO rejected (event_id, at, event, error)
             SELECT a, b, c, d FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[])
                 WITH ORDINALITY AS u(a, b, c, d, o) ORDER BY o",
            &[&r.0, &r.1, &r.2, &r.3],
        )?;
    }
    let mut parts = plan.parts.clone();
    if !plan.handled.is_empty() {
        let rows = tx.query(
            "DELETE FROM inbox WHERE event_id = ANY($1) RETURNING part",
            &[&plan.handled],
        )?;
        parts.extend(rows.iter().map(|r| r.get::<_, i32>(0)));
    }
    write_counts(tx, &counts)?;
    fence(tx, &parts, ownership)
}

fn write_events(tx: &mut Transaction<'_>, plan: &Plan) -> Result<(), Failure> {
    let e = &plan.events;
    if e.id.is_empty() {
        return Ok(());
    }
    let rows = tx.query(
        "INSERT INTO events (id, case_id, part, handled_at, event, customer, ruleset, pack)
         SELECT a, b, c, d, e, f, g, h FROM unnest($1::TEXT[], $2::TEXT[], $3::INT[], $4::TEXT[],
                $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[])
             WITH ORDINALITY AS u(a, b, c, d, e, f, g, h, o) ORDER BY o
         ON CONFLICT (id) DO NOTHING RETURNING id",
        &[
            &e.id,
            &e.case,
            &e.part,
            &e.handled_at,
            &e.event,
            &e.customer,
            &e.ruleset,
            &e.pack,
        ],
    )?;
    if rows.len() < e.id.len() {
        let stored: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
        let first = e.id.iter().find(|id| !stored.contains(*id));
        let id = first.cloned().unwrap_or_default();
        return Err(StoreError::Duplicate(EventId(id)).into());
    }
    Ok(())
}

fn write_cases(tx: &mut Transaction<'_>, plan: &Plan, counts: &mut Counts) -> Result<(), Failure> {
    let c = &plan.cases;
    if !c.id.is_empty() {
        tx.execute(
            "INSERT INTO cases (id, part, state, updated_at, updated_ms, body, customer_key, summary)
             SELECT * FROM unnest($1::TEXT[], $2::INT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[],
                                  $6::TEXT[], $7::TEXT[], $8::TEXT[])
             ON CONFLICT (id) DO UPDATE SET state = excluded.state,
                 updated_at = excluded.updated_at, updated_ms = excluded.updated_ms,
                 body = excluded.body, customer_key = excluded.customer_key,
                 summary = excluded.summary",
            &[
                &c.id,
                &c.part,
                &c.state,
                &c.updated_at,
                &c.updated_ms,
                &c.body,
                &c.customer_key,
                &c.summary,
            ],
        )?;
    }
    let d = &plan.decisions;
    if !d.0.is_empty() {
        tx.execute(
            "INSERT INTO decisions (case_id, event_id, body)
             SELECT a, b, c FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[])
                 WITH ORDINALITY AS u(a, b, c, o) ORDER BY o",
            &[&d.0, &d.1, &d.2],
        )?;
    }
    let p = &plan.past;
    if !p.0.is_empty() {
        tx.execute(
            "INSERT INTO past (case_id, body)
             SELECT a, b FROM unnest($1::TEXT[], $2::TEXT[]) WITH ORDINALITY AS u(a, b, o)
             ORDER BY o",
            &[&p.0, &p.1],
        )?;
    }
    let l = &plan.links;
    if !l.0.is_empty() {
        tx.execute(
            "INSERT INTO links (key, case_id) SELECT * FROM unnest($1::TEXT[], $2::TEXT[])
             ON CONFLICT (key) DO UPDATE SET case_id = excluded.case_id",
            &[&l.0, &l.1],
        )?;
    }
    let t = &plan.timers;
    if !t.cases.is_empty() {
        let removed = tx.query(
            "DELETE FROM timers WHERE case_id = ANY($1) RETURNING part",
            &[&t.cases],
        )?;
        count_rows(counts, &removed, "timers", -1);
        if !t.case.is_empty() {
            let added = tx.query(
                "INSERT INTO timers (case_id, due, name, part, due_at)
                 SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::INT[], $5::TEXT[])
                 ON CONFLICT DO NOTHING RETURNING part",
                &[&t.case, &t.due, &t.name, &t.part, &t.due_at],
            )?;
            count_rows(counts, &added, "timers", 1);
        }
    }
    Ok(())
}

fn write_actions(
    tx: &mut Transaction<'_>,
    plan: &Plan,
    counts: &mut Counts,
) -> Result<(), Failure> {
    let a = &plan.actions;
    if a.id.is_empty() {
        return Ok(());
    }
    let added = tx.query(
        "INSERT INTO outbox (id, case_id, part, plugin, action, next_attempt_at, next_attempt)
         SELECT a, b, c, d, e, f, g FROM unnest($1::TEXT[], $2::TEXT[], $3::INT[], $4::TEXT[],
                $5::TEXT[], $6::BIGINT[], $7::TEXT[])
             WITH ORDINALITY AS u(a, b, c, d, e, f, g, o) ORDER BY o
         ON CONFLICT (id) DO NOTHING RETURNING part",
        &[
            &a.id,
            &a.case,
            &a.part,
            &a.plugin,
            &a.action,
            &a.next_attempt_at,
            &a.next_attempt,
        ],
    )?;
    count_rows(counts, &added, "outbox.pending", 1);
    Ok(())
}

fn count_rows(counts: &mut Counts, rows: &[postgres::Row], name: &'static str, by: i64) {
    for r in rows {
        *counts.entry((r.get::<_, i32>(0), name)).or_default() += by;
    }
}

/// Apply counter changes, in key order (two workers never wait on each
/// other in a cycle).
fn write_counts(tx: &mut Transaction<'_>, counts: &Counts) -> Result<(), postgres::Error> {
    let (mut parts, mut names, mut ns) = (Vec::new(), Vec::new(), Vec::new());
    for ((part, name), n) in counts.iter().filter(|(_, n)| **n != 0) {
        parts.push(*part);
        names.push(*name);
        ns.push(*n);
    }
    if !parts.is_empty() {
        tx.execute(
            "INSERT INTO counters (part, name, n)
             SELECT * FROM unnest($1::INT[], $2::TEXT[], $3::BIGINT[])
             ON CONFLICT (part, name) DO UPDATE SET n = counters.n + excluded.n",
            &[&parts, &names, &ns],
        )?;
    }
    Ok(())
}

/// Check, inside the transaction and just before it commits, that this
/// worker still holds every partition the batch writes, at the epoch it
/// took each at, with a lease that has not run out by the database's
/// clock; and lock those rows (`FOR SHARE`) until the commit, so that a
/// takeover waits for it. Anything else refuses the batch.
fn fence(
    tx: &mut Transaction<'_>,
    parts: &BTreeSet<i32>,
    ownership: &Ownership,
) -> Result<(), Failure> {
    if parts.is_empty() {
        return Ok(());
    }
    let held = ownership.held();
    let (mut ids, mut epochs) = (Vec::new(), Vec::new());
    for p in parts.iter().filter(|p| **p >= 0) {
        let Some(epoch) = held.get(&(*p as u32)) else {
            return Err(fenced(*p, ownership).into());
        };
        ids.push(*p);
        epochs.push(*epoch);
    }
    let rows = tx.query(
        "SELECT p.id FROM partitions p
         JOIN unnest($1::INT[], $2::BIGINT[]) AS m(id, epoch) ON p.id = m.id AND p.epoch = m.epoch
         WHERE p.owner = $3 AND p.lease_until > clock_timestamp()
         ORDER BY p.id
         FOR SHARE OF p",
        &[&ids, &epochs, &ownership.worker()],
    )?;
    if rows.len() < ids.len() {
        let ok: BTreeSet<i32> = rows.iter().map(|r| r.get(0)).collect();
        let lost = ids.iter().copied().find(|p| !ok.contains(p)).unwrap_or(0);
        ownership.forget(lost as u32);
        return Err(fenced(lost, ownership).into());
    }
    Ok(())
}

fn fenced(part: i32, ownership: &Ownership) -> StoreError {
    StoreError::Fenced {
        partition: part.max(0) as u32,
        worker: ownership.worker().to_owned(),
    }
}

/// Replace a case's timers and summary outside a commit (the one-time
/// rebuild of a migrated store).
pub(super) fn refresh_case(
    conn: &mut Conn,
    part: i32,
    case: &Case,
    timers: &[Timer],
    open: bool,
) -> Result<(), StoreError> {
    let shown = conn.shown().to_owned();
    let err = |e: postgres::Error| classify(&shown, &e);
    let summary = encode(&CaseSummary::of(case, open))?;
    let mut tx = conn.client()?.transaction().map_err(err)?;
    let mut counts = Counts::new();
    let removed = tx
        .query(
            "DELETE FROM timers WHERE case_id = $1 RETURNING part",
            &[&case.id.0],
        )
        .map_err(err)?;
    count_rows(&mut counts, &removed, "timers", -1);
    for t in timers {
        let added = tx
            .query(
                "INSERT INTO timers (case_id, due, name, part, due_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING RETURNING part",
                &[
                    &case.id.0,
                    &millis(t.due),
                    &t.name,
                    &part,
                    &t.due.to_rfc3339(),
                ],
            )
            .map_err(err)?;
        count_rows(&mut counts, &added, "timers", 1);
    }
    tx.execute(
        "UPDATE cases SET summary = $2 WHERE id = $1",
        &[&case.id.0, &summary],
    )
    .map_err(err)?;
    write_counts(&mut tx, &counts).map_err(err)?;
    tx.commit().map_err(err)
}

/// Record how attempts ended, in one transaction (see
/// [`Store::complete_actions`](crate::store::Store::complete_actions)).
pub(super) fn complete_actions(
    conn: &mut Conn,
    worker: &str,
    outcomes: &[(String, ActionOutcome)],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let shown = conn.shown().to_owned();
    let err = |e: postgres::Error| classify(&shown, &e);
    let mut tx = conn.client()?.transaction().map_err(err)?;
    let mut counts = Counts::new();
    let done = complete_done(&mut tx, worker, outcomes, &mut counts).map_err(err)?;
    let mut answers = Vec::with_capacity(outcomes.len());
    for (id, outcome) in outcomes {
        answers.push(match outcome {
            ActionOutcome::Done { .. } if done.contains(id) => Ok(()),
            _ => complete_one(&mut tx, id, worker, outcome, &mut counts).map_err(err)?,
        });
    }
    write_counts(&mut tx, &counts).map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(answers)
}

/// The actions done, in one statement (the usual outcome of a pass):
/// the ids recorded. One not recorded here goes through
/// [`complete_one`], which says why.
fn complete_done(
    tx: &mut Transaction<'_>,
    worker: &str,
    outcomes: &[(String, ActionOutcome)],
    counts: &mut Counts,
) -> Result<BTreeSet<String>, postgres::Error> {
    let (mut ids, mut results) = (Vec::new(), Vec::new());
    for (id, outcome) in outcomes {
        if let ActionOutcome::Done { result } = outcome {
            ids.push(id.as_str());
            results.push(encode(result).ok());
        }
    }
    if ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let rows = tx.query(
        "UPDATE outbox o SET status = 'done', result = u.result,
             lease_owner = NULL, lease_until = NULL
         FROM unnest($1::TEXT[], $2::TEXT[]) AS u(id, result)
         WHERE o.id = u.id AND o.lease_owner = $3 AND o.status = 'pending'
         RETURNING o.id, o.part",
        &[&ids, &results, &worker],
    )?;
    let mut recorded = BTreeSet::new();
    for row in &rows {
        let part: i32 = row.get(1);
        *counts.entry((part, "outbox.pending")).or_default() -= 1;
        *counts.entry((part, "outbox.done")).or_default() += 1;
        recorded.insert(row.get(0));
    }
    Ok(recorded)
}

/// One outcome inside `tx`: its counter changes go to `counts`. The inner
/// error says the action was not this worker's to record.
fn complete_one(
    tx: &mut Transaction<'_>,
    id: &str,
    worker: &str,
    outcome: &ActionOutcome,
    counts: &mut Counts,
) -> Result<Result<(), StoreError>, postgres::Error> {
    let (rows, status) = match outcome {
        ActionOutcome::Done { result } => (
            tx.query(
                "UPDATE outbox SET status = 'done', result = $3,
                     lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND lease_owner = $2 AND status = 'pending' RETURNING part",
                &[&id, &worker, &encode(result).ok()],
            )?,
            Some("outbox.done"),
        ),
        ActionOutcome::Retry { at, error } => (
            tx.query(
                "UPDATE outbox SET next_attempt_at = $3, next_attempt = $4, last_error = $5,
                     lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND lease_owner = $2 AND status = 'pending' RETURNING part",
                &[&id, &worker, &millis(*at), &at.to_rfc3339(), error],
            )?,
            None,
        ),
        ActionOutcome::GaveUp { error } => (
            tx.query(
                "UPDATE outbox SET status = 'gave_up', last_error = $3,
                     lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND lease_owner = $2 AND status = 'pending' RETURNING part",
                &[&id, &worker, error],
            )?,
            Some("outbox.gave_up"),
        ),
    };
    if let Some(row) = rows.first() {
        if let Some(status) = status {
            let part: i32 = row.get(0);
            *counts.entry((part, "outbox.pending")).or_default() -= 1;
            *counts.entry((part, status)).or_default() += 1;
        }
        return Ok(Ok(()));
    }
    let exists = !tx
        .query("SELECT 1 FROM outbox WHERE id = $1", &[&id])?
        .is_empty();
    Ok(Err(StoreError::not_recorded(id, worker, exists)))
}

/// Acknowledge events into the inbox, in one transaction: claim the keys
/// of the cases they open (the first claim of a key wins; a later one
/// joins that case), drop those already stored or waiting, number the
/// rest per partition (the head row of each partition is locked until
/// the commit, so numbers follow the order of acknowledgement) and
/// store them.
pub(super) fn enqueue(
    conn: &mut Conn,
    partitions: u32,
    mut arrivals: Vec<Arrival>,
) -> Result<Vec<Queued>, StoreError> {
    let shown = conn.shown().to_owned();
    let err = |e: postgres::Error| classify(&shown, &e);
    let mut tx = conn.client()?.transaction().map_err(err)?;
    for a in &mut arrivals {
        let Some(case) = a.event.case.clone() else {
            continue;
        };
        for key in &a.claims {
            let winner: String = tx
                .query_one(
                    "WITH claimed AS (
                         INSERT INTO links (key, case_id) VALUES ($1, $2)
                         ON CONFLICT (key) DO NOTHING RETURNING case_id)
                     SELECT case_id FROM claimed
                     UNION ALL SELECT case_id FROM links WHERE key = $1
                     LIMIT 1",
                    &[key, &case.0],
                )
                .map_err(err)?
                .get(0);
            if winner != case.0 {
                a.event.case = Some(CaseId(winner));
                break;
            }
        }
    }
    let ids: Vec<&str> = arrivals.iter().map(|a| a.event.id.0.as_str()).collect();
    let stored: BTreeSet<String> = tx
        .query(
            "SELECT id FROM events WHERE id = ANY($1)
             UNION SELECT event_id FROM inbox WHERE event_id = ANY($1)",
            &[&ids],
        )
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut by_part: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    let mut outcome = vec![Queued::Duplicate; arrivals.len()];
    let mut seen = BTreeSet::new();
    for (i, a) in arrivals.iter().enumerate() {
        let Some(case) = &a.event.case else { continue };
        if stored.contains(&a.event.id.0) || !seen.insert(a.event.id.0.as_str()) {
            continue;
        }
        by_part
            .entry(partition_of(case, partitions) as i32)
            .or_default()
            .push(i);
        outcome[i] = Queued::Queued(case.clone());
    }
    let (keys, cases): (Vec<&str>, Vec<&str>) = (arrivals.iter().zip(&outcome))
        .filter_map(|(a, o)| match o {
            Queued::Queued(case) => Some(a.links.iter().map(|k| (k.as_str(), case.0.as_str()))),
            Queued::Duplicate => None,
        })
        .flatten()
        .unzip();
    if !keys.is_empty() {
        tx.execute(
            "INSERT INTO links (key, case_id) SELECT * FROM unnest($1::TEXT[], $2::TEXT[])
             ON CONFLICT (key) DO NOTHING",
            &[&keys, &cases],
        )
        .map_err(err)?;
    }
    if !by_part.is_empty() {
        let parts: Vec<i32> = by_part.keys().copied().collect();
        let counts: Vec<i64> = by_part.values().map(|m| m.len() as i64).collect();
        // Lock the heads in partition order (two acknowledging workers
        // never wait on each other in a cycle), then number.
        tx.execute(
            "SELECT part FROM inbox_heads WHERE part = ANY($1) ORDER BY part FOR UPDATE",
            &[&parts],
        )
        .map_err(err)?;
        let heads: BTreeMap<i32, i64> = tx
            .query(
                "UPDATE inbox_heads h SET next = h.next + m.n
                 FROM unnest($1::INT[], $2::BIGINT[]) AS m(part, n)
                 WHERE h.part = m.part RETURNING h.part, h.next",
                &[&parts, &counts],
            )
            .map_err(err)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let (mut col_part, mut seqs, mut ids, mut bodies) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (part, members) in &by_part {
            let last = heads.get(part).copied().unwrap_or_default();
            let first = last - members.len() as i64 + 1;
            for (k, i) in members.iter().enumerate() {
                let event = &arrivals[*i].event;
                col_part.push(*part);
                seqs.push(first + k as i64);
                ids.push(event.id.0.as_str());
                bodies.push(encode(event)?);
            }
        }
        tx.execute(
            "INSERT INTO inbox (part, pseq, event_id, event)
             SELECT * FROM unnest($1::INT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[])
             ON CONFLICT (event_id) DO NOTHING",
            &[&col_part, &seqs, &ids, &bodies],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(outcome)
}
