//! A durable [`Store`] in one SQLite file.
//!
//! Settings, and why:
//! - **WAL journal**: readers (`casework cases`, `show`) never block the
//!   writer, and a commit appends to the log instead of rewriting pages.
//! - **`synchronous = FULL`**: every commit is synced to disk before
//!   `commit_batch` returns, so an event acknowledged after it survives a
//!   power cut, not only a process crash (NORMAL would keep it through a
//!   crash of casework but could lose the last commits to a power cut).
//!   Group commit ([`Batch`]) is what keeps this affordable: one sync per
//!   batch of events, not one per event.
//! - **`busy_timeout` 5 s**: a second process (a reader, another worker)
//!   waits for a lock instead of failing at once; past it the error is
//!   [`StoreError::Locked`].
//!
//! The schema is versioned in this crate ([`MIGRATIONS`]): each migration
//! runs once, in a transaction, and records its number in
//! `schema_version`. A file written by a newer casework is refused with
//! [`StoreError::NewerSchema`] rather than misread.
//!
//! ```
//! use casework_core::store::{SqliteStore, Store};
//! let dir = std::env::temp_dir().join(format!("casework-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let store = SqliteStore::open(dir.join("casework.db")).unwrap();
//! assert_eq!(store.event_count().unwrap(), 0);
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use std::collections::BTreeMap;

use super::{
    Accepted, ActionOutcome, Batch, CaseSummary, ClaimRequest, Commit, Link, OutboxCounts,
    OutboxEntry, Rejected, Store, StoreError, Timer,
};
use crate::Timestamp;
use crate::action::Action;
use crate::audit::Decision;
use crate::case::{Author, Case, CaseId, Past};
use crate::config::PackSource;
use crate::event::EventId;
use crate::rules::RuleSetSource;

use super::rows::{ENTRY_COLUMNS, RawEntry, decode, decode_time, encode, from_millis, millis};

/// One step of the schema: SQL, or SQL followed by a rewrite of rows that
/// SQL alone cannot do.
pub enum Migration {
    Sql(&'static str),
    SqlThen(
        &'static str,
        fn(&rusqlite::Transaction<'_>, &str) -> Result<(), StoreError>,
    ),
}

/// The schema, as ordered migrations: migration `i` (1-based) brings the
/// file from version `i - 1` to `i`. Never edit a published migration;
/// append a new one.
pub const MIGRATIONS: &[Migration] = &[
    // 1: events, cases, decisions, outbox, rejected events.
    Migration::Sql(
        r#"
    CREATE TABLE events (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        id         TEXT NOT NULL UNIQUE,
        case_id    TEXT NOT NULL,
        handled_at TEXT NOT NULL,
        event      TEXT NOT NULL,  -- the event as JSON
        customer   TEXT NOT NULL   -- CustomerStats the rules saw, as JSON
    );
    CREATE INDEX events_by_case ON events (case_id, seq);

    CREATE TABLE cases (
        id         TEXT PRIMARY KEY,
        state      TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        body       TEXT NOT NULL   -- the case as JSON
    );

    CREATE TABLE decisions (
        case_id  TEXT NOT NULL,
        seq      INTEGER NOT NULL,
        event_id TEXT,
        body     TEXT NOT NULL,    -- the decision record as JSON
        PRIMARY KEY (case_id, seq)
    );

    CREATE TABLE outbox (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        id              TEXT NOT NULL UNIQUE,   -- the idempotency key
        case_id         TEXT NOT NULL,
        plugin          TEXT NOT NULL,
        action          TEXT NOT NULL,          -- the action as JSON
        status          TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'done', 'gave_up')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,       -- ms since the epoch
        next_attempt    TEXT NOT NULL,          -- the same, RFC 3339
        lease_owner     TEXT,
        lease_until     INTEGER,                -- ms since the epoch
        last_error      TEXT,
        result          TEXT
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

    CREATE TABLE rejected (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        at       TEXT NOT NULL,
        event    TEXT NOT NULL,
        error    TEXT NOT NULL
    );
    "#,
    ),
    // 2: the rule set version that handled each event, and the versions'
    // sources, so replay uses the rules that decided.
    Migration::Sql(
        r#"
    ALTER TABLE events ADD COLUMN ruleset TEXT;  -- NULL: stored before version 2

    CREATE TABLE rulesets (
        hash   TEXT PRIMARY KEY,
        source TEXT NOT NULL     -- RuleSetSource as JSON: the rules section and files
    );
    "#,
    ),
    // 3: constant cost per event. The case row keeps the present; the
    // past (messages, notes, settled promises, done tasks) is appended to
    // `past`; correlation keys, timers and counters get their own indexed
    // tables; every pack version is kept. Existing rows are rewritten by
    // `split_case_rows`; timers are rebuilt once by the engine, which
    // knows the workflow (`timers.stale`).
    Migration::SqlThen(
        r#"
    ALTER TABLE events ADD COLUMN pack TEXT;     -- NULL: stored before version 3
    CREATE TABLE packs (
        hash   TEXT PRIMARY KEY,
        source TEXT NOT NULL     -- PackSource as JSON: every file of the pack
    );

    ALTER TABLE cases ADD COLUMN customer_key TEXT;
    ALTER TABLE cases ADD COLUMN summary TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE cases ADD COLUMN updated_ms INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX cases_by_customer ON cases (customer_key) WHERE customer_key IS NOT NULL;
    -- The console's queue: open cases by state, most recently updated first.
    CREATE INDEX cases_by_state ON cases (state, updated_ms);

    CREATE TABLE past (
        case_id TEXT NOT NULL,
        seq     INTEGER NOT NULL,
        body    TEXT NOT NULL,   -- a Past item as JSON
        PRIMARY KEY (case_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE links (
        key     TEXT PRIMARY KEY,  -- order:O-1, tracking:T-1, message:<id>
        case_id TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE timers (
        case_id TEXT NOT NULL,
        due     INTEGER NOT NULL,  -- ms since the epoch
        name    TEXT NOT NULL,
        due_at  TEXT NOT NULL,     -- the same, RFC 3339 with its offset
        PRIMARY KEY (case_id, due, name)
    ) WITHOUT ROWID;
    CREATE INDEX timers_by_due ON timers (due);

    CREATE INDEX outbox_by_case ON outbox (case_id, seq);

    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        n    INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO counters (name, n)
        SELECT 'outbox.' || status, COUNT(*) FROM outbox GROUP BY status;
    INSERT INTO counters (name, n) VALUES
        ('events', (SELECT COUNT(*) FROM events)),
        ('cases', (SELECT COUNT(*) FROM cases)),
        ('rejected', (SELECT COUNT(*) FROM rejected)),
        ('timers', 0);
    INSERT INTO counters (name, n) SELECT 'timers.stale', 1 WHERE EXISTS (SELECT 1 FROM cases);
    "#,
        split_case_rows,
    ),
];

/// Migration 3's rewrite: each case row as the release before wrote it
/// (its whole past inside) becomes its present, its past rows and its
/// links. Decisions were already in `decisions`, events in `events`.
fn split_case_rows(tx: &rusqlite::Transaction<'_>, path: &str) -> Result<(), StoreError> {
    let err = |e: rusqlite::Error| classify(path, &e);
    let rows: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT id, body FROM cases").map_err(err)?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?
    };
    for (id, body) in rows {
        let old: serde_json::Value = decode(path, "cases", &body)?;
        let events = old
            .get("events")
            .and_then(|e| e.as_array())
            .map_or(0, Vec::len);
        let mut case: Case = decode(path, "cases", &body)?;
        case.event_count = u32::try_from(events).unwrap_or(u32::MAX);
        case.task_count = u32::try_from(case.tasks.len()).unwrap_or(u32::MAX);
        for m in std::mem::take(&mut case.messages) {
            match m.author {
                Author::Customer => case.contacts_since_reply += 1,
                Author::Agent => case.contacts_since_reply = 0,
                Author::Colleague | Author::System => {}
            }
            case.add_message(m);
        }
        let past = case.close_step(crate::case::Marks::default());
        for (seq, item) in (1_i64..).zip(&past) {
            tx.execute(
                "INSERT INTO past (case_id, seq, body) VALUES (?1, ?2, ?3)",
                params![id, seq, encode(item)?],
            )
            .map_err(err)?;
        }
        let mut links = super::order_links(&case);
        links.extend(super::message_links(&past));
        for key in links {
            tx.execute(
                "INSERT INTO links (key, case_id) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET case_id = excluded.case_id",
                params![key, id],
            )
            .map_err(err)?;
        }
        // `open` is settled by the engine's one-time timer rebuild, which
        // knows the workflow's terminal states.
        tx.execute(
            "UPDATE cases SET body = ?2, customer_key = ?3, summary = ?4, updated_ms = ?5
             WHERE id = ?1",
            params![
                id,
                encode(&case)?,
                case.customer.key(),
                encode(&CaseSummary::of(&case, true))?,
                millis(case.updated_at),
            ],
        )
        .map_err(err)?;
    }
    Ok(())
}

/// The schema version this casework writes.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// A [`Store`] in a SQLite file.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Open (or create) the store at `path` and bring its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_owned();
        let shown = path.display().to_string();
        let conn = Connection::open(&path).map_err(|e| match classify(&shown, &e) {
            StoreError::Backend(message) => StoreError::Open {
                path: shown.clone(),
                message,
            },
            other => other,
        })?;
        let mut store = SqliteStore { conn, path };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file.
    pub fn version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.shown(), &e)
    }

    /// The rows of a query whose three columns are all text (JSON or RFC
    /// 3339), for the readers that decode them.
    fn text_rows(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<[String; 3]>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]))
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e))).collect()
    }

    fn configure(&mut self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| self.err(e))?;
        // Keep each statement's query plan once made. Without this, the
        // bundled SQLite (built with STAT4) planned a cached statement again
        // whenever a bound value changed: 4,699 re-plans in a 300-case run
        // of `cargo bench --bench engine`, a tenth of the commit's work.
        // Every query here is an index lookup, whatever the value.
        self.conn
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                true,
            )
            .map_err(|e| self.err(e))?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open {
                path: self.shown(),
                message: format!(
                    "the file system refused write-ahead logging (journal mode stays `{mode}`); put the database on a local disk"
                ),
            });
        }
        self.conn
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let shown = self.shown();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&shown, &e))?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version    INTEGER PRIMARY KEY,
                 applied_at TEXT NOT NULL
             )",
        )
        .map_err(|e| classify(&shown, &e))?;
        let found: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(|e| classify(&shown, &e))?;
        let supported = schema_version();
        if found > supported {
            return Err(StoreError::NewerSchema {
                path: shown,
                found,
                supported,
            });
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            match migration {
                Migration::Sql(sql) => tx.execute_batch(sql),
                Migration::SqlThen(sql, _) => tx.execute_batch(sql),
            }
            .map_err(|e| classify(&shown, &e))?;
            if let Migration::SqlThen(_, rewrite) = migration {
                rewrite(&tx, &shown)?;
            }
            tx.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
                params![i as i64 + 1, chrono::Utc::now().to_rfc3339()],
            )
            .map_err(|e| classify(&shown, &e))?;
        }
        tx.commit().map_err(|e| classify(&shown, &e))
    }

    fn entry_from_row(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEntry> {
        Ok(RawEntry {
            action: row.get(0)?,
            status: row.get(1)?,
            attempts: row.get(2)?,
            next_attempt: row.get(3)?,
            lease_owner: row.get(4)?,
            lease_until: row.get(5)?,
            last_error: row.get(6)?,
            result: row.get(7)?,
        })
    }
}

/// Turn a SQLite error into what the user should do about it.
fn classify(path: &str, e: &rusqlite::Error) -> StoreError {
    let path = path.to_owned();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked { path },
        Some(ErrorCode::DiskFull) => StoreError::DiskFull { path },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
            path,
            message: e.to_string(),
        },
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
            StoreError::Open {
                path,
                message: format!("{e}; check that the directory exists and is writable"),
            }
        }
        _ => StoreError::Backend(format!("{path}: {e}")),
    }
}

impl SqliteStore {
    /// Add `by` to a counter (events, cases, outbox.pending, ...).
    /// One outcome inside `tx`. The inner error says the action was not
    /// this worker's to record.
    fn complete_one(
        tx: &rusqlite::Transaction<'_>,
        id: &str,
        worker: &str,
        outcome: &ActionOutcome,
    ) -> Result<Result<(), StoreError>, rusqlite::Error> {
        let (sql, status) = match outcome {
            ActionOutcome::Done { .. } => (
                "UPDATE outbox SET status = 'done', result = ?3,
                     lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1 AND lease_owner = ?2 AND status = 'pending'",
                Some("outbox.done"),
            ),
            ActionOutcome::Retry { .. } => (
                "UPDATE outbox SET next_attempt_at = ?3, next_attempt = ?4, last_error = ?5,
                     lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1 AND lease_owner = ?2 AND status = 'pending'",
                None,
            ),
            ActionOutcome::GaveUp { .. } => (
                "UPDATE outbox SET status = 'gave_up', last_error = ?3,
                     lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1 AND lease_owner = ?2 AND status = 'pending'",
                Some("outbox.gave_up"),
            ),
        };
        let changed = {
            let mut stmt = tx.prepare_cached(sql)?;
            match outcome {
                ActionOutcome::Done { result } => {
                    stmt.execute(params![id, worker, encode(result).ok()])
                }
                ActionOutcome::Retry { at, error } => {
                    stmt.execute(params![id, worker, millis(*at), at.to_rfc3339(), error])
                }
                ActionOutcome::GaveUp { error } => stmt.execute(params![id, worker, error]),
            }?
        };
        if changed == 1 {
            if let Some(status) = status {
                Self::bump(tx, "outbox.pending", -1)?;
                Self::bump(tx, status, 1)?;
            }
            return Ok(Ok(()));
        }
        let exists = tx
            .prepare_cached("SELECT 1 FROM outbox WHERE id = ?1")
            .and_then(|mut s| s.exists([id]))?;
        Ok(Err(StoreError::not_recorded(id, worker, exists)))
    }

    fn bump(tx: &rusqlite::Transaction<'_>, name: &str, by: i64) -> rusqlite::Result<()> {
        if by != 0 {
            tx.prepare_cached(
                "INSERT INTO counters (name, n) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET n = n + excluded.n",
            )?
            .execute(params![name, by])?;
        }
        Ok(())
    }

    fn counter(&self, name: &str) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached("SELECT n FROM counters WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get::<_, i64>(0)).optional())
            .map(Option::unwrap_or_default)
            .map_err(|e| self.err(e))
    }

    /// Replace a case's timers inside `tx`, keeping the `timers` counter.
    fn replace_timers(
        tx: &rusqlite::Transaction<'_>,
        case: &CaseId,
        timers: &[Timer],
    ) -> rusqlite::Result<()> {
        let removed = tx
            .prepare_cached("DELETE FROM timers WHERE case_id = ?1")?
            .execute([&case.0])?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO timers (case_id, due, name, due_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
        )?;
        let mut added = 0;
        for t in timers {
            added += insert.execute(params![case.0, millis(t.due), t.name, t.due.to_rfc3339()])?;
        }
        Self::bump(tx, "timers", added as i64 - removed as i64)
    }

    /// Write one commit inside the batch's transaction.
    fn write_commit(tx: &rusqlite::Transaction<'_>, c: &Commit) -> Result<(), WriteError> {
        let a = &c.accepted;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO events (id, case_id, handled_at, event, customer, ruleset, pack)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                a.event.id.0,
                a.case.0,
                a.handled_at.to_rfc3339(),
                encode(&a.event)?,
                encode(&a.customer)?,
                a.ruleset,
                a.pack,
            ])?;
        if inserted == 0 {
            return Err(WriteError::Store(StoreError::Duplicate(a.event.id.clone())));
        }
        Self::bump(tx, "events", 1)?;
        let id = &c.case.id.0;
        let summary = CaseSummary::of(&c.case, c.open);
        tx.prepare_cached(
            "INSERT INTO cases (id, state, updated_at, body, customer_key, summary, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state,
                 updated_at = excluded.updated_at, body = excluded.body,
                 customer_key = excluded.customer_key, summary = excluded.summary,
                 updated_ms = excluded.updated_ms",
        )?
        .execute(params![
            id,
            c.case.state.0,
            c.case.updated_at.to_rfc3339(),
            encode(&c.case)?,
            c.case.customer.key(),
            encode(&summary)?,
            millis(c.case.updated_at),
        ])?;
        if c.case.event_count <= 1 {
            Self::bump(tx, "cases", 1)?;
        }
        if !c.decisions.is_empty() {
            let first: i64 = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM decisions WHERE case_id = ?1",
                )?
                .query_row([id], |r| r.get(0))?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO decisions (case_id, seq, event_id, body) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (seq, d) in (first..).zip(&c.decisions) {
                insert.execute(params![
                    id,
                    seq,
                    d.event.as_ref().map(|e| e.0.as_str()),
                    encode(d)?
                ])?;
            }
        }
        if !c.past.is_empty() {
            let first: i64 = tx
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM past WHERE case_id = ?1")?
                .query_row([id], |r| r.get(0))?;
            let mut insert =
                tx.prepare_cached("INSERT INTO past (case_id, seq, body) VALUES (?1, ?2, ?3)")?;
            for (seq, item) in (first..).zip(&c.past) {
                insert.execute(params![id, seq, encode(item)?])?;
            }
        }
        let mut link = tx.prepare_cached(
            "INSERT INTO links (key, case_id) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET case_id = excluded.case_id",
        )?;
        for key in &c.links {
            link.execute(params![key, id])?;
        }
        Self::replace_timers(tx, &c.case.id, &c.timers)?;
        let mut insert_action = tx.prepare_cached(
            "INSERT INTO outbox (id, case_id, plugin, action, next_attempt_at, next_attempt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
        )?;
        let mut added = 0;
        for action in &c.actions {
            added += insert_action.execute(params![
                action.id,
                action.case.0,
                action.plugin(),
                encode(action)?,
                millis(action.requested_at),
                action.requested_at.to_rfc3339(),
            ])?;
        }
        Self::bump(tx, "outbox.pending", added as i64)?;
        Ok(())
    }

    fn decode_rows<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<T>, StoreError> {
        let shown = self.shown();
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode(&shown, table, &row.map_err(|e| self.err(e))?)?);
        }
        Ok(out)
    }

    fn entries(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let shown = self.shown();
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, |r| self.entry_from_row(r))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(|e| self.err(e))?.decode(&shown)?);
        }
        Ok(out)
    }

    fn timers(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Timer>, StoreError> {
        let rows = self.text_rows(sql, params)?;
        let shown = self.shown();
        rows.into_iter()
            .map(|[case, name, due]| {
                Ok(Timer {
                    due: decode_time(&shown, "timers.due_at", &due)?,
                    case: CaseId(case),
                    name,
                })
            })
            .collect()
    }
}

/// A failure while writing a batch: SQLite's, or ours (a duplicate, a
/// value that does not encode).
enum WriteError {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> Self {
        WriteError::Sqlite(e)
    }
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

impl Store for SqliteStore {
    fn load(&self, id: &CaseId) -> Result<Option<Case>, StoreError> {
        let body: Option<String> = self
            .conn
            .prepare_cached("SELECT body FROM cases WHERE id = ?1")
            .and_then(|mut s| s.query_row([&id.0], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        body.map(|b| decode(&self.shown(), "cases", &b)).transpose()
    }

    fn has_event(&self, id: &EventId) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT 1 FROM events WHERE id = ?1")
            .and_then(|mut s| s.exists([&id.0]))
            .map_err(|e| self.err(e))
    }

    fn commit_batch(&mut self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() && batch.fired.is_empty() {
            return Ok(());
        }
        let shown = self.shown();
        let err = |e: rusqlite::Error| classify(&shown, &e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let written = (|| -> Result<(), WriteError> {
            for source in &batch.rulesets {
                tx.prepare_cached(
                    "INSERT INTO rulesets (hash, source) VALUES (?1, ?2)
                     ON CONFLICT (hash) DO NOTHING",
                )?
                .execute(params![source.hash, encode(source)?])?;
            }
            for source in &batch.packs {
                tx.prepare_cached(
                    "INSERT INTO packs (hash, source) VALUES (?1, ?2)
                     ON CONFLICT (hash) DO NOTHING",
                )?
                .execute(params![source.hash, encode(source)?])?;
            }
            let mut fired = tx.prepare_cached(
                "DELETE FROM timers WHERE case_id = ?1 AND due = ?2 AND name = ?3",
            )?;
            let mut removed = 0;
            for t in &batch.fired {
                removed += fired.execute(params![t.case.0, millis(t.due), t.name])?;
            }
            Self::bump(&tx, "timers", -(removed as i64))?;
            for c in &batch.commits {
                Self::write_commit(&tx, c)?;
            }
            let mut insert_rejected = tx.prepare_cached(
                "INSERT INTO rejected (event_id, at, event, error) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for r in &batch.rejected {
                insert_rejected.execute(params![
                    r.event.id.0,
                    r.at.to_rfc3339(),
                    encode(&r.event)?,
                    encode(&r.error)?,
                ])?;
            }
            Self::bump(&tx, "rejected", batch.rejected.len() as i64)?;
            Ok(())
        })();
        match written {
            // Dropping `tx` rolls the whole batch back.
            Err(WriteError::Sqlite(e)) => Err(err(e)),
            Err(WriteError::Store(e)) => Err(e),
            Ok(()) => tx.commit().map_err(err),
        }
    }

    fn linked_case(&self, link: &Link) -> Result<Option<CaseId>, StoreError> {
        self.conn
            .prepare_cached("SELECT case_id FROM links WHERE key = ?1")
            .and_then(|mut s| s.query_row([link.key()], |r| r.get(0)).optional())
            .map(|c| c.map(CaseId))
            .map_err(|e| self.err(e))
    }

    fn customer_cases(&self, key: &str) -> Result<Vec<CaseSummary>, StoreError> {
        self.decode_rows(
            "cases",
            "SELECT summary FROM cases WHERE customer_key = ?1 ORDER BY id",
            [key],
        )
    }

    fn due_timers(&self, until: Timestamp, limit: usize) -> Result<Vec<Timer>, StoreError> {
        self.timers(
            "SELECT case_id, name, due_at FROM timers WHERE due <= ?1
             ORDER BY due, case_id, name LIMIT ?2",
            params![millis(until), limit as i64],
        )
    }

    fn next_timer(&self) -> Result<Option<Timestamp>, StoreError> {
        let due: Option<String> = self
            .conn
            .prepare_cached("SELECT due_at FROM timers ORDER BY due LIMIT 1")
            .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        due.map(|d| decode_time(&self.shown(), "timers.due_at", &d))
            .transpose()
    }

    fn timer_count(&self) -> Result<usize, StoreError> {
        Ok(self.counter("timers")? as usize)
    }

    fn case_timers(&self, case: &CaseId) -> Result<Vec<Timer>, StoreError> {
        self.timers(
            "SELECT case_id, name, due_at FROM timers WHERE case_id = ?1 ORDER BY due, name",
            [&case.0],
        )
    }

    fn refresh_case(
        &mut self,
        case: &Case,
        timers: &[Timer],
        open: bool,
    ) -> Result<(), StoreError> {
        let shown = self.shown();
        let err = |e: rusqlite::Error| classify(&shown, &e);
        let tx = self.conn.transaction().map_err(err)?;
        Self::replace_timers(&tx, &case.id, timers).map_err(err)?;
        tx.execute(
            "UPDATE cases SET summary = ?2 WHERE id = ?1",
            params![case.id.0, encode(&CaseSummary::of(case, open))?],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn timers_stale(&self) -> Result<bool, StoreError> {
        Ok(self.counter("timers.stale")? != 0)
    }

    fn timers_rebuilt(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM counters WHERE name = 'timers.stale'", [])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    fn case_ids(&self) -> Result<Vec<CaseId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM cases ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map(CaseId).map_err(|e| self.err(e)))
            .collect()
    }

    /// A range on the primary key: each page costs what it returns.
    fn case_ids_after(
        &self,
        after: Option<&CaseId>,
        limit: usize,
    ) -> Result<Vec<CaseId>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = match after {
            Some(_) => "SELECT id FROM cases WHERE id > ?1 ORDER BY id LIMIT ?2",
            None => "SELECT id FROM cases ORDER BY id LIMIT ?1",
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let id = |r: &rusqlite::Row<'_>| r.get::<_, String>(0);
        let rows = match after {
            Some(after) => stmt.query_map(params![after.0, limit], id),
            None => stmt.query_map(params![limit], id),
        }
        .map_err(|e| self.err(e))?;
        rows.map(|r| r.map(CaseId).map_err(|e| self.err(e)))
            .collect()
    }

    fn case_count(&self) -> Result<usize, StoreError> {
        Ok(self.counter("cases")? as usize)
    }

    fn events(&self, case: &CaseId) -> Result<Vec<Accepted>, StoreError> {
        let shown = self.shown();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT event, handled_at, customer, ruleset, pack FROM events
                 WHERE case_id = ?1 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([&case.0], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (event, handled_at, customer, ruleset, pack) = row.map_err(|e| self.err(e))?;
            out.push(Accepted {
                event: decode(&shown, "events", &event)?,
                case: case.clone(),
                handled_at: decode_time(&shown, "events.handled_at", &handled_at)?,
                customer: decode(&shown, "events", &customer)?,
                ruleset,
                pack,
            });
        }
        Ok(out)
    }

    fn decisions(&self, case: &CaseId) -> Result<Vec<Decision>, StoreError> {
        self.decode_rows(
            "decisions",
            "SELECT body FROM decisions WHERE case_id = ?1 ORDER BY seq",
            [&case.0],
        )
    }

    fn past(&self, case: &CaseId) -> Result<Vec<Past>, StoreError> {
        self.decode_rows(
            "past",
            "SELECT body FROM past WHERE case_id = ?1 ORDER BY seq",
            [&case.0],
        )
    }

    fn ruleset(&self, hash: &str) -> Result<Option<RuleSetSource>, StoreError> {
        Ok(self
            .decode_rows(
                "rulesets",
                "SELECT source FROM rulesets WHERE hash = ?1",
                [hash],
            )?
            .pop())
    }

    fn pack(&self, hash: &str) -> Result<Option<PackSource>, StoreError> {
        Ok(self
            .decode_rows("packs", "SELECT source FROM packs WHERE hash = ?1", [hash])?
            .pop())
    }

    fn event_count(&self) -> Result<usize, StoreError> {
        Ok(self.counter("events")? as usize)
    }

    fn pending_actions(&self) -> Result<Vec<Action>, StoreError> {
        self.decode_rows(
            "outbox",
            "SELECT action FROM outbox WHERE status = 'pending' ORDER BY seq",
            [],
        )
    }

    fn pending_by_plugin(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT plugin, COUNT(*) FROM outbox WHERE status = 'pending' GROUP BY plugin",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e))).collect()
    }

    fn case_actions(&self, case: &CaseId) -> Result<Vec<OutboxEntry>, StoreError> {
        self.entries(
            &format!("SELECT {ENTRY_COLUMNS} FROM outbox WHERE case_id = ?1 ORDER BY seq"),
            [&case.0],
        )
    }

    fn outbox_page(&self, offset: usize, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.entries(
            &format!("SELECT {ENTRY_COLUMNS} FROM outbox ORDER BY seq LIMIT ?1 OFFSET ?2"),
            params![limit as i64, offset as i64],
        )
    }

    fn outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>, StoreError> {
        Ok(self
            .entries(
                &format!("SELECT {ENTRY_COLUMNS} FROM outbox WHERE id = ?1"),
                [id],
            )?
            .pop())
    }

    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        Ok(OutboxCounts {
            pending: self.counter("outbox.pending")? as usize,
            done: self.counter("outbox.done")? as usize,
            gave_up: self.counter("outbox.gave_up")? as usize,
        })
    }

    fn next_action_due(&self, plugins: Option<&[String]>) -> Result<Option<Timestamp>, StoreError> {
        let plugins = plugins.map(encode).transpose()?;
        let ms: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT MIN(MAX(next_attempt_at, COALESCE(lease_until, 0))) FROM outbox
                 WHERE status = 'pending'
                   AND (?1 IS NULL OR plugin IN (SELECT value FROM json_each(?1)))",
            )
            .and_then(|mut s| s.query_row([plugins], |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        Ok(ms.and_then(from_millis))
    }

    fn cases_in_states(&self, states: &[&str], limit: usize) -> Result<Vec<Case>, StoreError> {
        if states.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let shown = self.shown();
        let marks = vec!["?"; states.len()].join(", ");
        let sql = format!(
            "SELECT body FROM cases WHERE state IN ({marks})
             ORDER BY updated_ms DESC, id LIMIT {limit}"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(states), |r| {
                r.get::<_, String>(0)
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode(&shown, "cases", &row.map_err(|e| self.err(e))?)?);
        }
        Ok(out)
    }

    fn state_counts(&self) -> Result<std::collections::BTreeMap<String, usize>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, COUNT(*) FROM cases GROUP BY state")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map(|(s, n)| (s, n as usize)).map_err(|e| self.err(e)))
            .collect()
    }

    fn oldest_pending_action(&self) -> Result<Option<Action>, StoreError> {
        let text: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT action FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT 1",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        text.map(|t| decode(&self.shown(), "outbox", &t))
            .transpose()
    }

    fn claim_actions(&mut self, req: &ClaimRequest<'_>) -> Result<Vec<OutboxEntry>, StoreError> {
        let shown = self.shown();
        let err = |e: rusqlite::Error| classify(&shown, &e);
        let now = millis(req.now);
        let until = millis(req.now + req.lease);
        let plugins = req.plugins.map(encode).transpose()?;
        // IMMEDIATE takes the write lock first, so two workers cannot both
        // pick the same rows (PostgreSQL: FOR UPDATE SKIP LOCKED).
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let raw = {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "UPDATE outbox
                     SET lease_owner = ?1, lease_until = ?2, attempts = attempts + 1
                     WHERE id IN (
                         SELECT id FROM outbox
                         WHERE status = 'pending' AND next_attempt_at <= ?3
                           AND (lease_until IS NULL OR lease_until <= ?3)
                           AND (?4 IS NULL OR plugin IN (SELECT value FROM json_each(?4)))
                         ORDER BY next_attempt_at, seq
                         LIMIT ?5)
                     RETURNING seq, {ENTRY_COLUMNS}"
                ))
                .map_err(err)?;
            let rows = stmt
                .query_map(
                    params![req.worker, until, now, plugins, req.limit as i64],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            RawEntry {
                                action: r.get(1)?,
                                status: r.get(2)?,
                                attempts: r.get(3)?,
                                next_attempt: r.get(4)?,
                                lease_owner: r.get(5)?,
                                lease_until: r.get(6)?,
                                last_error: r.get(7)?,
                                result: r.get(8)?,
                            },
                        ))
                    },
                )
                .map_err(err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(err)?
        };
        tx.commit().map_err(err)?;
        let mut entries = raw
            .into_iter()
            .map(|(seq, r)| Ok((seq, r.decode(&shown)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        entries.sort_by_key(|(seq, e)| (e.next_attempt_at, *seq));
        Ok(entries.into_iter().map(|(_, e)| e).collect())
    }

    fn complete_actions(
        &mut self,
        worker: &str,
        outcomes: Vec<(String, ActionOutcome)>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let shown = self.shown();
        let err = |e: rusqlite::Error| classify(&shown, &e);
        let tx = self.conn.transaction().map_err(err)?;
        let mut answers = Vec::with_capacity(outcomes.len());
        for (id, outcome) in &outcomes {
            answers.push(Self::complete_one(&tx, id, worker, outcome).map_err(err)?);
        }
        tx.commit().map_err(err)?;
        Ok(answers)
    }

    fn rejected(&self) -> Result<Vec<Rejected>, StoreError> {
        let shown = self.shown();
        let rows = self.text_rows("SELECT event, at, error FROM rejected ORDER BY seq", [])?;
        let mut out = Vec::new();
        for [event, at, error] in rows {
            out.push(Rejected {
                event: decode(&shown, "rejected", &event)?,
                at: decode_time(&shown, "rejected.at", &at)?,
                error: decode(&shown, "rejected", &error)?,
            });
        }
        Ok(out)
    }

    fn rejected_count(&self) -> Result<usize, StoreError> {
        Ok(self.counter("rejected")? as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "casework-sqlite-{}-{name}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("casework.db")
    }

    #[test]
    fn sqlite_store_keeps_the_contract() {
        let path = temp("contract");
        let mut store = SqliteStore::open(&path).unwrap();
        super::super::contract::check(&mut store);
        drop(store);
        // Everything is still there after reopening.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.event_count().unwrap(), 9);
        assert_eq!(store.version().unwrap(), schema_version());
        assert_eq!(store.outbox().unwrap().len(), 8);
    }

    #[test]
    fn a_second_connection_sees_committed_work_and_waits_for_claims() {
        let path = temp("two");
        let mut a = SqliteStore::open(&path).unwrap();
        let mut b = SqliteStore::open(&path).unwrap();
        a.commit(super::super::contract::commit(
            "e1",
            "C-1",
            &["team.notify"],
        ))
        .unwrap();
        assert!(b.has_event(&EventId("e1".into())).unwrap());
        let now = super::super::contract::t("2026-11-25T10:00:00+09:00");
        let req = ClaimRequest {
            worker: "a",
            now,
            lease: chrono::Duration::seconds(60),
            limit: 5,
            plugins: None,
        };
        assert_eq!(a.claim_actions(&req).unwrap().len(), 1);
        let req_b = ClaimRequest {
            worker: "b",
            ..req.clone()
        };
        assert!(b.claim_actions(&req_b).unwrap().is_empty());
    }

    #[test]
    fn a_newer_schema_is_refused_with_what_to_do() {
        let path = temp("newer");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, 'later')",
            [schema_version() + 1],
        )
        .unwrap();
        drop(conn);
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
        assert!(err.to_string().contains("upgrade casework"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported() {
        let path = temp("garbage");
        std::fs::write(&path, b"this is not sqlite, just some text that is long enough to be read as a header page..................................").unwrap();
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn a_missing_directory_is_reported() {
        let err = SqliteStore::open("/nonexistent-dir-for-casework/x.db").unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
        assert!(err.to_string().contains("writable"), "{err}");
    }
}
