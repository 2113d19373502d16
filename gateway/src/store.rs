//! The durable embedded store: SQLite (bundled), one file `gateway.sqlite3` in the
//! configured directory, WAL journal with `synchronous=FULL`, so every committed write
//! has been fsynced before the call returns: a crash (even `kill -9`, even power loss
//! on an honest disk) loses nothing that was acknowledged.
//!
//! Tables:
//! - `records(kind, key, expires_at, data)`: keyed JSON records of every kind: SIP
//!   bindings, dialogs and publications (through [`cpim_sip::SipStore`] when the SIP
//!   adapter is built in), the presence engine's subscriptions and publications.
//! - `queue(id, destination, adapter, enqueued_at, next_attempt, attempts, data)`:
//!   accepted but undelivered messages (store-and-forward), indexed by next attempt and
//!   by destination.
//!
//! - `journal(id, adapter, src, mid, data, code, reason, expires_at)`: the write-ahead
//!   journal and the persistent dedupe records ([`crate::journal`]). A row with `data`
//!   is a message in flight (accepted from a source without per-message
//!   acknowledgement, not yet answered by its target); a row without `data` is the
//!   outcome (`code`, `reason`) of the completed message `(src, mid)` until `expires_at`
//!   (Unix milliseconds).
//!
//! Calls block on SQLite (an fsync per commit, ~0.15 ms here); async callers go through
//! [`Store::run`], which moves the work to the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cpim_core::model::Message;
use rusqlite::{params, Connection, OptionalExtension};

use crate::records::{MessageRec, RecordError};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory or file could not be created or opened.
    #[error("store {path}: {source}")]
    Open {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored record cannot be read.
    #[error("store: {0}")]
    Record(#[from] RecordError),
    /// The blocking task failed.
    #[error("store task failed: {0}")]
    Task(String),
}

/// Record kinds.
pub mod kind {
    /// SIP bindings of one AOR (JSON array), keyed by AOR.
    pub const SIP_BINDINGS: &str = "sip.bindings";
    /// SIP subscription dialogs, keyed by `call-id|local-tag`.
    pub const SIP_DIALOG: &str = "sip.dialog";
    /// SIP publications, keyed by entity tag.
    pub const SIP_PUBLICATION: &str = "sip.publication";
    /// Presence-engine subscriptions, keyed by `watcher|presentity`.
    pub const SUBSCRIPTION: &str = "presence.subscription";
    /// Presence-engine publications, keyed by presentity.
    pub const PUBLICATION: &str = "presence.publication";
}

/// A queued message.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueEntry {
    /// Row id: the order of acceptance.
    pub id: i64,
    /// The message as accepted (after loop counting, before re-encoding).
    pub message: Message,
    /// The adapter it waits for.
    pub adapter: String,
    /// Accepted at, Unix seconds.
    pub enqueued_at: u64,
    /// Next delivery attempt, Unix milliseconds.
    pub next_attempt_ms: u64,
    /// Attempts made so far.
    pub attempts: u32,
}

/// The store. Clones share one connection.
#[derive(Clone, Debug)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    expires_at INTEGER,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    adapter TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_next ON queue(next_attempt);
CREATE INDEX IF NOT EXISTS queue_dest ON queue(destination);
CREATE TABLE IF NOT EXISTS journal (
    -- no AUTOINCREMENT: it updates sqlite_sequence on every insert (one per message);
    -- an id is only used while its row exists, so reusing a freed id is harmless
    id INTEGER PRIMARY KEY,
    adapter TEXT NOT NULL,
    src TEXT,
    mid TEXT,
    data TEXT,
    code INTEGER,
    reason TEXT,
    expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS journal_key ON journal(src, mid);
CREATE INDEX IF NOT EXISTS journal_expires ON journal(expires_at);
";

impl Store {
    /// Opens (creating if needed) the store in directory `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Open {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join("gateway.sqlite3");
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut c)
    }

    /// Runs `f` on the blocking pool (or inline outside a runtime).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let me = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(h) => h
                .spawn_blocking(move || f(&me))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))?,
            Err(_) => f(&me),
        }
    }

    /// Inserts or replaces a record.
    pub fn put(
        &self,
        kind: &str,
        key: &str,
        expires_at: Option<u64>,
        data: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO records(kind, key, expires_at, data) VALUES (?1, ?2, ?3, ?4)",
                params![kind, key, expires_at.map(|e| e as i64), data],
            )?;
            Ok(())
        })
    }

    /// Replaces `old_key` (if any) by `key` in one transaction.
    pub fn replace(
        &self,
        kind: &str,
        old_key: Option<&str>,
        key: &str,
        expires_at: Option<u64>,
        data: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            if let Some(old) = old_key {
                tx.execute("DELETE FROM records WHERE kind = ?1 AND key = ?2", params![kind, old])?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO records(kind, key, expires_at, data) VALUES (?1, ?2, ?3, ?4)",
                params![kind, key, expires_at.map(|e| e as i64), data],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Removes a record; true if it existed.
    pub fn remove(&self, kind: &str, key: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM records WHERE kind = ?1 AND key = ?2",
                params![kind, key],
            )? > 0)
        })
    }

    /// One record.
    pub fn get(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT data FROM records WHERE kind = ?1 AND key = ?2",
                params![kind, key],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    /// Every record of a kind, as `(key, data)`, in key order.
    pub fn load(&self, kind: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.with(|c| {
            let mut s =
                c.prepare_cached("SELECT key, data FROM records WHERE kind = ?1 ORDER BY key")?;
            let rows = s
                .query_map(params![kind], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Number of records of a kind.
    pub fn count(&self, kind: &str) -> Result<u64, StoreError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM records WHERE kind = ?1",
                params![kind],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
    }

    /// Persists an accepted message for later delivery; returns its queue id.
    pub fn enqueue(&self, msg: &Message, adapter: &str, now_ms: u64) -> Result<i64, StoreError> {
        let data = serde_json::to_string(&MessageRec::from(msg)).map_err(RecordError::from)?;
        let dest = crate::presence::user_key(&msg.destination);
        self.with(|c| {
            c.execute(
                "INSERT INTO queue(destination, adapter, enqueued_at, next_attempt, attempts, data) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                params![dest, adapter, (now_ms / 1000) as i64, now_ms as i64, data],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    fn entries(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<QueueEntry>, StoreError> {
        self.with(|c| {
            let mut s = c.prepare_cached(sql)?;
            let raw = s
                .query_map(p, |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            raw.into_iter()
                .map(|(id, adapter, enq, next, attempts, data)| {
                    let rec: MessageRec = serde_json::from_str(&data).map_err(RecordError::from)?;
                    Ok(QueueEntry {
                        id,
                        message: rec.try_into()?,
                        adapter,
                        enqueued_at: enq as u64,
                        next_attempt_ms: next as u64,
                        attempts: attempts as u32,
                    })
                })
                .collect()
        })
    }

    /// Entries due at `now_ms`, oldest first, at most `limit`.
    pub fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<QueueEntry>, StoreError> {
        self.entries(
            "SELECT id, adapter, enqueued_at, next_attempt, attempts, data FROM queue WHERE next_attempt <= ?1 ORDER BY id LIMIT ?2",
            params![now_ms.min(i64::MAX as u64) as i64, limit as i64],
        )
    }

    /// Every entry for one destination (`user@domain`, scheme-neutral), oldest first.
    pub fn for_destination(&self, dest: &str) -> Result<Vec<QueueEntry>, StoreError> {
        self.entries(
            "SELECT id, adapter, enqueued_at, next_attempt, attempts, data FROM queue WHERE destination = ?1 ORDER BY id",
            params![dest],
        )
    }

    /// Makes every entry for `dest` due now (a registration came in).
    pub fn wake_destination(&self, dest: &str, now_ms: u64) -> Result<usize, StoreError> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE queue SET next_attempt = ?2 WHERE destination = ?1 AND next_attempt > ?2",
                params![dest, now_ms as i64],
            )?)
        })
    }

    /// The earliest next attempt, Unix milliseconds.
    pub fn next_due(&self) -> Result<Option<u64>, StoreError> {
        self.with(|c| {
            Ok(c.query_row("SELECT MIN(next_attempt) FROM queue", [], |r| {
                r.get::<_, Option<i64>>(0)
            })?
            .map(|v| v as u64))
        })
    }

    /// Records a failed attempt.
    pub fn reschedule(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_ms: u64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE queue SET attempts = ?2, next_attempt = ?3 WHERE id = ?1",
                params![id, attempts as i64, next_attempt_ms as i64],
            )?;
            Ok(())
        })
    }

    /// Removes an entry (delivered, or given up); true if it was there.
    pub fn dequeue(&self, id: i64) -> Result<bool, StoreError> {
        self.with(|c| Ok(c.execute("DELETE FROM queue WHERE id = ?1", params![id])? > 0))
    }

    /// Persists an accepted message for later delivery in one transaction: the queue
    /// entry (first attempt at `next_attempt_ms`) and, when the message came from the
    /// journal, the journal row's completion as `done` (so exactly one of the journal
    /// and the queue owns the message at every moment). Returns the queue id.
    pub fn enqueue_with(
        &self,
        msg: &Message,
        adapter: &str,
        now_ms: u64,
        next_attempt_ms: u64,
        done: Option<&JournalOp>,
    ) -> Result<i64, StoreError> {
        let data = serde_json::to_string(&MessageRec::from(msg)).map_err(RecordError::from)?;
        let dest = crate::presence::user_key(&msg.destination);
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO queue(destination, adapter, enqueued_at, next_attempt, attempts, data) VALUES (?1, ?2, ?3, ?4, 1, ?5)",
                params![dest, adapter, (now_ms / 1000) as i64, next_attempt_ms as i64, data],
            )?;
            let id = tx.last_insert_rowid();
            if let Some(op) = done {
                apply_journal_op(&tx, op)?;
            }
            tx.commit()?;
            Ok(id)
        })
    }

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

    /// Messages waiting.
    pub fn queue_depth(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get::<_, i64>(0))? as u64)
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

fn apply_journal_op(c: &Connection, op: &JournalOp) -> Result<Option<i64>, StoreError> {
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

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpim_core::model::TransId;
    use cpim_core::Address;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cpim-gw-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn msg(i: u64) -> Message {
        Message::new(
            TransId(i),
            Address::parse("sip:alice@sip.test").unwrap(),
            Address::parse("romeo@xmpp.test/orchard").unwrap(),
            "text/plain",
            format!("message {i}").into_bytes(),
        )
    }

    /// Write, drop, reopen: everything is back.
    #[test]
    fn restart_keeps_records_and_queue() {
        let dir = tmpdir("restart");
        {
            let s = Store::open(&dir).unwrap();
            s.put(kind::SUBSCRIPTION, "a|b", Some(100), "{\"x\":1}")
                .unwrap();
            s.put(kind::SUBSCRIPTION, "c|d", None, "{\"x\":2}").unwrap();
            s.replace(kind::SIP_PUBLICATION, None, "e1", Some(5), "p1")
                .unwrap();
            s.replace(kind::SIP_PUBLICATION, Some("e1"), "e2", Some(5), "p2")
                .unwrap();
            for i in 0..3 {
                s.enqueue(&msg(i), "xmpp", 1000 + i).unwrap();
            }
            let first = s.due(u64::MAX, 1).unwrap()[0].id;
            assert!(s.dequeue(first).unwrap());
        }
        let s = Store::open(&dir).unwrap();
        assert_eq!(
            s.load(kind::SUBSCRIPTION).unwrap(),
            vec![
                ("a|b".into(), "{\"x\":1}".into()),
                ("c|d".into(), "{\"x\":2}".into())
            ]
        );
        assert_eq!(
            s.load(kind::SIP_PUBLICATION).unwrap(),
            vec![("e2".into(), "p2".into())]
        );
        assert_eq!(s.queue_depth().unwrap(), 2);
        let q = s.for_destination("romeo@xmpp.test").unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].message, msg(1));
        assert_eq!(q[1].message, msg(2));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn queue_scheduling() {
        let dir = tmpdir("sched");
        let s = Store::open(&dir).unwrap();
        let id = s.enqueue(&msg(1), "xmpp", 1000).unwrap();
        assert_eq!(s.due(999, 10).unwrap().len(), 0);
        assert_eq!(s.due(1000, 10).unwrap().len(), 1);
        s.reschedule(id, 1, 5000).unwrap();
        assert_eq!(s.next_due().unwrap(), Some(5000));
        assert_eq!(s.due(4000, 10).unwrap().len(), 0);
        assert_eq!(s.wake_destination("romeo@xmpp.test", 4000).unwrap(), 1);
        let e = &s.due(4000, 10).unwrap()[0];
        assert_eq!((e.attempts, e.adapter.as_str()), (1, "xmpp"));
        assert!(s.dequeue(id).unwrap());
        assert!(!s.dequeue(id).unwrap());
        assert_eq!(s.queue_depth().unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
