//! Trust: the client certificates allowed to use the API, and the one-time
//! join tokens that let a new client become trusted.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{SqliteStore, StoreError, StoreFuture};

/// A client certificate the host trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCertificate {
    /// SHA-256 fingerprint of the certificate.
    pub fingerprint: String,
    /// The name it was trusted as.
    pub name: String,
}

/// Durable storage of trusted certificates and join tokens.
pub trait TrustStore: Send + Sync {
    /// Trusts a client certificate (by SHA-256 fingerprint) as `name`.
    fn trust(&self, fingerprint: &str, name: &str) -> StoreFuture<'_, ()>;
    fn is_trusted(&self, fingerprint: &str) -> StoreFuture<'_, bool>;
    /// Every trusted certificate, by name.
    fn trusted(&self) -> StoreFuture<'_, Vec<TrustedCertificate>>;
    /// Stops trusting a certificate; `false` if it was not trusted.
    fn untrust(&self, fingerprint: &str) -> StoreFuture<'_, bool>;
    /// Records a one-time join token (its secret's hash) valid until
    /// `expires` (unix time); fails with [`StoreError::Duplicate`] if the
    /// hash is already recorded.
    fn add_token(&self, secret_hash: &str, name: &str, expires: i64) -> StoreFuture<'_, ()>;
    /// Consumes a token, and drops every expired one, in one transaction:
    /// the name it was made for, if it exists and has not expired.
    fn take_token(&self, secret_hash: &str, now: i64) -> StoreFuture<'_, Option<String>>;
}

fn trusted(c: &Connection) -> Result<Vec<TrustedCertificate>, StoreError> {
    let mut stmt =
        c.prepare_cached("SELECT fingerprint, name FROM trusted_certificates ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok(TrustedCertificate {
            fingerprint: r.get(0)?,
            name: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn take_token(
    c: &mut Connection,
    secret_hash: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let tx = c.transaction()?;
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

impl TrustStore for SqliteStore {
    fn trust(&self, fingerprint: &str, name: &str) -> StoreFuture<'_, ()> {
        let (fingerprint, name) = (fingerprint.to_owned(), name.to_owned());
        self.run(move |c| {
            c.execute(
                "INSERT INTO trusted_certificates (fingerprint, name) VALUES (?1, ?2)
                 ON CONFLICT (fingerprint) DO UPDATE SET name = ?2",
                params![fingerprint, name],
            )?;
            Ok(())
        })
    }

    fn is_trusted(&self, fingerprint: &str) -> StoreFuture<'_, bool> {
        let fingerprint = fingerprint.to_owned();
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT 1 FROM trusted_certificates WHERE fingerprint = ?1",
                [fingerprint],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })
    }

    fn trusted(&self) -> StoreFuture<'_, Vec<TrustedCertificate>> {
        self.run(|c| trusted(c))
    }

    fn untrust(&self, fingerprint: &str) -> StoreFuture<'_, bool> {
        let fingerprint = fingerprint.to_owned();
        self.run(move |c| {
            Ok(c.execute(
                "DELETE FROM trusted_certificates WHERE fingerprint = ?1",
                [fingerprint],
            )? > 0)
        })
    }

    fn add_token(&self, secret_hash: &str, name: &str, expires: i64) -> StoreFuture<'_, ()> {
        let (hash, name) = (secret_hash.to_owned(), name.to_owned());
        self.run(move |c| {
            c.execute(
                "INSERT INTO join_tokens (secret_hash, name, expires) VALUES (?1, ?2, ?3)",
                params![hash, name, expires],
            )
            .map_err(|e| StoreError::on_insert(e, || format!("join token for {name}")))?;
            Ok(())
        })
    }

    fn take_token(&self, secret_hash: &str, now: i64) -> StoreFuture<'_, Option<String>> {
        let hash = secret_hash.to_owned();
        self.run(move |c| take_token(c, &hash, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::store;

    #[tokio::test]
    async fn tokens_are_one_time_and_expire() {
        let (s, _dir) = store().await;
        s.add_token("h1", "host-b", 100).await.unwrap();
        assert_eq!(
            s.take_token("h1", 50).await.unwrap().as_deref(),
            Some("host-b")
        );
        assert_eq!(s.take_token("h1", 50).await.unwrap(), None, "one time");
        s.add_token("h2", "late", 10).await.unwrap();
        assert_eq!(s.take_token("h2", 50).await.unwrap(), None, "expired");
    }

    #[tokio::test]
    async fn taking_any_token_drops_the_expired_ones() {
        let (s, _dir) = store().await;
        s.add_token("old", "a", 10).await.unwrap();
        s.add_token("new", "b", 100).await.unwrap();
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
        s.add_token("h1", "b", 100).await.unwrap();
        let err = s.add_token("h1", "b", 100).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Duplicate(n) if n == "join token for b"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn trust_round_trip() {
        let (s, _dir) = store().await;
        s.trust("ab", "host-b").await.unwrap();
        s.trust("ab", "renamed").await.unwrap();
        assert!(s.is_trusted("ab").await.unwrap());
        assert!(!s.is_trusted("cd").await.unwrap());
        assert_eq!(
            s.trusted().await.unwrap(),
            vec![TrustedCertificate {
                fingerprint: "ab".into(),
                name: "renamed".into()
            }]
        );
        assert!(s.untrust("ab").await.unwrap());
        assert!(!s.untrust("ab").await.unwrap());
        assert!(s.trusted().await.unwrap().is_empty());
    }
}
