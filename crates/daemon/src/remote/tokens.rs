//! Join tokens and trust: making a token, redeeming it, removing a trust.

use ferrovirt_api::{JoinToken, TokenPost, TrustRole};
use ferrovirt_core::Error;
use ferrovirt_store::{TrustGrant, TrustRole as StoredRole};
use sha2::{Digest, Sha256};

use super::Peer;
use crate::daemon::{Daemon, store_err};

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How long a join token is valid.
const TOKEN_LIFETIME_SECS: i64 = 3600;

const DAY_SECS: i64 = 86_400;

/// What a token request grants, validated.
fn grant(req: &TokenPost, now: i64) -> Result<TrustGrant, Error> {
    ferrovirt_core::name::validate("name", &req.name)?;
    for (i, instance) in req.instances.iter().enumerate() {
        ferrovirt_core::name::validate(&format!("instances[{i}]"), instance)?;
    }
    let role = match req.role {
        TrustRole::Admin if !req.instances.is_empty() => {
            return Err(Error::validation(
                "instances",
                "only a restricted token names instances; an admin manages them all",
            ));
        }
        TrustRole::Admin => StoredRole::Admin,
        TrustRole::Restricted => StoredRole::Restricted,
    };
    let expires = match req.expires_in_days {
        Some(0) => {
            return Err(Error::validation(
                "expires_in_days",
                "must be at least 1 day",
            ));
        }
        Some(days) => Some(now + i64::from(days) * DAY_SECS),
        None => None,
    };
    Ok(TrustGrant {
        name: req.name.clone(),
        role,
        instances: req.instances.clone(),
        expires,
    })
}

/// Makes a one-time join token granting what `req` asks.
pub async fn new_token(d: &Daemon, req: &TokenPost) -> Result<JoinToken, Error> {
    let now = chrono::Utc::now().timestamp();
    let grant = grant(req, now)?;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    d.store
        .add_token(&hash(&secret), &grant, now + TOKEN_LIFETIME_SECS)
        .await
        .map_err(store_err("saving the token"))?;
    Ok(JoinToken {
        name: req.name.clone(),
        fingerprint: d.identity.fingerprint(),
        addresses: d.config.listen.iter().map(|a| a.to_string()).collect(),
        secret,
    })
}

/// Trusts `peer` in exchange for a valid token secret, as the token grants.
pub async fn redeem(d: &Daemon, peer: Option<&Peer>, secret: &str) -> Result<String, Error> {
    let peer = peer.ok_or_else(|| {
        Error::bad_request("join tokens are redeemed over TLS, with the certificate to trust")
    })?;
    let grant = d
        .store
        .take_token(&hash(secret), chrono::Utc::now().timestamp())
        .await
        .map_err(store_err("checking the token"))?
        .ok_or_else(|| Error::forbidden("the join token is unknown, used or expired"))?;
    d.store
        .trust(&peer.fingerprint, &grant)
        .await
        .map_err(store_err("trusting the certificate"))?;
    tracing::info!(
        name = grant.name,
        role = ?grant.role,
        fingerprint = peer.fingerprint,
        "trusted a new certificate"
    );
    Ok(grant.name)
}

/// Stops trusting a certificate: its next request is refused, also on a
/// connection that is already open (trust is checked per request).
pub async fn untrust(d: &Daemon, fingerprint: &str) -> Result<(), Error> {
    let gone = d
        .store
        .untrust(&fingerprint.to_lowercase())
        .await
        .map_err(store_err("removing the trust"))?;
    if !gone {
        return Err(Error::not_found(format!(
            "no trusted certificate has the fingerprint {fingerprint}"
        )));
    }
    tracing::info!(fingerprint, "removed a trusted certificate");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(role: TrustRole, instances: &[&str], days: Option<u32>) -> TokenPost {
        TokenPost {
            name: "ci".into(),
            role,
            instances: instances.iter().map(|s| s.to_string()).collect(),
            expires_in_days: days,
        }
    }

    #[test]
    fn a_token_grants_role_instances_and_expiry() {
        let g = grant(&req(TrustRole::Restricted, &["web"], Some(2)), 1000).unwrap();
        assert_eq!(g.role, StoredRole::Restricted);
        assert_eq!(g.instances, ["web"]);
        assert_eq!(g.expires, Some(1000 + 2 * DAY_SECS));
        assert_eq!(grant(&TokenPost::admin("h"), 0).unwrap().expires, None);
    }

    #[test]
    fn bad_token_requests_name_the_field() {
        let e = grant(&req(TrustRole::Admin, &["web"], None), 0).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("instances"));
        let e = grant(&req(TrustRole::Restricted, &["Bad Name"], None), 0).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("instances[0]"));
        let e = grant(&req(TrustRole::Restricted, &[], Some(0)), 0).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("expires_in_days"));
    }
}
