//! Test support shared by Meterbook's integration tests.
//!
//! - [`spawn`]: a fresh SQLite store in a temporary directory, seeded by the
//!   test, served by `meterbook_server::serve` on 127.0.0.1:0 through a
//!   [`FaultyStore`], with a [`ManualClock`] so tests move time forward
//!   instead of sleeping.
//! - [`seed`]: enrollments with a hierarchy, price sheets, usage, API keys of
//!   any scope, portal users of any role.
//! - [`Browser`]: a signed-in portal session (its cookie and form token) that
//!   gets pages and posts forms.
//! - [`FaultyStore`]: the store, with switches that hold jobs off the queue,
//!   slow or break usage reads, or make them panic.
//!
//! A dev-dependency only: never a dependency of a shipped crate.

pub mod browser;
pub mod cluster;
pub mod faulty;
pub mod seed;

pub use browser::{csrf_of, Browser, Resp};
pub use faulty::{Faults, FaultyStore, UsageReads};
pub use meterbook_core::clock::{Clock, ManualClock};

use meterbook_server::{AppState, ServerSettings};
use meterbook_sqlite::SqliteStore;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings no test runs into by accident: rate limits and sign-in throttles
/// out of reach, idle report workers looking for work every 100 ms.
pub fn roomy() -> ServerSettings {
    let mut s = ServerSettings {
        rate_limit_per_sec: 100_000.0,
        rate_limit_burst: 100_000.0,
        ..Default::default()
    };
    s.portal.max_failures_per_account = 1000;
    s.portal.max_failures_per_address = 1000;
    s.jobs.poll = Duration::from_millis(100);
    s
}

/// A server under test; it stops when this is dropped.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub addr: SocketAddr,
    /// The store itself (the server reads it through [`TestApp::faults`]).
    pub store: Arc<SqliteStore>,
    /// No automatic decompression (bodies arrive as sent); redirects are
    /// followed unless [`Spawn::no_redirects`].
    pub client: reqwest::Client,
    /// The server's clock: it stands still until a test moves it.
    pub clock: ManualClock,
    /// Switches of the store the server reads.
    pub faults: Faults,
    /// The server's report directory.
    pub reports: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The temporary directory of the store and the reports (last to go).
    pub dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// How to start a [`TestApp`]: see [`spawn`].
pub struct Spawn {
    settings: ServerSettings,
    redirects: bool,
    held: bool,
    clock: ManualClock,
}

/// A server with [`roomy`] settings, a clock at the system's time, and an
/// HTTP client that follows redirects.
pub fn spawn() -> Spawn {
    Spawn {
        settings: roomy(),
        redirects: true,
        held: false,
        clock: ManualClock::now(),
    }
}

impl Spawn {
    pub fn settings(mut self, settings: ServerSettings) -> Spawn {
        self.settings = settings;
        self
    }

    /// The client sees redirects instead of following them (the portal's tests).
    pub fn no_redirects(mut self) -> Spawn {
        self.redirects = false;
        self
    }

    /// Report workers find nothing to claim until `faults.hold` is cleared.
    pub fn held(mut self) -> Spawn {
        self.held = true;
        self
    }

    /// Starts the clock at `unix_millis` instead of the system's time.
    pub fn clock_at(mut self, unix_millis: i64) -> Spawn {
        self.clock = ManualClock::at_millis(unix_millis);
        self
    }

    /// Serves an empty store.
    pub async fn start(self) -> TestApp {
        self.seed(|_, _| ()).await.0
    }

    /// Seeds the store with `f` (on the blocking pool; it gets the clock to
    /// date what it writes), then serves it.
    pub async fn seed<T: Send + 'static>(
        self,
        f: impl FnOnce(&SqliteStore, &ManualClock) -> T + Send + 'static,
    ) -> (TestApp, T) {
        let Spawn {
            mut settings,
            redirects,
            held,
            clock,
        } = self;
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Arc::new(SqliteStore::open(dir.path().join("meterbook.db")).expect("open store"));
        let (s, c) = (store.clone(), clock.clone());
        let seeded = tokio::task::spawn_blocking(move || f(&s, &c))
            .await
            .expect("seed");
        let reports = settings
            .report_dir
            .get_or_insert_with(|| dir.path().join("reports"))
            .clone();
        settings
            .export_root
            .get_or_insert_with(|| dir.path().join("exports").to_string_lossy().into_owned());
        let faults = Faults::default();
        faults.hold.store(held, std::sync::atomic::Ordering::SeqCst);
        let served = Arc::new(FaultyStore::new(store.clone(), faults.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let state = AppState::with_clock(served, settings, Arc::new(clock.clone())).expect("state");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(meterbook_server::serve(listener, state, async {
            let _ = rx.await;
        }));
        let mut client = reqwest::Client::builder().no_gzip();
        if !redirects {
            client = client.redirect(reqwest::redirect::Policy::none());
        }
        let app = TestApp {
            base: format!("http://{addr}"),
            addr,
            store,
            client: client.build().expect("client"),
            clock,
            faults,
            reports,
            shutdown: Some(tx),
            server: Some(server),
            dir,
        };
        (app, seeded)
    }
}

impl TestApp {
    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        Resp::read(rb.send().await.expect("request")).await
    }

    /// Sends a request and reads the answer as text.
    pub async fn send_text(&self, rb: reqwest::RequestBuilder) -> Resp<String> {
        self.send(rb).await.into_text()
    }

    /// Runs `f` with the store on the blocking pool.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> T + Send + 'static,
    ) -> T {
        let s = self.store.clone();
        tokio::task::spawn_blocking(move || f(&s))
            .await
            .expect("join")
    }

    /// Tells the server to stop (requests in flight finish first).
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits at most `patience` for the server to stop; its result.
    pub async fn stopped(&mut self, patience: Duration) -> std::io::Result<()> {
        let server = self.server.take().expect("the server was running");
        tokio::time::timeout(patience, server)
            .await
            .expect("the server stops in time")
            .expect("the server task ends without a panic")
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Unix seconds by the server's clock.
    pub fn now_unix(&self) -> i64 {
        self.clock.now_unix()
    }

    /// A browser that is not signed in (no cookie, no form token).
    pub fn browser(&self) -> Browser {
        Browser::new(self.client.clone(), self.base.clone())
    }
}

/// Polls `check` every 20 ms until it gives `Some`, for at most `patience`
/// (for work a real background task does: report workers, clean-up).
pub async fn eventually<T, F, Fut>(what: &str, patience: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < patience,
            "{what}: not within {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestApp {
    /// Signs `email` in with `pw` and reads the form token from the first
    /// page the user reaches.
    pub async fn sign_in(&self, email: &str, pw: &str) -> Browser {
        let mut b = self.browser();
        b.sign_in(email, pw).await;
        b.read_csrf_from_home().await;
        b
    }
}
