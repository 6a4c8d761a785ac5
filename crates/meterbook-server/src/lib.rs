//! Meterbook's HTTP server: the Reporting API with the request shapes and
//! field names of the Enterprise Agreement Reporting API v3, reached with API
//! access keys, and the legacy `usage-report` endpoint.
//!
//! A library with a thin caller: `meterbook serve` builds an [`AppState`] and
//! calls [`serve`]; tests do the same on port 0.
//!
//! Handlers reach data only through the use-case layer (`meterbook-app`): a
//! caller is resolved once into a scoped handle, and the handler translates
//! the request and renders the answer. The layer is synchronous (so is the
//! store); handlers run it on the blocking pool ([`AppState::run`]), and
//! downloads stream from a blocking task through a bounded channel
//! ([`streaming`]), so memory stays flat and the async workers never block.
#![forbid(unsafe_code)]

pub mod auth;
pub mod client_addr;
pub mod error;
pub use meterbook_app::credentials as keys;
pub mod limits;
pub mod links;
pub mod metrics;
pub mod notifier;
pub mod openapi;
/// Public only for the fuzz targets (query-string parsing).
#[doc(hidden)]
pub mod params;
pub mod portal;
pub mod public_url;
mod routes;
mod spool;
pub(crate) mod streaming;
/// Public only for the fuzz targets.
#[doc(hidden)]
pub use routes::forecast::forecast_json;
pub use routes::parse_day_or_time;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use meterbook_core::store::Store;
use std::future::Future;
use std::sync::Arc;
use tower::Layer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use client_addr::TrustedProxies;
pub use error::ApiError;
pub use limits::Limits;
pub use notifier::NotifySettings;
pub use public_url::PublicUrl;

/// Server settings (part of the binary's one settings struct).
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Lifetime of a new API key when the request names none.
    pub key_default_days: u32,
    /// The longest lifetime an API key may have (set by the operator).
    pub key_max_days: u32,
    /// Sustained requests per second allowed per key.
    pub rate_limit_per_sec: f64,
    /// Requests a key may make in a burst above the sustained rate.
    pub rate_limit_burst: f64,
    /// Advanced report jobs: workers, time limit, lease, retention.
    pub jobs: meterbook_jobs::JobSettings,
    /// Where finished reports are kept; `None`: a temporary directory that
    /// lives as long as the server (for tests).
    pub report_dir: Option<std::path::PathBuf>,
    /// Where scheduled exports go (a directory, or `s3://…` with the `s3`
    /// feature); `None`: not set here (`serve` sets it on the app itself).
    pub export_root: Option<String>,
    /// How long a download link works.
    pub link_lifetime: std::time::Duration,
    /// Sessions, cookies and sign-in throttling of the portal.
    pub portal: portal::PortalSettings,
    /// Bounds on what clients send, and timeouts.
    pub limits: Limits,
    /// Reverse proxies whose `X-Forwarded-For` gives the client's address.
    pub trusted_proxies: TrustedProxies,
    /// Where clients reach the deployment: every absolute link is made on
    /// it. `None`: on the request's `Host` header (see [`public_url`]).
    pub public_url: Option<PublicUrl>,
    /// Budgets, alerts and data events: the notifier thread and how it sends.
    pub notify: NotifySettings,
}

impl ServerSettings {
    /// How long API keys live.
    pub fn key_lifetime(&self) -> meterbook_app::keys::KeyLifetime {
        meterbook_app::keys::KeyLifetime {
            default_days: self.key_default_days,
            max_days: self.key_max_days,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            key_default_days: 183,
            key_max_days: 730,
            rate_limit_per_sec: 100.0,
            rate_limit_burst: 200.0,
            jobs: Default::default(),
            report_dir: None,
            export_root: None,
            link_lifetime: std::time::Duration::from_secs(7 * 24 * 3600),
            portal: Default::default(),
            limits: Default::default(),
            trusted_proxies: Default::default(),
            public_url: None,
            notify: NotifySettings::default(),
        }
    }
}

/// Shared state of the server.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    /// The use-case layer: the only way handlers reach data.
    app: meterbook_app::App,
    settings: ServerSettings,
    /// Every key's token bucket ([`ServerSettings::rate_limit_per_sec`] and
    /// burst, in exact thousandths). The buckets themselves, the sign-in
    /// throttles and the new keys waiting to be shown are the store's
    /// ([`meterbook_app::App::shared`]): every node of a deployment sees them.
    rate: meterbook_core::shared::TokenRate,
    reports: Reports,
    metrics: metrics::Metrics,
    /// Stopped when dropped (its thread holds a use-case layer of its own).
    notifier: Option<notifier::Notifier>,
}

/// Advanced reports: the job runner (the use-case layer's), its workers,
/// and the link secret.
pub(crate) struct Reports {
    pub runner: Arc<meterbook_jobs::Runner>,
    pub workers: meterbook_jobs::Workers,
    pub link_secret: Vec<u8>,
    /// The temporary report directory, when none was configured.
    _tmp: Option<tempfile::TempDir>,
}

impl AppState {
    /// Builds the state and starts the report workers (they stop when the
    /// last clone of the state is dropped).
    pub fn new(store: Arc<dyn Store>, settings: ServerSettings) -> std::io::Result<AppState> {
        AppState::with_clock(store, settings, meterbook_core::clock::system())
    }

    /// [`AppState::new`] with time from `clock` (tests move it instead of sleeping).
    pub fn with_clock(
        store: Arc<dyn Store>,
        settings: ServerSettings,
        clock: Arc<dyn meterbook_core::clock::Clock>,
    ) -> std::io::Result<AppState> {
        AppState::with_report_files(store, settings, clock, None)
    }

    /// [`AppState::with_clock`], keeping finished reports in `files` (an
    /// object store every node reaches) instead of `settings.report_dir`.
    pub fn with_report_files(
        store: Arc<dyn Store>,
        settings: ServerSettings,
        clock: Arc<dyn meterbook_core::clock::Clock>,
        files: Option<Arc<dyn meterbook_jobs::ReportFiles>>,
    ) -> std::io::Result<AppState> {
        let (files, tmp): (Arc<dyn meterbook_jobs::ReportFiles>, _) =
            match (files, &settings.report_dir) {
                (Some(f), _) => (f, None),
                (None, Some(d)) => (Arc::new(meterbook_jobs::DirReportFiles::new(d)?), None),
                (None, None) => {
                    let t = tempfile::tempdir()?;
                    (
                        Arc::new(meterbook_jobs::DirReportFiles::new(t.path())?),
                        Some(t),
                    )
                }
            };
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| std::io::Error::other(e.to_string()))?;
        let app = meterbook_app::App::new(store.clone(), files, settings.jobs.clone(), clock);
        if let Some(root) = &settings.export_root {
            app.set_export_root(meterbook_jobs::exports::export_root(root)?);
        }
        let link_secret = app
            .secret("download-link-hmac", &fresh)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let runner = app.runner().clone();
        let reports = Reports {
            workers: meterbook_jobs::Workers::start(runner.clone()),
            runner,
            link_secret,
            _tmp: tmp,
        };
        let notifier = settings
            .notify
            .enabled
            .then(|| notifier::Notifier::start(app.clone(), settings.notify.clone()));
        Ok(AppState {
            inner: Arc::new(Inner {
                notifier,
                metrics: metrics::Metrics::new(),
                reports,
                rate: meterbook_core::shared::TokenRate::from_tokens(
                    settings.rate_limit_per_sec,
                    settings.rate_limit_burst,
                ),
                app,
                settings,
            }),
        })
    }

    /// Every API key's (and operator token's) token bucket.
    pub(crate) fn rate(&self) -> meterbook_core::shared::TokenRate {
        self.inner.rate
    }

    pub(crate) fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// Runs a notifier round now (usage arrived, a period closed), on this
    /// node; without a notifier, nothing.
    pub(crate) fn wake_notifier(&self) {
        if let Some(n) = &self.inner.notifier {
            n.wake();
        }
    }

    pub(crate) fn reports(&self) -> &Reports {
        &self.inner.reports
    }

    pub fn settings(&self) -> &ServerSettings {
        &self.inner.settings
    }

    /// The use-case layer.
    pub fn app(&self) -> &meterbook_app::App {
        &self.inner.app
    }

    /// The clock every time-based decision reads (the use-case layer's).
    pub fn clock(&self) -> &Arc<dyn meterbook_core::clock::Clock> {
        self.inner.app.clock()
    }

    /// Unix seconds now, by [`AppState::clock`].
    pub fn now_unix(&self) -> i64 {
        self.clock().now_unix()
    }

    /// Runs use-case work (synchronous, it reads the store) on the blocking
    /// pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&meterbook_app::App) -> Result<T, meterbook_app::AppError> + Send + 'static,
    {
        let app = self.inner.app.clone();
        tokio::task::spawn_blocking(move || f(&app))
            .await
            .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
            .map_err(ApiError::from)
    }
}

/// The routes, with request ids, request logs, compression, metrics and the
/// bounds of [`limits`].
pub fn router(state: AppState) -> Router {
    let limits = state.settings().limits.clone();
    routes::routes(&limits)
        .layer(from_fn_with_state(state.clone(), limits::guard))
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(state)
        .layer(from_fn(limits::uniform_errors))
        .layer(CompressionLayer::new().compress_when(DefaultPredicate::new().and(not_ranged)))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // Method, path and request id; never headers (they carry keys) or the query's secrets.
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        })
        // One line a request at `info`: status and latency (an access log).
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Files served with byte ranges go out as stored: compressing them would
/// break `Range` and `Content-Length`.
fn not_ranged(
    _: axum::http::StatusCode,
    _: axum::http::Version,
    h: &axum::http::HeaderMap,
    _: &axum::http::Extensions,
) -> bool {
    !h.contains_key(axum::http::header::ACCEPT_RANGES)
}

/// Serves until `shutdown` resolves; in-flight requests finish first.
///
/// The connection loop is hyper's own (rather than `axum::serve`) for the
/// settings axum does not expose: a timeout on reading a request's headers,
/// and caps on their number and size above the JSON-answered bounds of
/// [`limits::guard`] (hyper answers a bare 431 past them and closes).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.settings().limits.clone();
    // Paths match case-insensitively (clients spell `billingPeriods` both ways):
    // the URI is normalised before routing.
    let app = tower::util::MapRequestLayer::new(params::normalize_path).layer(router(state));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new))
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_headers(limits.max_headers.saturating_mul(2).max(100))
            .max_header_size(2 * (limits.max_header_bytes + limits.max_query_bytes) + 16_384);
        let conn =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
