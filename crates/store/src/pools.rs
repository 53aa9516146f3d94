//! Pools: the spec and whether the pool should be running.

use ferrovirt_api::PoolSpec;

use crate::named::NamedTable;
use crate::{SqliteStore, StoreFuture};

const TABLE: NamedTable = NamedTable {
    table: "pools",
    what: "pool",
};

/// A pool as stored: its spec and whether it should be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRecord {
    pub spec: PoolSpec,
    pub active: bool,
}

/// Durable storage of pools.
pub trait PoolStore: Send + Sync {
    /// Adds a pool; fails with [`crate::StoreError::Duplicate`] if the name is taken.
    fn insert_pool(&self, rec: &PoolRecord) -> StoreFuture<'_, ()>;
    /// Replaces a pool's spec and desired state.
    fn update_pool(&self, rec: &PoolRecord) -> StoreFuture<'_, ()>;
    /// Every pool, by name.
    fn pools(&self) -> StoreFuture<'_, Vec<PoolRecord>>;
    /// Removes a pool; `false` if it did not exist.
    fn delete_pool(&self, name: &str) -> StoreFuture<'_, bool>;
}

impl PoolStore for SqliteStore {
    fn insert_pool(&self, rec: &PoolRecord) -> StoreFuture<'_, ()> {
        let rec = rec.clone();
        self.run(move |c| TABLE.insert(c, &rec.spec.name, &rec.spec, rec.active))
    }

    fn update_pool(&self, rec: &PoolRecord) -> StoreFuture<'_, ()> {
        let rec = rec.clone();
        self.run(move |c| TABLE.update(c, &rec.spec.name, &rec.spec, rec.active))
    }

    fn pools(&self) -> StoreFuture<'_, Vec<PoolRecord>> {
        self.run(|c| {
            Ok(TABLE
                .list(c)?
                .into_iter()
                .map(|row| PoolRecord {
                    spec: row.spec,
                    active: row.active,
                })
                .collect())
        })
    }

    fn delete_pool(&self, name: &str) -> StoreFuture<'_, bool> {
        let name = name.to_owned();
        self.run(move |c| TABLE.delete(c, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;
    use crate::testing::store;

    fn rec(name: &str) -> PoolRecord {
        PoolRecord {
            spec: serde_json::from_value(serde_json::json!({ "name": name })).unwrap(),
            active: false,
        }
    }

    #[tokio::test]
    async fn round_trip_update_and_delete() {
        let (s, _dir) = store().await;
        s.insert_pool(&rec("b")).await.unwrap();
        let mut a = rec("a");
        s.insert_pool(&a).await.unwrap();
        a.active = true;
        a.spec.autostart = true;
        s.update_pool(&a).await.unwrap();
        assert_eq!(s.pools().await.unwrap(), vec![a, rec("b")]);
        assert!(s.delete_pool("a").await.unwrap());
        assert!(!s.delete_pool("a").await.unwrap());
        assert_eq!(s.pools().await.unwrap(), vec![rec("b")]);
    }

    #[tokio::test]
    async fn duplicate_name_is_duplicate() {
        let (s, _dir) = store().await;
        s.insert_pool(&rec("a")).await.unwrap();
        let err = s.insert_pool(&rec("a")).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Duplicate(n) if n == "pool a"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn unknown_active_flag_is_corrupt() {
        let (s, _dir) = store().await;
        s.insert_pool(&rec("a")).await.unwrap();
        s.run(|c| {
            c.execute("UPDATE pools SET active = 7", [])?;
            Ok(())
        })
        .await
        .unwrap();
        let err = s.pools().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { table: "pools", row, column: "active", value } if row == "a" && value == "7"),
            "{err:?}"
        );
    }
}
