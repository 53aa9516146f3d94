//! Async client of the Ferrovirt REST API over the daemon's unix socket or
//! mutual TLS.
//!
//! One module per resource adds its methods to [`Client`]; [`transport`]
//! holds the connection and the request plumbing. Bodies are the
//! `ferrovirt-api` wire types. Errors from the daemon come back as
//! [`ClientError::Api`] carrying the daemon's JSON error body unchanged, so
//! callers can show its sentence and the offending field.

mod console;
mod devices;
mod events;
mod host;
mod instances;
mod migrations;
mod networks;
mod operations;
mod snapshots;
mod stats;
mod storage;
mod transport;

pub use host::{decode_token, encode_token};
pub use instances::SpecBody;
pub use transport::{Client, ClientError, DEFAULT_SOCKET};
