//! Networks: the spec and whether the network should be running.

use ferrovirt_api::NetworkSpec;

use crate::named::NamedTable;
use crate::{SqliteStore, StoreFuture};

const TABLE: NamedTable = NamedTable {
    table: "networks",
    what: "network",
};

/// A network as stored: its spec and whether it should be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRecord {
    pub spec: NetworkSpec,
    pub active: bool,
}

/// Durable storage of networks.
pub trait NetworkStore: Send + Sync {
    /// Adds a network; fails with [`crate::StoreError::Duplicate`] if the name is taken.
    fn insert_network(&self, rec: &NetworkRecord) -> StoreFuture<'_, ()>;
    /// Replaces a network's spec and desired state.
    fn update_network(&self, rec: &NetworkRecord) -> StoreFuture<'_, ()>;
    /// Every network, by name.
    fn networks(&self) -> StoreFuture<'_, Vec<NetworkRecord>>;
    /// Removes a network; `false` if it did not exist.
    fn delete_network(&self, name: &str) -> StoreFuture<'_, bool>;
}

impl NetworkStore for SqliteStore {
    fn insert_network(&self, rec: &NetworkRecord) -> StoreFuture<'_, ()> {
        let rec = rec.clone();
        self.run(move |c| TABLE.insert(c, &rec.spec.name, &rec.spec, rec.active))
    }

    fn update_network(&self, rec: &NetworkRecord) -> StoreFuture<'_, ()> {
        let rec = rec.clone();
        self.run(move |c| TABLE.update(c, &rec.spec.name, &rec.spec, rec.active))
    }

    fn networks(&self) -> StoreFuture<'_, Vec<NetworkRecord>> {
        self.run(|c| {
            Ok(TABLE
                .list(c)?
                .into_iter()
                .map(|row| NetworkRecord {
                    spec: row.spec,
                    active: row.active,
                })
                .collect())
        })
    }

    fn delete_network(&self, name: &str) -> StoreFuture<'_, bool> {
        let name = name.to_owned();
        self.run(move |c| TABLE.delete(c, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;
    use crate::testing::store;

    fn rec(name: &str) -> NetworkRecord {
        NetworkRecord {
            spec: serde_json::from_value(serde_json::json!({ "name": name })).unwrap(),
            active: false,
        }
    }

    #[tokio::test]
    async fn round_trip_update_and_delete() {
        let (s, _dir) = store().await;
        s.insert_network(&rec("b")).await.unwrap();
        let mut a = rec("a");
        s.insert_network(&a).await.unwrap();
        a.active = true;
        a.spec.autostart = true;
        s.update_network(&a).await.unwrap();
        assert_eq!(s.networks().await.unwrap(), vec![a, rec("b")]);
        assert!(s.delete_network("a").await.unwrap());
        assert!(!s.delete_network("a").await.unwrap());
        assert_eq!(s.networks().await.unwrap(), vec![rec("b")]);
    }

    #[tokio::test]
    async fn duplicate_name_is_duplicate() {
        let (s, _dir) = store().await;
        s.insert_network(&rec("a")).await.unwrap();
        let err = s.insert_network(&rec("a")).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Duplicate(n) if n == "network a"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn unknown_active_flag_is_corrupt() {
        let (s, _dir) = store().await;
        s.insert_network(&rec("a")).await.unwrap();
        s.run(|c| {
            c.execute("UPDATE networks SET active = 7", [])?;
            Ok(())
        })
        .await
        .unwrap();
        let err = s.networks().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { table: "networks", row, column: "active", value } if row == "a" && value == "7"),
            "{err:?}"
        );
    }
}
