use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferrovirt_core::Error;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The console routes, registered once for the router and the OpenAPI document.
pub fn routes() -> OpenApiRouter<Daemon> {
    OpenApiRouter::new()
        .routes(routes!(attach))
        .routes(routes!(log))
}

/// Interactive serial console over a websocket: binary frames both ways.
#[utoipa::path(get, path = "/1.0/instances/{name}/console",
    responses((status = 101, description = "websocket of raw console bytes"),
              (status = 409, body = ferrovirt_api::ErrorBody)))]
pub async fn attach(
    State(d): State<Daemon>,
    Path(name): Path<String>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    d.record(&name).await?;
    let rt = d
        .runtime(&name)
        .ok_or_else(|| Error::conflict(format!("instance {name} is not running")))?;
    if rt.console.is_none() {
        return Err(Error::conflict(format!("instance {name} has no serial console")).into());
    }
    Ok(ws.on_upgrade(move |socket| pump(socket, rt)))
}

async fn pump(mut socket: WebSocket, rt: std::sync::Arc<crate::instance::live::Live>) {
    let Some(hub) = rt.console.as_ref() else {
        return;
    };
    let mut output = hub.subscribe();
    loop {
        tokio::select! {
            out = output.recv() => match out {
                Ok(bytes) => {
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) => hub.send(b).await,
                Some(Ok(Message::Text(t))) => hub.send(Bytes::from(t.as_str().to_owned())).await,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            () = rt.monitor().closed() => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    /// Only the last N bytes.
    tail: Option<u64>,
}

/// Logs of an instance: `console` (everything the guest wrote on its serial
/// console) or `qemu` (QEMU's own messages).
#[utoipa::path(get, path = "/1.0/instances/{name}/logs/{log}",
    params(("tail" = Option<u64>, Query)),
    responses((status = 200, description = "the log as text/plain")))]
pub async fn log(
    State(d): State<Daemon>,
    Path((name, log)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    d.record(&name).await?;
    let paths = d.paths(&name);
    let file = match log.as_str() {
        "console" => paths.console_log(),
        "qemu" => paths.qemu_log(),
        other => {
            return Err(ApiError(Error::not_found(format!(
                "instance {name} has no log {other:?}; logs are console and qemu"
            ))));
        }
    };
    // With `tail`, only the end is read (the console log reaches into its
    // rotated backups); without, the current file (capped in size).
    let read = tokio::task::spawn_blocking(move || match q.tail {
        Some(n) => crate::console_log::tail(&file, n),
        None => match std::fs::read(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            other => other,
        },
    })
    .await
    .map_err(|e| {
        ApiError(Error::internal(format!(
            "reading the {log} log failed: {e}"
        )))
    })?;
    let bytes = read.map_err(|e| {
        ApiError(Error::internal(format!(
            "cannot read the {log} log of instance {name}: {e}"
        )))
    })?;
    Ok(([("content-type", "text/plain; charset=utf-8")], bytes).into_response())
}
