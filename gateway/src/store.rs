//! The durable embedded store: SQLite (bundled), one file `gateway.sqlite3` in the
//! configured directory, WAL journal with `synchronous=FULL`, so every committed write
//! has been fsynced before the call returns: a crash (even `kill -9`, even power loss
//! on an honest disk) loses nothing that was acknowledged.
//!
//! Tables:
//! - `records(kind, key, expires_at, data)`: keyed JSON records of every kind: SIP
//!   bindings, dialogs and publications (through [`cpim_sip::app::SipStore`] when the SIP
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
//!   (Unix milliseconds). Its changes and queries are in the `journal` submodule.
//!
//! Folder 0700, files 0600 whatever the umask ([`crate::secrets::private_store`]).
//! Calls block on SQLite (an fsync per commit, ~0.15 ms here); async callers go through
//! [`Store::run`], which moves the work to the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cpim_core::model::Message;
use rusqlite::{params, Connection, OptionalExtension};

use crate::records::{MessageRec, RecordError};

mod journal;

use journal::apply_journal_op;
pub use journal::{DoneRecord, JournalOp, PRUNE_CHUNK};

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
    Task(#[source] tokio::task::JoinError),
    /// The journal's writer thread could not be started.
    #[error("store task failed: journal writer: {0}")]
    Writer(#[source] std::io::Error),
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
    /// A presentity's decisions about its watchers, keyed by `watcher|presentity`.
    pub const DECISION: &str = "presence.decision";
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

/// The store. Clones share one connection (and one [`RecordWriter`]).
#[derive(Clone, Debug)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    writer: Arc<OnceLock<RecordWriter>>,
}

/// One change to the `records` table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordOp {
    /// Insert or replace.
    Put {
        /// Record kind ([`kind`]).
        kind: &'static str,
        /// Key.
        key: String,
        /// Expiry, Unix seconds.
        expires_at: Option<u64>,
        /// The record.
        data: String,
    },
    /// Delete (nothing happens when it is absent).
    Remove {
        /// Record kind.
        kind: &'static str,
        /// Key.
        key: String,
    },
}

type RecordSender = std::sync::mpsc::Sender<(u64, Vec<RecordOp>)>;

/// Most record changes committed in one transaction.
const RECORD_BATCH: usize = 4096;

/// Group commit for the `records` table: one writer thread drains a channel and applies
/// whatever is waiting (up to `RECORD_BATCH` changes) in one SQLite transaction, one
/// fsync (WAL, `synchronous=FULL`). Changes are applied in the order they are handed over;
/// [`RecordWriter::submit`] returns a sequence number and [`RecordWriter::wait`] returns
/// once everything up to it is durable. Concurrent callers share fsyncs: at one fsync per
/// write the presence engine took about 3,000 subscriptions/s; batched, the fsync is paid
/// once per batch. The thread ends when the last [`Store`] clone is dropped.
#[derive(Debug)]
pub struct RecordWriter {
    /// The last sequence number handed out and the channel, locked together so that
    /// channel order is sequence order.
    tx: Mutex<(u64, RecordSender)>,
    committed: tokio::sync::watch::Receiver<u64>,
}

impl RecordWriter {
    fn start(conn: Arc<Mutex<Connection>>) -> Result<RecordWriter, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel::<(u64, Vec<RecordOp>)>();
        let (done, committed) = tokio::sync::watch::channel(0u64);
        std::thread::Builder::new()
            .name("cpim-records".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut last = first.0;
                    let mut batch = first.1;
                    while batch.len() < RECORD_BATCH {
                        match rx.try_recv() {
                            Ok((seq, ops)) => {
                                last = seq;
                                batch.extend(ops);
                            }
                            Err(_) => break,
                        }
                    }
                    let r = {
                        let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
                        apply_records(&mut c, &batch)
                    };
                    if let Err(e) = r {
                        tracing::error!(error = %e, changes = batch.len(), "records not persisted");
                    }
                    done.send_replace(last);
                }
            })
            .map_err(|source| StoreError::Open {
                path: PathBuf::from("records writer thread"),
                source,
            })?;
        Ok(RecordWriter {
            tx: Mutex::new((0, tx)),
            committed,
        })
    }

    /// Hands `ops` to the writer (applied in one transaction, after everything handed
    /// over before); returns the sequence number to [`RecordWriter::wait`] for.
    pub fn submit(&self, ops: Vec<RecordOp>) -> u64 {
        let mut g = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let seq = g.0;
        if g.1.send((seq, ops)).is_err() {
            tracing::error!("records writer is gone; change not persisted");
        }
        seq
    }

    /// Returns once the changes of `seq` (and all before) are committed (or failed: the
    /// writer logs failures).
    pub async fn wait(&self, seq: u64) {
        let mut rx = self.committed.clone();
        let _ = rx.wait_for(|c| *c >= seq).await;
    }

    /// True if `seq` is committed already.
    pub fn is_committed(&self, seq: u64) -> bool {
        *self.committed.borrow() >= seq
    }

    /// Submits and waits.
    pub async fn commit(&self, ops: Vec<RecordOp>) {
        let seq = self.submit(ops);
        self.wait(seq).await;
    }
}

fn apply_records(c: &mut Connection, ops: &[RecordOp]) -> Result<(), StoreError> {
    let tx = c.transaction()?;
    {
        let mut put = tx.prepare_cached(
            "INSERT OR REPLACE INTO records(kind, key, expires_at, data) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut del = tx.prepare_cached("DELETE FROM records WHERE kind = ?1 AND key = ?2")?;
        for op in ops {
            match op {
                RecordOp::Put {
                    kind,
                    key,
                    expires_at,
                    data,
                } => {
                    put.execute(params![kind, key, expires_at.map(|e| e as i64), data])?;
                }
                RecordOp::Remove { kind, key } => {
                    del.execute(params![kind, key])?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
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
        let path = dir.join("gateway.sqlite3");
        crate::secrets::private_store(dir, &path).map_err(|source| StoreError::Open {
            path: dir.to_owned(),
            source,
        })?;
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path,
            writer: Arc::new(OnceLock::new()),
        })
    }

    /// The group-commit writer of the `records` table (started on first use).
    pub fn writer(&self) -> Result<&RecordWriter, StoreError> {
        if let Some(w) = self.writer.get() {
            return Ok(w);
        }
        let w = RecordWriter::start(self.conn.clone())?;
        Ok(self.writer.get_or_init(|| w))
    }

    /// Applies record changes in one transaction, on the calling thread.
    pub fn apply(&self, ops: &[RecordOp]) -> Result<(), StoreError> {
        self.with(|c| apply_records(c, ops))
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
                .map_err(StoreError::Task)?,
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

    /// Calls `f(key, data)` for every record of a kind, in key order, straight from the
    /// SQLite cursor: a restore of a million records never holds them all as strings
    /// at once (that peak stayed in the process's RSS after start).
    pub fn for_each(&self, kind: &str, mut f: impl FnMut(&str, &str)) -> Result<(), StoreError> {
        self.with(|c| {
            let mut s =
                c.prepare_cached("SELECT key, data FROM records WHERE kind = ?1 ORDER BY key")?;
            let mut rows = s.query(params![kind])?;
            while let Some(r) = rows.next()? {
                let key = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
                let data = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
                f(key, data);
            }
            Ok(())
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

    /// Messages waiting.
    pub fn queue_depth(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get::<_, i64>(0))? as u64)
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
