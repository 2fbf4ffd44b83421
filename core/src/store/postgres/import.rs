//! Moving an embedded store into PostgreSQL (`casework migrate`): a shop
//! starts on one SQLite file and grows.
//!
//! Rows are copied as they are (both stores encode them the same way),
//! each given its case's partition; the counters are computed again from
//! the copied rows; everything happens in ONE transaction, so a failure
//! leaves the database as it was. The SQLite file is only read (after
//! its own schema is brought up to date).

use std::path::Path;

use postgres::types::ToSql;
use rusqlite::types::Value;

use super::{Conn, PgOptions, PgStore, classify, partition_of};
use crate::case::CaseId;
use crate::store::{SqliteStore, Store, StoreError};

/// Rows copied per statement.
const CHUNK: usize = 5000;

/// One table as copied: rows in SQLite, rows in PostgreSQL after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub from: i64,
    pub to: i64,
}

/// A column read from SQLite.
#[derive(Clone, Copy)]
enum Col {
    Text,
    Int,
}

/// How one table is copied: the SQLite query, its columns, which column
/// holds the case id (its partition is added as the last parameter), and
/// the PostgreSQL insert taking one array per column.
struct Table {
    name: &'static str,
    select: &'static str,
    cols: &'static [Col],
    case_col: Option<usize>,
    insert: &'static str,
}

use Col::{Int, Text};

const TABLES: &[Table] = &[
    Table {
        name: "events",
        select: "SELECT id, case_id, handled_at, event, customer, ruleset, pack FROM events ORDER BY seq",
        cols: &[Text, Text, Text, Text, Text, Text, Text],
        case_col: Some(1),
        insert: "INSERT INTO events (id, case_id, handled_at, event, customer, ruleset, pack, part)
                 SELECT a, b, c, d, e, f, g, h FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[],
                     $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::INT[])
                     WITH ORDINALITY AS u(a, b, c, d, e, f, g, h, o) ORDER BY o",
    },
    Table {
        name: "cases",
        select: "SELECT id, state, updated_at, updated_ms, body, customer_key, summary FROM cases",
        cols: &[Text, Text, Text, Int, Text, Text, Text],
        case_col: Some(0),
        insert: "INSERT INTO cases (id, state, updated_at, updated_ms, body, customer_key, summary, part)
                 SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[],
                     $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::INT[])",
    },
    Table {
        name: "decisions",
        select: "SELECT case_id, event_id, body FROM decisions ORDER BY case_id, seq",
        cols: &[Text, Text, Text],
        case_col: None,
        insert: "INSERT INTO decisions (case_id, event_id, body)
                 SELECT a, b, c FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[])
                     WITH ORDINALITY AS u(a, b, c, o) ORDER BY o",
    },
    Table {
        name: "past",
        select: "SELECT case_id, body FROM past ORDER BY case_id, seq",
        cols: &[Text, Text],
        case_col: None,
        insert: "INSERT INTO past (case_id, body)
                 SELECT a, b FROM unnest($1::TEXT[], $2::TEXT[]) WITH ORDINALITY AS u(a, b, o)
                 ORDER BY o",
    },
    Table {
        name: "links",
        select: "SELECT key, case_id FROM links",
        cols: &[Text, Text],
        case_col: None,
        insert: "INSERT INTO links (key, case_id) SELECT * FROM unnest($1::TEXT[], $2::TEXT[])",
    },
    Table {
        name: "timers",
        select: "SELECT case_id, due, name, due_at FROM timers",
        cols: &[Text, Int, Text, Text],
        case_col: Some(0),
        insert: "INSERT INTO timers (case_id, due, name, due_at, part)
                 SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::INT[])",
    },
    Table {
        name: "outbox",
        select: "SELECT id, case_id, plugin, action, status, attempts, next_attempt_at, next_attempt,
                        lease_owner, lease_until, last_error, result FROM outbox ORDER BY seq",
        cols: &[Text, Text, Text, Text, Text, Int, Int, Text, Text, Int, Text, Text],
        case_col: Some(1),
        insert: "INSERT INTO outbox (id, case_id, plugin, action, status, attempts, next_attempt_at,
                     next_attempt, lease_owner, lease_until, last_error, result, part)
                 SELECT a, b, c, d, e, f::INT, g, h, i, j, k, l, m FROM unnest($1::TEXT[], $2::TEXT[],
                     $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[], $7::BIGINT[], $8::TEXT[],
                     $9::TEXT[], $10::BIGINT[], $11::TEXT[], $12::TEXT[], $13::INT[])
                     WITH ORDINALITY AS u(a, b, c, d, e, f, g, h, i, j, k, l, m, o) ORDER BY o",
    },
    Table {
        name: "rejected",
        select: "SELECT event_id, at, event, error FROM rejected ORDER BY seq",
        cols: &[Text, Text, Text, Text],
        case_col: None,
        insert: "INSERT INTO rejected (event_id, at, event, error)
                 SELECT a, b, c, d FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[])
                     WITH ORDINALITY AS u(a, b, c, d, o) ORDER BY o",
    },
    Table {
        name: "rulesets",
        select: "SELECT hash, source FROM rulesets",
        cols: &[Text, Text],
        case_col: None,
        insert: "INSERT INTO rulesets (hash, source) SELECT * FROM unnest($1::TEXT[], $2::TEXT[])",
    },
    Table {
        name: "packs",
        select: "SELECT hash, source FROM packs",
        cols: &[Text, Text],
        case_col: None,
        insert: "INSERT INTO packs (hash, source) SELECT * FROM unnest($1::TEXT[], $2::TEXT[])",
    },
];

/// The counters, computed from the rows (per partition, as the store
/// keeps them).
const COUNTERS: &str = "
    INSERT INTO counters (part, name, n) SELECT part, 'events', COUNT(*) FROM events GROUP BY part;
    INSERT INTO counters (part, name, n) SELECT part, 'cases', COUNT(*) FROM cases GROUP BY part;
    INSERT INTO counters (part, name, n) SELECT part, 'timers', COUNT(*) FROM timers GROUP BY part;
    INSERT INTO counters (part, name, n)
        SELECT part, 'outbox.' || status, COUNT(*) FROM outbox GROUP BY part, status;
    INSERT INTO counters (part, name, n) SELECT -1, 'rejected', COUNT(*) FROM rejected HAVING COUNT(*) > 0;
";

/// One chunk of a column, as PostgreSQL takes it.
enum Column {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Part(Vec<i32>),
}

impl Column {
    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Column::Text(v) => v,
            Column::Int(v) => v,
            Column::Part(v) => v,
        }
    }
}

/// Copy the store at `from` into the (new or empty) database at `to`.
/// `progress` hears of each table as it is done.
pub fn import_sqlite(
    from: &Path,
    to: &str,
    options: &PgOptions,
    mut progress: impl FnMut(&Copied),
) -> Result<Vec<Copied>, StoreError> {
    // Brings the file's schema up to date (and checks it is one).
    let source = SqliteStore::open(from)?;
    let shown_from = from.display().to_string();
    let sqlite_err = |e: rusqlite::Error| StoreError::Backend(format!("{shown_from}: {e}"));
    let target = PgStore::open_with(to, options)?;
    if target.event_count()? > 0 || target.case_count()? > 0 {
        return Err(StoreError::Open {
            path: target.shown(),
            message: "it already holds cases; migrate into a new, empty database".into(),
        });
    }
    let stale = source.timers_stale()?;
    drop(source);
    let sqlite =
        rusqlite::Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite_err)?;
    let partitions = target.partitions();
    let mut conn = Conn::connect(to)?;
    let shown = conn.shown().to_owned();
    let pg_err = |e: postgres::Error| classify(&shown, &e);
    let mut tx = conn.client()?.transaction().map_err(pg_err)?;
    let held: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM partitions WHERE lease_until > clock_timestamp()",
            &[],
        )
        .map_err(pg_err)?
        .get(0);
    if held > 0 {
        return Err(StoreError::Open {
            path: shown.clone(),
            message: format!(
                "{held} partitions are leased by running workers; stop them, then migrate"
            ),
        });
    }
    let mut copied = Vec::new();
    for table in TABLES {
        let mut stmt = sqlite.prepare(table.select).map_err(sqlite_err)?;
        let mut rows = stmt.query([]).map_err(sqlite_err)?;
        let mut chunk: Vec<Vec<Value>> = Vec::with_capacity(CHUNK);
        let mut from_rows = 0;
        loop {
            let row = rows.next().map_err(sqlite_err)?;
            let end = row.is_none();
            if let Some(row) = row {
                let values = (0..table.cols.len())
                    .map(|i| row.get::<_, Value>(i))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sqlite_err)?;
                chunk.push(values);
                from_rows += 1;
            }
            if chunk.len() == CHUNK || (end && !chunk.is_empty()) {
                let columns = columns(table, &chunk, partitions);
                let params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(Column::param).collect();
                tx.execute(table.insert, &params).map_err(pg_err)?;
                chunk.clear();
            }
            if end {
                break;
            }
        }
        let to_rows: i64 = tx
            .query_one(&format!("SELECT COUNT(*) FROM {}", table.name), &[])
            .map_err(pg_err)?
            .get(0);
        let done = Copied {
            table: table.name,
            from: from_rows,
            to: to_rows,
        };
        progress(&done);
        copied.push(done);
    }
    tx.batch_execute(COUNTERS).map_err(pg_err)?;
    if stale {
        tx.execute(
            "INSERT INTO counters (part, name, n) VALUES (-1, 'timers.stale', 1)",
            &[],
        )
        .map_err(pg_err)?;
    }
    if copied.iter().any(|c| c.from != c.to) {
        // Dropping `tx` rolls everything back.
        return Ok(copied);
    }
    tx.commit().map_err(pg_err)?;
    Ok(copied)
}

/// The chunk's rows as one array per column, and the partitions.
fn columns(table: &Table, chunk: &[Vec<Value>], partitions: u32) -> Vec<Column> {
    let mut out: Vec<Column> = table
        .cols
        .iter()
        .enumerate()
        .map(|(i, col)| match col {
            Col::Text => Column::Text(
                chunk
                    .iter()
                    .map(|r| match &r[i] {
                        Value::Text(s) => Some(s.clone()),
                        Value::Integer(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect(),
            ),
            Col::Int => Column::Int(
                chunk
                    .iter()
                    .map(|r| match &r[i] {
                        Value::Integer(n) => Some(*n),
                        _ => None,
                    })
                    .collect(),
            ),
        })
        .collect();
    if let Some(c) = table.case_col {
        out.push(Column::Part(
            chunk
                .iter()
                .map(|r| match &r[c] {
                    Value::Text(id) => partition_of(&CaseId(id.clone()), partitions) as i32,
                    _ => 0,
                })
                .collect(),
        ));
    }
    out
}
