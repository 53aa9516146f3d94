//! Errors of the test-guest builder.

use std::path::PathBuf;

/// Why the test guest could not be built or located.
///
/// Every variant names the step that failed and the object it worked on, so a
/// failing test says what to fix (missing tool, stale apt lists, odd kernel…).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host tool (apt-get, dpkg-deb, xz, gzip…) could not be started.
    #[error("cannot run `{tool}` to {purpose}; is it installed and on PATH?")]
    ToolMissing {
        /// The program that was run.
        tool: String,
        /// What it was run for.
        purpose: String,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },

    /// Host tools a step needs are not installed (checked before starting).
    #[error(
        "cannot {purpose}: {tools} not found (looked in PATH, /usr/sbin and /sbin); install with `apt-get install {packages}` (see scripts/install-deps.sh)"
    )]
    ToolsNotInstalled {
        /// What the tools were needed for.
        purpose: String,
        /// The missing programs, comma-separated.
        tools: String,
        /// The Debian packages that provide them, space-separated.
        packages: String,
    },

    /// A host tool ran but failed.
    #[error("`{command}` failed ({status}) while trying to {purpose}: {stderr}")]
    ToolFailed {
        /// The command line that was run.
        command: String,
        /// What it was run for.
        purpose: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The tail of its standard error.
        stderr: String,
    },

    /// apt knows nothing usable about a package (no candidate, odd metadata).
    #[error("cannot resolve Debian package `{package}`: {reason}")]
    Package {
        /// The package asked for.
        package: String,
        /// What was wrong.
        reason: String,
    },

    /// A downloaded package does not match the checksum apt published for it.
    #[error(
        "downloaded package {path} has SHA-256 {actual}, but apt expects {expected}; delete it and retry"
    )]
    Checksum {
        /// The downloaded file.
        path: PathBuf,
        /// The checksum from the apt metadata.
        expected: String,
        /// The checksum of the file's contents.
        actual: String,
    },

    /// The Debian kernel image could not be turned into an ELF `vmlinux`.
    #[error("cannot turn kernel image {path} into an ELF vmlinux: {reason}")]
    Kernel {
        /// The kernel image (bzImage or decompressed ELF).
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// A kernel module the guest cannot work without is missing or broken.
    #[error("kernel module `{module}` cannot be put in the test guest: {reason}")]
    Module {
        /// The module name, as in `modinfo` (underscores).
        module: String,
        /// What was wrong.
        reason: String,
    },

    /// The extracted packages do not have the expected layout.
    #[error("unexpected package contents: {0}")]
    Layout(String),

    /// A file system operation failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done ("read", "create directory", "rename"…).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with the action and path it happened on.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

/// Result of the test-guest builder.
pub type Result<T, E = Error> = std::result::Result<T, E>;
