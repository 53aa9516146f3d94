//! Persistent state. This is the only crate that speaks SQL.
//!
//! The state is split per aggregate — [`InstanceStore`], [`SnapshotStore`],
//! [`NetworkStore`], [`PoolStore`], [`TrustStore`] — each a trait with typed
//! records, so a cluster backend (etcd) can replace SQLite later; [`Store`]
//! is all of them together. [`SqliteStore`] keeps the database in WAL mode on
//! its own thread and runs every change in a transaction, so the daemon may be
//! killed at any instruction and no query blocks the async runtime.
//!
//! Every method returns a [`StoreFuture`]. The request is issued when the
//! method is called; awaiting the future only waits for its answer, so
//! requests run in call order and a dropped future does not cancel one.
//!
//! Long-running operations are not stored: the daemon keeps them in memory
//! and they do not outlive it.

use std::future::Future;
use std::pin::Pin;

mod error;
mod instances;
mod migrations;
mod named;
mod networks;
mod pools;
mod snapshots;
mod sqlite;
mod trust;

pub use error::StoreError;
pub use instances::{InstanceRecord, InstanceStore};
pub use networks::{NetworkRecord, NetworkStore};
pub use pools::{PoolRecord, PoolStore};
pub use snapshots::{SnapshotRecord, SnapshotState, SnapshotStore};
pub use sqlite::SqliteStore;
pub use trust::{TrustGrant, TrustRole, TrustStore, TrustedCertificate};

/// The answer to a store request.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Every aggregate's store in one object, for the daemon's convenience.
pub trait Store: InstanceStore + SnapshotStore + NetworkStore + PoolStore + TrustStore {}

impl<T> Store for T where
    T: InstanceStore + SnapshotStore + NetworkStore + PoolStore + TrustStore + ?Sized
{
}

#[cfg(test)]
pub(crate) mod testing {
    use super::SqliteStore;

    /// A fresh store in a temporary directory (kept alive by the guard).
    pub async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("state.db"))
            .await
            .unwrap();
        (s, dir)
    }
}
