//! The write-ahead journal's table (`journal`, see [`crate::journal`]): the changes the
//! journal writer commits in groups, the messages left in flight, the dedupe records.

use cpim_core::model::Message;
use rusqlite::{params, Connection};

use super::{Store, StoreError};
use crate::records::{MessageRec, RecordError};

impl Store {
    /// Applies journal operations in one transaction (one fsync: the group commit);
    /// returns, per operation, the row id a [`JournalOp::Begin`] created. Done records
    /// expired at `prune_before_ms` (Unix milliseconds) are deleted in the same
    /// transaction when it is given (at most [`PRUNE_CHUNK`] of them).
    pub fn journal_apply(
        &self,
        ops: &[JournalOp],
        prune_before_ms: Option<u64>,
    ) -> Result<Vec<Option<i64>>, StoreError> {
        self.journal_apply_pruning(ops, prune_before_ms)
            .map(|(ids, _)| ids)
    }

    /// [`Store::journal_apply`], also returning how many expired records it deleted.
    /// The deletion is bounded to [`PRUNE_CHUNK`] rows so that a commit which prunes
    /// never holds up the messages waiting for it for long (at tens of thousands of
    /// messages a second a minute's worth of expired records is millions of rows); the
    /// caller prunes again at its next commit when a whole chunk went.
    pub fn journal_apply_pruning(
        &self,
        ops: &[JournalOp],
        prune_before_ms: Option<u64>,
    ) -> Result<(Vec<Option<i64>>, usize), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let ids = ops
                .iter()
                .map(|op| apply_journal_op(&tx, op))
                .collect::<Result<Vec<_>, _>>()?;
            let mut pruned = 0;
            if let Some(t) = prune_before_ms {
                pruned = tx
                    .prepare_cached(
                        "DELETE FROM journal WHERE id IN (SELECT id FROM journal \
                         WHERE data IS NULL AND expires_at <= ?1 LIMIT ?2)",
                    )?
                    .execute(params![t.min(i64::MAX as u64) as i64, PRUNE_CHUNK as i64])?;
            }
            tx.commit()?;
            Ok((ids, pruned))
        })
    }

    /// The messages still in flight in the journal (written ahead, never completed),
    /// oldest first, as `(row id, source adapter, message)`.
    pub fn journal_in_flight(&self) -> Result<Vec<(i64, String, Message)>, StoreError> {
        self.with(|c| {
            let mut s = c.prepare_cached(
                "SELECT id, adapter, data FROM journal WHERE data IS NOT NULL ORDER BY id",
            )?;
            let raw = s
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            raw.into_iter()
                .map(|(id, adapter, data)| {
                    let rec: MessageRec = serde_json::from_str(&data).map_err(RecordError::from)?;
                    Ok((id, adapter, rec.try_into()?))
                })
                .collect()
        })
    }

    /// The dedupe records not expired at `now_ms`, as `(source, message id, code,
    /// reason, expires_at ms)`, oldest first (a later record of a key wins).
    pub fn journal_done(&self, now_ms: u64) -> Result<Vec<DoneRecord>, StoreError> {
        self.with(|c| {
            let mut s = c.prepare_cached(
                "SELECT src, mid, code, reason, expires_at FROM journal WHERE data IS NULL AND src IS NOT NULL AND mid IS NOT NULL AND expires_at > ?1 ORDER BY id",
            )?;
            let rows = s
                .query_map(params![now_ms.min(i64::MAX as u64) as i64], |r| {
                    Ok(DoneRecord {
                        source: r.get(0)?,
                        message_id: r.get(1)?,
                        code: r.get::<_, i64>(2)?.clamp(0, u16::MAX as i64) as u16,
                        reason: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                        expires_at_ms: r.get::<_, i64>(4)?.max(0) as u64,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Rows in the journal (in flight and done).
    pub fn journal_len(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM journal", [], |r| r.get::<_, i64>(0))? as u64)
        })
    }
}

/// One change to the journal ([`crate::journal`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum JournalOp {
    /// Write ahead: `message` from `adapter` is about to be delivered.
    Begin {
        /// The source adapter.
        adapter: String,
        /// The dedupe key `(bare source, message id)`, when the message has an id.
        key: Option<(String, String)>,
        /// The message (serialized [`MessageRec`] JSON).
        data: String,
    },
    /// A message finished with this outcome: a journal row (`id`) becomes the dedupe
    /// record of `key`, or is deleted when there is no key; without `id` (a source that
    /// acknowledges messages itself) a dedupe record is inserted for `key`.
    Done {
        /// The journal row, if the message was written ahead.
        id: Option<i64>,
        /// The dedupe key.
        key: Option<(String, String)>,
        /// The outcome's code.
        code: u16,
        /// The outcome's reason.
        reason: String,
        /// Until when the record is kept, Unix milliseconds.
        expires_at_ms: u64,
    },
}

/// A persisted dedupe record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoneRecord {
    /// The bare source address.
    pub source: String,
    /// The message id.
    pub message_id: String,
    /// The first copy's outcome code.
    pub code: u16,
    /// Its reason phrase.
    pub reason: String,
    /// Kept until, Unix milliseconds.
    pub expires_at_ms: u64,
}

/// Most expired dedupe records one journal commit deletes.
pub const PRUNE_CHUNK: usize = 4096;

pub(super) fn apply_journal_op(c: &Connection, op: &JournalOp) -> Result<Option<i64>, StoreError> {
    match op {
        JournalOp::Begin { adapter, key, data } => {
            let (src, mid) = key.as_ref().map(|(s, m)| (s, m)).unzip();
            c.prepare_cached(
                "INSERT INTO journal(adapter, src, mid, data) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![adapter, src, mid, data])?;
            Ok(Some(c.last_insert_rowid()))
        }
        JournalOp::Done {
            id,
            key,
            code,
            reason,
            expires_at_ms,
        } => {
            let exp = (*expires_at_ms).min(i64::MAX as u64) as i64;
            match (id, key) {
                (Some(id), Some(_)) => {
                    c.prepare_cached("UPDATE journal SET data = NULL, code = ?2, reason = ?3, expires_at = ?4 WHERE id = ?1")?
                        .execute(params![id, code, reason, exp])?;
                }
                (Some(id), None) => {
                    c.prepare_cached("DELETE FROM journal WHERE id = ?1")?
                        .execute(params![id])?;
                }
                (None, Some((src, mid))) => {
                    c.prepare_cached("INSERT INTO journal(adapter, src, mid, data, code, reason, expires_at) VALUES ('', ?1, ?2, NULL, ?3, ?4, ?5)")?
                        .execute(params![src, mid, code, reason, exp])?;
                }
                (None, None) => {}
            }
            Ok(None)
        }
    }
}
