//! The PostgreSQL schema, as ordered migrations (as in SQLite: never edit
//! a published one, append).
//!
//! The tables are SQLite's (`events`, `cases`, `decisions`, `past`,
//! `links`, `timers`, `outbox`, `rejected`, `rulesets`, `packs`,
//! `counters`), their rows encoded the same way, plus what sharing one
//! database between workers needs:
//! - `part` on every row that belongs to a case (its partition), so a
//!   worker's timers and outbox are one indexed range;
//! - `partitions`: owner, epoch and lease of each partition;
//! - `workers`: who is alive (a heartbeat), to share partitions fairly;
//! - `inbox` and `inbox_heads`: events acknowledged by any worker, waiting
//!   for their partition's owner, numbered per partition in the order
//!   they were acknowledged;
//! - `counters` per partition, so workers never update the same row.

/// Migration `i` (1-based) brings the database from version `i - 1` to `i`.
pub const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE settings (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE partitions (
        id          INT PRIMARY KEY,
        owner       TEXT,
        epoch       BIGINT NOT NULL DEFAULT 0,
        lease_until TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
    );

    CREATE TABLE workers (
        name    TEXT PRIMARY KEY,
        seen_at TIMESTAMPTZ NOT NULL
    );

    CREATE TABLE events (
        seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id         TEXT NOT NULL UNIQUE,
        case_id    TEXT NOT NULL,
        part       INT NOT NULL,
        handled_at TEXT NOT NULL,
        event      TEXT NOT NULL,
        customer   TEXT NOT NULL,
        ruleset    TEXT,
        pack       TEXT
    );
    CREATE INDEX events_by_case ON events (case_id, seq);

    CREATE TABLE cases (
        id           TEXT PRIMARY KEY,
        part         INT NOT NULL,
        state        TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        updated_ms   BIGINT NOT NULL,
        body         TEXT NOT NULL,
        customer_key TEXT,
        summary      TEXT NOT NULL
    );
    CREATE INDEX cases_by_customer ON cases (customer_key) WHERE customer_key IS NOT NULL;
    CREATE INDEX cases_by_state ON cases (state, updated_ms);

    CREATE TABLE decisions (
        seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        case_id  TEXT NOT NULL,
        event_id TEXT,
        body     TEXT NOT NULL
    );
    CREATE INDEX decisions_by_case ON decisions (case_id, seq);

    CREATE TABLE past (
        seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        case_id TEXT NOT NULL,
        body    TEXT NOT NULL
    );
    CREATE INDEX past_by_case ON past (case_id, seq);

    CREATE TABLE links (
        key     TEXT PRIMARY KEY,
        case_id TEXT NOT NULL
    );

    CREATE TABLE timers (
        case_id TEXT NOT NULL,
        due     BIGINT NOT NULL,
        name    TEXT NOT NULL,
        part    INT NOT NULL,
        due_at  TEXT NOT NULL,
        PRIMARY KEY (case_id, due, name)
    );
    CREATE INDEX timers_by_due ON timers (due, part);

    CREATE TABLE outbox (
        seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id              TEXT NOT NULL UNIQUE,
        case_id         TEXT NOT NULL,
        part            INT NOT NULL,
        plugin          TEXT NOT NULL,
        action          TEXT NOT NULL,
        status          TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'done', 'gave_up')),
        attempts        INT NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        next_attempt    TEXT NOT NULL,
        lease_owner     TEXT,
        lease_until     BIGINT,
        last_error      TEXT,
        result          TEXT
    );
    CREATE INDEX outbox_due ON outbox (next_attempt_at, part) WHERE status = 'pending';
    CREATE INDEX outbox_by_case ON outbox (case_id, seq);

    CREATE TABLE rejected (
        seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id TEXT NOT NULL,
        at       TEXT NOT NULL,
        event    TEXT NOT NULL,
        error    TEXT NOT NULL
    );

    CREATE TABLE rulesets (
        hash   TEXT PRIMARY KEY,
        source TEXT NOT NULL
    );

    CREATE TABLE packs (
        hash   TEXT PRIMARY KEY,
        source TEXT NOT NULL
    );

    CREATE TABLE counters (
        part INT NOT NULL,   -- -1: not a partition's (refusals without a case)
        name TEXT NOT NULL,
        n    BIGINT NOT NULL,
        PRIMARY KEY (part, name)
    );

    CREATE TABLE inbox (
        part        INT NOT NULL,
        pseq        BIGINT NOT NULL,
        event_id    TEXT NOT NULL UNIQUE,
        event       TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (part, pseq)
    );

    CREATE TABLE inbox_heads (
        part INT PRIMARY KEY,
        next BIGINT NOT NULL DEFAULT 0
    );
"#,
    // 2: claiming due actions reads the pending ones in claim order
    // (`next_attempt_at, seq`) and stops at the batch size; ordered by
    // (`next_attempt_at, part`), a backlog of due actions was read and
    // sorted whole on every claim.
    r#"
    DROP INDEX outbox_due;
    CREATE INDEX outbox_due ON outbox (next_attempt_at, seq) WHERE status = 'pending';
"#,
];
