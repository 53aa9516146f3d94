//! Running host tools through the [`CommandRunner`] and turning their
//! failures into errors that say what was being done.

use ferrovirt_core::Error;
use ferrovirt_core::runner::{Command, CommandRunner, RunError};

/// The shared handle every driver runs its tools through.
pub type Runner = std::sync::Arc<dyn CommandRunner>;

/// Runs `cmd`; its stdout on success, `doing` and the tool's reason in the
/// error (LVM's activation warnings left out).
pub async fn run(runner: &dyn CommandRunner, doing: &str, cmd: Command) -> Result<String, Error> {
    runner
        .run(&cmd)
        .await
        .map(|out| out.stdout)
        .map_err(|e| failure(doing, &e))
}

/// The error of a failed tool run.
pub fn failure(doing: &str, e: &RunError) -> Error {
    let reason = e.reason();
    let lines: Vec<&str> = reason
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("WARNING: Activation disabled"))
        .collect();
    match e {
        RunError::Failed { .. } => Error::internal(format!("{doing}: {}", lines.join("; "))),
        other => Error::internal(format!("{doing}: {other}")),
    }
}
