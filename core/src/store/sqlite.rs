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

use super::{
    Accepted, ActionOutcome, ActionStatus, Batch, ClaimRequest, OutboxCounts, OutboxEntry,
    Rejected, Store, StoreError,
};
use crate::Timestamp;
use crate::action::Action;
use crate::audit::Decision;
use crate::case::{Case, CaseId};
use crate::event::EventId;
use crate::rules::RuleSetSource;

/// The schema, as ordered migrations: migration `i` (1-based) brings the
/// file from version `i - 1` to `i`. Never edit a published migration;
/// append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: events, cases, decisions, outbox, rejected events.
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
    // 2: the rule set version that handled each event, and the versions'
    // sources, so replay uses the rules that decided.
    r#"
    ALTER TABLE events ADD COLUMN ruleset TEXT;  -- NULL: stored before version 2

    CREATE TABLE rulesets (
        hash   TEXT PRIMARY KEY,
        source TEXT NOT NULL     -- RuleSetSource as JSON: the rules section and files
    );
    "#,
    // 3: indexes for the console's reads: the queue (open cases by state,
    // most recently updated first) and one case's outbox.
    r#"
    CREATE INDEX cases_by_state ON cases (state, updated_at);
    CREATE INDEX outbox_by_case ON outbox (case_id, seq);
    "#,
];

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
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql).map_err(|e| classify(&shown, &e))?;
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

const ENTRY_COLUMNS: &str =
    "action, status, attempts, next_attempt, lease_owner, lease_until, last_error, result";

/// An outbox row as read, before decoding its JSON.
struct RawEntry {
    action: String,
    status: String,
    attempts: i64,
    next_attempt: String,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    last_error: Option<String>,
    result: Option<String>,
}

impl RawEntry {
    fn decode(self, path: &str) -> Result<OutboxEntry, StoreError> {
        let action: Action = decode(path, "outbox", &self.action)?;
        let corrupt = |what: &str| StoreError::Corrupt {
            path: path.to_owned(),
            message: format!("outbox row {}: {what}", action.id),
        };
        let status = ActionStatus::parse(&self.status).ok_or_else(|| corrupt("bad status"))?;
        let next_attempt_at = Timestamp::parse_from_rfc3339(&self.next_attempt)
            .map_err(|_| corrupt("bad next_attempt"))?;
        let lease_until = match self.lease_until {
            Some(ms) => Some(from_millis(ms).ok_or_else(|| corrupt("bad lease_until"))?),
            None => None,
        };
        let result = match self.result {
            Some(r) => Some(decode(path, "outbox result", &r)?),
            None => None,
        };
        Ok(OutboxEntry {
            action,
            status,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            next_attempt_at,
            lease_owner: self.lease_owner,
            lease_until,
            last_error: self.last_error,
            result,
        })
    }
}

fn millis(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> Option<Timestamp> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.fixed_offset())
}

fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(
    path: &str,
    table: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        message: format!("a row of `{table}` does not decode: {e}"),
    })
}

/// A stored RFC 3339 time; a bad one means the file was damaged.
fn decode_time(path: &str, column: &str, text: &str) -> Result<Timestamp, StoreError> {
    Timestamp::parse_from_rfc3339(text).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        message: format!("{column} `{text}`: {e}"),
    })
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
        if batch.is_empty() {
            return Ok(());
        }
        let shown = self.shown();
        let err = |e: rusqlite::Error| classify(&shown, &e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        {
            let mut insert_event = tx
                .prepare_cached(
                    "INSERT INTO events (id, case_id, handled_at, event, customer, ruleset)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                )
                .map_err(err)?;
            let mut upsert_case = tx
                .prepare_cached(
                    "INSERT INTO cases (id, state, updated_at, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO UPDATE SET state = excluded.state,
                         updated_at = excluded.updated_at, body = excluded.body",
                )
                .map_err(err)?;
            let mut next_seq = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM decisions WHERE case_id = ?1",
                )
                .map_err(err)?;
            let mut insert_decision = tx
                .prepare_cached(
                    "INSERT INTO decisions (case_id, seq, event_id, body) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err)?;
            let mut insert_action = tx
                .prepare_cached(
                    "INSERT INTO outbox (id, case_id, plugin, action, next_attempt_at, next_attempt)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                )
                .map_err(err)?;
            let mut insert_rejected = tx
                .prepare_cached(
                    "INSERT INTO rejected (event_id, at, event, error) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err)?;
            let mut insert_ruleset = tx
                .prepare_cached(
                    "INSERT INTO rulesets (hash, source) VALUES (?1, ?2)
                     ON CONFLICT (hash) DO NOTHING",
                )
                .map_err(err)?;
            for source in &batch.rulesets {
                insert_ruleset
                    .execute(params![source.hash, encode(source)?])
                    .map_err(err)?;
            }
            for c in &batch.commits {
                let a = &c.accepted;
                let inserted = insert_event
                    .execute(params![
                        a.event.id.0,
                        a.case.0,
                        a.handled_at.to_rfc3339(),
                        encode(&a.event)?,
                        encode(&a.customer)?,
                        a.ruleset,
                    ])
                    .map_err(err)?;
                if inserted == 0 {
                    // Dropping `tx` rolls the whole batch back.
                    return Err(StoreError::Duplicate(a.event.id.clone()));
                }
                upsert_case
                    .execute(params![
                        c.case.id.0,
                        c.case.state.0,
                        c.case.updated_at.to_rfc3339(),
                        encode(&c.case)?,
                    ])
                    .map_err(err)?;
                let first: i64 = next_seq
                    .query_row([&c.case.id.0], |r| r.get(0))
                    .map_err(err)?;
                for (seq, d) in (first..).zip(&c.decisions) {
                    insert_decision
                        .execute(params![
                            c.case.id.0,
                            seq,
                            d.event.as_ref().map(|e| e.0.as_str()),
                            encode(d)?,
                        ])
                        .map_err(err)?;
                }
                for action in &c.actions {
                    insert_action
                        .execute(params![
                            action.id,
                            action.case.0,
                            action.plugin(),
                            encode(action)?,
                            millis(action.requested_at),
                            action.requested_at.to_rfc3339(),
                        ])
                        .map_err(err)?;
                }
            }
            for r in &batch.rejected {
                insert_rejected
                    .execute(params![
                        r.event.id.0,
                        r.at.to_rfc3339(),
                        encode(&r.event)?,
                        encode(&r.error)?,
                    ])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
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

    fn events(&self, case: &CaseId) -> Result<Vec<Accepted>, StoreError> {
        let shown = self.shown();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT event, handled_at, customer, ruleset FROM events
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
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (event, handled_at, customer, ruleset) = row.map_err(|e| self.err(e))?;
            out.push(Accepted {
                event: decode(&shown, "events", &event)?,
                case: case.clone(),
                handled_at: decode_time(&shown, "events.handled_at", &handled_at)?,
                customer: decode(&shown, "events", &customer)?,
                ruleset,
            });
        }
        Ok(out)
    }

    fn decisions(&self, case: &CaseId) -> Result<Vec<Decision>, StoreError> {
        let shown = self.shown();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT body FROM decisions WHERE case_id = ?1 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([&case.0], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode(&shown, "decisions", &row.map_err(|e| self.err(e))?)?);
        }
        Ok(out)
    }

    fn ruleset(&self, hash: &str) -> Result<Option<RuleSetSource>, StoreError> {
        let source: Option<String> = self
            .conn
            .prepare_cached("SELECT source FROM rulesets WHERE hash = ?1")
            .and_then(|mut stmt| stmt.query_row([hash], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        source
            .map(|text| decode(&self.shown(), "rulesets", &text))
            .transpose()
    }

    fn event_count(&self) -> Result<usize, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    fn pending_actions(&self) -> Result<Vec<Action>, StoreError> {
        let shown = self.shown();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT action FROM outbox WHERE status = 'pending' ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode(&shown, "outbox", &row.map_err(|e| self.err(e))?)?);
        }
        Ok(out)
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let shown = self.shown();
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM outbox ORDER BY seq"))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| self.entry_from_row(r))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(|e| self.err(e))?.decode(&shown)?);
        }
        Ok(out)
    }

    fn outbox_entry(&self, id: &str) -> Result<Option<OutboxEntry>, StoreError> {
        let raw = self
            .conn
            .prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM outbox WHERE id = ?1"))
            .and_then(|mut s| s.query_row([id], |r| self.entry_from_row(r)).optional())
            .map_err(|e| self.err(e))?;
        raw.map(|r| r.decode(&self.shown())).transpose()
    }

    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let mut counts = OutboxCounts::default();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT status, COUNT(*) FROM outbox GROUP BY status")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (status, n) = row.map_err(|e| self.err(e))?;
            let n = n as usize;
            match ActionStatus::parse(&status) {
                Some(ActionStatus::Pending) => counts.pending = n,
                Some(ActionStatus::Done) => counts.done = n,
                Some(ActionStatus::GaveUp) => counts.gave_up = n,
                None => {}
            }
        }
        Ok(counts)
    }

    fn cases_in_states(&self, states: &[&str], limit: usize) -> Result<Vec<Case>, StoreError> {
        if states.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let shown = self.shown();
        let marks = vec!["?"; states.len()].join(", ");
        let sql = format!(
            "SELECT body FROM cases WHERE state IN ({marks})
             ORDER BY updated_at DESC, id LIMIT {limit}"
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

    fn actions_for_case(&self, case: &CaseId) -> Result<Vec<OutboxEntry>, StoreError> {
        let shown = self.shown();
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ENTRY_COLUMNS} FROM outbox WHERE case_id = ?1 ORDER BY seq"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([&case.0], |r| self.entry_from_row(r))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(|e| self.err(e))?.decode(&shown)?);
        }
        Ok(out)
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

    fn complete_action(
        &mut self,
        id: &str,
        worker: &str,
        outcome: ActionOutcome,
    ) -> Result<(), StoreError> {
        let shown = self.shown();
        let err = |e: rusqlite::Error| classify(&shown, &e);
        let changed = match &outcome {
            ActionOutcome::Done { result } => self
                .conn
                .prepare_cached(
                    "UPDATE outbox SET status = 'done', result = ?3,
                         lease_owner = NULL, lease_until = NULL
                     WHERE id = ?1 AND lease_owner = ?2 AND status = 'pending'",
                )
                .and_then(|mut s| s.execute(params![id, worker, encode(result).ok()]))
                .map_err(err)?,
            ActionOutcome::Retry { at, error } => self
                .conn
                .prepare_cached(
                    "UPDATE outbox SET next_attempt_at = ?3, next_attempt = ?4, last_error = ?5,
                         lease_owner = NULL, lease_until = NULL
                     WHERE id = ?1 AND lease_owner = ?2 AND status = 'pending'",
                )
                .and_then(|mut s| {
                    s.execute(params![id, worker, millis(*at), at.to_rfc3339(), error])
                })
                .map_err(err)?,
            ActionOutcome::GaveUp { error } => self
                .conn
                .prepare_cached(
                    "UPDATE outbox SET status = 'gave_up', last_error = ?3,
                         lease_owner = NULL, lease_until = NULL
                     WHERE id = ?1 AND lease_owner = ?2 AND status = 'pending'",
                )
                .and_then(|mut s| s.execute(params![id, worker, error]))
                .map_err(err)?,
        };
        if changed == 1 {
            return Ok(());
        }
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM outbox WHERE id = ?1")
            .and_then(|mut s| s.exists([id]))
            .map_err(err)?;
        Err(if exists {
            StoreError::LeaseLost {
                action: id.to_owned(),
                worker: worker.to_owned(),
            }
        } else {
            StoreError::UnknownAction(id.to_owned())
        })
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
        assert_eq!(
            store.event_count().unwrap(),
            3,
            "the contract commits three events"
        );
        assert_eq!(store.version().unwrap(), schema_version());
        assert_eq!(store.outbox().unwrap().len(), 3);
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
