//! Running host tools and turning their failures into errors that say what
//! was being done.

use ferrovirt_core::Error;

/// Runs `program args…`; its stdout on success, its stderr in the error.
pub async fn run(doing: &str, program: &str, args: &[&str]) -> Result<String, Error> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::internal(format!("{doing}: cannot run {program}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let msg: Vec<&str> = err
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("WARNING: Activation disabled"))
            .collect();
        return Err(Error::internal(format!("{doing}: {}", msg.join("; "))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
