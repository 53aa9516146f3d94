//! QEMU monitor failures as user-facing errors.

use ferrovirt_core::Error;
use ferrovirt_core::error::chain;

/// Maps a QEMU failure to an error: what was being done, and why. A
/// cancel, a guest that does not release a device and a full bus are
/// conflicts; the rest are internal errors.
pub fn monitor_error(what: &str, e: ferrovirt_qemu::MonitorError) -> Error {
    use ferrovirt_qemu::MonitorError as M;
    match e {
        M::Cancelled => Error::conflict(format!("{what} was cancelled")),
        M::Unplug { .. } | M::NoFreeSlot(_) => Error::conflict(format!("{what}: {e}")),
        e => Error::internal(format!("{what} failed: {}", chain(&e))),
    }
}

/// [`monitor_error`] for "cannot `doing` instance `name`".
pub fn qmp_err(name: &str, doing: &str) -> impl Fn(ferrovirt_qemu::MonitorError) -> Error {
    let what = format!("cannot {doing} instance {name}");
    move |e| match e {
        ferrovirt_qemu::MonitorError::Unplug { .. }
        | ferrovirt_qemu::MonitorError::NoFreeSlot(_) => Error::conflict(e.to_string()),
        ferrovirt_qemu::MonitorError::Cancelled => {
            Error::conflict(format!("{what}: it was cancelled"))
        }
        e => Error::internal(format!("{what}: {}", chain(&e))),
    }
}

/// [`monitor_error`] for a job stage (`stage` says what it was doing).
pub fn job_err(stage: &str) -> impl Fn(ferrovirt_qemu::MonitorError) -> Error + '_ {
    move |e| monitor_error(stage, e)
}
