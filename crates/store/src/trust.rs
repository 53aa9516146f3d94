//! Trust: the client certificates allowed to use the API (with their role,
//! the instances a restricted one may manage and an optional expiry), and
//! the one-time join tokens that let a new client become trusted.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::{SqliteStore, StoreError, StoreFuture};

/// What a trusted certificate may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustRole {
    /// Everything, as the local root: what other hosts get for migration.
    #[default]
    Admin,
    /// Only the instances it was granted or created, no host paths outside
    /// the pools, no host-wide changes.
    Restricted,
}

impl TrustRole {
    fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Restricted => "restricted",
        }
    }

    /// A stored role; an unknown one is corrupt, never guessed.
    fn parse(table: &'static str, row: &str, s: String) -> Result<Self, StoreError> {
        match s.as_str() {
            "admin" => Ok(Self::Admin),
            "restricted" => Ok(Self::Restricted),
            _ => Err(StoreError::Corrupt {
                table,
                row: row.to_owned(),
                column: "role",
                value: s,
            }),
        }
    }
}

/// What a join token grants the certificate that redeems it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustGrant {
    /// The name the certificate is trusted as.
    pub name: String,
    pub role: TrustRole,
    /// Instances a restricted certificate may manage from the start.
    pub instances: Vec<String>,
    /// Unix time after which the trust ends, if it does.
    pub expires: Option<i64>,
}

/// A client certificate the host trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCertificate {
    /// SHA-256 fingerprint of the certificate.
    pub fingerprint: String,
    /// Its name, role, instances and expiry; `instances` also holds the
    /// instances it created since.
    pub grant: TrustGrant,
}

/// Durable storage of trusted certificates and join tokens.
pub trait TrustStore: Send + Sync {
    /// Trusts a client certificate (by SHA-256 fingerprint) as the grant
    /// says, replacing any earlier trust of it.
    fn trust(&self, fingerprint: &str, grant: &TrustGrant) -> StoreFuture<'_, ()>;
    /// The trust of a certificate, if it is trusted.
    fn certificate(&self, fingerprint: &str) -> StoreFuture<'_, Option<TrustedCertificate>>;
    /// Every trusted certificate, by name.
    fn trusted(&self) -> StoreFuture<'_, Vec<TrustedCertificate>>;
    /// Stops trusting a certificate; `false` if it was not trusted.
    fn untrust(&self, fingerprint: &str) -> StoreFuture<'_, bool>;
    /// Lets a trusted certificate manage `instance` (one it created).
    fn grant_instance(&self, fingerprint: &str, instance: &str) -> StoreFuture<'_, ()>;
    /// Drops every certificate's grant of `instance` (it was deleted, so a
    /// later instance of the same name is not theirs).
    fn revoke_instance(&self, instance: &str) -> StoreFuture<'_, ()>;
    /// Records a one-time join token (its secret's hash) valid until
    /// `expires` (unix time); fails with [`StoreError::Duplicate`] if the
    /// hash is already recorded.
    fn add_token(&self, secret_hash: &str, grant: &TrustGrant, expires: i64)
    -> StoreFuture<'_, ()>;
    /// Consumes a token, and drops every expired one, in one transaction:
    /// what it grants, if it exists and has not expired.
    fn take_token(&self, secret_hash: &str, now: i64) -> StoreFuture<'_, Option<TrustGrant>>;
}

fn instances_json(instances: &[String]) -> String {
    serde_json::to_string(instances).expect("names serialize")
}

fn grants_of(c: &Connection, fingerprint: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT instance FROM trust_instances WHERE fingerprint = ?1 ORDER BY instance",
    )?;
    let rows = stmt.query_map([fingerprint], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn certificates(c: &Connection, only: Option<&str>) -> Result<Vec<TrustedCertificate>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT fingerprint, name, role, expires FROM trusted_certificates
         WHERE ?1 IS NULL OR fingerprint = ?1 ORDER BY name",
    )?;
    let rows = stmt.query_map([only], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<i64>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (fingerprint, name, role, expires) = row?;
        let grant = TrustGrant {
            role: TrustRole::parse("trusted_certificates", &fingerprint, role)?,
            instances: grants_of(c, &fingerprint)?,
            name,
            expires,
        };
        out.push(TrustedCertificate { fingerprint, grant });
    }
    Ok(out)
}

fn trust(tx: &Transaction<'_>, fingerprint: &str, g: &TrustGrant) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO trusted_certificates (fingerprint, name, role, expires)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (fingerprint) DO UPDATE SET name = ?2, role = ?3, expires = ?4",
        params![fingerprint, g.name, g.role.as_str(), g.expires],
    )?;
    tx.execute(
        "DELETE FROM trust_instances WHERE fingerprint = ?1",
        [fingerprint],
    )?;
    for i in &g.instances {
        tx.execute(
            "INSERT OR IGNORE INTO trust_instances (fingerprint, instance) VALUES (?1, ?2)",
            params![fingerprint, i],
        )?;
    }
    Ok(())
}

fn take_token(
    c: &mut Connection,
    secret_hash: &str,
    now: i64,
) -> Result<Option<TrustGrant>, StoreError> {
    let tx = c.transaction()?;
    let row: Option<(String, String, String, Option<i64>, i64)> = tx
        .query_row(
            "SELECT name, role, instances, trust_expires, expires FROM join_tokens
             WHERE secret_hash = ?1",
            [secret_hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    tx.execute(
        "DELETE FROM join_tokens WHERE secret_hash = ?1 OR expires < ?2",
        params![secret_hash, now],
    )?;
    tx.commit()?;
    let Some((name, role, instances, trust_expires, expires)) = row else {
        return Ok(None);
    };
    if expires < now {
        return Ok(None);
    }
    let undecodable = |source| StoreError::Undecodable {
        table: "join_tokens",
        row: name.clone(),
        column: "instances",
        source,
    };
    Ok(Some(TrustGrant {
        role: TrustRole::parse("join_tokens", &name, role)?,
        instances: serde_json::from_str(&instances).map_err(undecodable)?,
        name,
        expires: trust_expires,
    }))
}

impl TrustStore for SqliteStore {
    fn trust(&self, fingerprint: &str, grant: &TrustGrant) -> StoreFuture<'_, ()> {
        let (fingerprint, grant) = (fingerprint.to_owned(), grant.clone());
        self.run(move |c| {
            let tx = c.transaction()?;
            trust(&tx, &fingerprint, &grant)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn certificate(&self, fingerprint: &str) -> StoreFuture<'_, Option<TrustedCertificate>> {
        let fingerprint = fingerprint.to_owned();
        self.run(move |c| Ok(certificates(c, Some(&fingerprint))?.pop()))
    }

    fn trusted(&self) -> StoreFuture<'_, Vec<TrustedCertificate>> {
        self.run(|c| certificates(c, None))
    }

    fn untrust(&self, fingerprint: &str) -> StoreFuture<'_, bool> {
        let fingerprint = fingerprint.to_owned();
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM trust_instances WHERE fingerprint = ?1",
                [&fingerprint],
            )?;
            let gone = tx.execute(
                "DELETE FROM trusted_certificates WHERE fingerprint = ?1",
                [&fingerprint],
            )? > 0;
            tx.commit()?;
            Ok(gone)
        })
    }

    fn grant_instance(&self, fingerprint: &str, instance: &str) -> StoreFuture<'_, ()> {
        let (fingerprint, instance) = (fingerprint.to_owned(), instance.to_owned());
        self.run(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO trust_instances (fingerprint, instance)
                 SELECT fingerprint, ?2 FROM trusted_certificates WHERE fingerprint = ?1",
                params![fingerprint, instance],
            )?;
            Ok(())
        })
    }

    fn revoke_instance(&self, instance: &str) -> StoreFuture<'_, ()> {
        let instance = instance.to_owned();
        self.run(move |c| {
            c.execute(
                "DELETE FROM trust_instances WHERE instance = ?1",
                [instance],
            )?;
            Ok(())
        })
    }

    fn add_token(
        &self,
        secret_hash: &str,
        grant: &TrustGrant,
        expires: i64,
    ) -> StoreFuture<'_, ()> {
        let (hash, g) = (secret_hash.to_owned(), grant.clone());
        self.run(move |c| {
            c.execute(
                "INSERT INTO join_tokens (secret_hash, name, expires, role, instances, trust_expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    hash,
                    g.name,
                    expires,
                    g.role.as_str(),
                    instances_json(&g.instances),
                    g.expires
                ],
            )
            .map_err(|e| StoreError::on_insert(e, || format!("join token for {}", g.name)))?;
            Ok(())
        })
    }

    fn take_token(&self, secret_hash: &str, now: i64) -> StoreFuture<'_, Option<TrustGrant>> {
        let hash = secret_hash.to_owned();
        self.run(move |c| take_token(c, &hash, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::store;

    fn grant(name: &str) -> TrustGrant {
        TrustGrant {
            name: name.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn tokens_are_one_time_and_expire() {
        let (s, _dir) = store().await;
        s.add_token("h1", &grant("host-b"), 100).await.unwrap();
        assert_eq!(
            s.take_token("h1", 50)
                .await
                .unwrap()
                .map(|g| g.name)
                .as_deref(),
            Some("host-b")
        );
        assert_eq!(s.take_token("h1", 50).await.unwrap(), None, "one time");
        s.add_token("h2", &grant("late"), 10).await.unwrap();
        assert_eq!(s.take_token("h2", 50).await.unwrap(), None, "expired");
    }

    #[tokio::test]
    async fn taking_any_token_drops_the_expired_ones() {
        let (s, _dir) = store().await;
        s.add_token("old", &grant("a"), 10).await.unwrap();
        s.add_token("new", &grant("b"), 100).await.unwrap();
        assert_eq!(s.take_token("unknown", 50).await.unwrap(), None);
        let left: Vec<String> = s
            .run(|c| {
                Ok(c.prepare("SELECT secret_hash FROM join_tokens")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(left, ["new"]);
    }

    #[tokio::test]
    async fn duplicate_token_is_duplicate() {
        let (s, _dir) = store().await;
        s.add_token("h1", &grant("b"), 100).await.unwrap();
        let err = s.add_token("h1", &grant("b"), 100).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Duplicate(n) if n == "join token for b"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn trust_round_trip() {
        let (s, _dir) = store().await;
        s.trust("ab", &grant("host-b")).await.unwrap();
        s.trust("ab", &grant("renamed")).await.unwrap();
        assert!(s.certificate("ab").await.unwrap().is_some());
        assert!(s.certificate("cd").await.unwrap().is_none());
        assert_eq!(
            s.trusted().await.unwrap(),
            vec![TrustedCertificate {
                fingerprint: "ab".into(),
                grant: grant("renamed"),
            }]
        );
        assert!(s.untrust("ab").await.unwrap());
        assert!(!s.untrust("ab").await.unwrap());
        assert!(s.trusted().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_restricted_grant_keeps_its_role_instances_and_expiry() {
        let (s, _dir) = store().await;
        let g = TrustGrant {
            name: "ci".into(),
            role: TrustRole::Restricted,
            instances: vec!["web".into()],
            expires: Some(1_900_000_000),
        };
        s.add_token("h", &g, 100).await.unwrap();
        let redeemed = s.take_token("h", 50).await.unwrap().unwrap();
        assert_eq!(redeemed, g);
        s.trust("fp", &redeemed).await.unwrap();
        s.grant_instance("fp", "db").await.unwrap();
        s.grant_instance("unknown", "db").await.unwrap();
        let c = s.certificate("fp").await.unwrap().unwrap();
        assert_eq!(c.grant.instances, ["db", "web"]);
        assert_eq!(c.grant.role, TrustRole::Restricted);
        assert_eq!(c.grant.expires, Some(1_900_000_000));
        s.revoke_instance("web").await.unwrap();
        let c = s.certificate("fp").await.unwrap().unwrap();
        assert_eq!(c.grant.instances, ["db"]);
        assert!(s.untrust("fp").await.unwrap());
        assert!(s.trusted().await.unwrap().is_empty());
    }
}
