//! The PostgreSQL store on its own: the contract every store keeps, the
//! fence, the inbox, and how partitions are shared.

use std::collections::BTreeSet;
use std::time::Duration;

use casework::case::CaseId;
use casework::event::{Event, EventId};
use casework::store::Link;
use casework::store::contract::{commit, t};
use casework::store::postgres::PgStore;
use casework::store::{Arrival, Queued, Store, StoreError};
use libtest_mimic::Failed;

use crate::TestDb;

fn store_alone(
    db: &TestDb,
    lease: Duration,
) -> Result<(PgStore, casework::store::postgres::Leases), Failed> {
    let store = PgStore::open(&db.url)?;
    let mut leases = store.leases(lease)?;
    let busy = leases.take_all()?;
    if !busy.is_empty() {
        return Err(format!("partitions held by others: {busy:?}").into());
    }
    Ok((store, leases))
}

pub fn keeps_the_contract(db: &TestDb) -> Result<(), Failed> {
    let (mut store, _leases) = store_alone(db, Duration::from_secs(60))?;
    casework::store::contract::check(&mut store);
    // Opening again finds the schema in place and the partitions as set.
    let again = PgStore::open(&db.url)?;
    assert_eq!(
        again.version()?,
        casework::store::postgres::schema_version()
    );
    assert_eq!(again.partitions(), 64);
    Ok(())
}

pub fn a_stale_worker_cannot_commit(db: &TestDb) -> Result<(), Failed> {
    // Worker A holds everything with a short lease, then stops renewing
    // (as a paused process would).
    let (mut a, _a_leases) = store_alone(db, Duration::from_millis(400))?;
    a.commit(commit("e1", "C-1", &["team.notify"]))?;
    std::thread::sleep(Duration::from_millis(600));
    // B takes the expired partitions over: their epochs move on.
    let (mut b, _b_leases) = store_alone(db, Duration::from_secs(60))?;
    b.commit(commit("e2", "C-2", &[]))?;
    // A still believes it holds them; the database's fence says no.
    let refused = a.commit(commit("e3", "C-3", &["team.notify"]));
    match refused {
        Err(StoreError::Fenced { .. }) => {}
        other => return Err(format!("A's commit was not fenced: {other:?}").into()),
    }
    assert!(!b.has_event(&EventId("e3".into()))?);
    assert!(b.load(&CaseId("C-3".into()))?.is_none());
    assert_eq!(b.event_count()?, 2);
    assert_eq!(b.outbox_counts()?.pending, 1);
    // A's timers and claims are no longer A's either.
    assert!(a.due_timers(t("2030-01-01T00:00:00Z"), 10)?.is_empty());
    Ok(())
}

fn arrival(id: &str, case: &str, claims: &[&str]) -> Arrival {
    let at = t("2026-11-25T10:00:00+09:00");
    Arrival {
        event: Event::new(id, at, "customer.message", Some(CaseId(case.into())))
            .with("text", "hello"),
        claims: claims.iter().map(|c| (*c).to_owned()).collect(),
        links: Vec::new(),
    }
}

pub fn the_inbox_keeps_acknowledgement_order_and_one_case_per_order(
    db: &TestDb,
) -> Result<(), Failed> {
    let (mut owner, _leases) = store_alone(db, Duration::from_secs(60))?;
    // Another worker (no partitions) acknowledges too.
    let mut other = PgStore::open(&db.url)?;
    let inbox = owner.inbox().expect("PostgreSQL has an inbox");
    let first = inbox.enqueue(vec![arrival("m1", "C-m1", &["order:O-1"])])?;
    assert_eq!(first, vec![Queued::Queued(CaseId("C-m1".into()))]);
    // A second opening event naming the same new order joins that case.
    let second = other.inbox().unwrap().enqueue(vec![
        arrival("m2", "C-m2", &["order:O-1"]),
        arrival("m3", "C-m3", &[]),
        arrival("m1", "C-m1", &[]),
    ])?;
    assert_eq!(
        second,
        vec![
            Queued::Queued(CaseId("C-m1".into())),
            Queued::Queued(CaseId("C-m3".into())),
            Queued::Duplicate,
        ]
    );
    let inbox = owner.inbox().unwrap();
    assert_eq!(inbox.backlog()?.waiting, 3);
    let waiting: Vec<(String, Option<String>)> = inbox
        .next_arrivals(10)?
        .into_iter()
        .map(|e| (e.id.0, e.case.map(|c| c.0)))
        .collect();
    let of_m1: Vec<&str> = waiting
        .iter()
        .filter(|(_, c)| c.as_deref() == Some("C-m1"))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(of_m1, ["m1", "m2"], "{waiting:?}");
    // The worker without partitions takes nothing.
    assert!(other.inbox().unwrap().next_arrivals(10)?.is_empty());

    // Message-IDs are linked as they are acknowledged: an opening
    // message's claimed, a joining one's added (a key linked already
    // keeps its case), so a reply acknowledged before either is handled
    // finds the case.
    let opening = arrival("m4", "C-m4", &["message:first@shop"]);
    let mut joining = arrival("m5", "C-m4", &[]);
    joining.links = vec!["message:second@shop".into()];
    let mut stray = arrival("m6", "C-m3", &[]);
    stray.links = vec!["message:first@shop".into()];
    other
        .inbox()
        .unwrap()
        .enqueue(vec![opening, joining, stray])?;
    for (id, case) in [("<first@shop>", "C-m4"), ("second@shop", "C-m4")] {
        assert_eq!(
            owner.linked_case(&Link::MessageId(id))?,
            Some(CaseId(case.into())),
            "{id}"
        );
    }
    Ok(())
}

pub fn partitions_are_shared_fairly_and_handed_back(db: &TestDb) -> Result<(), Failed> {
    let lease = Duration::from_millis(800);
    let stores: Vec<PgStore> = (0..3)
        .map(|_| PgStore::open(&db.url))
        .collect::<Result<_, _>>()?;
    let mut leases: Vec<_> = stores
        .iter()
        .map(|s| s.leases(lease))
        .collect::<Result<_, _>>()?;
    let held = |stores: &[PgStore]| -> Vec<BTreeSet<u32>> {
        stores
            .iter()
            .map(|s| s.ownership().held().into_keys().collect())
            .collect()
    };
    // Alone, the first takes everything.
    leases[0].round()?;
    assert_eq!(held(&stores)[0].len(), 64);
    // Two more join: a few rounds later each holds its share, none twice.
    for _ in 0..3 {
        for l in &mut leases {
            l.round()?;
        }
    }
    let now = held(&stores);
    let sizes: Vec<usize> = now.iter().map(BTreeSet::len).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 64, "{sizes:?}");
    assert!(sizes.iter().all(|n| (20..=22).contains(n)), "{sizes:?}");
    let all: BTreeSet<u32> = now.iter().flatten().copied().collect();
    assert_eq!(all.len(), 64);
    // The third stops renewing (killed): after its lease the other two
    // take its partitions over.
    let dead = now[2].clone();
    std::thread::sleep(lease + Duration::from_millis(200));
    for _ in 0..2 {
        leases[0].round()?;
        leases[1].round()?;
    }
    let after = held(&stores);
    assert_eq!(after[0].len() + after[1].len(), 64, "{after:?}");
    assert!(
        dead.iter()
            .all(|p| after[0].contains(p) || after[1].contains(p))
    );
    // Handing back at once (SIGTERM): the partitions are free for others.
    leases[0].release_all()?;
    assert!(stores[0].ownership().held().is_empty());
    leases[1].round()?;
    assert_eq!(held(&stores)[1].len(), 64);
    Ok(())
}

pub fn migrate_copies_an_embedded_store(db: &TestDb) -> Result<(), Failed> {
    use casework::store::SqliteStore;
    let dir = crate::util::scratch("pg-migrate");
    let file = dir.join("casework.db");
    let run = crate::util::casework([
        "run",
        "--events",
        "examples/events/shop.jsonl",
        "--db",
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.output());
    let migrate =
        crate::util::casework(["migrate", "--from", file.to_str().unwrap(), "--to", &db.url]);
    assert_eq!(migrate.code, 0, "{}", migrate.output());
    assert!(migrate.stdout.contains("events"), "{}", migrate.output());
    let sqlite = SqliteStore::open(&file)?;
    let pg = PgStore::open(&db.url)?;
    assert_eq!(pg.event_count()?, sqlite.event_count()?);
    assert_eq!(pg.case_count()?, sqlite.case_count()?);
    assert_eq!(pg.timer_count()?, sqlite.timer_count()?);
    assert_eq!(pg.outbox_counts()?, sqlite.outbox_counts()?);
    for id in sqlite.case_ids()? {
        assert_eq!(pg.load(&id)?, sqlite.load(&id)?, "{id}");
        assert_eq!(pg.decisions(&id)?, sqlite.decisions(&id)?, "{id}");
        assert_eq!(pg.past(&id)?, sqlite.past(&id)?, "{id}");
        assert_eq!(pg.events(&id)?, sqlite.events(&id)?, "{id}");
        assert_eq!(pg.case_actions(&id)?, sqlite.case_actions(&id)?, "{id}");
    }
    // A second migration into the same database is refused: it has cases.
    let again =
        crate::util::casework(["migrate", "--from", file.to_str().unwrap(), "--to", &db.url]);
    assert_eq!(again.code, 1, "{}", again.output());
    assert!(
        again.stderr.contains("already holds cases"),
        "{}",
        again.output()
    );
    Ok(())
}
