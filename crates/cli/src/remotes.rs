//! The CLI's own TLS identity and its list of remote hosts, kept in the
//! config dir (`--config-dir`, FERROVIRT_CONFIG_DIR, default
//! `~/.config/ferrovirt`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ferrovirt_client::Client;
use serde::{Deserialize, Serialize};

/// A registered remote host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Remote {
    /// `host:port` of its TLS listener.
    pub address: String,
    /// SHA-256 of its certificate.
    pub fingerprint: String,
}

pub fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".config/ferrovirt")
}

pub fn identity(dir: &Path) -> anyhow::Result<ferrovirt_tls::Identity> {
    ferrovirt_tls::Identity::load_or_create(dir, "client", "ferrovirt-cli")
        .context("cannot load the CLI's TLS identity")
}

fn file(dir: &Path) -> PathBuf {
    dir.join("remotes.json")
}

pub fn load(dir: &Path) -> anyhow::Result<BTreeMap<String, Remote>> {
    match std::fs::read(file(dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is corrupt", file(dir).display())),
        Err(_) => Ok(BTreeMap::new()),
    }
}

pub fn save(dir: &Path, remotes: &BTreeMap<String, Remote>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(file(dir), serde_json::to_vec_pretty(remotes)?)?;
    Ok(())
}

/// A client of remote `name`.
pub fn client(dir: &Path, name: &str) -> anyhow::Result<Client> {
    let remotes = load(dir)?;
    let Some(r) = remotes.get(name) else {
        bail!(
            "no remote {name}; add it with `ferrovirt remote add {name} HOST:PORT --token TOKEN`"
        );
    };
    Ok(Client::remote(&r.address, &identity(dir)?, &r.fingerprint)?)
}

/// Joins a remote with a token: trusts its certificate (from the token) and
/// gets ours trusted.
pub async fn add(
    dir: &Path,
    name: &str,
    address: Option<String>,
    token: &str,
) -> anyhow::Result<Remote> {
    ferrovirt_core_name_check(name)?;
    let t =
        ferrovirt_client::decode_token(token).context("the token is not a Ferrovirt join token")?;
    let address = address
        .or_else(|| t.addresses.first().cloned())
        .context("the token names no address; give HOST:PORT")?;
    let mut remotes = load(dir)?;
    if remotes.contains_key(name) {
        bail!("remote {name} already exists; remove it first");
    }
    let id = identity(dir)?;
    let c = Client::remote(&address, &id, &t.fingerprint)?;
    c.redeem_token(&t.secret).await?;
    let r = Remote {
        address,
        fingerprint: t.fingerprint,
    };
    remotes.insert(name.to_owned(), r.clone());
    save(dir, &remotes)?;
    Ok(r)
}

fn ferrovirt_core_name_check(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!("remote name {name:?}: only lowercase letters, digits and '-'");
    }
    Ok(())
}
