//! The SQLite backend. One OS thread owns the connection; async callers
//! send it closures over a channel and await the reply on a oneshot, so no
//! query ever blocks the tokio runtime.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::migrations::migrations;
use crate::{StoreError, StoreFuture};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// SQLite in WAL mode, on its own thread. Requests run one at a time in the
/// order they were made; each change is one transaction.
#[derive(Debug)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path` on a
    /// new database thread. The thread ends when the store is dropped.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready) = oneshot::channel();
        let db = path.to_owned();
        std::thread::Builder::new()
            .name("ferrovirt-store".into())
            .spawn(move || match connect(&db) {
                Ok(conn) => {
                    let _ = ready_tx.send(Ok(()));
                    serve(conn, &queue);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|source| StoreError::Thread {
                path: path.display().to_string(),
                source,
            })?;
        ready.await.map_err(|_| StoreError::Stopped)??;
        Ok(Self { jobs })
    }

    /// Runs `query` on the database thread. The request is queued when this
    /// is called, not when the future is first polled: requests run in call
    /// order, and dropping the future does not cancel the request.
    pub(crate) fn run<T, F>(&self, query: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let queued = self.jobs.send(Box::new(move |conn: &mut Connection| {
            let _ = reply.send(query(conn));
        }));
        Box::pin(async move {
            queued.map_err(|_| StoreError::Stopped)?;
            answer.await.map_err(|_| StoreError::Stopped)?
        })
    }
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.display().to_string(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    // FULL: a committed transaction survives a power loss (with WAL,
    // NORMAL only survives a crash of the process and may lose the last
    // commits when the host loses power). Our writes are few and small.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    migrations().to_latest(&mut conn)?;
    Ok(conn)
}

/// The database thread's loop: one job at a time until every sender is gone.
fn serve(mut conn: Connection, queue: &mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        // A panicking query loses its reply (its caller gets `Stopped`) and
        // rolls back its open transaction on unwind; the thread goes on.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_run_in_call_order_even_when_not_awaited() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db")).await.unwrap();
        let _ignored = s.run(|c| {
            c.execute_batch("CREATE TABLE t (v INTEGER)")?;
            Ok(())
        });
        drop(_ignored);
        let n = s
            .run(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(n, 0, "the dropped request still created the table first");
    }

    #[tokio::test]
    async fn a_panicking_query_answers_stopped_and_the_thread_survives() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db")).await.unwrap();
        let panicked = s.run::<(), _>(|_| panic!("query bug")).await;
        assert!(matches!(panicked, Err(StoreError::Stopped)));
        let one = s
            .run(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(one, 1);
    }

    #[tokio::test]
    async fn the_database_is_durable_on_power_loss() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db"))
            .await
            .unwrap();
        let (mode, sync): (String, i64) = store
            .run(|c| {
                let mode = c.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
                let sync = c.pragma_query_value(None, "synchronous", |r| r.get(0))?;
                Ok((mode, sync))
            })
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[tokio::test]
    async fn an_unopenable_path_is_an_open_error_naming_it() {
        let err = SqliteStore::open(Path::new("/nonexistent-dir/x/state.db"))
            .await
            .unwrap_err();
        assert!(matches!(&err, StoreError::Open { path, .. } if path.contains("nonexistent-dir")));
    }
}
