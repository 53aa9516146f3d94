//! `/1.0/events`: the live stream of lifecycle events.

use ferrovirt_api::Event;
use futures::{Stream, StreamExt};
use reqwest::Method;

use crate::transport::{Client, ClientError};

impl Client {
    /// The live event stream: one JSON event per line, decoded.
    pub async fn events(&self) -> Result<impl Stream<Item = Event> + use<>, ClientError> {
        let resp = self.send(Method::GET, "/1.0/events", None::<&()>).await?;
        Ok(events_of(resp.bytes_stream()))
    }
}

/// Splits a byte stream into lines and decodes each as an event; lines that
/// are not events (keep-alives) are skipped.
fn events_of<S, B, E>(bytes: S) -> impl Stream<Item = Event>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    futures::stream::unfold(
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
                    Some(Ok(chunk)) => buf.extend_from_slice(chunk.as_ref()),
                    _ => return None,
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_split_across_chunks_are_decoded_and_noise_skipped() {
        let line = r#"{"timestamp":"2026-01-01T00:00:00Z","kind":"started","instance":"web"}"#;
        let (a, b) = line.split_at(20);
        let chunks: Vec<Result<Vec<u8>, ()>> = vec![
            Ok(b"\n".to_vec()),
            Ok(a.as_bytes().to_vec()),
            Ok(format!("{b}\n{{\"noise\":1}}\n").into_bytes()),
            Ok(line.replace("started", "stopped").into_bytes()),
            Ok(b"\n".to_vec()),
        ];
        let events: Vec<Event> = events_of(futures::stream::iter(chunks)).collect().await;
        let kinds: Vec<_> = events
            .iter()
            .map(|e| (e.kind, e.instance.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ferrovirt_api::EventKind::Started, "web"),
                (ferrovirt_api::EventKind::Stopped, "web")
            ]
        );
    }
}
