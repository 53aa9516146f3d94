//! ferrovirtd: owns the host's VMs and serves the REST API on a unix socket.
//!
//! QEMUs run detached: stopping or killing the daemon leaves every VM
//! running, and the next start re-attaches to them (see `reconcile`).

mod access;
mod clone;
mod config;
mod console;
mod console_log;
mod daemon;
mod disks;
mod error;
mod events;
mod fault;
mod instance;
mod instances;
mod json;
mod migration;
mod monitor_error;
mod networks;
mod operations;
mod reconcile;
mod remote;
mod resources;
mod routes;
mod save;
mod save_file;
mod snapshots;
mod stats;
mod storage;
mod throttle;

use anyhow::{Context, bail};
use clap::Parser;
use tokio::net::UnixListener;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};
use crate::daemon::Daemon;

fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("FERROVIRT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Binds the API socket, refusing to steal it from a live daemon, and
/// opens it to the socket group.
async fn bind(config: &Config) -> anyhow::Result<UnixListener> {
    let socket = &config.socket;
    let group = access::socket_group(config.socket_group.as_deref())?;
    let dir = socket.parent().filter(|d| !d.as_os_str().is_empty());
    // The socket's dir is the daemon's when it is the runtime dir or the
    // daemon makes it; a dir someone else made keeps its mode.
    let own_dir = dir.is_some_and(|d| d == config.runtime_dir || !d.exists());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if socket.exists() {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            bail!("another ferrovirtd is already serving {}", socket.display());
        }
        std::fs::remove_file(socket)
            .with_context(|| format!("cannot remove the stale socket {}", socket.display()))?;
    }
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    access::share_socket(socket, own_dir, group)?;
    Ok(listener)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    init_logging(config.log_format);
    access::private_umask();
    for dir in [&config.state_dir, &config.runtime_dir] {
        access::own_dir(dir, 0o700)?;
    }
    let listener = bind(&config).await?;
    let store = ferrovirt_store::SqliteStore::open(&config.state_dir.join("state.db"))
        .await
        .context("cannot open the state database")?;
    let binary = config.qemu.clone();
    let cache = config.state_dir.join("cache").join("qemu-probe.json");
    let qemu = tokio::task::spawn_blocking(move || {
        ferrovirt_qemu::probe::probe_cached(&binary, &cache)
            .map_err(|e| ferrovirt_core::error::chain(&e))
    })
    .await?;
    match &qemu {
        Ok(q) => tracing::info!(binary = q.binary, version = q.version, "QEMU probed"),
        Err(e) => tracing::error!(error = e, "QEMU is unusable; instances cannot start"),
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "ferrovirt".into());
    let identity =
        ferrovirt_tls::Identity::load_or_create(&config.state_dir.join("tls"), "server", &hostname)
            .context("cannot load the TLS identity")?;
    let d = Daemon::new(config.clone(), Box::new(store), qemu, identity);
    let accel = ferrovirt_core::accel::decide(ferrovirt_api::Accelerator::Auto, &d.virt)?;
    tracing::info!(accel = accel.accel, reason = accel.reason, "accelerator");
    networks::reconcile(&d).await;
    if !config.no_default_network
        && let Err(e) = networks::ensure_default(&d).await
    {
        tracing::error!(error = %e, "cannot create the default network");
    }
    storage::reconcile(&d).await;
    if let Err(e) = storage::ensure_default(&d).await {
        tracing::error!(error = %e, "cannot create the default pool");
    }
    reconcile::reconcile(&d).await?;
    migration::reconcile(&d).await;
    tracing::info!(socket = %config.socket.display(), "serving the API");
    let app = routes::router(d.clone());
    release_startup_heap();
    if let Some(addr) = config.listen {
        let (d, app) = (d.clone(), app.clone());
        tokio::spawn(async move {
            if let Err(e) = remote::serve(d, addr, app).await {
                tracing::error!(error = %e, "the TLS listener failed");
            }
        });
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopping; running VMs keep running");
    Ok(())
}

/// Gives the heap that start-up used and freed (reconciliation, building
/// the OpenAPI document) back to the kernel: glibc keeps freed pages below
/// live allocations otherwise, about 2 MiB of the idle daemon's memory.
#[allow(unsafe_code)]
fn release_startup_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointers; it only walks the allocator's
    // own free lists and is thread-safe.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
