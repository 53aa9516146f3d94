//! The API over TLS for other hosts and remote CLIs.
//!
//! Every connection presents a client certificate (mutual TLS, see
//! `ferrovirt_tls`); the request is let through only when that
//! certificate's fingerprint is trusted — except `POST /1.0/host/trust`,
//! which trusts the caller in exchange for a one-time join token. Requests
//! over the unix socket carry no peer and are local root's.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferrovirt_api::JoinToken;
use ferrovirt_core::Error;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::daemon::{Daemon, store_err};
use crate::error::ApiError;

/// The peer of a TLS connection, attached to each of its requests.
#[derive(Debug, Clone)]
pub struct Peer {
    pub fingerprint: String,
}

pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How long a join token is valid.
const TOKEN_LIFETIME_SECS: i64 = 3600;

/// Makes a one-time join token for `name`.
pub async fn new_token(d: &Daemon, name: &str) -> Result<JoinToken, Error> {
    ferrovirt_core::name::validate("name", name)?;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let expires = chrono::Utc::now().timestamp() + TOKEN_LIFETIME_SECS;
    d.store
        .add_token(&hash(&secret), name, expires)
        .await
        .map_err(store_err("saving the token"))?;
    Ok(JoinToken {
        name: name.to_owned(),
        fingerprint: d.identity.fingerprint(),
        addresses: d.config.listen.iter().map(|a| a.to_string()).collect(),
        secret,
    })
}

/// Trusts `peer` in exchange for a valid token secret.
pub async fn redeem(d: &Daemon, peer: Option<&Peer>, secret: &str) -> Result<String, Error> {
    let peer = peer.ok_or_else(|| {
        Error::bad_request("join tokens are redeemed over TLS, with the certificate to trust")
    })?;
    let name = d
        .store
        .take_token(&hash(secret), chrono::Utc::now().timestamp())
        .await
        .map_err(store_err("checking the token"))?
        .ok_or_else(|| Error::forbidden("the join token is unknown, used or expired"))?;
    d.store
        .trust(&peer.fingerprint, &name)
        .await
        .map_err(store_err("trusting the certificate"))?;
    tracing::info!(
        name,
        fingerprint = peer.fingerprint,
        "trusted a new certificate"
    );
    Ok(name)
}

/// Lets requests through only from local clients or trusted certificates.
pub async fn authorize(State(d): State<Daemon>, req: Request, next: Next) -> Response {
    let Some(peer) = req.extensions().get::<Peer>().cloned() else {
        return next.run(req).await;
    };
    if req.method() == Method::POST && req.uri().path() == "/1.0/host/trust" {
        return next.run(req).await;
    }
    match d.store.is_trusted(&peer.fingerprint).await {
        Ok(true) => next.run(req).await,
        Ok(false) => ApiError(Error::forbidden(format!(
            "the client certificate {} is not trusted by this host; join with a token (`ferrovirt remote add`)",
            peer.fingerprint
        )))
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serves `app` over TLS on `addr` until the process ends.
pub async fn serve(d: Daemon, addr: SocketAddr, app: axum::Router) -> anyhow::Result<()> {
    let cfg = ferrovirt_tls::server_config(&d.identity)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, fingerprint = d.identity.fingerprint(), "serving the API over TLS");
    loop {
        let Ok((tcp, remote)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
                return;
            };
            let peer = Peer {
                fingerprint: ferrovirt_tls::fingerprint(cert),
            };
            let svc = tower::ServiceBuilder::new()
                .layer(axum::Extension(peer))
                .service(app);
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let io = hyper_util::rt::TokioIo::new(tls);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection_with_upgrades(io, svc)
                    .await;
        });
    }
}
