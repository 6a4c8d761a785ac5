//! serve: the HTTP server on a tokio runtime, stopped cleanly by SIGINT/SIGTERM.

use crate::cli::ServeArgs;
use crate::settings::Settings;
use anyhow::{Context, Result};
use meterbook_server::{AppState, ServerSettings};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

fn server_settings(settings: &Settings, a: &ServeArgs) -> ServerSettings {
    let g = &a.guard;
    let secs = std::time::Duration::from_secs;
    let mut jobs = settings.jobs.clone();
    jobs.workers = a.report_workers.max(1);
    jobs.max_active_per_requester = g.report_max_active_per_requester.max(1);
    jobs.max_bytes_per_requester = g.report_max_bytes_per_requester;
    ServerSettings {
        key_default_days: a.key_default_days,
        key_max_days: a.key_max_days,
        rate_limit_per_sec: a.rate_limit,
        rate_limit_burst: a.rate_burst,
        jobs,
        report_dir: Some(settings.report_dir.clone()),
        export_root: Some(settings.export_root.clone()),
        link_lifetime: std::time::Duration::from_secs(a.link_lifetime_days.max(1) * 24 * 3600),
        portal: meterbook_server::portal::PortalSettings {
            idle_timeout: std::time::Duration::from_secs(a.session_idle_minutes.max(1) * 60),
            absolute_timeout: std::time::Duration::from_secs(a.session_max_hours.max(1) * 3600),
            secure_cookies: a.secure_cookies,
            ..Default::default()
        },
        limits: meterbook_server::Limits {
            max_upload_bytes: g.max_upload_bytes,
            max_body_bytes: g.max_body_bytes,
            max_query_bytes: g.max_query_bytes,
            max_query_params: g.max_query_params,
            max_header_bytes: g.max_header_bytes,
            max_headers: g.max_headers,
            body_idle_timeout: secs(g.body_idle_timeout_secs.max(1)),
            request_timeout: secs(g.request_timeout_secs.max(1)),
            header_read_timeout: secs(g.header_read_timeout_secs.max(1)),
        },
        trusted_proxies: g.trusted_proxies.clone(),
        public_url: a.public_url.clone(),
        notify: notify_settings(&a.notify, a.public_url.as_ref()),
    }
}

/// The notifier's settings from `serve`'s options.
pub(crate) fn notify_settings(
    o: &crate::cli::NotifyOpts,
    public_url: Option<&meterbook_server::PublicUrl>,
) -> meterbook_server::NotifySettings {
    let timeout = std::time::Duration::from_secs(o.notify_timeout_secs.max(1));
    let smtp = o.smtp_relay.as_ref().map(|relay| {
        let (host, port) = match relay.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().unwrap_or(25)),
            None => (relay.clone(), 25),
        };
        meterbook_notify::SmtpSettings {
            host,
            port,
            from: o.smtp_from.clone(),
            timeout,
            starttls: o.smtp_starttls,
            credentials: o
                .smtp_user
                .clone()
                .zip(o.smtp_password.clone())
                .map(|(user, password)| meterbook_notify::SmtpCredentials { user, password }),
        }
    });
    let defaults = meterbook_server::NotifySettings::default();
    meterbook_server::NotifySettings {
        enabled: o.notify_interval_secs > 0,
        interval: std::time::Duration::from_secs(o.notify_interval_secs.max(1)),
        transport: meterbook_app::deliver::Transport {
            smtp,
            webhooks: meterbook_notify::WebhookClient::new(timeout, o.webhook_allow_private),
            backoff: meterbook_notify::Backoff::DEFAULT,
            // Message-IDs name the deployment's own host where it has one.
            message_host: public_url
                .and_then(|u| u.as_str().split_once("://"))
                .and_then(|(_, rest)| rest.split(['/', ':']).next())
                .filter(|h| !h.is_empty())
                .map_or(defaults.transport.message_host.clone(), str::to_string),
        },
        ..defaults
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Serves until SIGINT/SIGTERM. `banner` is printed once the socket listens.
pub fn run(settings: &Settings, a: &ServeArgs, banner: Option<&dyn Fn(&str)>) -> Result<()> {
    crate::logging::init(&a.log)?;
    let store = super::open(settings)?;
    // Tells `restore` that a server has the database open (released at exit).
    let _in_use = match &settings.store {
        crate::settings::StoreConfig::Embedded(db) => {
            Some(meterbook_sqlite::ServerLock::shared(db)?)
        }
        crate::settings::StoreConfig::Cluster { .. } => None,
    };
    let files = super::report_store(settings)?;
    let state = AppState::with_report_files(
        store,
        server_settings(settings, a),
        meterbook_core::clock::system(),
        files,
    )
    .with_context(|| {
        format!(
            "cannot use the report directory {} or the export root {}",
            settings.report_dir.display(),
            settings.export_root
        )
    })?;
    state
        .app()
        .set_export_root(super::exports::export_root(settings)?);
    let exports = ExportTicker::start(state.app(), a.export_interval_seconds);
    // The last reference to the state, so the store is dropped here, outside
    // the runtime: the PostgreSQL client closes its connections by blocking
    // on a runtime of its own, which tokio refuses inside another (on the
    // cluster, `serve` aborted at every SIGTERM).
    let last = state.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let served = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        match banner {
            Some(b) => b(&base),
            // The first line says where to connect; in the log's own format,
            // so a collector of JSON lines never meets a line of text.
            None => match a.log.log_format {
                crate::cli::LogFormat::Json => eprintln!(
                    "{}",
                    serde_json::json!({
                        "timestamp": super::now_rfc3339(),
                        "level": "INFO",
                        "message": format!("meterbook serving {base}"),
                        "url": base,
                        "database": settings.store.describe(),
                    })
                ),
                crate::cli::LogFormat::Text => eprintln!(
                    "meterbook serving {base} (database {})",
                    settings.store.describe()
                ),
            },
        }
        meterbook_server::serve(listener, state, shutdown_signal()).await?;
        Ok(())
    });
    drop(rt);
    exports.stop();
    drop(last);
    served
}

/// Runs due scheduled exports every `interval` seconds on a thread of its
/// own (an export is minutes of disk work; the HTTP runtime stays free),
/// first at start, so what was missed while the server was down is caught
/// up at once. Several nodes may all tick: each run key is claimed once.
struct ExportTicker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ExportTicker {
    fn start(app: &meterbook_app::App, interval: u64) -> ExportTicker {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let runner = app.export_runner().filter(|_| interval > 0);
        let thread = runner.map(|runner| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("exports".into())
                .spawn(move || loop {
                    match runner.run_due(None) {
                        Ok(ran) => {
                            for r in ran {
                                tracing::info!(
                                    schedule = %r.schedule.id,
                                    key = %r.run.run_key,
                                    status = r.run.status.name(),
                                    "export run"
                                );
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot run due exports"),
                    }
                    let (lock, cv) = &*stop;
                    let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                    let (guard, _) = cv
                        .wait_timeout_while(guard, Duration::from_secs(interval), |s| !*s)
                        .unwrap_or_else(|e| e.into_inner());
                    if *guard {
                        break;
                    }
                })
                .expect("spawn the exports thread")
        });
        ExportTicker { stop, thread }
    }

    /// Stops ticking; a run in progress finishes first.
    fn stop(mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
