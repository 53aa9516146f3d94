//! The gate in front of every route: who the caller is (local root, or a
//! TLS peer whose certificate is valid and trusted), what its role lets it
//! do, and the audit line of what it did.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferrovirt_core::Error;
use ferrovirt_store::{TrustRole, TrustedCertificate};

use super::restricted::{self, Caller};
use super::{Peer, audit};
use crate::daemon::{Daemon, store_err};
use crate::error::ApiError;

const TRUST_PATH: &str = "/1.0/host/trust";

fn unix_date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// The trust of `peer`, refusing an invalid certificate or a missing or
/// expired trust.
async fn trust_of(d: &Daemon, peer: &Peer) -> Result<TrustedCertificate, Error> {
    let fp = &peer.fingerprint;
    let trusted = d
        .store
        .certificate(fp)
        .await
        .map_err(store_err("reading trusted certificates"))?
        .ok_or_else(|| {
            Error::forbidden(format!(
                "the client certificate {fp} is not trusted by this host; join with a token (`ferrovirt remote add`)"
            ))
        })?;
    let now = chrono::Utc::now().timestamp();
    if let Some(expires) = trusted.grant.expires.filter(|e| *e < now) {
        return Err(Error::forbidden(format!(
            "the trust of client certificate {fp} ({}) ended on {}; ask for a new token",
            trusted.grant.name,
            unix_date(expires)
        )));
    }
    Ok(trusted)
}

/// Refuses a certificate outside its validity period (or unparsable).
fn check_validity(peer: &Peer) -> Result<(), Error> {
    let fp = &peer.fingerprint;
    let problem = match peer.validity {
        None => Some("cannot be parsed as X.509".to_owned()),
        Some(v) => v.problem_at(chrono::Utc::now().timestamp()),
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(Error::forbidden(format!(
            "the client certificate {fp} {p}; make a new one (remove the CLI's client.crt and client.key) and join again"
        ))),
    }
}

/// Runs a TLS peer's request as its role allows; the audit names the trust.
async fn remote(
    d: &Daemon,
    peer: &Peer,
    req: Request,
    next: Next,
) -> (Response, Option<TrustedCertificate>) {
    if let Err(e) = check_validity(peer) {
        return (ApiError(e).into_response(), None);
    }
    if req.method() == Method::POST && req.uri().path() == TRUST_PATH {
        return (next.run(req).await, None);
    }
    let trusted = match trust_of(d, peer).await {
        Ok(t) => t,
        Err(e) => return (ApiError(e).into_response(), None),
    };
    let resp = match trusted.grant.role {
        TrustRole::Admin => next.run(req).await,
        TrustRole::Restricted => {
            let caller = Caller {
                fingerprint: trusted.fingerprint.clone(),
                instances: trusted.grant.instances.iter().cloned().collect(),
            };
            restricted::handle(d, &caller, req, next).await
        }
    };
    (resp, Some(trusted))
}

/// Forgets every certificate's grant of an instance that was deleted, so
/// a later instance of that name is not theirs.
async fn forget_deleted(d: &Daemon, method: &Method, path: &str, status: StatusCode) {
    let deleted = match path.strip_prefix("/1.0/instances/") {
        Some(name) if method == Method::DELETE && !name.contains('/') => name,
        _ => return,
    };
    if status.is_success()
        && let Err(e) = d.store.revoke_instance(deleted).await
    {
        tracing::error!(instance = deleted, error = %e, "cannot drop the grants of a deleted instance");
    }
}

/// Lets requests through only from local clients or valid, trusted
/// certificates, as far as their role allows; audits remote requests.
pub async fn authorize(State(d): State<Daemon>, req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let peer = req.extensions().get::<Peer>().cloned();
    let (resp, entry) = match &peer {
        None => {
            let resp = next.run(req).await;
            let audited = d.config.audit_local && method != Method::GET;
            (resp, audited.then_some((None, None, "local")))
        }
        Some(peer) => {
            let (resp, trusted) = remote(&d, peer, req, next).await;
            let role = match trusted.as_ref().map(|t| t.grant.role) {
                Some(TrustRole::Admin) => "admin",
                Some(TrustRole::Restricted) => "restricted",
                None => "untrusted",
            };
            let name = trusted.map(|t| t.grant.name);
            (resp, Some((Some(peer.fingerprint.clone()), name, role)))
        }
    };
    forget_deleted(&d, &method, &path, resp.status()).await;
    if let Some((fingerprint, name, role)) = entry {
        let entry = audit::Entry {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            fingerprint,
            name,
            role,
            method: method.to_string(),
            path,
            status: resp.status().as_u16(),
        };
        audit::record(&d.config.state_dir, entry).await;
    }
    resp
}
