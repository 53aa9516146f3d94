//! Snapshots: one record per snapshot, in a tree per instance.

use chrono::{DateTime, Utc};
use ferrovirt_api::{InstanceStatus, SnapshotDisk, SnapshotKind};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::{SqliteStore, StoreError, StoreFuture};

const TABLE: &str = "snapshots";

/// A snapshot as stored. `state` is `creating` until every step is done, so
/// a daemon killed in the middle finds and finishes or removes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub instance: String,
    pub name: String,
    pub kind: SnapshotKind,
    pub description: String,
    pub parent: Option<String>,
    pub memory: bool,
    pub taken_while: InstanceStatus,
    /// External: the files frozen by the snapshot, one per disk.
    pub disks: Vec<SnapshotDisk>,
    /// External: the overlay files created to take the writes, one per disk.
    pub overlays: Vec<String>,
    pub memory_file: Option<String>,
    pub state: SnapshotState,
    pub created_at: DateTime<Utc>,
}

/// Whether a snapshot is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotState {
    Creating,
    Ready,
}

/// Durable storage of snapshots.
pub trait SnapshotStore: Send + Sync {
    /// Adds or replaces a snapshot record.
    fn put_snapshot(&self, rec: &SnapshotRecord) -> StoreFuture<'_, ()>;
    /// The snapshots of `instance`, oldest first.
    fn snapshots(&self, instance: &str) -> StoreFuture<'_, Vec<SnapshotRecord>>;
    /// Removes a snapshot, re-parents its children to its parent and moves
    /// the instance's current snapshot to the parent, in one transaction.
    fn delete_snapshot(&self, instance: &str, name: &str) -> StoreFuture<'_, ()>;
}

/// Decodes the JSON record of `instance/name`.
fn decode(instance: &str, name: &str, json: &str) -> Result<SnapshotRecord, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Undecodable {
        table: TABLE,
        row: format!("{instance}/{name}"),
        column: "record",
        source,
    })
}

fn encode(rec: &SnapshotRecord) -> String {
    serde_json::to_string(rec).expect("a snapshot record serializes")
}

fn put(c: &Connection, rec: &SnapshotRecord) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO snapshots (instance, name, parent, record) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (instance, name) DO UPDATE SET parent = ?3, record = ?4",
        params![rec.instance, rec.name, rec.parent, encode(rec)],
    )?;
    Ok(())
}

fn list(c: &Connection, instance: &str) -> Result<Vec<SnapshotRecord>, StoreError> {
    let mut stmt =
        c.prepare_cached("SELECT name, record FROM snapshots WHERE instance = ?1 ORDER BY rowid")?;
    let rows = stmt.query_map([instance], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    rows.map(|row| {
        let (name, json) = row?;
        decode(instance, &name, &json)
    })
    .collect()
}

fn delete(c: &mut Connection, instance: &str, name: &str) -> Result<(), StoreError> {
    let tx = c.transaction()?;
    let parent: Option<String> = tx
        .query_row(
            "SELECT parent FROM snapshots WHERE instance = ?1 AND name = ?2",
            params![instance, name],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let children: Vec<(String, String)> = {
        let mut stmt =
            tx.prepare("SELECT name, record FROM snapshots WHERE instance = ?1 AND parent = ?2")?;
        stmt.query_map(params![instance, name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    for (child, json) in children {
        let mut rec = decode(instance, &child, &json)?;
        rec.parent = parent.clone();
        tx.execute(
            "UPDATE snapshots SET parent = ?3, record = ?4 WHERE instance = ?1 AND name = ?2",
            params![instance, child, parent, encode(&rec)],
        )?;
    }
    tx.execute(
        "UPDATE instances SET current_snapshot = ?3 WHERE name = ?1 AND current_snapshot = ?2",
        params![instance, name, parent],
    )?;
    tx.execute(
        "DELETE FROM snapshots WHERE instance = ?1 AND name = ?2",
        params![instance, name],
    )?;
    tx.commit()?;
    Ok(())
}

impl SnapshotStore for SqliteStore {
    fn put_snapshot(&self, rec: &SnapshotRecord) -> StoreFuture<'_, ()> {
        let rec = rec.clone();
        self.run(move |c| put(c, &rec))
    }

    fn snapshots(&self, instance: &str) -> StoreFuture<'_, Vec<SnapshotRecord>> {
        let instance = instance.to_owned();
        self.run(move |c| list(c, &instance))
    }

    fn delete_snapshot(&self, instance: &str, name: &str) -> StoreFuture<'_, ()> {
        let (instance, name) = (instance.to_owned(), name.to_owned());
        self.run(move |c| delete(c, &instance, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::tests::rec;
    use crate::testing::store;
    use crate::{InstanceStore, SnapshotStore};

    fn snap(instance: &str, name: &str, parent: Option<&str>) -> SnapshotRecord {
        SnapshotRecord {
            instance: instance.into(),
            name: name.into(),
            kind: Default::default(),
            description: String::new(),
            parent: parent.map(str::to_owned),
            memory: false,
            taken_while: InstanceStatus::Shutoff,
            disks: vec![],
            overlays: vec![],
            memory_file: None,
            state: SnapshotState::Creating,
            created_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn round_trip_and_replace() {
        let (s, _dir) = store().await;
        s.insert_instance(&rec("vm")).await.unwrap();
        let mut a = snap("vm", "a", None);
        s.put_snapshot(&a).await.unwrap();
        a.state = SnapshotState::Ready;
        a.memory_file = Some("/m".into());
        s.put_snapshot(&a).await.unwrap();
        assert_eq!(s.snapshots("vm").await.unwrap(), vec![a]);
    }

    #[tokio::test]
    async fn a_snapshot_needs_its_instance() {
        let (s, _dir) = store().await;
        assert!(matches!(
            s.put_snapshot(&snap("ghost", "a", None)).await,
            Err(StoreError::Sql(_))
        ));
    }

    #[tokio::test]
    async fn tree_relinks_on_delete_and_cascades_with_the_instance() {
        let (s, _dir) = store().await;
        s.insert_instance(&rec("vm")).await.unwrap();
        s.put_snapshot(&snap("vm", "a", None)).await.unwrap();
        s.put_snapshot(&snap("vm", "b", Some("a"))).await.unwrap();
        s.put_snapshot(&snap("vm", "c", Some("b"))).await.unwrap();
        s.put_snapshot(&snap("vm", "d", Some("b"))).await.unwrap();
        s.set_current_snapshot("vm", Some("b")).await.unwrap();
        s.delete_snapshot("vm", "b").await.unwrap();
        let all = s.snapshots("vm").await.unwrap();
        let parent_of = |n: &str| all.iter().find(|r| r.name == n).unwrap().parent.clone();
        assert_eq!(all.len(), 3);
        assert_eq!(parent_of("c").as_deref(), Some("a"));
        assert_eq!(parent_of("d").as_deref(), Some("a"));
        let vm = s.get_instance("vm").await.unwrap().unwrap();
        assert_eq!(vm.current_snapshot.as_deref(), Some("a"));
        s.delete_instance("vm").await.unwrap();
        assert!(s.snapshots("vm").await.unwrap().is_empty(), "cascade");
    }

    /// A delete that fails half-way (a child's record is unreadable) leaves
    /// the tree exactly as it was.
    #[tokio::test]
    async fn a_failed_delete_rolls_back() {
        let (s, _dir) = store().await;
        s.insert_instance(&rec("vm")).await.unwrap();
        s.put_snapshot(&snap("vm", "a", None)).await.unwrap();
        s.put_snapshot(&snap("vm", "b", Some("a"))).await.unwrap();
        s.put_snapshot(&snap("vm", "c", Some("b"))).await.unwrap();
        s.put_snapshot(&snap("vm", "d", Some("b"))).await.unwrap();
        s.set_current_snapshot("vm", Some("b")).await.unwrap();
        s.run(|c| {
            c.execute("UPDATE snapshots SET record = 'x' WHERE name = 'd'", [])?;
            Ok(())
        })
        .await
        .unwrap();
        let err = s.delete_snapshot("vm", "b").await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Undecodable { table: "snapshots", row, .. } if row == "vm/d"),
            "{err:?}"
        );
        let (names, parent_of_c, current) = s
            .run(|c| {
                let names: Vec<String> = c
                    .prepare("SELECT name FROM snapshots ORDER BY name")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let parent: Option<String> =
                    c.query_row("SELECT parent FROM snapshots WHERE name = 'c'", [], |r| {
                        r.get(0)
                    })?;
                let current: Option<String> = c.query_row(
                    "SELECT current_snapshot FROM instances WHERE name = 'vm'",
                    [],
                    |r| r.get(0),
                )?;
                Ok((names, parent, current))
            })
            .await
            .unwrap();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(parent_of_c.as_deref(), Some("b"));
        assert_eq!(current.as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn unknown_snapshot_state_is_an_error() {
        let (s, _dir) = store().await;
        s.insert_instance(&rec("vm")).await.unwrap();
        s.put_snapshot(&snap("vm", "a", None)).await.unwrap();
        s.run(|c| {
            c.execute(
                "UPDATE snapshots SET record = json_set(record, '$.state', 'half')",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        assert!(matches!(
            s.snapshots("vm").await,
            Err(StoreError::Undecodable {
                column: "record",
                ..
            })
        ));
    }
}
