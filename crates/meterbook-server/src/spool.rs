//! Operator uploads are received in full before anything is stored: the body
//! goes to an anonymous temporary file (removed when it is dropped), bounded
//! in size and with an idle timeout between chunks. Only then does the ingest
//! take the store's single write connection, so a client that pauses or
//! stalls mid-upload never blocks the server's other writes (key generation,
//! sign-ins, report jobs). Memory stays flat whatever the upload's size.

use crate::limits::Limits;
use crate::ApiError;
use axum::body::Body;
use futures_util::StreamExt;
use std::io::Seek;
use tokio::io::AsyncWriteExt;

/// Writes `body` to a temporary file and returns it at its start: 413 past `max_upload_bytes`, 408 when
/// no bytes arrive for `body_idle_timeout`.
pub async fn receive(body: Body, limits: &Limits) -> Result<std::fs::File, ApiError> {
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "the upload is larger than {} bytes (--max-upload-bytes); nothing was stored",
            limits.max_upload_bytes
        ))
    };
    // A declared length over the bound is refused before reading a byte.
    if axum::body::HttpBody::size_hint(&body).lower() > limits.max_upload_bytes {
        return Err(too_large());
    }
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| ApiError::Internal(format!("spool task failed: {e}")))?
        .map_err(|e| ApiError::Internal(format!("cannot create the upload's spool file: {e}")))?;
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
    let mut stream = body.into_data_stream();
    let mut bytes: u64 = 0;
    let io =
        |e: std::io::Error| ApiError::Internal(format!("writing the upload's spool file: {e}"));
    loop {
        let chunk = match tokio::time::timeout(limits.body_idle_timeout, stream.next()).await {
            Err(_) => {
                return Err(ApiError::RequestTimeout(format!(
                    "the upload sent nothing for {} s after {bytes} bytes; nothing was stored",
                    limits.body_idle_timeout.as_secs()
                )))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::BadRequest(format!(
                "the upload's body could not be read after {bytes} bytes: {e}; nothing was stored"
            )))
            }
            Ok(Some(Ok(c))) => c,
        };
        bytes += chunk.len() as u64;
        if bytes > limits.max_upload_bytes {
            return Err(too_large());
        }
        out.write_all(&chunk).await.map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    let mut file = out.into_inner().into_std().await;
    tokio::task::spawn_blocking(move || {
        file.rewind()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("spool task failed: {e}")))?
    .map_err(io)
}
