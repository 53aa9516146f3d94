//! Async client of the Ferrovirt REST API over the daemon's unix socket.
//!
//! Errors from the daemon come back as [`ClientError::Api`] carrying the
//! daemon's JSON error body unchanged, so callers can show its sentence and
//! the offending field.

use std::path::{Path, PathBuf};

use ferrovirt_api::{
    ClonePost, ErrorBody, Event, HostCheck, HostInfo, Instance, Operation, RestorePost, SavePost,
    Snapshot, SnapshotsPost, StateAction, StatePut,
};
use futures::{SinkExt, Stream, StreamExt};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::Message;

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
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Self {
            http,
            socket: PathBuf::from(address),
            base: format!("https://{address}"),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn connect_err(&self, e: reqwest::Error) -> ClientError {
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

    async fn send(
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
        self.send(Method::DELETE, path, None::<&()>).await.map(drop)
    }

    /// `GET /1.0`: whether the server answers at all.
    pub async fn server_info(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/1.0").await
    }

    /// Starts a migration of `name`; returns the operation.
    pub async fn migrate(
        &self,
        name: &str,
        req: &ferrovirt_api::MigratePost,
    ) -> Result<Operation, ClientError> {
        self.call(
            Method::POST,
            &format!("/1.0/instances/{}/migrate", enc(name)),
            Some(req),
        )
        .await
    }

    pub async fn instance_stats(
        &self,
        name: &str,
    ) -> Result<ferrovirt_api::InstanceStats, ClientError> {
        self.get(&format!("/1.0/instances/{}/stats", enc(name)))
            .await
    }

    pub async fn stats(&self) -> Result<Vec<ferrovirt_api::InstanceStats>, ClientError> {
        self.get("/1.0/stats").await
    }

    /// The Prometheus exposition text of `/metrics`.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        self.send(Method::GET, "/metrics", None::<&()>)
            .await?
            .text()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Makes a one-time join token on this host for a client called `name`.
    pub async fn new_token(&self, name: &str) -> Result<String, ClientError> {
        let reply: serde_json::Value = self
            .call(
                Method::POST,
                "/1.0/host/tokens",
                Some(&serde_json::json!({"name": name})),
            )
            .await?;
        reply["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Protocol("no token in the answer".into()))
    }

    /// Redeems a join token's secret: this client's certificate becomes trusted.
    pub async fn redeem_token(&self, secret: &str) -> Result<(), ClientError> {
        self.send(
            Method::POST,
            "/1.0/host/trust",
            Some(&serde_json::json!({"secret": secret})),
        )
        .await
        .map(drop)
    }

    async fn call<T: DeserializeOwned>(
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

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn list_instances(&self) -> Result<Vec<Instance>, ClientError> {
        self.get("/1.0/instances").await
    }

    pub async fn instance(&self, name: &str) -> Result<Instance, ClientError> {
        self.get(&format!("/1.0/instances/{}", enc(name))).await
    }

    /// Creates an instance from a spec given as JSON (so the daemon validates
    /// every field, unknown ones included).
    pub async fn create_instance(&self, spec: &serde_json::Value) -> Result<Instance, ClientError> {
        self.call(Method::POST, "/1.0/instances", Some(spec)).await
    }

    pub async fn replace_instance(
        &self,
        name: &str,
        spec: &serde_json::Value,
    ) -> Result<Instance, ClientError> {
        self.call(
            Method::PUT,
            &format!("/1.0/instances/{}", enc(name)),
            Some(spec),
        )
        .await
    }

    /// Applies a JSON merge patch to the spec.
    pub async fn patch_instance(
        &self,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Instance, ClientError> {
        self.call(
            Method::PATCH,
            &format!("/1.0/instances/{}", enc(name)),
            Some(patch),
        )
        .await
    }

    pub async fn delete_instance(&self, name: &str, force: bool) -> Result<(), ClientError> {
        self.send(
            Method::DELETE,
            &format!("/1.0/instances/{}?force={force}", enc(name)),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    pub async fn change_state(&self, name: &str, req: &StatePut) -> Result<Instance, ClientError> {
        self.call(
            Method::PUT,
            &format!("/1.0/instances/{}/state", enc(name)),
            Some(req),
        )
        .await
    }

    /// Shorthand for an action without options.
    pub async fn action(&self, name: &str, action: StateAction) -> Result<Instance, ClientError> {
        self.change_state(
            name,
            &StatePut {
                action,
                force: false,
                timeout: None,
            },
        )
        .await
    }

    /// A log of an instance: `console` or `qemu`.
    pub async fn log(
        &self,
        name: &str,
        log: &str,
        tail: Option<u64>,
    ) -> Result<Vec<u8>, ClientError> {
        let tail = tail.map(|t| format!("?tail={t}")).unwrap_or_default();
        let resp = self
            .send(
                Method::GET,
                &format!("/1.0/instances/{}/logs/{log}{tail}", enc(name)),
                None::<&()>,
            )
            .await?;
        Ok(resp
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_vec())
    }

    pub async fn snapshots(&self, name: &str) -> Result<Vec<Snapshot>, ClientError> {
        self.get(&format!("/1.0/instances/{}/snapshots", enc(name)))
            .await
    }

    pub async fn snapshot(&self, name: &str, snap: &str) -> Result<Snapshot, ClientError> {
        self.get(&format!(
            "/1.0/instances/{}/snapshots/{}",
            enc(name),
            enc(snap)
        ))
        .await
    }

    /// Starts taking a snapshot; returns the operation.
    pub async fn create_snapshot(
        &self,
        name: &str,
        req: &SnapshotsPost,
    ) -> Result<Operation, ClientError> {
        self.call(
            Method::POST,
            &format!("/1.0/instances/{}/snapshots", enc(name)),
            Some(req),
        )
        .await
    }

    pub async fn revert_snapshot(&self, name: &str, snap: &str) -> Result<Operation, ClientError> {
        self.call(
            Method::POST,
            &format!(
                "/1.0/instances/{}/snapshots/{}/revert",
                enc(name),
                enc(snap)
            ),
            None::<&()>,
        )
        .await
    }

    pub async fn delete_snapshot(&self, name: &str, snap: &str) -> Result<Operation, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/1.0/instances/{}/snapshots/{}", enc(name), enc(snap)),
            None::<&()>,
        )
        .await
    }

    pub async fn clone_instance(
        &self,
        name: &str,
        req: &ClonePost,
    ) -> Result<Operation, ClientError> {
        self.call(
            Method::POST,
            &format!("/1.0/instances/{}/clone", enc(name)),
            Some(req),
        )
        .await
    }

    pub async fn save_instance(
        &self,
        name: &str,
        req: &SavePost,
    ) -> Result<Operation, ClientError> {
        self.call(
            Method::POST,
            &format!("/1.0/instances/{}/save", enc(name)),
            Some(req),
        )
        .await
    }

    pub async fn restore(&self, req: &RestorePost) -> Result<Operation, ClientError> {
        self.call(Method::POST, "/1.0/restore", Some(req)).await
    }

    pub async fn operations(&self) -> Result<Vec<Operation>, ClientError> {
        self.get("/1.0/operations").await
    }

    pub async fn operation(&self, id: &str) -> Result<Operation, ClientError> {
        self.get(&format!("/1.0/operations/{}", enc(id))).await
    }

    /// Waits up to `timeout_secs` for the operation to finish; returns it either way.
    pub async fn wait_operation(
        &self,
        id: &str,
        timeout_secs: f64,
    ) -> Result<Operation, ClientError> {
        self.get(&format!(
            "/1.0/operations/{}/wait?timeout={timeout_secs}",
            enc(id)
        ))
        .await
    }

    pub async fn cancel_operation(&self, id: &str) -> Result<Operation, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/1.0/operations/{}", enc(id)),
            None::<&()>,
        )
        .await
    }

    /// Waits for an operation to finish; a failed or cancelled one becomes
    /// an error carrying its message.
    pub async fn finish(&self, op: &Operation) -> Result<Operation, ClientError> {
        loop {
            let op = self.wait_operation(&op.id.to_string(), 30.0).await?;
            match op.status {
                ferrovirt_api::OperationStatus::Running => continue,
                ferrovirt_api::OperationStatus::Success => return Ok(op),
                _ => {
                    return Err(ClientError::Api(ErrorBody {
                        error: op
                            .error
                            .clone()
                            .unwrap_or_else(|| format!("{} failed", op.description)),
                        code: 500,
                        details: None,
                    }));
                }
            }
        }
    }

    pub async fn networks(&self) -> Result<Vec<ferrovirt_api::Network>, ClientError> {
        self.get("/1.0/networks").await
    }

    pub async fn network(&self, name: &str) -> Result<ferrovirt_api::Network, ClientError> {
        self.get(&format!("/1.0/networks/{}", enc(name))).await
    }

    /// Defines and starts a network from a spec given as JSON.
    pub async fn create_network(
        &self,
        spec: &serde_json::Value,
    ) -> Result<ferrovirt_api::Network, ClientError> {
        self.call(Method::POST, "/1.0/networks", Some(spec)).await
    }

    pub async fn replace_network(
        &self,
        name: &str,
        spec: &serde_json::Value,
    ) -> Result<ferrovirt_api::Network, ClientError> {
        self.call(
            Method::PUT,
            &format!("/1.0/networks/{}", enc(name)),
            Some(spec),
        )
        .await
    }

    pub async fn delete_network(&self, name: &str) -> Result<(), ClientError> {
        self.send(
            Method::DELETE,
            &format!("/1.0/networks/{}", enc(name)),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    /// `start` or `stop` a network.
    pub async fn network_action(
        &self,
        name: &str,
        action: &str,
    ) -> Result<ferrovirt_api::Network, ClientError> {
        self.call(
            Method::PUT,
            &format!("/1.0/networks/{}/state", enc(name)),
            Some(&serde_json::json!({ "action": action })),
        )
        .await
    }

    pub async fn leases(&self, name: &str) -> Result<Vec<ferrovirt_api::Lease>, ClientError> {
        self.get(&format!("/1.0/networks/{}/leases", enc(name)))
            .await
    }

    pub async fn add_nic(
        &self,
        name: &str,
        nic: &ferrovirt_api::Nic,
    ) -> Result<Instance, ClientError> {
        self.call(
            Method::POST,
            &format!("/1.0/instances/{}/nics", enc(name)),
            Some(nic),
        )
        .await
    }

    pub async fn remove_nic(&self, name: &str, mac: &str) -> Result<Instance, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/1.0/instances/{}/nics/{}", enc(name), enc(mac)),
            None::<&()>,
        )
        .await
    }

    pub async fn pools(&self) -> Result<Vec<ferrovirt_api::Pool>, ClientError> {
        self.get("/1.0/pools").await
    }

    pub async fn pool(&self, name: &str) -> Result<ferrovirt_api::Pool, ClientError> {
        self.get(&format!("/1.0/pools/{}", enc(name))).await
    }

    pub async fn create_pool(
        &self,
        req: &ferrovirt_api::PoolCreate,
    ) -> Result<ferrovirt_api::Pool, ClientError> {
        self.call(Method::POST, "/1.0/pools", Some(req)).await
    }

    pub async fn replace_pool(
        &self,
        spec: &ferrovirt_api::PoolSpec,
    ) -> Result<ferrovirt_api::Pool, ClientError> {
        let path = format!("/1.0/pools/{}", enc(&spec.name));
        self.call(Method::PUT, &path, Some(spec)).await
    }

    /// Deletes a pool; `volumes` deletes its volumes too.
    pub async fn delete_pool(&self, name: &str, volumes: bool) -> Result<(), ClientError> {
        let path = format!("/1.0/pools/{}?volumes={volumes}", enc(name));
        self.delete_path(&path).await
    }

    /// `start`, `stop` or `refresh` a pool.
    pub async fn pool_action(
        &self,
        name: &str,
        action: &str,
    ) -> Result<ferrovirt_api::Pool, ClientError> {
        let path = format!("/1.0/pools/{}/state", enc(name));
        self.call(
            Method::PUT,
            &path,
            Some(&serde_json::json!({"action": action})),
        )
        .await
    }

    fn volume_path(pool: &str, name: &str) -> String {
        format!("/1.0/pools/{}/volumes/{}", enc(pool), enc(name))
    }

    pub async fn volumes(&self, pool: &str) -> Result<Vec<ferrovirt_api::Volume>, ClientError> {
        self.get(&format!("/1.0/pools/{}/volumes", enc(pool))).await
    }

    pub async fn volume(
        &self,
        pool: &str,
        name: &str,
    ) -> Result<ferrovirt_api::Volume, ClientError> {
        self.get(&Self::volume_path(pool, name)).await
    }

    pub async fn create_volume(
        &self,
        pool: &str,
        req: &ferrovirt_api::VolumeCreate,
    ) -> Result<ferrovirt_api::Volume, ClientError> {
        let path = format!("/1.0/pools/{}/volumes", enc(pool));
        self.call(Method::POST, &path, Some(req)).await
    }

    pub async fn delete_volume(&self, pool: &str, name: &str) -> Result<(), ClientError> {
        self.delete_path(&Self::volume_path(pool, name)).await
    }

    /// A volume action answered with the volume: `resize` or `wipe`.
    pub async fn volume_action<B: Serialize + ?Sized>(
        &self,
        pool: &str,
        name: &str,
        action: &str,
        body: &B,
    ) -> Result<ferrovirt_api::Volume, ClientError> {
        let path = format!("{}/{action}", Self::volume_path(pool, name));
        self.call(Method::POST, &path, Some(body)).await
    }

    /// A volume copy answered with an operation: `clone`, `convert` or `export`.
    pub async fn volume_operation<B: Serialize + ?Sized>(
        &self,
        pool: &str,
        name: &str,
        action: &str,
        body: &B,
    ) -> Result<Operation, ClientError> {
        let path = format!("{}/{action}", Self::volume_path(pool, name));
        self.call(Method::POST, &path, Some(body)).await
    }

    pub async fn import_volume(
        &self,
        pool: &str,
        req: &ferrovirt_api::VolumeImport,
    ) -> Result<Operation, ClientError> {
        let path = format!("/1.0/pools/{}/import", enc(pool));
        self.call(Method::POST, &path, Some(req)).await
    }

    pub async fn attach_disk(
        &self,
        name: &str,
        disk: &ferrovirt_api::Disk,
    ) -> Result<Instance, ClientError> {
        let path = format!("/1.0/instances/{}/disks", enc(name));
        self.call(Method::POST, &path, Some(disk)).await
    }

    pub async fn detach_disk(&self, name: &str, disk: &str) -> Result<Instance, ClientError> {
        let path = format!("/1.0/instances/{}/disks/{}", enc(name), enc(disk));
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    pub async fn change_media(
        &self,
        name: &str,
        disk: &str,
        req: &ferrovirt_api::MediaPut,
    ) -> Result<Instance, ClientError> {
        let path = format!("/1.0/instances/{}/disks/{}/media", enc(name), enc(disk));
        self.call(Method::PUT, &path, Some(req)).await
    }

    pub async fn set_disk_limits(
        &self,
        name: &str,
        disk: &str,
        limits: &ferrovirt_api::IoLimits,
    ) -> Result<Instance, ClientError> {
        let path = format!("/1.0/instances/{}/disks/{}/limits", enc(name), enc(disk));
        self.call(Method::PUT, &path, Some(limits)).await
    }

    pub async fn host_info(&self) -> Result<HostInfo, ClientError> {
        self.get("/1.0/host").await
    }

    pub async fn host_check(&self) -> Result<HostCheck, ClientError> {
        self.get("/1.0/host/check").await
    }

    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/1.0/openapi.json").await
    }

    /// The live event stream.
    pub async fn events(&self) -> Result<impl Stream<Item = Event> + use<>, ClientError> {
        let resp = self.send(Method::GET, "/1.0/events", None::<&()>).await?;
        let bytes = resp.bytes_stream();
        Ok(futures::stream::unfold(
            (bytes, Vec::<u8>::new()),
            |(mut bytes, mut buf)| async move {
                loop {
                    if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        if let Ok(ev) = serde_json::from_slice::<Event>(&line) {
                            return Some((ev, (bytes, buf)));
                        }
                        continue;
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                        _ => return None,
                    }
                }
            },
        ))
    }

    /// Attaches to an instance's serial console. The returned stream reads
    /// what the guest writes and writes keystrokes to the guest; it ends when
    /// the instance stops.
    pub async fn console(&self, name: &str) -> Result<DuplexStream, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| ClientError::Connect {
                socket: self.socket.display().to_string(),
                reason: e.to_string(),
            })?;
        let url = format!("ws://ferrovirt/1.0/instances/{}/console", enc(name));
        let (ws, _) = match tokio_tungstenite::client_async(url, stream).await {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp.body().clone().unwrap_or_default();
                return Err(match serde_json::from_slice::<ErrorBody>(&body) {
                    Ok(b) => ClientError::Api(b),
                    Err(_) => ClientError::Protocol(format!("HTTP {}", resp.status())),
                });
            }
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        };
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(pump(ws, theirs));
        Ok(ours)
    }
}

async fn pump(ws: tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>, local: DuplexStream) {
    let (mut sink, mut source) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(local);
    let mut buf = vec![0u8; 8192];
    loop {
        tokio::select! {
            msg = source.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if wr.write_all(&b).await.is_err() { break; }
                }
                Some(Ok(Message::Text(t))) => {
                    if wr.write_all(t.as_bytes()).await.is_err() { break; }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            n = rd.read(&mut buf) => match n {
                Ok(0) | Err(_) => { let _ = sink.send(Message::Close(None)).await; break; }
                Ok(n) => {
                    if sink.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() { break; }
                }
            },
        }
    }
    let _ = wr.shutdown().await;
}

/// Percent-encodes a path segment (names are validated by the daemon; this
/// only keeps odd input from changing the request path).
fn enc(segment: &str) -> String {
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

/// Encodes a join token for people to copy around.
pub fn encode_token(t: &ferrovirt_api::JoinToken) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(t).expect("token serializes"))
}

/// Decodes a join token.
pub fn decode_token(text: &str) -> Option<ferrovirt_api::JoinToken> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
