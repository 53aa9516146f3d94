//! The daemon's shared state and the small operations every part uses.

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use ferrovirt_api::{InstanceSpec, QemuInfo};
use ferrovirt_core::accel::HostVirt;
use ferrovirt_core::{CommandRunner, Error, HostLimits, InstanceLocks, TokioRunner, ValidSpec};
use ferrovirt_qemu::InstancePaths;
use ferrovirt_qemu::img::QemuImg;
use ferrovirt_store::{InstanceRecord, Store, StoreError};

use crate::config::Config;
use crate::events::EventBus;
use crate::instance::live::Live;
use crate::instance::registry::Instances;

/// Cheap handle on the daemon's state.
#[derive(Clone)]
pub struct Daemon(Arc<Inner>);

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").finish_non_exhaustive()
    }
}

pub struct Inner {
    pub config: Config,
    pub store: Box<dyn Store>,
    pub locks: InstanceLocks,
    pub events: EventBus,
    pub operations: crate::operations::Operations,
    /// Every instance's handle (its actor), by name.
    pub instances: Instances,
    /// The probed QEMU binary, or why it is unusable.
    pub qemu: Result<QemuInfo, String>,
    pub virt: HostVirt,
    pub limits: HostLimits,
    /// This host's TLS certificate: served on the TLS listener and presented
    /// to other hosts (migration).
    pub identity: ferrovirt_tls::Identity,
    /// Every external tool (ip, nft, dnsmasq, qemu-img, mount, lvm …) runs
    /// through this runner: the real tools, or a fake in tests.
    pub runner: Arc<dyn CommandRunner>,
}

impl std::ops::Deref for Daemon {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Maps a store failure to a user-facing error naming what was being done.
pub fn store_err(doing: &str) -> impl Fn(StoreError) -> Error + '_ {
    move |e| match e {
        StoreError::Duplicate(what) => Error::conflict(format!("{what} already exists")),
        other => Error::internal(format!(
            "{doing} failed: {}",
            ferrovirt_core::error::chain(&other)
        )),
    }
}

impl Daemon {
    pub fn new(
        config: Config,
        store: Box<dyn Store>,
        qemu: Result<QemuInfo, String>,
        identity: ferrovirt_tls::Identity,
    ) -> Self {
        Self::with_runner(config, store, qemu, identity, Arc::new(TokioRunner))
    }

    /// [`new`](Self::new) with the runner external tools go through.
    pub fn with_runner(
        config: Config,
        store: Box<dyn Store>,
        qemu: Result<QemuInfo, String>,
        identity: ferrovirt_tls::Identity,
        runner: Arc<dyn CommandRunner>,
    ) -> Self {
        let limits = HostLimits {
            memory_mib: ferrovirt_qemu::host::memory_mib(),
            cpu_models: qemu
                .as_ref()
                .map(|q| q.cpu_models.clone())
                .unwrap_or_default(),
        };
        Self(Arc::new(Inner {
            config,
            store,
            locks: InstanceLocks::default(),
            events: EventBus::default(),
            operations: Default::default(),
            instances: Instances::default(),
            qemu,
            virt: ferrovirt_qemu::host::virt(),
            limits,
            identity,
            runner,
        }))
    }

    pub fn paths(&self, name: &str) -> InstancePaths {
        InstancePaths::new(&self.config.runtime_dir, &self.config.state_dir, name)
    }

    /// Opens instance `name`'s console log for its console hub.
    pub fn console_log(&self, name: &str) -> std::io::Result<crate::console_log::RotatingLog> {
        crate::console_log::RotatingLog::open(
            &self.paths(name).console_log(),
            self.config.console_log_size,
        )
    }

    /// qemu-img through the daemon's command runner.
    pub fn img(&self) -> QemuImg<'_> {
        QemuImg::new(&*self.runner)
    }

    /// The probed QEMU, or a clear error when it is missing.
    pub fn qemu(&self) -> Result<&QemuInfo, Error> {
        self.qemu
            .as_ref()
            .map_err(|why| Error::internal(format!("QEMU is unusable: {why}")))
    }

    pub async fn record(&self, name: &str) -> Result<InstanceRecord, Error> {
        self.store
            .get_instance(name)
            .await
            .map_err(store_err("reading the instance"))?
            .ok_or_else(|| Error::not_found(format!("instance {name} does not exist")))
    }

    /// The live QEMU of instance `name`, if it runs.
    pub fn runtime(&self, name: &str) -> Option<Arc<Live>> {
        self.instances.get(name).and_then(|h| h.live())
    }

    pub fn now() -> chrono::DateTime<Utc> {
        Utc::now()
    }

    /// Forgets an instance that left this host (deleted, migrated away,
    /// an aborted incoming migration): its runtime and log dirs, its lock
    /// and its handle. Its record is the caller's to delete first.
    pub fn forget(&self, name: &str) {
        let paths = self.paths(name);
        ferrovirt_qemu::process::clean_runtime(&paths);
        let _ = std::fs::remove_dir_all(&paths.log_dir);
        self.locks.forget(name);
        self.instances.remove(name);
    }

    /// Validates a spec against this host.
    pub fn validate(&self, spec: InstanceSpec) -> Result<ValidSpec, Error> {
        ValidSpec::new(spec, &self.limits, &Self::path_exists)
    }

    /// Whether a host path exists (spec validation).
    pub fn path_exists(p: &Path) -> bool {
        p.exists()
    }
}
