//! The schema, as an append-only list of migrations: a shipped migration is
//! never rewritten, so every existing database upgrades in place.

use rusqlite_migration::{M, Migrations};

pub(crate) fn migrations() -> Migrations<'static> {
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
        M::up(
            "ALTER TABLE trusted_certificates ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
             ALTER TABLE trusted_certificates ADD COLUMN expires INTEGER;
             CREATE TABLE trust_instances (
                fingerprint TEXT NOT NULL
                    REFERENCES trusted_certificates(fingerprint) ON DELETE CASCADE,
                instance TEXT NOT NULL,
                PRIMARY KEY (fingerprint, instance)
             );
             ALTER TABLE join_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
             ALTER TABLE join_tokens ADD COLUMN instances TEXT NOT NULL DEFAULT '[]';
             ALTER TABLE join_tokens ADD COLUMN trust_expires INTEGER;",
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;
    use rusqlite_migration::SchemaVersion;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    /// A database made by the first release keeps its rows when upgraded.
    #[test]
    fn first_release_database_upgrades_in_place() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        let first = Migrations::new(vec![M::up(
            "CREATE TABLE instances (
            name TEXT PRIMARY KEY NOT NULL,
            uuid TEXT NOT NULL UNIQUE,
            spec TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );",
        )]);
        first.to_latest(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO instances VALUES ('old', 'u', '{}', 'running', '', 'now')",
            [],
        )
        .unwrap();
        let all = migrations();
        all.to_latest(&mut conn).unwrap();
        assert_eq!(
            all.current_version(&conn).unwrap(),
            SchemaVersion::Inside(std::num::NonZeroUsize::new(6).unwrap())
        );
        let status: String = conn
            .query_row("SELECT status FROM instances WHERE name = 'old'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(status, "running");
    }
}
