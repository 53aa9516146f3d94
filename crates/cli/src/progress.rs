//! Waiting for operations, with a progress bar (percent, rate, ETA).

use std::io::IsTerminal;

use ferrovirt_api::{Operation, OperationStatus};
use ferrovirt_client::{Client, ClientError};
use indicatif::{ProgressBar, ProgressStyle};

/// Waits for `op` unless `detach`; prints the operation id when detached.
pub async fn follow(c: &Client, op: Operation, detach: bool) -> anyhow::Result<Operation> {
    if detach {
        println!("Operation {} started: {}", op.id, op.description);
        return Ok(op);
    }
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(10_000);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg:30} [{bar:30}] {percent:>3}% {prefix}")
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_message(op.description.clone());
        Some(bar)
    } else {
        None
    };
    let id = op.id.to_string();
    let op = loop {
        let op = c.wait_operation(&id, 0.5).await?;
        if let (Some(bar), Some(p)) = (&bar, &op.progress) {
            bar.set_position((p.percent * 100.0) as u64);
            bar.set_message(p.stage.clone());
            bar.set_prefix(rate_eta(p.rate, p.eta_seconds));
        }
        if op.status.is_final() {
            break op;
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match op.status {
        OperationStatus::Success => Ok(op),
        _ => Err(ClientError::Api(ferrovirt_api::ErrorBody {
            error: op
                .error
                .clone()
                .unwrap_or_else(|| format!("{} did not finish", op.description)),
            code: 500,
            details: None,
        })
        .into()),
    }
}

fn rate_eta(rate: Option<f64>, eta: Option<f64>) -> String {
    let mut out = String::new();
    if let Some(r) = rate {
        out.push_str(&format!("{:.1} MiB/s", r / (1 << 20) as f64));
    }
    if let Some(e) = eta {
        out.push_str(&format!(" ETA {e:.0}s"));
    }
    out
}
