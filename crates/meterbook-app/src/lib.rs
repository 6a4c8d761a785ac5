//! Meterbook's use-case layer: everything a user, an API client or an operator
//! can ask of Meterbook, one function each, between the stores and the three
//! front ends (CLI, Reporting API, portal).
//!
//! **Rights are types.** A caller is resolved once — from an API key
//! ([`App::key`]), a portal role ([`App::role`]) or operator rights
//! ([`App::operator`]) — into an [`Access`]: one enrollment, a reach (the
//! enterprise, a department, an account), whether costs show, whether it may
//! change anything. Only an `Access` exposes an enrollment's data, and only
//! within its reach; what needs more than reading is behind a narrower handle
//! obtained from it ([`Access::enterprise`] for balances and price sheets,
//! [`Access::writer`] for keys, [`Access::admin`] for users, settings and the
//! hierarchy). Front ends never see the store: no value of this API means
//! "everything" unless it was obtained as the operator.
//!
//! **Money is computed here, once.** Statements come from the ledger (and a
//! cache keyed by the data version); every total shown elsewhere is a
//! statement's figure or a report's rounded figure, and parts are allocated
//! from it ([`meterbook_core::figures`]) so they add up. Front ends format.
//!
//! The store is synchronous; so is this layer. The server calls it on its
//! blocking pool.
#![forbid(unsafe_code)]

pub mod access;
pub mod analysis;
pub mod budgets;
pub mod credentials;
pub mod deliver;
pub mod error;
pub mod exports;
pub mod feeds;
pub mod forecast;
pub mod hierarchy;
pub mod jobs;
pub mod keys;
pub mod monthly;
pub mod notifications;
pub mod operator;
pub mod password;
pub mod reads;
pub mod sessions;
pub mod settings;
pub mod span;
pub mod users;
pub mod views;

pub use access::{Access, Actor, Admin, Enterprise, Operator, Writer};
pub use error::{AppError, AppResult};
pub use span::Span;

use meterbook_core::clock::Clock;
use meterbook_core::statement::Statement;
use meterbook_core::store::Store;
use meterbook_core::Period;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The use-case layer of one deployment: the store, the clock, the report
/// runner and the statement cache. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    runner: Arc<meterbook_jobs::Runner>,
    statements: StatementCache,
    /// Where scheduled exports go (`--export-root`); none: they do not run.
    export_root: std::sync::RwLock<Option<Arc<dyn meterbook_jobs::exports::ExportRoot>>>,
}

impl App {
    /// The layer over `store`, with advanced reports kept in `files`.
    pub fn new(
        store: Arc<dyn Store>,
        files: Arc<dyn meterbook_jobs::ReportFiles>,
        jobs: meterbook_jobs::JobSettings,
        clock: Arc<dyn Clock>,
    ) -> App {
        let runner = Arc::new(meterbook_jobs::Runner::with_clock(
            store.clone(),
            files,
            jobs,
            clock.clone(),
        ));
        App {
            inner: Arc::new(Inner {
                store,
                clock,
                runner,
                statements: StatementCache::default(),
                export_root: Default::default(),
            }),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The report runner (the server starts its workers on it).
    pub fn runner(&self) -> &Arc<meterbook_jobs::Runner> {
        &self.inner.runner
    }

    /// Whether the store answers and its schema is current (readiness).
    pub fn check_ready(&self) -> AppResult<()> {
        Ok(self.inner.store.check_ready()?)
    }

    /// A named secret of the deployment, made from `fresh` the first time
    /// (download-link signing key).
    pub fn secret(&self, name: &str, fresh: &[u8]) -> AppResult<Vec<u8>> {
        Ok(self.inner.store.secret(name, fresh)?)
    }

    /// What the server's requests share across every node of the deployment:
    /// sign-in throttles, rate limits, new keys waiting to be shown (the
    /// store's part of it, and nothing more of the store).
    pub fn shared(&self) -> &dyn meterbook_core::shared::SharedState {
        self.inner.store.as_ref()
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub(crate) fn store_arc(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The statement of `period`, from the cache while the data is unchanged.
    pub(crate) fn statement(
        &self,
        e: &meterbook_core::Enrollment,
        period: Period,
    ) -> AppResult<Arc<Statement>> {
        let key = (e.number.to_string(), period.id(), e.data_version);
        if let Some(st) = self.inner.statements.get(&key) {
            return Ok(st);
        }
        let st = Arc::new(meterbook_core::ledger::statement(
            self.store(),
            &e.number,
            period,
        )?);
        self.inner.statements.put(key, st.clone());
        Ok(st)
    }
}

/// Statements by (enrollment, period, data version). A statement depends on
/// every period before it, so computing one walks the term's rollups; the data
/// version changes with any write, so a cached entry is never stale.
#[derive(Default)]
struct StatementCache {
    map: Mutex<HashMap<(String, u32, i64), Arc<Statement>>>,
}

impl StatementCache {
    const LIMIT: usize = 4096;

    fn get(&self, key: &(String, u32, i64)) -> Option<Arc<Statement>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn put(&self, key: (String, u32, i64), st: Arc<Statement>) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= Self::LIMIT {
            m.clear();
        }
        m.insert(key, st);
    }
}
