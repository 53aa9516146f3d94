//! QMP framing: bytes from the socket become lines, lines become messages.
//! Pure, so arbitrary input (a confused or compromised QEMU) is testable:
//! nothing here panics, a line split anywhere across reads parses the same,
//! and a line that is not UTF-8 or not JSON is skipped, never the end of
//! the connection.

use serde_json::Value;

use crate::{Error, QmpEvent};

/// Longest line kept: a longer one (no QMP reply comes near it) is dropped
/// instead of growing the buffer without bound.
pub const MAX_LINE: usize = 32 << 20;

/// Splits a byte stream into lines (without their `\n`).
#[derive(Debug, Default)]
pub struct LineFramer {
    buf: Vec<u8>,
    /// Set while the rest of an over-long line is being skipped.
    skipping: bool,
}

impl LineFramer {
    /// Takes the next bytes read; returns the lines they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            if !self.skipping && self.buf.len() + end <= MAX_LINE {
                self.buf.extend_from_slice(&bytes[..end]);
                lines.push(std::mem::take(&mut self.buf));
            } else {
                tracing::warn!("dropping a QMP line longer than {MAX_LINE} bytes");
                self.buf.clear();
            }
            self.skipping = false;
            bytes = &bytes[end + 1..];
        }
        if !self.skipping {
            if self.buf.len() + bytes.len() > MAX_LINE {
                self.buf.clear();
                self.skipping = true;
            } else {
                self.buf.extend_from_slice(bytes);
            }
        }
        lines
    }
}

/// What one QMP line says.
#[derive(Debug)]
pub enum Message {
    /// An asynchronous event.
    Event(QmpEvent),
    /// The reply to command `id`: its `return`, or QEMU's error (with an
    /// empty command name, filled in by the caller).
    Reply {
        id: u64,
        result: Result<Value, Error>,
    },
    /// Anything else: not JSON, no id, a greeting.
    Ignored,
}

/// Parses one line.
pub fn parse(line: &[u8]) -> Message {
    let Ok(msg) = serde_json::from_slice::<Value>(line) else {
        tracing::warn!(line = %String::from_utf8_lossy(line), "ignoring a QMP line that is not JSON");
        return Message::Ignored;
    };
    if msg.get("event").is_some() {
        return match serde_json::from_value::<QmpEvent>(msg) {
            Ok(event) => Message::Event(event),
            Err(_) => Message::Ignored,
        };
    }
    let Some(id) = msg.get("id").and_then(Value::as_u64) else {
        return Message::Ignored;
    };
    let result = match msg.get("return") {
        Some(ret) => Ok(ret.clone()),
        None => {
            let err = msg.get("error").cloned().unwrap_or_default();
            Err(Error::Command {
                command: String::new(),
                class: err["class"].as_str().unwrap_or("GenericError").to_owned(),
                desc: err["desc"].as_str().unwrap_or("unknown error").to_owned(),
            })
        }
    };
    Message::Reply { id, result }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lines_split_across_reads_and_bad_lines_are_skipped() {
        let mut f = LineFramer::default();
        assert!(f.push(b"{\"return\": {}, ").is_empty());
        let lines = f.push(b"\"id\": 7}\n\xff\xfe\n{\"event\": \"STOP\"}\n");
        assert_eq!(lines.len(), 3);
        assert!(matches!(
            parse(&lines[0]),
            Message::Reply {
                id: 7,
                result: Ok(_)
            }
        ));
        assert!(matches!(parse(&lines[1]), Message::Ignored));
        assert!(matches!(parse(&lines[2]), Message::Event(e) if e.event == "STOP"));
        let err = parse(br#"{"error": {"class": "DeviceNotFound", "desc": "no"}, "id": 2}"#);
        assert!(
            matches!(err, Message::Reply { id: 2, result: Err(Error::Command { class, .. }) } if class == "DeviceNotFound")
        );
    }

    #[test]
    fn an_over_long_line_is_dropped_and_the_next_one_kept() {
        let mut f = LineFramer::default();
        let chunk = vec![b'x'; MAX_LINE / 2 + 1];
        assert!(f.push(&chunk).is_empty());
        assert!(f.push(&chunk).is_empty());
        let lines = f.push(b"tail\n{\"id\": 1, \"return\": 3}\n");
        assert_eq!(lines, vec![b"{\"id\": 1, \"return\": 3}".to_vec()]);
    }

    fn reply() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".*".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(".{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes, read in arbitrary pieces, never panic.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut f = LineFramer::default();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            at.sort_unstable();
            let mut start = 0;
            for end in at.into_iter().chain([bytes.len()]) {
                for line in f.push(&bytes[start..end]) {
                    let _ = parse(&line);
                }
                start = end;
            }
        }

        /// A reply split at any point parses to what was sent.
        #[test]
        fn a_reply_split_anywhere_parses(ret in reply(), id in any::<u64>(), cut in any::<prop::sample::Index>()) {
            let line = format!("{}\n", serde_json::json!({"return": ret, "id": id}));
            let cut = cut.index(line.len() + 1);
            let mut f = LineFramer::default();
            let mut lines = f.push(&line.as_bytes()[..cut]);
            lines.extend(f.push(&line.as_bytes()[cut..]));
            prop_assert_eq!(lines.len(), 1);
            match parse(&lines[0]) {
                Message::Reply { id: got, result: Ok(v) } => {
                    prop_assert_eq!(got, id);
                    prop_assert_eq!(v, ret);
                }
                other => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
