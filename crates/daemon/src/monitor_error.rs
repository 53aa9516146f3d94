//! QEMU monitor failures as user-facing errors.

use ferrovirt_core::Error;
use ferrovirt_core::error::chain;
use ferrovirt_qemu::MonitorError;

/// `message` as an error of the kind the QEMU failure `e` is: a conflict
/// (a cancel, a guest that does not release a device, a full bus) or an
/// internal error.
pub fn classified(e: &MonitorError, message: String) -> Error {
    if e.is_conflict() {
        Error::conflict(message)
    } else {
        Error::internal(message)
    }
}

/// Maps a QEMU failure to an error: what was being done, and why.
pub fn monitor_error(what: &str, e: MonitorError) -> Error {
    let message = match &e {
        MonitorError::Cancelled => format!("{what} was cancelled"),
        MonitorError::Unplug { .. } | MonitorError::NoFreeSlot(_) => format!("{what}: {e}"),
        e => format!("{what} failed: {}", chain(e)),
    };
    classified(&e, message)
}

/// [`monitor_error`] for "cannot `doing` instance `name`".
pub fn qmp_err(name: &str, doing: &str) -> impl Fn(MonitorError) -> Error {
    let what = format!("cannot {doing} instance {name}");
    move |e| {
        let message = match &e {
            MonitorError::Unplug { .. } | MonitorError::NoFreeSlot(_) => e.to_string(),
            MonitorError::Cancelled => format!("{what}: it was cancelled"),
            e => format!("{what}: {}", chain(e)),
        };
        classified(&e, message)
    }
}

/// [`monitor_error`] for a job stage (`stage` says what it was doing).
pub fn job_err(stage: &str) -> impl Fn(MonitorError) -> Error + '_ {
    move |e| monitor_error(stage, e)
}
