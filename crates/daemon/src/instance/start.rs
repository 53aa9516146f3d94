//! Bringing an instance's QEMU up: launched paused and detached, monitor
//! and console attached and NICs plugged before any state is loaded or the
//! vCPUs run, so no guest output and no event is missed. A start that fails
//! or is cancelled (`stop --force`) leaves nothing running.

use std::sync::Arc;

use ferrovirt_api::{EventKind, InstanceStatus};
use ferrovirt_core::error::chain;
use ferrovirt_core::{Error, Reverter, accel};
use ferrovirt_qemu::{BootSource, Vm};

use super::handle::InstanceHandle;
use super::job::Job;
use super::live::Live;
use super::{job_err, qmp_err};
use crate::console::ConsoleHub;
use crate::daemon::Daemon;

/// Starts the instance of `h` from `source`; the caller holds its job.
pub async fn boot(
    d: &Daemon,
    h: &InstanceHandle,
    job: &Job,
    source: BootSource,
) -> Result<(), Error> {
    let name = h.name();
    if h.live().is_some() {
        return Err(Error::conflict(format!(
            "instance {name} is already running"
        )));
    }
    let started = tokio::select! {
        r = launch(d, h, job, source) => r?,
        () = job.cancelled() => {
            return Err(Error::conflict(format!("the start of {name} was cancelled")));
        }
    };
    let Started {
        live,
        events,
        incoming,
    } = started;
    let (status, reason, event) = if incoming {
        (InstanceStatus::Paused, "incoming migration", None)
    } else {
        (InstanceStatus::Running, "started", Some(EventKind::Started))
    };
    let vm = live.vm.clone();
    if let Err(e) = h.adopt(live, events, status, reason, event).await {
        vm.kill();
        vm.clean_runtime();
        return Err(e);
    }
    // A `stop --force` that came while the QEMU was being handed over.
    if job.is_preempted() {
        h.quit(InstanceStatus::Shutoff, "stopped by force", true)
            .await?;
        return Err(Error::conflict(format!(
            "the start of {name} was cancelled"
        )));
    }
    Ok(())
}

/// A QEMU brought up and ready to hand to the actor.
struct Started {
    live: Arc<Live>,
    events: ferrovirt_qemu::Events,
    incoming: bool,
}

async fn launch(
    d: &Daemon,
    h: &InstanceHandle,
    job: &Job,
    source: BootSource,
) -> Result<Started, Error> {
    let name = h.name();
    let rec = d.record(name).await?;
    let spec = &d.validate(rec.spec.into_inner())?;
    check_overcommit(d, spec).await?;
    crate::storage::volumes::check_pools(d, spec).await?;
    let qemu = d.qemu()?;
    let accel = accel::decide(spec.accel, &d.virt)?;
    let paths = d.paths(name);
    let chains = crate::storage::backing::chains(d, spec).await?;
    let cmd = ferrovirt_qemu::build_with(
        &qemu.binary,
        spec,
        &accel,
        &paths,
        &source.start_mode(),
        &chains,
    );
    let (vm, events) = Vm::spawn(&cmd, &paths)
        .await
        .map_err(|e| Error::internal(format!("cannot start instance {name}: {}", chain(&e))))?;
    let mut revert = Reverter::new();
    let undo = vm.clone();
    revert.add(move || {
        undo.kill();
        undo.clean_runtime();
    });
    let console = if spec.serial {
        Some(
            async { ConsoleHub::connect(&paths.console_socket(), d.console_log(name)?).await }
                .await
                .map_err(|e| {
                    Error::internal(format!("cannot attach the console of instance {name}: {e}"))
                })?,
        )
    } else {
        None
    };
    let _ = std::fs::write(
        paths.runtime_dir.join("accel.json"),
        serde_json::to_vec(&accel).unwrap_or_default(),
    );
    // NICs are plugged before any saved state is loaded: the state expects
    // the same devices.
    let cleanup_spec = spec.clone();
    let dd = d.clone();
    revert.add(move || {
        tokio::spawn(async move { crate::networks::nics::cleanup(&dd, &cleanup_spec).await });
    });
    let monitor = vm.monitor().clone();
    for nic in &spec.nics {
        crate::networks::nics::plug(d, &monitor, spec, nic).await?;
    }
    crate::throttle::apply_limits(&monitor, spec).await?;
    let report = |done: u64, total: u64| {
        job.progress(
            "loading the saved state",
            done as f64 * 100.0 / total.max(1) as f64,
            Some((done, total)),
        )
    };
    vm.load(&source, Some(&report), job.cancelled())
        .await
        .map_err(job_err("loading the saved state"))?;
    let incoming = matches!(source, BootSource::Incoming(_));
    if !incoming {
        if spec.balloon.is_some() {
            crate::resources::set_balloon(&monitor, spec).await?;
        }
        monitor.cont().await.map_err(qmp_err(name, "continue"))?;
    }
    revert.success();
    Ok(Started {
        live: Arc::new(Live { vm, accel, console }),
        events,
        incoming,
    })
}

/// The host policy: the memory of running instances may exceed the host's
/// by the configured ratio, no more.
async fn check_overcommit(d: &Daemon, spec: &ferrovirt_api::InstanceSpec) -> Result<(), Error> {
    let committed: u64 = d
        .store
        .list_instances()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.spec.name != spec.name && d.instances.is_active(&r.spec.name))
        .map(|r| r.spec.memory)
        .sum();
    let limit = (d.limits.memory_mib as f64 * d.config.memory_overcommit) as u64;
    if d.limits.memory_mib > 0 && committed + spec.memory > limit {
        return Err(Error::conflict(format!(
            "starting {} would commit {} MiB of memory, over the limit of {limit} MiB \
             (host {} MiB × overcommit ratio {}); stop other instances or raise --memory-overcommit",
            spec.name,
            committed + spec.memory,
            d.limits.memory_mib,
            d.config.memory_overcommit
        )));
    }
    Ok(())
}
