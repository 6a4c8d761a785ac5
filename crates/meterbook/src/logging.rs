//! Logs to stderr, as text or as JSON lines (`--log-format`, `MB_LOG_FORMAT`).
//! Text is coloured only when stderr is a terminal: a log file or a
//! collector gets no ANSI escapes.

use crate::cli::{LogArgs, LogFormat};
use anyhow::{Context, Result};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the process's subscriber; a second call keeps the first one.
pub fn init(a: &LogArgs) -> Result<()> {
    let filter = EnvFilter::try_new(&a.log)
        .with_context(|| format!("--log (MB_LOG) `{}` is not a log filter", a.log))?;
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match a.log_format {
        // One object a line; the event's fields at the top level, the
        // request span (method, path, request id) under "span".
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
    Ok(())
}
