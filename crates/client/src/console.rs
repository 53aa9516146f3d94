//! The serial console of an instance, over a websocket on the unix socket.

use ferrovirt_api::ErrorBody;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::Message;

use crate::transport::{Client, ClientError, enc};

impl Client {
    /// Attaches to an instance's serial console. The returned stream reads
    /// what the guest writes and writes keystrokes to the guest; it ends when
    /// the instance stops.
    pub async fn console(&self, name: &str) -> Result<DuplexStream, ClientError> {
        let socket = self.socket();
        let stream =
            tokio::net::UnixStream::connect(socket)
                .await
                .map_err(|e| ClientError::Connect {
                    socket: socket.display().to_string(),
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

/// Copies websocket frames to the local end and local bytes to the socket
/// until either side closes.
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
