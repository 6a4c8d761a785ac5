//! Serving a finished report's file, to the API (with a key or a signed link)
//! and to the portal: HEAD, a single byte Range, ETag and the file's own name
//! and type, streamed.

use crate::{ApiError, AppState};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use meterbook_core::jobs::Job;
use meterbook_jobs::{FileState, Manifest};
use serde_json::Value;

/// A single byte range of a `Range` header: `Ok(None)` to serve the whole
/// file (no header, several ranges, or one we don't understand, as RFC 9110
/// allows), `Err` when the range lies outside the file (416).
fn byte_range(h: Option<&HeaderValue>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = h.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => match num(b) {
            Some(0) => Err(()),
            Some(n) if len > 0 => Ok(Some((len - n.min(len), len - 1))),
            Some(_) => Err(()),
            None => Ok(None),
        },
        (false, _) => {
            let Some(start) = num(a) else { return Ok(None) };
            let end = if b.trim().is_empty() {
                len.saturating_sub(1)
            } else {
                match num(b) {
                    Some(e) if e >= start => e.min(len.saturating_sub(1)),
                    _ => return Ok(None),
                }
            };
            if start >= len {
                Err(())
            } else {
                Ok(Some((start, end)))
            }
        }
        _ => Ok(None),
    }
}

impl AppState {
    /// A job's file as the API serves it (HEAD, Range, ETag), for the portal,
    /// whose routes live outside this module.
    pub(crate) async fn serve_job_file(
        &self,
        job: &Job,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let id = job.id.clone();
        let (_, file) = self.run(move |app| app.linked_report(&id)).await?;
        serve_file(self, job, file, method, headers).await
    }
}

pub(crate) async fn serve_file(
    state: &AppState,
    job: &Job,
    file_state: FileState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if !job.status.has_file() {
        return Err(ApiError::Conflict(format!(
            "the report is not ready to download: {}{}",
            job.status.name(),
            job.error
                .as_deref()
                .map_or(String::new(), |e| format!(" ({e})"))
        )));
    }
    let manifest_text = job.manifest.clone().unwrap_or_default();
    let m = Manifest::parse(&manifest_text)
        .ok_or_else(|| ApiError::Internal(format!("job {} has no readable manifest", job.id)))?;
    let extra: Value = serde_json::from_str(&manifest_text).unwrap_or(Value::Null);
    // A file made while its role could see costs is not served once the
    // enrollment hides them from that role: the figures would leak.
    if file_state == FileState::Withheld {
        return Err(ApiError::Gone(
            FileState::Withheld.reason().unwrap_or_default().into(),
        ));
    }
    let download_name = extra["downloadName"]
        .as_str()
        .unwrap_or(&m.file)
        .to_string();
    let content_type = extra["contentType"]
        .as_str()
        .unwrap_or("application/octet-stream")
        .to_string();
    let runner = state.reports().runner.clone();
    let name = m.file.clone();
    let file = tokio::task::spawn_blocking(move || runner.files().open(&name))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("cannot open report file: {e}")))?
        .ok_or_else(|| ApiError::Gone(FileState::Gone.reason().unwrap_or_default().into()))?;
    let len = file.len;
    let etag = format!("\"{}\"", m.sha256);
    let mut res_headers = HeaderMap::new();
    let mut put = |k: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            res_headers.insert(k, v);
        }
    };
    put(header::ETAG, &etag);
    put(header::ACCEPT_RANGES, "bytes");
    put(header::CONTENT_TYPE, &content_type);
    put(header::CACHE_CONTROL, "private, no-transform");
    put(
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"{download_name}\""),
    );
    let matches = |v: &HeaderValue| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
            .unwrap_or(false)
    };
    if headers.get(header::IF_NONE_MATCH).is_some_and(matches) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        res.headers_mut().extend(res_headers);
        return Ok(res);
    }
    // If-Range: the range applies only to the same version of the file.
    let range_header = match headers.get(header::IF_RANGE) {
        Some(v) if v.to_str().map(|s| s.trim() != etag).unwrap_or(true) => None,
        _ => headers.get(header::RANGE),
    };
    let (status, start, end) = match byte_range(range_header, len) {
        Ok(None) => (StatusCode::OK, 0, len.saturating_sub(1)),
        Ok(Some((a, b))) => {
            put(header::CONTENT_RANGE, &format!("bytes {a}-{b}/{len}"));
            (StatusCode::PARTIAL_CONTENT, a, b)
        }
        Err(()) => {
            // An error body: only the range headers of the file apply to it.
            let mut res = ApiError::RangeNotSatisfiable(format!(
                "the requested range is outside the file ({len} bytes)"
            ))
            .into_response();
            let h = res.headers_mut();
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            return Ok(res);
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    put(header::CONTENT_LENGTH, &count.to_string());
    let body = if *method == Method::HEAD || count == 0 {
        Body::empty()
    } else {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let mut reader = file.reader;
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            let mut left = count;
            if let Err(e) = reader.seek(SeekFrom::Start(start)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let mut buf = vec![0u8; 256 * 1024];
            while left > 0 {
                let want = buf.len().min(left as usize);
                match reader.read(&mut buf[..want]) {
                    Ok(0) => {
                        let _ = tx.blocking_send(Err(std::io::Error::other("file ended early")));
                        return;
                    }
                    Ok(k) => {
                        left -= k as u64;
                        if tx
                            .blocking_send(Ok(Bytes::copy_from_slice(&buf[..k])))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    };
    let mut res = (status, body).into_response();
    res.headers_mut().extend(res_headers);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::byte_range;
    use axum::http::HeaderValue;

    fn r(s: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
        byte_range(Some(&HeaderValue::from_str(s).unwrap()), len)
    }

    #[test]
    fn ranges() {
        assert_eq!(byte_range(None, 10), Ok(None));
        assert_eq!(r("bytes=0-3", 10), Ok(Some((0, 3))));
        assert_eq!(r("bytes=4-", 10), Ok(Some((4, 9))));
        assert_eq!(r("bytes=-3", 10), Ok(Some((7, 9))));
        assert_eq!(r("bytes=-30", 10), Ok(Some((0, 9))));
        assert_eq!(r("bytes=5-100", 10), Ok(Some((5, 9))));
        assert_eq!(r("bytes=10-", 10), Err(()));
        assert_eq!(r("bytes=-0", 10), Err(()));
        assert_eq!(r("bytes=0-1,3-4", 10), Ok(None));
        assert_eq!(r("bytes=3-1", 10), Ok(None));
        assert_eq!(r("items=0-1", 10), Ok(None));
        assert_eq!(r("bytes=x-1", 10), Ok(None));
        assert_eq!(r("bytes=0-", 0), Err(()));
    }
}
