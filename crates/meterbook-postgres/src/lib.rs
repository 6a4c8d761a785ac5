//! The scale-out ledger: PostgreSQL implementing [`meterbook_core::store`]'s
//! traits for everything transactional (enrollments, hierarchy, prices,
//! periods and locked rates, commitment entries, keys, operator tokens,
//! users, sessions, audit, report jobs, budgets and the notification
//! outbox, and the state every `serve` node
//! shares: throttles, rate limits, key flashes) and the usage ledger of the
//! exactly-once protocol (ingests, rollups), with the usage facts themselves
//! in a [`FactStore`] (a ClickHouse cluster in production).
//!
//! Connections come from a pool; every trait method is one transaction.
//! The schema is created and migrated at open, under an advisory lock so
//! that several nodes starting at once migrate it once.
//!
//! ```no_run
//! # fn facts() -> std::sync::Arc<dyn meterbook_core::facts::FactStore> { unimplemented!() }
//! use meterbook_postgres::PgStore;
//! let store = PgStore::open("postgres://meterbook@127.0.0.1:5432/meterbook", facts()).unwrap();
//! ```
#![forbid(unsafe_code)]

mod exports;
mod jobs;
mod keys;
mod metadata;
mod notify;
mod shared;
mod tx;
mod usage;
mod users;

use meterbook_core::facts::FactStore;
use meterbook_core::store::{StoreError, StoreResult};
use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
pub(crate) type Conn = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// Embedded migrations, applied in order at open; `meterbook_schema` records
/// how many are applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_ledger.sql"),
    include_str!("../migrations/0002_usage.sql"),
    include_str!("../migrations/0003_shared.sql"),
    include_str!("../migrations/0004_notify.sql"),
    include_str!("../migrations/0005_exports.sql"),
];

/// The schema version once every migration is applied.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Key of the advisory lock taken while migrating.
const MIGRATION_LOCK: i64 = 0x6d62_6d69_6772;

pub struct PgStore {
    pool: Pool,
    facts: Arc<dyn FactStore>,
    /// Seconds an ingest holds its enrollment's writer slot between renewals.
    lease_secs: AtomicI64,
    /// Where a test makes an ingest stop as if its process died.
    fail_point: Mutex<Option<FailPoint>>,
}

/// Points of an ingest where [`PgStore::fail_at`] makes it stop as a killed
/// process would: nothing after it runs, not even the clean-up of a failed
/// ingest. The crash-point tests use them; nothing else should.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailPoint {
    /// After rows went to the fact store, before the day sums.
    AfterFacts,
    /// After the day sums, before the ledger's commit.
    AfterDaySums,
    /// After the ledger committed, before the caller hears of it.
    AfterLedgerCommit,
}

/// A backend error: the message is logged, never shown (it may hold SQL).
pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl PgStore {
    /// Connects to `url` (`postgres://USER[:PASSWORD]@HOST:PORT/DATABASE`),
    /// creates or migrates the schema, and keeps usage facts in `facts`.
    pub fn open(url: &str, facts: Arc<dyn FactStore>) -> StoreResult<PgStore> {
        Self::open_with(url, facts, 16)
    }

    /// As [`PgStore::open`], with at most `connections` connections.
    pub fn open_with(
        url: &str,
        facts: Arc<dyn FactStore>,
        connections: u32,
    ) -> StoreResult<PgStore> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("the PostgreSQL URL is not valid: {e}")))?;
        Self::open_config(config, facts, connections)
    }

    /// As [`PgStore::open_with`], with the connection settings given as a
    /// [`postgres::Config`] (for settings a URL cannot carry, such as the
    /// `search_path` of a schema of its own in `options`).
    pub fn open_config(
        config: postgres::Config,
        facts: Arc<dyn FactStore>,
        connections: u32,
    ) -> StoreResult<PgStore> {
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(connections)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| StoreError::Backend(format!("cannot connect to PostgreSQL: {e}")))?;
        let store = PgStore {
            pool,
            facts,
            lease_secs: AtomicI64::new(usage::DEFAULT_LEASE_SECS),
            fail_point: Mutex::new(None),
        };
        store.migrate()?;
        Ok(store)
    }

    /// How long an ingest holds its enrollment's writer slot without
    /// renewing it (default 60 s): after a crash, the next ingest of the
    /// enrollment waits this long before it takes over. It renews every
    /// quarter of it.
    pub fn set_ingest_lease(&self, lease: Duration) {
        self.lease_secs
            .store(lease.as_secs().max(1) as i64, Ordering::Relaxed);
    }

    pub(crate) fn lease_secs(&self) -> i64 {
        self.lease_secs.load(Ordering::Relaxed)
    }

    /// Makes the next ingest that reaches `point` stop there as if killed.
    #[doc(hidden)]
    pub fn fail_at(&self, point: Option<FailPoint>) {
        *self.fail_point.lock().unwrap_or_else(|p| p.into_inner()) = point;
    }

    /// Whether an ingest at `point` must stop there (once).
    pub(crate) fn fails_at(&self, point: FailPoint) -> bool {
        let mut f = self.fail_point.lock().unwrap_or_else(|p| p.into_inner());
        if *f == Some(point) {
            *f = None;
            return true;
        }
        false
    }

    pub(crate) fn conn(&self) -> StoreResult<Conn> {
        self.pool
            .get()
            .map_err(|e| StoreError::Backend(format!("cannot connect to PostgreSQL: {e}")))
    }

    pub(crate) fn facts(&self) -> &dyn FactStore {
        &*self.facts
    }

    /// The number of migrations applied.
    pub fn schema_version(&self) -> StoreResult<usize> {
        let mut c = self.conn()?;
        let v: i32 = c
            .query_one("SELECT version FROM meterbook_schema", &[])
            .map_err(backend)?
            .get(0);
        Ok(v as usize)
    }

    fn migrate(&self) -> StoreResult<()> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(backend)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS meterbook_schema (version INTEGER NOT NULL);
             INSERT INTO meterbook_schema (version)
               SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM meterbook_schema);",
        )
        .map_err(backend)?;
        let applied: i32 = tx
            .query_one("SELECT version FROM meterbook_schema", &[])
            .map_err(backend)?
            .get(0);
        let applied = applied as usize;
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Invalid(format!(
                "the PostgreSQL schema is at version {applied}, newer than this build's {}: upgrade Meterbook",
                MIGRATIONS.len()
            )));
        }
        for sql in &MIGRATIONS[applied..] {
            tx.batch_execute(sql).map_err(backend)?;
        }
        tx.execute(
            "UPDATE meterbook_schema SET version = $1",
            &[&(MIGRATIONS.len() as i32)],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }
}

/// Checks a ledger database without changing it: connectivity, server
/// version, schema. One line per problem; empty when ready.
pub fn doctor(url: &str) -> Vec<String> {
    let mut config: postgres::Config = match url.parse() {
        Ok(c) => c,
        Err(e) => return vec![format!("the URL is not valid: {e}")],
    };
    config.connect_timeout(Duration::from_secs(5));
    let mut c = match config.connect(NoTls) {
        Ok(c) => c,
        Err(e) => return vec![format!("cannot connect: {e}")],
    };
    let mut problems = Vec::new();
    match c.query_one("SHOW server_version_num", &[]) {
        Ok(r) => {
            let v: String = r.get(0);
            if v.parse::<u32>().unwrap_or(0) < 120_000 {
                problems.push(format!(
                    "server version {v} is too old: PostgreSQL 12 or newer is needed"
                ));
            }
        }
        Err(e) => problems.push(format!("cannot read the server version: {e}")),
    }
    let exists = c
        .query_one("SELECT to_regclass('meterbook_schema') IS NOT NULL", &[])
        .map(|r| r.get::<_, bool>(0));
    let version = match exists {
        Ok(true) => c
            .query_one("SELECT version FROM meterbook_schema", &[])
            .ok()
            .map(|r| r.get::<_, i32>(0) as usize),
        Ok(false) => None,
        Err(e) => return vec![format!("cannot read the schema: {e}")],
    };
    match version {
        None => problems.push(
            "no Meterbook schema yet: any command creates it (e.g. `meterbook migrate`)".into(),
        ),
        Some(v) if v < SCHEMA_VERSION => problems.push(format!(
            "schema at version {v}: this build migrates it to {SCHEMA_VERSION} at its first start"
        )),
        Some(v) if v > SCHEMA_VERSION => problems.push(format!(
            "schema at version {v}, newer than this build's {SCHEMA_VERSION}: upgrade Meterbook"
        )),
        Some(_) => {}
    }
    problems
}
