//! Instances: the spec, the last known status and why, and the files the
//! next start depends on (managed save, current snapshot).

use chrono::{DateTime, Utc};
use ferrovirt_api::InstanceStatus;
use ferrovirt_core::ValidSpec;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::{SqliteStore, StoreError, StoreFuture};

const TABLE: &str = "instances";

/// An instance as stored: its spec and its last known state.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    pub spec: ValidSpec,
    pub status: InstanceStatus,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// The managed save file the next start resumes from.
    pub managed_save: Option<String>,
    /// The snapshot the instance descends from.
    pub current_snapshot: Option<String>,
}

/// Durable storage of instances.
pub trait InstanceStore: Send + Sync {
    /// Adds a new instance; fails with [`StoreError::Duplicate`] if the name
    /// (or the uuid) is taken.
    fn insert_instance(&self, rec: &InstanceRecord) -> StoreFuture<'_, ()>;
    /// Replaces the spec of an existing instance.
    fn update_spec(&self, spec: &ValidSpec) -> StoreFuture<'_, ()>;
    /// Records a state change.
    fn set_status(&self, name: &str, status: InstanceStatus, reason: &str) -> StoreFuture<'_, ()>;
    fn get_instance(&self, name: &str) -> StoreFuture<'_, Option<InstanceRecord>>;
    /// Every instance, by name.
    fn list_instances(&self) -> StoreFuture<'_, Vec<InstanceRecord>>;
    /// Removes an instance and its snapshots; `false` if it did not exist.
    fn delete_instance(&self, name: &str) -> StoreFuture<'_, bool>;
    /// Records (or clears) the managed save file of an instance.
    fn set_managed_save(&self, name: &str, file: Option<&str>) -> StoreFuture<'_, ()>;
    /// Records (or clears) the snapshot the instance descends from.
    fn set_current_snapshot(&self, name: &str, snapshot: Option<&str>) -> StoreFuture<'_, ()>;
}

/// The stored text of a status.
fn status_to_column(status: InstanceStatus) -> &'static str {
    status.as_str()
}

/// Reads a stored status; a value this version does not know is
/// [`StoreError::Corrupt`], never guessed.
pub(crate) fn status_from_column(row: &str, value: &str) -> Result<InstanceStatus, StoreError> {
    [
        InstanceStatus::Shutoff,
        InstanceStatus::Running,
        InstanceStatus::Paused,
        InstanceStatus::Crashed,
    ]
    .into_iter()
    .find(|s| s.as_str() == value)
    .ok_or_else(|| StoreError::Corrupt {
        table: TABLE,
        row: row.to_owned(),
        column: "status",
        value: value.to_owned(),
    })
}

/// One row of `instances` as SQLite returns it, before it is checked.
struct InstanceRow {
    name: String,
    spec: String,
    status: String,
    reason: String,
    created_at: String,
    managed_save: Option<String>,
    current_snapshot: Option<String>,
}

const SELECT: &str =
    "SELECT name, spec, status, reason, created_at, managed_save, current_snapshot FROM instances";

impl InstanceRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: r.get(0)?,
            spec: r.get(1)?,
            status: r.get(2)?,
            reason: r.get(3)?,
            created_at: r.get(4)?,
            managed_save: r.get(5)?,
            current_snapshot: r.get(6)?,
        })
    }
}

impl TryFrom<InstanceRow> for InstanceRecord {
    type Error = StoreError;

    fn try_from(row: InstanceRow) -> Result<Self, StoreError> {
        let spec = serde_json::from_str(&row.spec).map_err(|source| StoreError::Undecodable {
            table: TABLE,
            row: row.name.clone(),
            column: "spec",
            source,
        })?;
        let created_at = DateTime::parse_from_rfc3339(&row.created_at)
            .map_err(|_| StoreError::Corrupt {
                table: TABLE,
                row: row.name.clone(),
                column: "created_at",
                value: row.created_at.clone(),
            })?
            .with_timezone(&Utc);
        Ok(Self {
            status: status_from_column(&row.name, &row.status)?,
            spec: ValidSpec::from_store(spec),
            reason: row.reason,
            created_at,
            managed_save: row.managed_save,
            current_snapshot: row.current_snapshot,
        })
    }
}

fn insert(c: &Connection, rec: &InstanceRecord) -> Result<(), StoreError> {
    let spec = serde_json::to_string(rec.spec.get()).expect("an instance spec serializes");
    let uuid = rec.spec.uuid.map(|u| u.to_string()).unwrap_or_default();
    c.execute(
        "INSERT INTO instances (name, uuid, spec, status, reason, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            rec.spec.name,
            uuid,
            spec,
            status_to_column(rec.status),
            rec.reason,
            rec.created_at.to_rfc3339()
        ],
    )
    .map_err(|e| StoreError::on_insert(e, || format!("instance {}", rec.spec.name)))?;
    Ok(())
}

fn get(c: &Connection, name: &str) -> Result<Option<InstanceRecord>, StoreError> {
    c.query_row(
        &format!("{SELECT} WHERE name = ?1"),
        [name],
        InstanceRow::read,
    )
    .optional()?
    .map(InstanceRecord::try_from)
    .transpose()
}

fn list(c: &Connection) -> Result<Vec<InstanceRecord>, StoreError> {
    let mut stmt = c.prepare_cached(&format!("{SELECT} ORDER BY name"))?;
    let rows = stmt.query_map([], InstanceRow::read)?;
    rows.map(|row| InstanceRecord::try_from(row?)).collect()
}

/// Runs one `UPDATE instances` statement with `?1` the instance's name and
/// `values` as `?2`, `?3`…
fn update(
    s: &SqliteStore,
    sql: &'static str,
    name: &str,
    values: Vec<Value>,
) -> StoreFuture<'static, ()> {
    let mut all = vec![Value::Text(name.to_owned())];
    all.extend(values);
    s.run(move |c| {
        c.execute(sql, params_from_iter(all))?;
        Ok(())
    })
}

impl InstanceStore for SqliteStore {
    fn insert_instance(&self, rec: &InstanceRecord) -> StoreFuture<'_, ()> {
        let rec = rec.clone();
        self.run(move |c| insert(c, &rec))
    }

    fn update_spec(&self, spec: &ValidSpec) -> StoreFuture<'_, ()> {
        let json = serde_json::to_string(spec.get()).expect("an instance spec serializes");
        update(
            self,
            "UPDATE instances SET spec = ?2 WHERE name = ?1",
            &spec.name,
            vec![Value::Text(json)],
        )
    }

    fn set_status(&self, name: &str, status: InstanceStatus, reason: &str) -> StoreFuture<'_, ()> {
        update(
            self,
            "UPDATE instances SET status = ?2, reason = ?3 WHERE name = ?1",
            name,
            vec![
                Value::Text(status_to_column(status).to_owned()),
                Value::Text(reason.to_owned()),
            ],
        )
    }

    fn get_instance(&self, name: &str) -> StoreFuture<'_, Option<InstanceRecord>> {
        let name = name.to_owned();
        self.run(move |c| get(c, &name))
    }

    fn list_instances(&self) -> StoreFuture<'_, Vec<InstanceRecord>> {
        self.run(|c| list(c))
    }

    fn delete_instance(&self, name: &str) -> StoreFuture<'_, bool> {
        let name = name.to_owned();
        self.run(move |c| Ok(c.execute("DELETE FROM instances WHERE name = ?1", [name])? > 0))
    }

    fn set_managed_save(&self, name: &str, file: Option<&str>) -> StoreFuture<'_, ()> {
        update(
            self,
            "UPDATE instances SET managed_save = ?2 WHERE name = ?1",
            name,
            vec![file.map(str::to_owned).into()],
        )
    }

    fn set_current_snapshot(&self, name: &str, snapshot: Option<&str>) -> StoreFuture<'_, ()> {
        update(
            self,
            "UPDATE instances SET current_snapshot = ?2 WHERE name = ?1",
            name,
            vec![snapshot.map(str::to_owned).into()],
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::store;

    pub(crate) fn rec(name: &str) -> InstanceRecord {
        InstanceRecord {
            spec: ValidSpec::from_store(
                serde_json::from_value(serde_json::json!({
                    "name": name,
                    "uuid": format!("00000000-0000-4000-8000-{:012}", name.len())
                }))
                .unwrap(),
            ),
            status: InstanceStatus::Shutoff,
            reason: "defined".into(),
            created_at: Utc::now(),
            managed_save: None,
            current_snapshot: None,
        }
    }

    #[tokio::test]
    async fn round_trip_and_durability() {
        let (s, dir) = store().await;
        let mut a = rec("a");
        a.managed_save = Some("/x/a.save".into());
        s.insert_instance(&a).await.unwrap();
        s.insert_instance(&rec("bb")).await.unwrap();
        s.set_status("a", InstanceStatus::Running, "booted")
            .await
            .unwrap();
        s.set_managed_save("a", Some("/x/a.save")).await.unwrap();
        s.set_current_snapshot("a", Some("s1")).await.unwrap();
        let mut spec = rec("bb").spec.into_inner();
        spec.memory = 1024;
        let spec = ValidSpec::from_store(spec);
        s.update_spec(&spec).await.unwrap();
        drop(s);

        let s = SqliteStore::open(&dir.path().join("state.db"))
            .await
            .unwrap();
        let list = s.list_instances().await.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].status, InstanceStatus::Running);
        assert_eq!(list[0].reason, "booted");
        assert_eq!(list[0].managed_save.as_deref(), Some("/x/a.save"));
        assert_eq!(list[0].current_snapshot.as_deref(), Some("s1"));
        assert_eq!(list[0].spec, a.spec);
        assert_eq!(
            list[0].created_at.timestamp_micros(),
            a.created_at.timestamp_micros()
        );
        assert_eq!(list[1].spec.memory, 1024);
        s.set_managed_save("a", None).await.unwrap();
        assert_eq!(
            s.get_instance("a").await.unwrap().unwrap().managed_save,
            None
        );
        assert!(s.delete_instance("a").await.unwrap());
        assert!(!s.delete_instance("a").await.unwrap());
        assert!(s.get_instance("a").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn duplicate_name_is_duplicate() {
        let (s, _dir) = store().await;
        s.insert_instance(&rec("a")).await.unwrap();
        let err = s.insert_instance(&rec("a")).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Duplicate(n) if n == "instance a"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn every_status_round_trips() {
        let (s, _dir) = store().await;
        s.insert_instance(&rec("a")).await.unwrap();
        for status in [
            InstanceStatus::Running,
            InstanceStatus::Paused,
            InstanceStatus::Crashed,
            InstanceStatus::Shutoff,
        ] {
            s.set_status("a", status, "why").await.unwrap();
            let got = s.get_instance("a").await.unwrap().unwrap();
            assert_eq!(got.status, status);
        }
    }

    #[tokio::test]
    async fn unknown_status_is_corrupt_not_shutoff() {
        let (s, _dir) = store().await;
        s.insert_instance(&rec("a")).await.unwrap();
        s.run(|c| {
            c.execute(
                "UPDATE instances SET status = 'frozen' WHERE name = 'a'",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        let err = s.get_instance("a").await.unwrap_err();
        match &err {
            StoreError::Corrupt {
                table,
                row,
                column,
                value,
            } => {
                assert_eq!(
                    (*table, row.as_str(), *column),
                    ("instances", "a", "status")
                );
                assert_eq!(value, "frozen");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "the status of row a in table instances is \"frozen\", which is not a known value"
        );
        assert!(matches!(
            s.list_instances().await,
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn undecodable_spec_names_the_row() {
        let (s, _dir) = store().await;
        s.insert_instance(&rec("a")).await.unwrap();
        s.run(|c| {
            c.execute("UPDATE instances SET spec = '{' WHERE name = 'a'", [])?;
            Ok(())
        })
        .await
        .unwrap();
        let err = s.get_instance("a").await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Undecodable { table: "instances", row, column: "spec", .. } if row == "a"),
            "{err:?}"
        );
    }
}
