//! Tables of named specs with a desired-active flag (networks, pools) share
//! these statements. `table` is always one of [`NamedTable`]'s literals.

use rusqlite::{Connection, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;

/// A table holding `(name, spec JSON, active)` rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NamedTable {
    /// The SQL table.
    pub table: &'static str,
    /// What one row is, in error messages (`network`, `pool`).
    pub what: &'static str,
}

/// One checked row: the decoded spec and its desired state.
pub(crate) struct NamedRow<T> {
    pub spec: T,
    pub active: bool,
}

fn encode<T: Serialize>(spec: &T) -> String {
    serde_json::to_string(spec).expect("a spec serializes")
}

impl NamedTable {
    pub fn insert<T: Serialize>(
        self,
        c: &Connection,
        name: &str,
        spec: &T,
        active: bool,
    ) -> Result<(), StoreError> {
        c.execute(
            &format!(
                "INSERT INTO {} (name, spec, active) VALUES (?1, ?2, ?3)",
                self.table
            ),
            params![name, encode(spec), active],
        )
        .map_err(|e| StoreError::on_insert(e, || format!("{} {name}", self.what)))?;
        Ok(())
    }

    pub fn update<T: Serialize>(
        self,
        c: &Connection,
        name: &str,
        spec: &T,
        active: bool,
    ) -> Result<(), StoreError> {
        c.execute(
            &format!(
                "UPDATE {} SET spec = ?2, active = ?3 WHERE name = ?1",
                self.table
            ),
            params![name, encode(spec), active],
        )?;
        Ok(())
    }

    pub fn list<T: DeserializeOwned>(self, c: &Connection) -> Result<Vec<NamedRow<T>>, StoreError> {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT name, spec, active FROM {} ORDER BY name",
            self.table
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (name, spec, active) = row?;
            let spec = serde_json::from_str(&spec).map_err(|source| StoreError::Undecodable {
                table: self.table,
                row: name.clone(),
                column: "spec",
                source,
            })?;
            let active = match active {
                0 => false,
                1 => true,
                other => {
                    return Err(StoreError::Corrupt {
                        table: self.table,
                        row: name,
                        column: "active",
                        value: other.to_string(),
                    });
                }
            };
            Ok(NamedRow { spec, active })
        })
        .collect()
    }

    pub fn delete(self, c: &Connection, name: &str) -> Result<bool, StoreError> {
        Ok(c.execute(
            &format!("DELETE FROM {} WHERE name = ?1", self.table),
            [name],
        )? > 0)
    }
}
