//! Fault injection for crash tests: `FERROVIRT_FAULT=POINT` makes the
//! daemon SIGKILL itself when it reaches `POINT`, so a test can check what
//! a crash at exactly that instruction leaves behind. Unset in production.

/// The environment variable naming the fault point.
pub const ENV: &str = "FERROVIRT_FAULT";

/// Dies (SIGKILL, no clean-up at all) when `FERROVIRT_FAULT` is `point`.
pub fn point(point: &str) {
    if std::env::var(ENV).is_ok_and(|p| p == point) {
        tracing::warn!(point, "fault injection: killing the daemon");
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    }
}
