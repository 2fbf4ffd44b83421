//! Rows as both SQL stores write them: JSON text for values, RFC 3339
//! text beside milliseconds for times, and the outbox row before its JSON
//! is decoded. Shared so that the SQLite and PostgreSQL stores read and
//! write the same bytes (and `casework migrate` copies rows unchanged).

use super::{ActionStatus, OutboxEntry, StoreError};
use crate::Timestamp;
use crate::action::Action;

pub(super) const ENTRY_COLUMNS: &str =
    "action, status, attempts, next_attempt, lease_owner, lease_until, last_error, result";

/// An outbox row as read, before decoding its JSON.
pub(super) struct RawEntry {
    pub(super) action: String,
    pub(super) status: String,
    pub(super) attempts: i64,
    pub(super) next_attempt: String,
    pub(super) lease_owner: Option<String>,
    pub(super) lease_until: Option<i64>,
    pub(super) last_error: Option<String>,
    pub(super) result: Option<String>,
}

impl RawEntry {
    pub(super) fn decode(self, path: &str) -> Result<OutboxEntry, StoreError> {
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

pub(super) fn millis(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_millis(ms: i64) -> Option<Timestamp> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.fixed_offset())
}

pub(super) fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(
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
pub(super) fn decode_time(path: &str, column: &str, text: &str) -> Result<Timestamp, StoreError> {
    Timestamp::parse_from_rfc3339(text).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        message: format!("{column} `{text}`: {e}"),
    })
}
