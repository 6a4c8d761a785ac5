//! One way to stream a response body that is written on a blocking thread:
//! bytes go through a bounded channel, so memory stays flat, and a client that
//! goes away stops the writer at its next chunk.

use axum::body::Body;
use bytes::Bytes;
use std::io::Write;

/// Chunks in flight between the writer and the response.
const IN_FLIGHT: usize = 4;

/// A body whose bytes `write` produces on the blocking pool. An error after
/// the response has started ends the body early (the client sees a broken
/// transfer, never a complete-looking file); it is logged as `what`.
pub fn body<F, E>(what: &'static str, write: F) -> Body
where
    F: FnOnce(&mut (dyn Write + Send)) -> Result<(), E> + Send + 'static,
    E: std::fmt::Display,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter { tx: tx.clone() };
        if let Err(e) = write(&mut w) {
            tracing::warn!(error = %e, "{what} ended early");
            let _ = tx.blocking_send(Err(std::io::Error::other(format!("{what} failed"))));
        }
    });
    Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
