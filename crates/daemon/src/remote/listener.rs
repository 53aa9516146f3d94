//! The TLS listener: accepts connections with a cap on how many are open,
//! a deadline for the handshake, a deadline for each request's headers,
//! and back-off when accepting fails (e.g. out of file descriptors).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::Peer;
use crate::config::Config;
use crate::daemon::Daemon;

/// The first and the longest pause after a failed accept.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Pauses after failed accepts, doubling from 100 ms to 1 s, and logs
/// once per run of failures rather than once per failure.
#[derive(Debug, Default)]
struct AcceptBackoff {
    delay: Option<Duration>,
}

impl AcceptBackoff {
    /// The pause after another failure.
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        let delay = match self.delay {
            None => {
                tracing::warn!(error = %e, "accepting TLS connections fails; backing off");
                BACKOFF_START
            }
            Some(d) => (d * 2).min(BACKOFF_MAX),
        };
        self.delay = Some(delay);
        delay
    }

    fn succeeded(&mut self) {
        if self.delay.take().is_some() {
            tracing::info!("accepting TLS connections again");
        }
    }
}

/// Limits of the listener, from the daemon's configuration.
#[derive(Debug, Clone, Copy)]
struct Limits {
    handshake: Duration,
    max_connections: usize,
}

impl Limits {
    fn of(config: &Config) -> anyhow::Result<Self> {
        let secs = config.tls_handshake_timeout;
        let handshake = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--tls-handshake-timeout: must be a positive number of seconds, not {secs}"
                )
            })?;
        if config.tls_max_connections == 0 {
            anyhow::bail!("--tls-max-connections: must be at least 1");
        }
        Ok(Self {
            handshake,
            max_connections: config.tls_max_connections,
        })
    }
}

/// Serves `app` over TLS on `addr` until the process ends.
pub async fn serve(d: Daemon, addr: SocketAddr, app: axum::Router) -> anyhow::Result<()> {
    let limits = Limits::of(&d.config)?;
    let cfg = ferrovirt_tls::server_config(&d.identity)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, fingerprint = d.identity.fingerprint(), ?limits, "serving the API over TLS");
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = AcceptBackoff::default();
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(conn) => {
                backoff.succeeded();
                conn
            }
            Err(e) => {
                tokio::time::sleep(backoff.failed(&e)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(%remote, max = limits.max_connections, "too many TLS connections; closing a new one");
            drop(tcp);
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            connection(acceptor, tcp, remote, app, limits).await;
            drop(permit);
        });
    }
}

/// One connection: the handshake (within the deadline), then HTTP.
async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    remote: SocketAddr,
    app: axum::Router,
    limits: Limits,
) {
    let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "TLS handshake timed out; dropping the connection");
            return;
        }
    };
    let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        return;
    };
    let peer = Peer {
        fingerprint: ferrovirt_tls::fingerprint(cert),
        validity: ferrovirt_tls::Validity::of(cert),
    };
    let svc = tower::ServiceBuilder::new()
        .layer(axum::Extension(peer))
        .service(app);
    let svc = hyper_util::service::TowerToHyperService::new(svc);
    let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // A request's headers must arrive within the handshake deadline too.
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake);
    http.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.handshake)
        .keep_alive_timeout(limits.handshake);
    let _ = http
        .serve_connection_with_upgrades(TokioIo::new(tls), svc)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_second_and_resets() {
        let mut b = AcceptBackoff::default();
        let e = std::io::Error::from_raw_os_error(24);
        let delays: Vec<_> = (0..6).map(|_| b.failed(&e).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(&e), BACKOFF_START);
    }
}
