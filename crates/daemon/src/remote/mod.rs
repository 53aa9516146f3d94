//! The API over TLS for other hosts and remote CLIs.
//!
//! Every connection presents a client certificate (mutual TLS, see
//! `ferrovirt_tls`). Each request is let through only when that
//! certificate is within its validity period and its fingerprint is
//! trusted — except `POST /1.0/host/trust`, which trusts the caller in
//! exchange for a one-time join token — and then only as far as its role
//! allows ([`policy`]). Requests over the unix socket carry no peer and are
//! local root's. Every request from a TLS peer is audited ([`audit`]).

mod audit;
mod authz;
mod filter;
mod host_paths;
mod listener;
mod policy;
mod restricted;
mod tokens;

pub use authz::authorize;
pub use listener::serve;
pub use tokens::{new_token, redeem, untrust};

/// The peer of a TLS connection, attached to each of its requests.
#[derive(Debug, Clone)]
pub struct Peer {
    pub fingerprint: String,
    /// When its certificate is valid; `None` if it does not parse as X.509.
    pub validity: Option<ferrovirt_tls::Validity>,
}
