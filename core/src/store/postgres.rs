//! A durable [`Store`] in PostgreSQL, shared by several workers.
//!
//! One database, N `casework serve` processes (workers). The design is the
//! one of Temporal's history shards and Zeebe's partitions:
//!
//! - **Partitions.** Every case belongs to one of a fixed number of
//!   partitions ([`partition_of`]: a stable hash of its id), fixed when
//!   the database is set up (default [`DEFAULT_PARTITIONS`]) and kept in
//!   `settings`. Timers and outbox rows carry their case's partition.
//! - **Leases.** A worker owns a partition while it holds its lease
//!   (`partitions.owner`, `lease_until`, taken and renewed on the
//!   database's clock by [`Leases`]); taking one over bumps its `epoch`.
//! - **Fencing.** Every [`commit_batch`](Store::commit_batch) checks, in
//!   its own transaction, that this worker still holds every partition it
//!   writes at the epoch it took it at, and locks those rows until it
//!   commits: a worker that lost its lease (paused, cut off) cannot
//!   commit ([`StoreError::Fenced`]); a takeover waits for a commit in
//!   flight. Only a partition's owner fires its timers or claims its
//!   actions.
//! - **The inbox.** Any worker acknowledges any event ([`Inbox`]): it is
//!   resolved to its case, written to the inbox under the case's
//!   partition, numbered in acknowledgement order, and handled by the
//!   owner, whose commit deletes it in the same transaction.
//!
//! Rows are encoded as SQLite's ([`super::rows`]), so `casework migrate`
//! copies them unchanged. A batch is written with one statement per table
//! (arrays through `unnest`), so a commit costs a dozen round trips
//! whatever its size.

mod import;
mod leases;
mod schema;
mod write;

use std::cell::{RefCell, RefMut};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};
use sha2::{Digest, Sha256};

use super::rows::{RawEntry, decode, decode_time, from_millis, millis};
use super::{
    Accepted, ActionOutcome, Batch, CaseSummary, ClaimRequest, Inbox, Link, OutboxCounts,
    OutboxEntry, Queued, Rejected, Store, StoreError, Timer,
};
use crate::Timestamp;
use crate::action::Action;
use crate::audit::Decision;
use crate::case::{Case, CaseId, Past};
use crate::config::PackSource;
use crate::event::{Event, EventId};
use crate::rules::RuleSetSource;

pub use import::{Copied, import_sqlite};
pub use leases::{LeaseRound, Leases, Ownership, PartitionLease, PartitionOwner};

/// Partitions of a new database: enough for a few dozen workers.
pub const DEFAULT_PARTITIONS: u32 = 64;

/// The partition of a case: the first four bytes of the SHA-256 of its
/// id, modulo the partition count. Stable across releases and machines
/// (never Rust's `Hash`, which is neither).
pub fn partition_of(case: &CaseId, partitions: u32) -> u32 {
    let d = Sha256::digest(case.0.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % partitions.max(1)
}

/// Whether `db` names a PostgreSQL database (`postgres://…`,
/// `postgresql://…`) rather than a SQLite file.
pub fn is_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// The URL as shown in messages: without its password.
pub fn shown_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Settings of a database when it is first set up.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// How many partitions; only read when the database is new.
    pub partitions: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            partitions: DEFAULT_PARTITIONS,
        }
    }
}

/// One connection, reconnected when it was lost, with its prepared
/// statements.
pub(crate) struct Conn {
    url: String,
    shown: String,
    client: Option<Client>,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    pub(crate) fn connect(url: &str) -> Result<Conn, StoreError> {
        let mut conn = Conn {
            url: url.to_owned(),
            shown: shown_url(url),
            client: None,
            statements: HashMap::new(),
        };
        conn.client()?;
        Ok(conn)
    }

    /// The client, connecting again if the connection was lost (the
    /// statements prepared on the old one go with it).
    pub(crate) fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.statements.clear();
            let mut config: postgres::Config = self.url.parse().map_err(|e| StoreError::Open {
                path: self.shown.clone(),
                message: format!(
                    "not a PostgreSQL URL ({e}); write postgres://USER@HOST:PORT/DATABASE"
                ),
            })?;
            config
                .application_name("casework")
                .connect_timeout(std::time::Duration::from_secs(5))
                .keepalives_idle(std::time::Duration::from_secs(10));
            let client = config.connect(NoTls).map_err(|e| StoreError::Open {
                path: self.shown.clone(),
                message: format!(
                    "{e}; check that PostgreSQL is running and reachable at that address and that the database exists"
                ),
            })?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// A statement prepared once per connection (connecting again first
    /// if the connection was lost, which forgets the old statements).
    pub(crate) fn prepare(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        self.client()?;
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let client = self.client.as_mut().expect("connected above");
        let stmt = client.prepare(sql).map_err(|e| classify(&self.shown, &e))?;
        self.statements.insert(sql, stmt.clone());
        Ok(stmt)
    }

    pub(crate) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let stmt = self.prepare(sql)?;
        let client = self.client.as_mut().expect("connected by prepare");
        client
            .query(&stmt, params)
            .map_err(|e| classify(&self.shown, &e))
    }

    pub(crate) fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let stmt = self.prepare(sql)?;
        let client = self.client.as_mut().expect("connected by prepare");
        client
            .execute(&stmt, params)
            .map_err(|e| classify(&self.shown, &e))
    }

    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }
}

/// Turn a PostgreSQL error into what the user should do about it.
pub(crate) fn classify(shown: &str, e: &postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        if *db.code() == SqlState::DISK_FULL {
            return StoreError::DiskFull {
                path: shown.to_owned(),
            };
        }
        return StoreError::Backend(format!("{shown}: {}", db.message()));
    }
    if e.is_closed() {
        return StoreError::Backend(format!(
            "{shown}: the connection to PostgreSQL was lost ({e}); what was being written was not kept, and casework connects again on the next try"
        ));
    }
    StoreError::Backend(format!("{shown}: {e}"))
}

/// A [`Store`] in a PostgreSQL database.
pub struct PgStore {
    conn: RefCell<Conn>,
    partitions: u32,
    ownership: Arc<Ownership>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.conn.borrow().shown)
            .field("partitions", &self.partitions)
            .finish()
    }
}

/// The schema version this casework writes to PostgreSQL.
pub fn schema_version() -> i64 {
    schema::MIGRATIONS.len() as i64
}

/// A name for this process among the workers: host, process id and a
/// few random bits (a restarted process is a new worker).
pub fn worker_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}:{}:{:04x}", std::process::id(), nanos & 0xffff)
}

impl PgStore {
    /// Open the database at `url`, setting it up (with the default
    /// options) or bringing its schema up to date.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        PgStore::open_with(url, &PgOptions::default())
    }

    /// Open with the settings a new database gets.
    pub fn open_with(url: &str, options: &PgOptions) -> Result<PgStore, StoreError> {
        let mut conn = Conn::connect(url)?;
        let partitions = migrate(&mut conn, options)?;
        Ok(PgStore {
            conn: RefCell::new(conn),
            partitions,
            ownership: Arc::new(Ownership::new(worker_name())),
        })
    }

    /// How many partitions the database has.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Another connection to the same database for the same worker (its
    /// partitions, its fence): a thread that should not wait for the
    /// engine's connection (acknowledging requests, running the outbox)
    /// works on one of its own.
    pub fn sibling(&self) -> Result<PgStore, StoreError> {
        let url = self.conn.borrow().url.clone();
        Ok(PgStore {
            conn: RefCell::new(Conn::connect(&url)?),
            partitions: self.partitions,
            ownership: self.ownership.clone(),
        })
    }

    /// The partitions this store may write, shared with its [`Leases`].
    pub fn ownership(&self) -> Arc<Ownership> {
        self.ownership.clone()
    }

    /// A lease keeper for this store's worker, on a connection of its own.
    pub fn leases(&self, lease: std::time::Duration) -> Result<Leases, StoreError> {
        let url = self.conn.borrow().url.clone();
        Leases::connect(&url, self.ownership.clone(), self.partitions, lease)
    }

    /// The URL as shown (no password).
    pub fn shown(&self) -> String {
        self.conn.borrow().shown.clone()
    }

    /// The schema version of the database.
    pub fn version(&self) -> Result<i64, StoreError> {
        let rows = self.conn().query(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_version",
            &[],
        )?;
        Ok(rows.first().map_or(0, |r| r.get(0)))
    }

    fn conn(&self) -> RefMut<'_, Conn> {
        self.conn.borrow_mut()
    }

    fn part(&self, case: &CaseId) -> i32 {
        partition_of(case, self.partitions) as i32
    }

    fn counter(&self, name: &str) -> Result<i64, StoreError> {
        let rows = self.conn().query(
            "SELECT COALESCE(SUM(n), 0)::BIGINT FROM counters WHERE name = $1",
            &[&name],
        )?;
        Ok(rows.first().map_or(0, |r| r.get(0)))
    }

    fn decode_rows<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>, StoreError> {
        let mut conn = self.conn();
        let rows = conn.query(sql, params)?;
        rows.iter()
            .map(|r| decode(conn.shown(), table, r.get::<_, &str>(0)))
            .collect()
    }

    fn entries(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut conn = self.conn();
        let rows = conn.query(sql, params)?;
        rows.iter()
            .map(|r| raw_entry(r, 0).decode(conn.shown()))
            .collect()
    }

    fn timers(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Timer>, StoreError> {
        let mut conn = self.conn();
        let rows = conn.query(sql, params)?;
        rows.iter()
            .map(|r| {
                Ok(Timer {
                    case: CaseId(r.get(0)),
                    name: r.get(1),
                    due: decode_time(conn.shown(), "timers.due_at", r.get(2))?,
                })
            })
            .collect()
    }

    /// The partitions held now, as the array the queries take.
    fn held(&self) -> Vec<i32> {
        self.ownership.held().keys().map(|p| *p as i32).collect()
    }
}

/// Create the schema, or bring it up to date, under an advisory lock so
/// that workers starting together migrate once. Returns the partition
/// count.
fn migrate(conn: &mut Conn, options: &PgOptions) -> Result<u32, StoreError> {
    let shown = conn.shown().to_owned();
    let err = |e: postgres::Error| classify(&shown, &e);
    let client = conn.client()?;
    let mut tx = client.transaction().map_err(err)?;
    // One lock number for casework's schema changes.
    tx.execute("SELECT pg_advisory_xact_lock(7243615)", &[])
        .map_err(err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .map_err(err)?;
    let found: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_version",
            &[],
        )
        .map_err(err)?
        .get(0);
    let supported = schema_version();
    if found > supported {
        return Err(StoreError::NewerSchema {
            path: shown.clone(),
            found,
            supported,
        });
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).map_err(err)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )
        .map_err(err)?;
    }
    if found == 0 {
        let n = options.partitions.clamp(1, 4096) as i32;
        tx.execute(
            "INSERT INTO settings (name, value) VALUES ('partitions', $1)",
            &[&n.to_string()],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO partitions (id) SELECT generate_series(0, $1 - 1)",
            &[&n],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO inbox_heads (part) SELECT generate_series(0, $1 - 1)",
            &[&n],
        )
        .map_err(err)?;
    }
    let partitions: String = tx
        .query_one("SELECT value FROM settings WHERE name = 'partitions'", &[])
        .map_err(err)?
        .get(0);
    tx.commit().map_err(err)?;
    partitions.parse().map_err(|_| StoreError::Corrupt {
        path: shown,
        message: format!("settings.partitions is `{partitions}`, not a number"),
    })
}

/// The outbox row from column `at` on ([`ENTRY_COLUMNS`] order).
fn raw_entry(r: &Row, at: usize) -> RawEntry {
    RawEntry {
        action: r.get(at),
        status: r.get(at + 1),
        attempts: i64::from(r.get::<_, i32>(at + 2)),
        next_attempt: r.get(at + 3),
        lease_owner: r.get(at + 4),
        lease_until: r.get(at + 5),
        last_error: r.get(at + 6),
        result: r.get(at + 7),
    }
}

/// `SELECT {ENTRY_COLUMNS}` statements, spelled out because prepared
/// statements are cached by their `&'static str`.
macro_rules! entries_sql {
    ($tail:literal) => {
        concat!(
            "SELECT action, status, attempts, next_attempt, lease_owner, lease_until, last_error, result FROM outbox ",
            $tail
        )
    };
}

impl Store for PgStore {
    fn load(&self, id: &CaseId) -> Result<Option<Case>, StoreError> {
        Ok(self
            .decode_rows("cases", "SELECT body FROM cases WHERE id = $1", &[&id.0])?
            .pop())
    }

    fn has_event(&self, id: &EventId) -> Result<bool, StoreError> {
        Ok(!self
            .conn()
            .query("SELECT 1 FROM events WHERE id = $1", &[&id.0])?
            .is_empty())
    }

    fn load_cases(&self, ids: &[&CaseId]) -> Result<Vec<Case>, StoreError> {
        let ids: Vec<&str> = ids.iter().map(|i| i.0.as_str()).collect();
        self.decode_rows(
            "cases",
            "SELECT body FROM cases WHERE id = ANY($1)",
            &[&ids],
        )
    }

    fn stored_events(
        &self,
        ids: &[&EventId],
    ) -> Result<std::collections::HashSet<EventId>, StoreError> {
        let ids: Vec<&str> = ids.iter().map(|i| i.0.as_str()).collect();
        let rows = self
            .conn()
            .query("SELECT id FROM events WHERE id = ANY($1)", &[&ids])?;
        Ok(rows.iter().map(|r| EventId(r.get(0))).collect())
    }

    fn commit_batch(&mut self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() && batch.fired.is_empty() {
            return Ok(());
        }
        let plan = write::Plan::of(&batch, self.partitions)?;
        let ownership = self.ownership.clone();
        write::commit(&mut self.conn.borrow_mut(), &plan, &ownership)
    }

    fn linked_case(&self, link: &Link) -> Result<Option<CaseId>, StoreError> {
        let rows = self
            .conn()
            .query("SELECT case_id FROM links WHERE key = $1", &[&link.key()])?;
        Ok(rows.first().map(|r| CaseId(r.get(0))))
    }

    fn customer_cases(&self, key: &str) -> Result<Vec<CaseSummary>, StoreError> {
        self.decode_rows(
            "cases",
            "SELECT summary FROM cases WHERE customer_key = $1 ORDER BY id",
            &[&key],
        )
    }

    fn customers_cases(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Vec<CaseSummary>>, StoreError> {
        let mut out: HashMap<String, Vec<CaseSummary>> =
            keys.iter().map(|k| (k.clone(), Vec::new())).collect();
        if keys.is_empty() {
            return Ok(out);
        }
        let mut conn = self.conn();
        let rows = conn.query(
            "SELECT customer_key, summary FROM cases WHERE customer_key = ANY($1) ORDER BY id",
            &[&keys],
        )?;
        for r in &rows {
            let summary = decode(conn.shown(), "cases", r.get(1))?;
            out.entry(r.get(0)).or_default().push(summary);
        }
        Ok(out)
    }

    fn due_timers(&self, until: Timestamp, limit: usize) -> Result<Vec<Timer>, StoreError> {
        self.timers(
            "SELECT case_id, name, due_at FROM timers WHERE due <= $1 AND part = ANY($2)
             ORDER BY due, case_id, name LIMIT $3",
            &[&millis(until), &self.held(), &(limit as i64)],
        )
    }

    fn next_timer(&self) -> Result<Option<Timestamp>, StoreError> {
        let mut conn = self.conn();
        let rows = conn.query(
            "SELECT due_at FROM timers WHERE part = ANY($1) ORDER BY due LIMIT 1",
            &[&self.held()],
        )?;
        rows.first()
            .map(|r| decode_time(conn.shown(), "timers.due_at", r.get(0)))
            .transpose()
    }

    fn timer_count(&self) -> Result<usize, StoreError> {
        Ok(self.counter("timers")?.max(0) as usize)
    }

    fn case_timers(&self, case: &CaseId) -> Result<Vec<Timer>, StoreError> {
        self.timers(
            "SELECT case_id, name, due_at FROM timers WHERE case_id = $1 ORDER BY due, name",
            &[&case.0],
        )
    }

    fn refresh_case(
        &mut self,
        case: &Case,
        timers: &[Timer],
        open: bool,
    ) -> Result<(), StoreError> {
        let part = self.part(&case.id);
        write::refresh_case(&mut self.conn(), part, case, timers, open)
    }

    fn timers_stale(&self) -> Result<bool, StoreError> {
        Ok(self.counter("timers.stale")? != 0)
    }

    fn timers_rebuilt(&mut self) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM counters WHERE name = 'timers.stale'", &[])
            .map(drop)
    }

    fn case_ids(&self) -> Result<Vec<CaseId>, StoreError> {
        let rows = self.conn().query("SELECT id FROM cases ORDER BY id", &[])?;
        Ok(rows.iter().map(|r| CaseId(r.get(0))).collect())
    }

    fn case_ids_after(
        &self,
        after: Option<&CaseId>,
        limit: usize,
    ) -> Result<Vec<CaseId>, StoreError> {
        let after = after.map(|c| c.0.as_str());
        let rows = self.conn().query(
            "SELECT id FROM cases WHERE $1::TEXT IS NULL OR id > $1 ORDER BY id LIMIT $2",
            &[&after, &(limit as i64)],
        )?;
        Ok(rows.iter().map(|r| CaseId(r.get(0))).collect())
    }

    fn case_count(&self) -> Result<usize, StoreError> {
        Ok(self.counter("cases")?.max(0) as usize)
    }

    fn events(&self, case: &CaseId) -> Result<Vec<Accepted>, StoreError> {
        let mut conn = self.conn();
        let rows = conn.query(
            "SELECT event, handled_at, customer, ruleset, pack FROM events
             WHERE case_id = $1 ORDER BY seq",
            &[&case.0],
        )?;
        let shown = conn.shown();
        rows.iter()
            .map(|r| {
                Ok(Accepted {
                    event: decode(shown, "events", r.get(0))?,
                    case: case.clone(),
                    handled_at: decode_time(shown, "events.handled_at", r.get(1))?,
                    customer: decode(shown, "events", r.get(2))?,
                    ruleset: r.get(3),
                    pack: r.get(4),
                })
            })
            .collect()
    }

    fn decisions(&self, case: &CaseId) -> Result<Vec<Decision>, StoreError> {
        self.decode_rows(
            "decisions",
            "SELECT body FROM decisions WHERE case_id = $1 ORDER BY seq",
            &[&case.0],
        )
    }

    fn past(&self, case: &CaseId) -> Result<Vec<Past>, StoreError> {
        self.decode_rows(
            "past",
            "SELECT body FROM past WHERE case_id = $1 ORDER BY seq",
            &[&case.0],
        )
    }

    fn event_count(&self) -> Result<usize, StoreError> {
        Ok(self.counter("events")?.max(0) as usize)
    }

    fn ruleset(&self, hash: &str) -> Result<Option<RuleSetSource>, StoreError> {
        Ok(self
            .decode_rows(
                "rulesets",
                "SELECT source FROM rulesets WHERE hash = $1",
                &[&hash],
            )?
            .pop())
    }

    fn pack(&self, hash: &str) -> Result<Option<PackSource>, StoreError> {
        Ok(self
            .decode_rows(
                "packs",
                "SELECT source FROM packs WHERE hash = $1",
                &[&hash],
            )?
            .pop())
    }

    fn pending_actions(&self) -> Result<Vec<Action>, StoreError> {
        self.decode_rows(
            "outbox",
            "SELECT action FROM outbox WHERE status = 'pending' ORDER BY seq",
            &[],
        )
    }

    fn pending_by_plugin(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let rows = self.conn().query(
            "SELECT plugin, COUNT(*) FROM outbox WHERE status = 'pending' GROUP BY plugin",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as usize))
            .collect())
    }

    fn case_actions(&self, case: &CaseId) -> Result<Vec<OutboxEntry>, StoreError> {
        self.entries(entries_sql!("WHERE case_id = $1 ORDER BY seq"), &[&case.0])
    }

    fn outbox_page(&self, offset: usize, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.entries(
            entries_sql!("ORDER BY seq LIMIT $1 OFFSET $2"),
            &[&(limit as i64), &(offset as i64)],
        )
    }

    fn outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>, StoreError> {
        Ok(self.entries(entries_sql!("WHERE id = $1"), &[&id])?.pop())
    }

    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        Ok(OutboxCounts {
            pending: self.counter("outbox.pending")?.max(0) as usize,
            done: self.counter("outbox.done")?.max(0) as usize,
            gave_up: self.counter("outbox.gave_up")?.max(0) as usize,
        })
    }

    fn next_action_due(&self, plugins: Option<&[String]>) -> Result<Option<Timestamp>, StoreError> {
        let plugins: Option<Vec<String>> = plugins.map(<[String]>::to_vec);
        let rows = self.conn().query(
            "SELECT MIN(GREATEST(next_attempt_at, COALESCE(lease_until, 0))) FROM outbox
             WHERE status = 'pending' AND part = ANY($1)
               AND ($2::TEXT[] IS NULL OR plugin = ANY($2))",
            &[&self.held(), &plugins],
        )?;
        Ok(rows
            .first()
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .and_then(from_millis))
    }

    fn claim_actions(&mut self, req: &ClaimRequest<'_>) -> Result<Vec<OutboxEntry>, StoreError> {
        let plugins: Option<Vec<String>> = req.plugins.map(<[String]>::to_vec);
        let held = self.held();
        let mut conn = self.conn();
        // SKIP LOCKED: two workers claiming at once take different rows.
        let rows = conn.query(
            "UPDATE outbox
             SET lease_owner = $1, lease_until = $2, attempts = attempts + 1
             WHERE seq IN (
                 SELECT seq FROM outbox
                 WHERE status = 'pending' AND next_attempt_at <= $3
                   AND (lease_until IS NULL OR lease_until <= $3)
                   AND part = ANY($4)
                   AND ($5::TEXT[] IS NULL OR plugin = ANY($5))
                 ORDER BY next_attempt_at, seq
                 LIMIT $6
                 FOR UPDATE SKIP LOCKED)
             RETURNING seq, action, status, attempts, next_attempt, lease_owner, lease_until,
                       last_error, result",
            &[
                &req.worker,
                &millis(req.now + req.lease),
                &millis(req.now),
                &held,
                &plugins,
                &(req.limit as i64),
            ],
        )?;
        let mut entries = rows
            .iter()
            .map(|r| Ok((r.get::<_, i64>(0), raw_entry(r, 1).decode(conn.shown())?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        entries.sort_by_key(|(seq, e)| (e.next_attempt_at, *seq));
        Ok(entries.into_iter().map(|(_, e)| e).collect())
    }

    fn complete_actions(
        &mut self,
        worker: &str,
        outcomes: Vec<(String, ActionOutcome)>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        write::complete_actions(&mut self.conn(), worker, &outcomes)
    }

    fn rejected(&self) -> Result<Vec<Rejected>, StoreError> {
        let mut conn = self.conn();
        let rows = conn.query("SELECT event, at, error FROM rejected ORDER BY seq", &[])?;
        let shown = conn.shown();
        rows.iter()
            .map(|r| {
                Ok(Rejected {
                    event: decode(shown, "rejected", r.get(0))?,
                    at: decode_time(shown, "rejected.at", r.get(1))?,
                    error: decode(shown, "rejected", r.get(2))?,
                })
            })
            .collect()
    }

    fn rejected_count(&self) -> Result<usize, StoreError> {
        Ok(self.counter("rejected")?.max(0) as usize)
    }

    fn cases_in_states(&self, states: &[&str], limit: usize) -> Result<Vec<Case>, StoreError> {
        if states.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let states: Vec<&str> = states.to_vec();
        self.decode_rows(
            "cases",
            "SELECT body FROM cases WHERE state = ANY($1)
             ORDER BY updated_ms DESC, id LIMIT $2",
            &[&states, &(limit as i64)],
        )
    }

    fn state_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let rows = self
            .conn()
            .query("SELECT state, COUNT(*) FROM cases GROUP BY state", &[])?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as usize))
            .collect())
    }

    fn oldest_pending_action(&self) -> Result<Option<Action>, StoreError> {
        Ok(self
            .decode_rows(
                "outbox",
                "SELECT action FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT 1",
                &[],
            )?
            .pop())
    }

    fn inbox(&mut self) -> Option<&mut dyn Inbox> {
        Some(self)
    }
}

impl Inbox for PgStore {
    fn enqueue(&mut self, arrivals: Vec<super::Arrival>) -> Result<Vec<Queued>, StoreError> {
        write::enqueue(&mut self.conn(), self.partitions, arrivals)
    }

    fn next_arrivals(&mut self, per_partition: usize) -> Result<Vec<Event>, StoreError> {
        let held = self.held();
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
        let rows = conn.query(
            "SELECT i.event FROM unnest($1::INT[]) AS p(id)
             CROSS JOIN LATERAL (
                 SELECT part, pseq, event FROM inbox WHERE part = p.id
                 ORDER BY pseq LIMIT $2) AS i
             ORDER BY i.part, i.pseq",
            &[&held, &(per_partition as i64)],
        )?;
        rows.iter()
            .map(|r| decode(conn.shown(), "inbox", r.get(0)))
            .collect()
    }

    fn forget(&mut self, ids: &[EventId]) -> Result<(), StoreError> {
        let ids: Vec<&str> = ids.iter().map(|i| i.0.as_str()).collect();
        self.conn()
            .execute("DELETE FROM inbox WHERE event_id = ANY($1)", &[&ids])
            .map(drop)
    }

    fn backlog(&mut self) -> Result<super::Backlog, StoreError> {
        let rows = self.conn().query(
            "SELECT COUNT(*), EXTRACT(EPOCH FROM clock_timestamp() - MIN(received_at))::FLOAT8
             FROM inbox",
            &[],
        )?;
        let row = rows.first();
        Ok(super::Backlog {
            waiting: row.map_or(0, |r| r.get::<_, i64>(0) as usize),
            oldest_seconds: row.and_then(|r| r.get::<_, Option<f64>>(1)),
        })
    }

    fn leases(&mut self) -> Vec<PartitionLease> {
        self.ownership
            .held()
            .into_iter()
            .map(|(partition, epoch)| PartitionLease { partition, epoch })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_sql_keeps_the_column_order() {
        assert!(entries_sql!("").contains(crate::store::rows::ENTRY_COLUMNS));
    }

    #[test]
    fn partitions_are_stable_and_spread() {
        // Fixed values: a change here moves every case of every database.
        assert_eq!(
            partition_of(&CaseId("C-1".into()), 64),
            partition_of(&CaseId("C-1".into()), 64)
        );
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..1000 {
            seen.insert(partition_of(&CaseId(format!("C-{i}")), 64));
        }
        assert_eq!(seen.len(), 64);
    }

    #[test]
    fn urls_are_told_from_paths_and_shown_without_password() {
        assert!(is_url("postgres://u@h/db"));
        assert!(is_url("postgresql://h/db"));
        assert!(!is_url("casework.db"));
        assert_eq!(
            shown_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(shown_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
