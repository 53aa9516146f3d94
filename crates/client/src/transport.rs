//! The connection to one daemon and the request plumbing every resource
//! module uses.

use std::path::{Path, PathBuf};

use ferrovirt_api::ErrorBody;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Default API socket.
pub const DEFAULT_SOCKET: &str = "/run/ferrovirt/ferrovirt.sock";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon refused the request.
    #[error("{}", .0.error)]
    Api(ErrorBody),
    #[error(
        "cannot reach ferrovirtd at {socket}: {reason} (is the daemon running? see --socket / FERROVIRT_SOCKET)"
    )]
    Connect { socket: String, reason: String },
    #[error("unexpected answer from ferrovirtd: {0}")]
    Protocol(String),
}

/// A client bound to one daemon: its local unix socket, or a remote host
/// over mutual TLS.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    socket: PathBuf,
    base: String,
}

impl Client {
    pub fn new(socket: impl AsRef<Path>) -> Result<Self, ClientError> {
        let socket = socket.as_ref().to_path_buf();
        ferrovirt_tls::install_default_provider();
        let no_tls = ferrovirt_tls::unused_client_config()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(no_tls)
            .unix_socket(socket.clone())
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Self {
            http,
            socket,
            base: "http://ferrovirt".into(),
        })
    }

    /// A client of the host at `address` (`host:port`) over TLS, presenting
    /// `identity` and accepting only the server whose certificate has
    /// `fingerprint`.
    pub fn remote(
        address: &str,
        identity: &ferrovirt_tls::Identity,
        fingerprint: &str,
    ) -> Result<Self, ClientError> {
        ferrovirt_tls::install_default_provider();
        let tls = ferrovirt_tls::client_config(identity, fingerprint)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        // A host that does not answer is an error within seconds, not a
        // hang (whole requests are bounded by their callers: streams last).
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Self {
            http,
            socket: PathBuf::from(address),
            base: format!("https://{address}"),
        })
    }

    /// The unix socket (or, for a remote, the `host:port`) of the daemon.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub(crate) fn connect_err(&self, e: reqwest::Error) -> ClientError {
        let mut reason = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            reason = s.to_string();
            src = s.source();
        }
        ClientError::Connect {
            socket: self.socket.display().to_string(),
            reason,
        }
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the
    /// daemon's error body.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| self.connect_err(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => ClientError::Api(body),
            Err(_) => ClientError::Protocol(format!("HTTP {status}: {text}")),
        })
    }

    /// Sends a request and decodes the JSON answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let resp = self.send(method, path, body).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// Sends a request whose answer carries nothing the caller needs.
    pub(crate) async fn send_only(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<(), ClientError> {
        self.send(method, path, body).await.map(drop)
    }

    /// POSTs `body` to `path` and decodes the answer (host-to-host calls).
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// DELETEs `path`.
    pub async fn delete_path(&self, path: &str) -> Result<(), ClientError> {
        self.send_only(Method::DELETE, path, None::<&()>).await
    }
}

/// Percent-encodes a path segment (names are validated by the daemon; this
/// only keeps odd input from changing the request path).
pub(crate) fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::enc;

    #[test]
    fn path_segments_cannot_escape_their_place() {
        assert_eq!(enc("web-1.x_y~"), "web-1.x_y~");
        assert_eq!(enc("../a b/?"), "..%2Fa%20b%2F%3F");
    }
}
