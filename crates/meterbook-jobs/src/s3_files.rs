//! Report files in an S3-compatible bucket, for deployments of several nodes:
//! a report written by one node's worker is downloaded through any node.
//!
//! # Configuration
//!
//! [`S3ReportFiles::from_url`] takes
//! `s3://BUCKET[/PREFIX]?endpoint=http://127.0.0.1:9000&region=eu-west-1`.
//! Files are kept under `PREFIX/` (none: the bucket's root). Both parameters
//! are optional: without `endpoint` the store is AWS's own (from the region);
//! an `http://` endpoint is allowed (a store on the same host or network), and
//! the bucket is addressed in the path (`ENDPOINT/BUCKET/KEY`), which
//! S3-compatible servers expect. Any other parameter is refused, so a typo does
//! not go unnoticed. Credentials and the remaining settings come from the
//! standard AWS environment variables: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` /
//! `AWS_DEFAULT_REGION` (the URL's `region` wins), and, on EC2 or ECS without
//! keys, the instance's or task's role.
//!
//! # How a file is written
//!
//! A file becomes visible under its name only when committed, whole, as with
//! [`crate::DirReportFiles`]. Writes are buffered in memory up to
//! [`PART_SIZE`]: a file that never fills a part is stored with one PUT at
//! commit, which S3 applies atomically. A larger file is a multipart upload to
//! its final key, one part per [`PART_SIZE`] written, completed at commit (S3
//! shows the object only then) and aborted when the pending file is dropped
//! uncommitted.
//!
//! A process that dies mid-upload leaves an unfinished multipart upload, which
//! S3 keeps (and bills) until aborted, and which a plain listing does not show.
//! So each multipart upload is recorded in a small marker object,
//! `PREFIX/.partial/TOKEN` (its key and upload id), while it lasts;
//! [`ReportFiles::sweep_partial`] aborts the uploads of markers older than
//! [`PARTIAL_GRACE`] and deletes the markers. The grace keeps one node's
//! start-up sweep from aborting another node's upload in flight: a writer
//! refreshes its marker at least every [`MARKER_REFRESH`] while it writes. A
//! lifecycle rule on the bucket that aborts incomplete multipart uploads after a
//! day or so is still a good second net.
//!
//! # Runtime
//!
//! The trait is synchronous and called from blocking threads (report workers,
//! `spawn_blocking` in the server), while `object_store` is async. Each
//! [`S3ReportFiles`] owns a small tokio runtime with one worker thread; a call
//! spawns its request there and waits on a channel. Unlike `block_on` on a
//! current-thread runtime or on a borrowed `Handle`, this neither panics when
//! called from inside another runtime nor depends on the caller having one;
//! at worst such a caller's thread waits, as for any blocking I/O. The runtime
//! is shut down without waiting when the last handle to it (the store or a
//! reader it opened) is dropped, which is safe from async code too.
//!
//! Reading is by ranges of [`READ_CHUNK`], pinned to the object's ETag, so the
//! download route's seeks (HTTP Range requests) cost one request each and a
//! file replaced meanwhile is an error rather than a mix of two files.

use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use crate::files::{check_name, PendingFile, ReportFile, ReportFiles};

/// Size of a multipart upload's parts (S3's minimum is 5 MiB) and so the most a
/// pending file holds in memory.
pub const PART_SIZE: usize = 8 << 20;
/// Bytes fetched by one ranged GET while reading.
pub const READ_CHUNK: u64 = 4 << 20;
/// How old a partial upload's marker must be before `sweep_partial` aborts it.
pub const PARTIAL_GRACE: Duration = Duration::from_secs(30 * 60);
/// How often a writer refreshes its marker while writing.
pub const MARKER_REFRESH: Duration = Duration::from_secs(5 * 60);

const PARTIAL_DIR: &str = ".partial";

/// Report files in an S3-compatible bucket; see the module's documentation.
#[derive(Clone)]
pub struct S3ReportFiles {
    inner: Arc<Inner>,
    partial_grace: Duration,
}

struct Inner {
    store: Arc<AmazonS3>,
    prefix: Option<Path>,
    // An Option only so that Drop can take it; always Some before.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Dropping a runtime blocks, which panics inside async code.
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for S3ReportFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The store's Display names bucket and endpoint, never credentials.
        write!(f, "S3ReportFiles({})", self.inner.store)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl Inner {
    /// Runs a request on the private runtime and waits for its answer.
    fn run<F>(&self, fut: F) -> io::Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let rt = self.runtime.as_ref().expect("runtime until drop");
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| io::Error::other("the S3 client's runtime stopped"))
    }

    fn key(&self, name: &str) -> Path {
        match &self.prefix {
            Some(p) => p.clone().join(name),
            None => Path::from(name),
        }
    }

    fn partial_dir(&self) -> Path {
        self.key(PARTIAL_DIR)
    }
}

impl S3ReportFiles {
    /// A store from `s3://BUCKET[/PREFIX][?endpoint=URL][&region=REGION]`,
    /// credentials from the AWS environment variables (see the module's
    /// documentation). Nothing is sent until the first call; a URL that does
    /// not parse, or a parameter other than `endpoint` and `region`, is an
    /// `InvalidInput` error.
    pub fn from_url(url: &str) -> io::Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| invalid(format!("not a URL: {e}")))?;
        if parsed.scheme() != "s3" {
            return Err(invalid("an S3 URL starts with s3://".into()));
        }
        let bucket = parsed
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("an S3 URL names its bucket: s3://BUCKET/PREFIX".into()))?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (k, v) in parsed.query_pairs() {
            match &*k {
                "endpoint" => {
                    let allow_http = v.starts_with("http://");
                    builder = builder.with_endpoint(&*v).with_allow_http(allow_http);
                }
                "region" => builder = builder.with_region(&*v),
                other => {
                    return Err(invalid(format!(
                        "unknown S3 URL parameter {other:?} (known: endpoint, region)"
                    )))
                }
            }
        }
        let prefix = parsed.path().trim_matches('/');
        let prefix = if prefix.is_empty() {
            None
        } else {
            Some(Path::parse(prefix).map_err(|e| invalid(format!("bad S3 key prefix: {e}")))?)
        };
        let store = builder
            .build()
            .map_err(|e| invalid(format!("S3 settings: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("report-files-s3")
            .enable_all()
            .build()?;
        Ok(S3ReportFiles {
            inner: Arc::new(Inner {
                store: Arc::new(store),
                prefix,
                runtime: Some(runtime),
            }),
            partial_grace: PARTIAL_GRACE,
        })
    }
}

impl S3ReportFiles {
    /// How old a partial upload's marker must be before `sweep_partial`
    /// aborts the upload ([`PARTIAL_GRACE`] unless set). Keep it well above
    /// [`MARKER_REFRESH`] when several nodes share the bucket: a shorter grace
    /// lets one node's sweep abort another's upload in flight. Tests set 0.
    pub fn with_partial_grace(mut self, grace: Duration) -> Self {
        self.partial_grace = grace;
        self
    }
}

impl ReportFiles for S3ReportFiles {
    fn create(&self, name: &str) -> io::Result<Box<dyn PendingFile>> {
        check_name(name)?;
        Ok(Box::new(S3Pending {
            inner: self.inner.clone(),
            key: self.inner.key(name),
            buf: Vec::new(),
            upload: None,
            committed: false,
        }))
    }

    fn open(&self, name: &str) -> io::Result<Option<ReportFile>> {
        check_name(name)?;
        let key = self.inner.key(name);
        let store = self.inner.store.clone();
        let head = {
            let key = key.clone();
            self.inner.run(async move { store.head(&key).await })?
        };
        let meta = match head {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(ReportFile {
            len: meta.size,
            reader: Box::new(S3Reader {
                inner: self.inner.clone(),
                key,
                len: meta.size,
                e_tag: meta.e_tag,
                pos: 0,
                chunk: bytes_empty(),
                chunk_start: 0,
            }),
        }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        let key = self.inner.key(name);
        let store = self.inner.store.clone();
        match self.inner.run(async move { store.delete(&key).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn sweep_partial(&self) -> io::Result<usize> {
        let store = self.inner.store.clone();
        let dir = self.inner.partial_dir();
        let cutoff = chrono::Duration::from_std(self.partial_grace)
            .ok()
            .and_then(|g| chrono::Utc::now().checked_sub_signed(g))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        self.inner.run(async move {
            let listed = store.list_with_delimiter(Some(&dir)).await?;
            let mut swept = 0;
            for marker in listed.objects {
                if marker.last_modified > cutoff {
                    continue;
                }
                let body = store.get(&marker.location).await?.bytes().await?;
                if let Some((key, id)) = parse_marker(&body) {
                    match store.abort_multipart(&key, &id).await {
                        // Gone already: completed or aborted just before the
                        // writer could delete its marker.
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, marker = %marker.location, "cannot abort a partial report upload");
                            continue;
                        }
                    }
                }
                match store.delete(&marker.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => swept += 1,
                    Err(e) => return Err(io::Error::from(e)),
                }
            }
            Ok(swept)
        })?
    }
}

fn bytes_empty() -> bytes::Bytes {
    bytes::Bytes::new()
}

/// A marker's body: the upload's key on the first line, its id on the second.
fn marker_body(key: &Path, id: &str) -> String {
    format!("{key}\n{id}\n")
}

fn parse_marker(body: &[u8]) -> Option<(Path, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut lines = text.lines();
    let key = Path::parse(lines.next()?).ok()?;
    let id = lines.next()?.to_string();
    (!id.is_empty()).then_some((key, id))
}

struct Upload {
    id: String,
    parts: Vec<PartId>,
    marker: Path,
    marker_written: Instant,
}

struct S3Pending {
    inner: Arc<Inner>,
    key: Path,
    buf: Vec<u8>,
    upload: Option<Upload>,
    committed: bool,
}

impl S3Pending {
    /// Uploads the buffer as the next part, starting the multipart upload (and
    /// its marker) on the first.
    fn upload_part(&mut self) -> io::Result<()> {
        let store = self.inner.store.clone();
        if self.upload.is_none() {
            let (key, marker) = (self.key.clone(), self.new_marker_key());
            let (s, m) = (store.clone(), marker.clone());
            let id = self.inner.run(async move {
                let id = s.create_multipart(&key).await?;
                // If the marker cannot be written, abort: an upload nobody can
                // find again must not be left behind.
                if let Err(e) = s.put(&m, marker_body(&key, &id).into()).await {
                    let _ = s.abort_multipart(&key, &id).await;
                    return Err(e);
                }
                Ok::<_, object_store::Error>(id)
            })??;
            self.upload = Some(Upload {
                id,
                parts: Vec::new(),
                marker,
                marker_written: Instant::now(),
            });
        }
        let up = self.upload.as_mut().expect("just started");
        let data = PutPayload::from(std::mem::take(&mut self.buf));
        let (key, id, idx) = (self.key.clone(), up.id.clone(), up.parts.len());
        let refresh = (up.marker_written.elapsed() >= MARKER_REFRESH)
            .then(|| (up.marker.clone(), marker_body(&self.key, &up.id)));
        let part = self.inner.run(async move {
            if let Some((marker, body)) = refresh {
                store.put(&marker, body.into()).await?;
            }
            store.put_part(&key, &id, idx, data).await
        })??;
        if up.marker_written.elapsed() >= MARKER_REFRESH {
            up.marker_written = Instant::now();
        }
        up.parts.push(part);
        self.buf.reserve(PART_SIZE);
        Ok(())
    }

    fn new_marker_key(&self) -> Path {
        self.inner.partial_dir().join(crate::new_job_id())
    }
}

impl Write for S3Pending {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = PART_SIZE - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PART_SIZE {
            self.upload_part()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Parts must be at least 5 MiB: nothing to send before one is full.
        Ok(())
    }
}

impl PendingFile for S3Pending {
    fn commit(mut self: Box<Self>) -> io::Result<()> {
        let store = self.inner.store.clone();
        let key = self.key.clone();
        match self.upload.take() {
            None => {
                // One PUT: S3 shows all of it or nothing.
                let data = PutPayload::from(std::mem::take(&mut self.buf));
                self.inner
                    .run(async move { store.put(&key, data).await })??;
            }
            Some(mut up) => {
                let last = std::mem::take(&mut self.buf);
                let (id, marker) = (up.id.clone(), up.marker.clone());
                let mut parts = std::mem::take(&mut up.parts);
                // Put back so that Drop aborts it if completing fails.
                self.upload = Some(up);
                let done = self.inner.run(async move {
                    if !last.is_empty() {
                        parts.push(store.put_part(&key, &id, parts.len(), last.into()).await?);
                    }
                    store.complete_multipart(&key, &id, parts).await?;
                    // The object is whole now; a marker left by a failure here
                    // is swept later (aborting a finished upload is a no-op).
                    let _ = store.delete(&marker).await;
                    Ok::<_, object_store::Error>(())
                })?;
                done?;
                self.upload = None;
            }
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for S3Pending {
    fn drop(&mut self) {
        let Some(up) = self.upload.take() else {
            return;
        };
        if self.committed {
            return;
        }
        let (store, key) = (self.inner.store.clone(), self.key.clone());
        let r = self.inner.run(async move {
            store.abort_multipart(&key, &up.id).await?;
            store.delete(&up.marker).await
        });
        if let Err(e) = r.and_then(|r| r.map_err(io::Error::from)) {
            // The marker stays; sweep_partial retries later.
            tracing::warn!(error = %e, "cannot abort an unfinished report upload");
        }
    }
}

struct S3Reader {
    inner: Arc<Inner>,
    key: Path,
    len: u64,
    e_tag: Option<String>,
    pos: u64,
    chunk: bytes::Bytes,
    chunk_start: u64,
}

impl Read for S3Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || out.is_empty() {
            return Ok(0);
        }
        let in_chunk =
            self.pos >= self.chunk_start && self.pos < self.chunk_start + self.chunk.len() as u64;
        if !in_chunk {
            let end = (self.pos + READ_CHUNK).min(self.len);
            let opts = GetOptions {
                range: Some(GetRange::Bounded(self.pos..end)),
                if_match: self.e_tag.clone(),
                ..Default::default()
            };
            let (store, key) = (self.inner.store.clone(), self.key.clone());
            let chunk = self.inner.run(async move {
                let got = store.get_opts(&key, opts).await?;
                got.bytes().await
            })??;
            if chunk.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the report file ended early",
                ));
            }
            self.chunk = chunk;
            self.chunk_start = self.pos;
        }
        let off = (self.pos - self.chunk_start) as usize;
        let n = out.len().min(self.chunk.len() - off);
        out[..n].copy_from_slice(&self.chunk[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for S3Reader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| invalid("seek before the start of the file".into()))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        for bad in [
            "http://bucket/x",
            "s3:///x",
            "s3://bucket/x?endpont=http://127.0.0.1:1",
            "not a url",
        ] {
            let e = S3ReportFiles::from_url(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        let s = S3ReportFiles::from_url(
            "s3://reports/meterbook/prod?endpoint=http://127.0.0.1:1&region=eu-west-1",
        )
        .unwrap();
        assert_eq!(
            s.inner.key("a.csv").as_ref(),
            "meterbook/prod/a.csv",
            "the prefix is kept"
        );
        let root = S3ReportFiles::from_url("s3://reports?region=us-east-1").unwrap();
        assert_eq!(root.inner.key("a.csv").as_ref(), "a.csv");
        assert!(root.create("../x").is_err());
    }

    #[test]
    fn markers_round_trip() {
        let key = Path::from("p/a.csv");
        let body = marker_body(&key, "upload-1");
        assert_eq!(
            parse_marker(body.as_bytes()),
            Some((key, "upload-1".into()))
        );
        assert_eq!(parse_marker(b"p/a.csv\n"), None);
        assert_eq!(parse_marker(&[0xff, 0xfe]), None);
    }
}
