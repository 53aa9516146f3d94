//! Persistent state. This is the only crate that speaks SQL.
//!
//! [`Store`] is a trait so that a cluster backend can replace SQLite later;
//! [`SqliteStore`] keeps the database in WAL mode and runs every change in a
//! transaction, so the daemon may be killed at any instruction.

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use ferrovirt_api::{InstanceSpec, InstanceStatus};
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

mod snapshot;
pub use snapshot::{SnapshotRecord, SnapshotState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state database {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot migrate the state database")]
    Migrate(#[from] rusqlite_migration::Error),
    #[error("state database query failed")]
    Sql(#[from] rusqlite::Error),
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("stored record of {name} is unreadable")]
    Corrupt {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// An instance as stored: its spec and its last known state.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    pub spec: InstanceSpec,
    pub status: InstanceStatus,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// The managed save file the next start resumes from.
    pub managed_save: Option<String>,
    /// The snapshot the instance descends from.
    pub current_snapshot: Option<String>,
}

/// Durable storage of the daemon's objects.
pub trait Store: Send + Sync {
    /// Adds a new instance; fails with [`StoreError::Duplicate`] if the name is taken.
    fn insert_instance(&self, rec: &InstanceRecord) -> Result<(), StoreError>;
    /// Replaces the spec of an existing instance.
    fn update_spec(&self, spec: &InstanceSpec) -> Result<(), StoreError>;
    /// Records a state change.
    fn set_status(
        &self,
        name: &str,
        status: InstanceStatus,
        reason: &str,
    ) -> Result<(), StoreError>;
    fn get_instance(&self, name: &str) -> Result<Option<InstanceRecord>, StoreError>;
    fn list_instances(&self) -> Result<Vec<InstanceRecord>, StoreError>;
    /// Removes an instance and its snapshots; `false` if it did not exist.
    fn delete_instance(&self, name: &str) -> Result<bool, StoreError>;
    /// Records (or clears) the managed save file of an instance.
    fn set_managed_save(&self, name: &str, file: Option<&str>) -> Result<(), StoreError>;
    /// Records (or clears) the snapshot the instance descends from.
    fn set_current_snapshot(&self, name: &str, snapshot: Option<&str>) -> Result<(), StoreError>;

    /// Adds or replaces a snapshot record.
    fn put_snapshot(&self, rec: &SnapshotRecord) -> Result<(), StoreError>;
    fn snapshots(&self, instance: &str) -> Result<Vec<SnapshotRecord>, StoreError>;
    /// Removes a snapshot and re-parents its children to its parent, in one
    /// transaction.
    fn delete_snapshot(&self, instance: &str, name: &str) -> Result<(), StoreError>;

    /// Adds a network; fails with [`StoreError::Duplicate`] if the name is taken.
    fn insert_network(&self, rec: &NetworkRecord) -> Result<(), StoreError>;
    /// Replaces a network's spec and desired state.
    fn update_network(&self, rec: &NetworkRecord) -> Result<(), StoreError>;
    fn networks(&self) -> Result<Vec<NetworkRecord>, StoreError>;
    fn delete_network(&self, name: &str) -> Result<bool, StoreError>;

    /// Adds a storage pool; fails with [`StoreError::Duplicate`] if the name is taken.
    fn insert_pool(&self, rec: &PoolRecord) -> Result<(), StoreError>;
    fn update_pool(&self, rec: &PoolRecord) -> Result<(), StoreError>;
    fn pools(&self) -> Result<Vec<PoolRecord>, StoreError>;
    fn delete_pool(&self, name: &str) -> Result<bool, StoreError>;

    /// Trusts a client certificate (by SHA-256 fingerprint).
    fn trust(&self, fingerprint: &str, name: &str) -> Result<(), StoreError>;
    fn is_trusted(&self, fingerprint: &str) -> Result<bool, StoreError>;
    /// `(fingerprint, name)` of every trusted certificate.
    fn trusted(&self) -> Result<Vec<(String, String)>, StoreError>;
    fn untrust(&self, fingerprint: &str) -> Result<bool, StoreError>;
    /// Records a one-time join token (its secret's hash) valid until `expires` (unix time).
    fn add_token(&self, secret_hash: &str, name: &str, expires: i64) -> Result<(), StoreError>;
    /// Consumes a token: the name it was made for, if it exists and has not expired.
    fn take_token(&self, secret_hash: &str, now: i64) -> Result<Option<String>, StoreError>;
}

/// A network as stored: its spec and whether it should be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRecord {
    pub spec: ferrovirt_api::NetworkSpec,
    pub active: bool,
}

/// A storage pool as stored: its spec and whether it should be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRecord {
    pub spec: ferrovirt_api::PoolSpec,
    pub active: bool,
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE instances (
            name TEXT PRIMARY KEY NOT NULL,
            uuid TEXT NOT NULL UNIQUE,
            spec TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );",
        ),
        M::up(
            "ALTER TABLE instances ADD COLUMN managed_save TEXT;
             ALTER TABLE instances ADD COLUMN current_snapshot TEXT;
             CREATE TABLE snapshots (
                instance TEXT NOT NULL REFERENCES instances(name) ON DELETE CASCADE,
                name TEXT NOT NULL,
                parent TEXT,
                record TEXT NOT NULL,
                PRIMARY KEY (instance, name)
             );",
        ),
        M::up(
            "CREATE TABLE networks (
                name TEXT PRIMARY KEY NOT NULL,
                spec TEXT NOT NULL,
                active INTEGER NOT NULL
             );",
        ),
        M::up(
            "CREATE TABLE trusted_certificates (
                fingerprint TEXT PRIMARY KEY NOT NULL,
                name TEXT NOT NULL
             );
             CREATE TABLE join_tokens (
                secret_hash TEXT PRIMARY KEY NOT NULL,
                name TEXT NOT NULL,
                expires INTEGER NOT NULL
             );",
        ),
        M::up(
            "CREATE TABLE pools (
                name TEXT PRIMARY KEY NOT NULL,
                spec TEXT NOT NULL,
                active INTEGER NOT NULL
             );",
        ),
    ])
}

/// SQLite store in WAL mode.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        migrations().to_latest(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tables of named specs with a desired-active flag (networks, pools)
    /// share these four statements; `table` is always a literal.
    fn insert_named<T: serde::Serialize>(
        &self,
        table: &str,
        what: &str,
        name: &str,
        spec: &T,
        active: bool,
    ) -> Result<(), StoreError> {
        let spec = serde_json::to_string(spec).expect("spec serializes");
        let res = self.conn().execute(
            &format!("INSERT INTO {table} (name, spec, active) VALUES (?1, ?2, ?3)"),
            params![name, spec, active],
        );
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Duplicate(format!("{what} {name}")))
            }
            other => other.map(drop).map_err(Into::into),
        }
    }

    fn update_named<T: serde::Serialize>(
        &self,
        table: &str,
        name: &str,
        spec: &T,
        active: bool,
    ) -> Result<(), StoreError> {
        let spec = serde_json::to_string(spec).expect("spec serializes");
        self.conn().execute(
            &format!("UPDATE {table} SET spec = ?2, active = ?3 WHERE name = ?1"),
            params![name, spec, active],
        )?;
        Ok(())
    }

    fn list_named<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        what: &str,
    ) -> Result<Vec<(T, bool)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT name, spec, active FROM {table} ORDER BY name"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (name, spec, active) = row?;
            let spec = serde_json::from_str(&spec).map_err(|source| StoreError::Corrupt {
                name: format!("{what} {name}"),
                source,
            })?;
            Ok((spec, active))
        })
        .collect()
    }

    fn delete_named(&self, table: &str, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute(&format!("DELETE FROM {table} WHERE name = ?1"), [name])?
            > 0)
    }
}

fn status_from_str(s: &str) -> InstanceStatus {
    match s {
        "running" => InstanceStatus::Running,
        "paused" => InstanceStatus::Paused,
        "crashed" => InstanceStatus::Crashed,
        _ => InstanceStatus::Shutoff,
    }
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn row_to_record(
    (name, spec, status, reason, created, managed_save, current_snapshot): Row,
) -> Result<InstanceRecord, StoreError> {
    let spec = serde_json::from_str(&spec).map_err(|source| StoreError::Corrupt {
        name: name.clone(),
        source,
    })?;
    Ok(InstanceRecord {
        spec,
        status: status_from_str(&status),
        reason,
        created_at: DateTime::parse_from_rfc3339(&created)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default(),
        managed_save,
        current_snapshot,
    })
}

const SELECT: &str =
    "SELECT name, spec, status, reason, created_at, managed_save, current_snapshot FROM instances";

impl Store for SqliteStore {
    fn insert_instance(&self, rec: &InstanceRecord) -> Result<(), StoreError> {
        let spec = serde_json::to_string(&rec.spec).expect("spec serializes");
        let uuid = rec.spec.uuid.map(|u| u.to_string()).unwrap_or_default();
        let res = self.conn().execute(
            "INSERT INTO instances (name, uuid, spec, status, reason, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                rec.spec.name,
                uuid,
                spec,
                rec.status.as_str(),
                rec.reason,
                rec.created_at.to_rfc3339()
            ],
        );
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Duplicate(format!("instance {}", rec.spec.name)))
            }
            other => other.map(drop).map_err(Into::into),
        }
    }

    fn update_spec(&self, spec: &InstanceSpec) -> Result<(), StoreError> {
        let json = serde_json::to_string(spec).expect("spec serializes");
        self.conn().execute(
            "UPDATE instances SET spec = ?2 WHERE name = ?1",
            params![spec.name, json],
        )?;
        Ok(())
    }

    fn set_status(
        &self,
        name: &str,
        status: InstanceStatus,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE instances SET status = ?2, reason = ?3 WHERE name = ?1",
            params![name, status.as_str(), reason],
        )?;
        Ok(())
    }

    fn get_instance(&self, name: &str) -> Result<Option<InstanceRecord>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(&format!("{SELECT} WHERE name = ?1"), [name], read_row)
            .optional()?;
        row.map(row_to_record).transpose()
    }

    fn list_instances(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("{SELECT} ORDER BY name"))?;
        let rows = stmt.query_map([], read_row)?;
        rows.map(|row| row_to_record(row?)).collect()
    }

    fn delete_instance(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM instances WHERE name = ?1", [name])?
            > 0)
    }

    fn set_managed_save(&self, name: &str, file: Option<&str>) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE instances SET managed_save = ?2 WHERE name = ?1",
            params![name, file],
        )?;
        Ok(())
    }

    fn set_current_snapshot(&self, name: &str, snapshot: Option<&str>) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE instances SET current_snapshot = ?2 WHERE name = ?1",
            params![name, snapshot],
        )?;
        Ok(())
    }

    fn put_snapshot(&self, rec: &SnapshotRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(rec).expect("snapshot serializes");
        self.conn().execute(
            "INSERT INTO snapshots (instance, name, parent, record) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (instance, name) DO UPDATE SET parent = ?3, record = ?4",
            params![rec.instance, rec.name, rec.parent, json],
        )?;
        Ok(())
    }

    fn snapshots(&self, instance: &str) -> Result<Vec<SnapshotRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name, record FROM snapshots WHERE instance = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([instance], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (name, json) = row?;
            serde_json::from_str(&json).map_err(|source| StoreError::Corrupt {
                name: format!("{instance}/{name}"),
                source,
            })
        })
        .collect()
    }

    fn insert_network(&self, rec: &NetworkRecord) -> Result<(), StoreError> {
        self.insert_named("networks", "network", &rec.spec.name, &rec.spec, rec.active)
    }

    fn update_network(&self, rec: &NetworkRecord) -> Result<(), StoreError> {
        self.update_named("networks", &rec.spec.name, &rec.spec, rec.active)
    }

    fn networks(&self) -> Result<Vec<NetworkRecord>, StoreError> {
        Ok(self
            .list_named("networks", "network")?
            .into_iter()
            .map(|(spec, active)| NetworkRecord { spec, active })
            .collect())
    }

    fn delete_network(&self, name: &str) -> Result<bool, StoreError> {
        self.delete_named("networks", name)
    }

    fn insert_pool(&self, rec: &PoolRecord) -> Result<(), StoreError> {
        self.insert_named("pools", "pool", &rec.spec.name, &rec.spec, rec.active)
    }

    fn update_pool(&self, rec: &PoolRecord) -> Result<(), StoreError> {
        self.update_named("pools", &rec.spec.name, &rec.spec, rec.active)
    }

    fn pools(&self) -> Result<Vec<PoolRecord>, StoreError> {
        Ok(self
            .list_named("pools", "pool")?
            .into_iter()
            .map(|(spec, active)| PoolRecord { spec, active })
            .collect())
    }

    fn delete_pool(&self, name: &str) -> Result<bool, StoreError> {
        self.delete_named("pools", name)
    }

    fn trust(&self, fingerprint: &str, name: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO trusted_certificates (fingerprint, name) VALUES (?1, ?2)
             ON CONFLICT (fingerprint) DO UPDATE SET name = ?2",
            params![fingerprint, name],
        )?;
        Ok(())
    }

    fn is_trusted(&self, fingerprint: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM trusted_certificates WHERE fingerprint = ?1",
                [fingerprint],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn trusted(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT fingerprint, name FROM trusted_certificates ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn untrust(&self, fingerprint: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM trusted_certificates WHERE fingerprint = ?1",
            [fingerprint],
        )? > 0)
    }

    fn add_token(&self, secret_hash: &str, name: &str, expires: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO join_tokens (secret_hash, name, expires) VALUES (?1, ?2, ?3)",
            params![secret_hash, name, expires],
        )?;
        Ok(())
    }

    fn take_token(&self, secret_hash: &str, now: i64) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let row: Option<(String, i64)> = tx
            .query_row(
                "SELECT name, expires FROM join_tokens WHERE secret_hash = ?1",
                [secret_hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        tx.execute(
            "DELETE FROM join_tokens WHERE secret_hash = ?1 OR expires < ?2",
            params![secret_hash, now],
        )?;
        tx.commit()?;
        Ok(row.filter(|(_, exp)| *exp >= now).map(|(name, _)| name))
    }

    fn delete_snapshot(&self, instance: &str, name: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let parent: Option<String> = tx
            .query_row(
                "SELECT parent FROM snapshots WHERE instance = ?1 AND name = ?2",
                params![instance, name],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let children: Vec<(String, String)> = {
            let mut stmt = tx.prepare(
                "SELECT name, record FROM snapshots WHERE instance = ?1 AND parent = ?2",
            )?;
            stmt.query_map(params![instance, name], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        for (child, json) in children {
            let mut rec: SnapshotRecord =
                serde_json::from_str(&json).map_err(|source| StoreError::Corrupt {
                    name: format!("{instance}/{child}"),
                    source,
                })?;
            rec.parent = parent.clone();
            tx.execute(
                "UPDATE snapshots SET parent = ?3, record = ?4 WHERE instance = ?1 AND name = ?2",
                params![
                    instance,
                    child,
                    parent,
                    serde_json::to_string(&rec).expect("serializes")
                ],
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str) -> InstanceRecord {
        InstanceRecord {
            spec: serde_json::from_value(serde_json::json!({
                "name": name, "uuid": uuid_for(name)
            }))
            .unwrap(),
            status: InstanceStatus::Shutoff,
            reason: "defined".into(),
            created_at: Utc::now(),
            managed_save: None,
            current_snapshot: None,
        }
    }

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
            state: SnapshotState::Ready,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn trust_and_one_time_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db")).unwrap();
        s.add_token("h1", "host-b", 100).unwrap();
        assert_eq!(s.take_token("h1", 50).unwrap().as_deref(), Some("host-b"));
        assert_eq!(s.take_token("h1", 50).unwrap(), None, "one time");
        s.add_token("h2", "late", 10).unwrap();
        assert_eq!(s.take_token("h2", 50).unwrap(), None, "expired");
        s.trust("ab", "host-b").unwrap();
        assert!(s.is_trusted("ab").unwrap() && !s.is_trusted("cd").unwrap());
        assert_eq!(s.trusted().unwrap(), vec![("ab".into(), "host-b".into())]);
        assert!(s.untrust("ab").unwrap());
    }

    #[test]
    fn snapshot_tree_relinks_on_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db")).unwrap();
        s.insert_instance(&rec("vm")).unwrap();
        s.put_snapshot(&snap("vm", "a", None)).unwrap();
        s.put_snapshot(&snap("vm", "b", Some("a"))).unwrap();
        s.put_snapshot(&snap("vm", "c", Some("b"))).unwrap();
        s.put_snapshot(&snap("vm", "d", Some("b"))).unwrap();
        s.set_current_snapshot("vm", Some("b")).unwrap();
        s.delete_snapshot("vm", "b").unwrap();
        let all = s.snapshots("vm").unwrap();
        let parent_of = |n: &str| all.iter().find(|r| r.name == n).unwrap().parent.clone();
        assert_eq!(all.len(), 3);
        assert_eq!(parent_of("c").as_deref(), Some("a"));
        assert_eq!(parent_of("d").as_deref(), Some("a"));
        assert_eq!(
            s.get_instance("vm")
                .unwrap()
                .unwrap()
                .current_snapshot
                .as_deref(),
            Some("a")
        );
        s.delete_instance("vm").unwrap();
        assert!(s.snapshots("vm").unwrap().is_empty(), "cascade");
    }

    fn uuid_for(name: &str) -> String {
        format!("00000000-0000-4000-8000-{:012}", name.len())
    }

    #[test]
    fn crud_and_durability() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        {
            let s = SqliteStore::open(&db).unwrap();
            s.insert_instance(&rec("a")).unwrap();
            s.insert_instance(&rec("bb")).unwrap();
            assert!(matches!(
                s.insert_instance(&rec("a")),
                Err(StoreError::Duplicate(n)) if n == "instance a"
            ));
            s.set_status("a", InstanceStatus::Running, "booted")
                .unwrap();
            let mut spec = rec("bb").spec;
            spec.memory = 1024;
            s.update_spec(&spec).unwrap();
        }
        let s = SqliteStore::open(&db).unwrap();
        let list = s.list_instances().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].status, InstanceStatus::Running);
        assert_eq!(list[0].reason, "booted");
        assert_eq!(list[1].spec.memory, 1024);
        assert!(s.delete_instance("a").unwrap());
        assert!(!s.delete_instance("a").unwrap());
        assert!(s.get_instance("a").unwrap().is_none());
    }
}
