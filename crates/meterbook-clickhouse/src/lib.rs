//! Usage facts in a ClickHouse cluster: a [`FactStore`] over ClickHouse's
//! HTTP interface, sharded by enrollment.
//!
//! # Layout
//!
//! Every shard holds three local MergeTree tables: `facts_local` (the rows,
//! ordered by enrollment, correction flag, day and RecordId, so a booked
//! period's own days and its corrections are each one key range),
//! `fact_ids_local` (RecordId → day, ordered by enrollment and RecordId, so a
//! lookup by RecordId is an index range read, not a scan of the enrollment)
//! and `day_sums_local` (one row per ingest and day sum; readers add them up
//! with `GROUP BY`). With a cluster, `Distributed` tables named `facts`,
//! `fact_ids` and `day_sums` sit over them on every host and serve reads.
//! Nothing relies on a background merge (no Replacing/SummingMergeTree, no
//! `FINAL`): every read filters rows by the ingests the ledger says are
//! visible ([`Visibility`]).
//!
//! # Shards
//!
//! An enrollment lives on one shard: the 64-bit FNV-1a hash of its number's
//! bytes, modulo the number of hosts in the address, picks the host (hosts are
//! listed in the cluster's shard order). Changing the host list therefore
//! moves enrollments; that needs a re-ingest, not a config edit. Writes go
//! straight to the shard's local tables with `INSERT … FORMAT RowBinary`, so
//! an insert that returns Ok is stored (an insert through a `Distributed`
//! table would be queued and sent later). Reads go through the `Distributed`
//! tables of whichever host answers first.
//!
//! # Versions
//!
//! Only what ClickHouse 18.16 (the oldest release supported) and current
//! releases share is used: the HTTP interface, RowBinary and TSV, MergeTree,
//! Distributed, `ALTER … DELETE` and `Decimal128` in expressions. 18.16 has no
//! 128-bit integer column, so a correction's locked rate (an `i128`) is kept as
//! two 64-bit halves. Each host records its schema version in
//! `schema_version`; opening applies the missing migrations there.
#![forbid(unsafe_code)]

mod address;
mod rowbinary;

pub use address::Address;

use meterbook_core::calendar::{Day, Period};
use meterbook_core::enrollment::EnrollmentNumber;
use meterbook_core::facts::{FactStore, IngestId, Visibility};
use meterbook_core::fixed::{Price, Quantity};
use meterbook_core::store::{
    DailyUsage, FactBatch, Flow, OwnedBatch, StoreError, StoreResult, UsageFact, UsageSelection,
};
use rowbinary::{Decoder, Encoder};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

/// The statements of each schema version, in order (`{db}` is the database).
/// Each is idempotent, so a migration cut short is simply run again.
const MIGRATIONS: &[&[&str]] = &[&[
    "CREATE TABLE IF NOT EXISTS {db}.facts_local (
        enrollment String, ingest Int64, day Int32, record_id String,
        subscription Int64, meter Int64, quantity Int64,
        booked UInt32, rate_period UInt32,
        correction UInt8, rate_hi Int64, rate_lo UInt64,
        instance_id String, resource_group String, resource_location String,
        consumed_service String, tags String, additional_info String,
        service_info1 String, service_info2 String
    ) ENGINE = MergeTree() ORDER BY (enrollment, correction, day, record_id)
    SETTINGS index_granularity = 1024",
    "CREATE TABLE IF NOT EXISTS {db}.fact_ids_local (
        enrollment String, record_id String, day Int32, ingest Int64
    ) ENGINE = MergeTree() ORDER BY (enrollment, record_id)",
    "CREATE TABLE IF NOT EXISTS {db}.day_sums_local (
        enrollment String, ingest Int64, day Int32, subscription Int64, meter Int64,
        booked UInt32, correction UInt8, rate_hi Int64, rate_lo UInt64,
        quantity Int64, rows Int64
    ) ENGINE = MergeTree() ORDER BY (enrollment, day, subscription, meter)",
]];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The local tables (what purges delete from) and their Distributed names.
const TABLES: [&str; 3] = ["facts", "fact_ids", "day_sums"];

/// The columns a fact is read back with, in [`read_fact`]'s order.
const FACT_COLUMNS: &str = "day, record_id, subscription, meter, quantity, booked, rate_period, \
     correction, rate_hi, rate_lo, instance_id, resource_group, resource_location, \
     consumed_service, tags, additional_info, service_info1, service_info2";

/// Oldest server release this store is written for.
const MIN_VERSION: (u32, u32) = (18, 16);

/// Ids per lookup query (each query's text is some hundreds of KB at most).
const LOOKUP_CHUNK: usize = 4096;

/// Rows per batch handed to a scan's reader.
const SCAN_BATCH: usize = 1024;

/// The shard (index into the address's hosts) that holds an enrollment:
/// 64-bit FNV-1a of the number's bytes, modulo the host count.
pub fn shard_of(n: &EnrollmentNumber, hosts: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in n.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % hosts.max(1) as u64) as usize
}

/// A SQL string literal.
fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn vis_sql(vis: &Visibility) -> String {
    let mut s = format!("ingest <= {}", vis.through);
    if !vis.hidden.is_empty() {
        s.push_str(" AND ingest NOT IN (");
        for (i, h) in vis.hidden.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let _ = write!(s, "{h}");
        }
        s.push(')');
    }
    s
}

fn rate_parts(r: Option<Price>) -> (u8, i64, u64) {
    match r {
        Some(p) => (1, (p.raw() >> 64) as i64, p.raw() as u64),
        None => (0, 0, 0),
    }
}

fn read_rate<R: BufRead>(d: &mut Decoder<R>) -> StoreResult<Option<Price>> {
    let flag = d.u8()?;
    let hi = d.i64()?;
    let lo = d.u64()?;
    match flag {
        0 => Ok(None),
        1 => Ok(Some(Price((i128::from(hi) << 64) | i128::from(lo)))),
        _ => Err(d.garbled("a correction flag is neither 0 nor 1")),
    }
}

fn period<R: BufRead>(d: &mut Decoder<R>) -> StoreResult<Period> {
    let id = d.u32()?;
    Period::from_id(id).ok_or_else(|| d.garbled("a period is not YYYYMM"))
}

/// Reads one row of [`FACT_COLUMNS`] and hands it to `visit`; its texts are
/// read into `scratch` (reused from row to row).
fn read_fact<R: BufRead, T>(
    d: &mut Decoder<R>,
    scratch: &mut Vec<u8>,
    visit: impl FnOnce(&UsageFact<'_>) -> T,
) -> StoreResult<T> {
    scratch.clear();
    let day = Day::from_raw(d.i32()?);
    let id = d.bytes_into(scratch)?;
    let subscription = d.i64()?;
    let meter = d.i64()?;
    let quantity = Quantity(d.i64()?);
    let booked = period(d)?;
    let rate_period = period(d)?;
    let correction_rate = read_rate(d)?;
    let mut spans = [(0, 0); 9];
    spans[0] = id;
    for s in &mut spans[1..] {
        *s = d.bytes_into(scratch)?;
    }
    // One validation per row (the scan's main cost after the copies): the
    // texts are each UTF-8 when all of them are and each starts and ends on
    // a character boundary.
    let all = std::str::from_utf8(scratch).map_err(|_| d.garbled("a text is not UTF-8"))?;
    let mut texts = [""; 9];
    for (t, (a, b)) in texts.iter_mut().zip(spans) {
        *t = all
            .get(a..b)
            .ok_or_else(|| d.garbled("a text is not UTF-8"))?;
    }
    Ok(visit(&UsageFact {
        record_id: texts[0],
        subscription,
        day,
        meter,
        quantity,
        booked,
        rate_period,
        correction_rate,
        instance_id: texts[1],
        resource_group: texts[2],
        resource_location: texts[3],
        consumed_service: texts[4],
        tags: texts[5],
        additional_info: texts[6],
        service_info1: texts[7],
        service_info2: texts[8],
    }))
}

/// Why a request failed: the host could not be reached (a read may ask
/// another), or it answered with an error.
enum Failure {
    Unreachable(String),
    Failed(StoreError),
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> StoreError {
        match f {
            Failure::Unreachable(m) => StoreError::Backend(m),
            Failure::Failed(e) => e,
        }
    }
}

type Response = ureq::http::Response<ureq::Body>;

/// Usage facts in ClickHouse (see the module documentation).
pub struct ChFacts {
    addr: Address,
    agent: ureq::Agent,
}

impl ChFacts {
    /// Connects to every host of `url`, creates the database and tables
    /// where missing and applies the schema migrations this build knows.
    pub fn open(url: &str) -> StoreResult<ChFacts> {
        let addr = Address::parse(url)?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_per_read(Some(Duration::from_secs(300)))
            .timeout_per_write(Some(Duration::from_secs(60)))
            // ClickHouse closes idle connections after 3 s by default: never
            // reuse one it may be closing.
            .max_idle_age(Duration::from_secs(2))
            .build();
        let store = ChFacts {
            addr,
            agent: config.into(),
        };
        for host in 0..store.addr.hosts.len() {
            store.migrate(host)?;
        }
        Ok(store)
    }

    /// The parsed address.
    pub fn address(&self) -> &Address {
        &self.addr
    }

    /// Drops the database on every host: what tests do when done. Destroys
    /// every stored fact.
    pub fn drop_database(&self) -> StoreResult<()> {
        for host in 0..self.addr.hosts.len() {
            self.exec(
                host,
                &format!("DROP DATABASE IF EXISTS {}", self.addr.database),
            )?;
        }
        Ok(())
    }

    fn db(&self) -> &str {
        &self.addr.database
    }

    /// The table reads use: the Distributed one over all shards, or the
    /// local one of the only host.
    fn read_table(&self, t: &str) -> String {
        match self.addr.cluster {
            Some(_) => format!("{}.{t}", self.db()),
            None => format!("{}.{t}_local", self.db()),
        }
    }

    fn shard(&self, n: &EnrollmentNumber) -> usize {
        shard_of(n, self.addr.hosts.len())
    }

    fn migrate(&self, host: usize) -> StoreResult<()> {
        let db = self.db();
        let h = &self.addr.hosts[host];
        self.exec(host, &format!("CREATE DATABASE IF NOT EXISTS {db}"))?;
        self.exec(
            host,
            &format!(
                "CREATE TABLE IF NOT EXISTS {db}.schema_version (version UInt32, applied DateTime) \
                 ENGINE = MergeTree() ORDER BY version"
            ),
        )?;
        let applied = self.schema_version(host)?;
        if applied > SCHEMA_VERSION {
            return Err(StoreError::Invalid(format!(
                "the ClickHouse database {db} on {h} is at schema version {applied}, newer than \
                 this build's {SCHEMA_VERSION}: upgrade Meterbook"
            )));
        }
        for (i, statements) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            for s in *statements {
                self.exec(host, &s.replace("{db}", db))?;
            }
            self.exec(
                host,
                &format!(
                    "INSERT INTO {db}.schema_version (version, applied) VALUES ({}, now())",
                    i + 1
                ),
            )?;
        }
        if let Some(cluster) = &self.addr.cluster {
            for t in TABLES {
                // A migration may change the local tables' columns: the
                // Distributed ones are made again to match.
                if applied < SCHEMA_VERSION {
                    self.exec(host, &format!("DROP TABLE IF EXISTS {db}.{t}"))?;
                }
                self.exec(
                    host,
                    &format!(
                        "CREATE TABLE IF NOT EXISTS {db}.{t} AS {db}.{t}_local \
                         ENGINE = Distributed({}, {db}, {t}_local)",
                        lit(cluster)
                    ),
                )?;
            }
        }
        Ok(())
    }

    fn schema_version(&self, host: usize) -> StoreResult<u32> {
        let v = self.select_text(
            host,
            &format!(
                "SELECT max(version) FROM {}.schema_version FORMAT TSV",
                self.db()
            ),
        )?;
        v.trim().parse().map_err(|_| {
            StoreError::Backend(format!(
                "ClickHouse at {}: schema version `{}` is not a number",
                self.addr.hosts[host],
                v.trim()
            ))
        })
    }

    /// Sends one request: `query` in the URL when given (then `body` is an
    /// insert's data), else `body` is the statement.
    fn request(
        &self,
        host: usize,
        query: Option<&str>,
        body: &[u8],
        settings: &[(&str, String)],
    ) -> Result<Response, Failure> {
        let h = &self.addr.hosts[host];
        let mut req = self.agent.post(format!("http://{h}/"));
        if let Some(q) = query {
            req = req.query("query", q);
        }
        for (k, v) in settings {
            req = req.query(*k, v);
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => {
                let unreachable = match &e {
                    ureq::Error::Io(io) => matches!(
                        io.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::NotConnected
                            | std::io::ErrorKind::AddrNotAvailable
                            | std::io::ErrorKind::TimedOut
                    ),
                    ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
                    ureq::Error::Timeout(t) => {
                        matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve)
                    }
                    _ => false,
                };
                let msg = format!("ClickHouse at {h} is unreachable: {e}");
                return Err(if unreachable {
                    Failure::Unreachable(msg)
                } else {
                    Failure::Failed(StoreError::Backend(msg))
                });
            }
        };
        if resp.status() != 200 {
            let status = resp.status();
            let mut text = String::new();
            let _ = resp
                .body_mut()
                .as_reader()
                .take(64 << 10)
                .read_to_string(&mut text);
            return Err(Failure::Failed(StoreError::Backend(format!(
                "ClickHouse at {h} answered {status}: {}",
                text.trim()
            ))));
        }
        Ok(resp)
    }

    /// Runs a statement on one host, reading its (ignored) answer.
    fn exec(&self, host: usize, sql: &str) -> StoreResult<()> {
        self.select_text(host, sql).map(|_| ())
    }

    /// A small answer as text.
    fn select_text(&self, host: usize, sql: &str) -> StoreResult<String> {
        let mut resp = self.request(host, None, sql.as_bytes(), &[])?;
        let mut text = String::new();
        resp.body_mut()
            .as_reader()
            .take(16 << 20)
            .read_to_string(&mut text)
            .map_err(|e| {
                StoreError::Backend(format!(
                    "reading a response of ClickHouse at {}: {e}",
                    self.addr.hosts[host]
                ))
            })?;
        Ok(text)
    }

    /// Sends a read to the first host that answers, from `first` on.
    fn read(&self, first: usize, sql: &str) -> StoreResult<(usize, Response)> {
        let mut settings = vec![
            // Sorted results come out of the merge in blocks of this many
            // rows: written out row by row, small blocks stay in the CPU's
            // caches (65,536 rows of facts take three times as long).
            ("max_block_size", "1024".to_string()),
            // A scan of a big enrollment sorts on disk past 2 GiB rather
            // than run into the server's memory limit (10 GB by default):
            // ClickHouse 18.16 sorts the whole result, it cannot read it in
            // the table's order.
            ("max_bytes_before_external_sort", (2u64 << 30).to_string()),
        ];
        // A big IN list (a lookup) is longer than the default 256 KiB limit;
        // the shards parse the query as the initiator writes it out again,
        // with more spaces, so the limit allows twice the text.
        if sql.len() > 100_000 {
            settings.push(("max_query_size", (sql.len() * 2 + 65536).to_string()));
        }
        let hosts = self.addr.hosts.len();
        let mut last = None;
        for i in 0..hosts {
            let host = (first + i) % hosts;
            match self.request(host, None, sql.as_bytes(), &settings) {
                Ok(r) => return Ok((host, r)),
                Err(Failure::Unreachable(m)) => last = Some(m),
                Err(Failure::Failed(e)) => return Err(e),
            }
        }
        Err(StoreError::Backend(last.unwrap_or_default()))
    }

    /// Streams the facts a query returns (in [`FACT_COLUMNS`]) to `visit`,
    /// until they run out or it says stop. Returns whether it stopped.
    fn read_facts(
        &self,
        first: usize,
        sql: &str,
        visit: &mut dyn FnMut(&UsageFact<'_>) -> StoreResult<Flow>,
    ) -> StoreResult<Flow> {
        let (host, resp) = self.read(first, sql)?;
        let reader = BufReader::with_capacity(256 << 10, resp.into_body().into_reader());
        let mut d = Decoder::new(reader, &self.addr.hosts[host]);
        let mut scratch = Vec::new();
        while !d.at_end()? {
            if read_fact(&mut d, &mut scratch, &mut *visit)?? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    fn insert(&self, host: usize, table: &str, columns: &str, body: &[u8]) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO {}.{table}_local ({columns}) FORMAT RowBinary",
            self.db()
        );
        let mut resp = self.request(host, Some(&sql), body, &[])?;
        let mut sink = Vec::new();
        let _ = resp
            .body_mut()
            .as_reader()
            .take(1 << 16)
            .read_to_end(&mut sink);
        Ok(())
    }
}

impl FactStore for ChFacts {
    fn insert_facts(
        &self,
        n: &EnrollmentNumber,
        ingest: IngestId,
        rows: &OwnedBatch,
    ) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut facts = Encoder::default();
        let mut ids = Encoder::default();
        rows.for_each(&mut |f| {
            let (flag, hi, lo) = rate_parts(f.correction_rate);
            let e = &mut facts;
            e.str(n.as_str());
            e.i64(ingest);
            e.i32(f.day.raw());
            e.str(f.record_id);
            e.i64(f.subscription);
            e.i64(f.meter);
            e.i64(f.quantity.raw());
            e.u32(f.booked.id());
            e.u32(f.rate_period.id());
            e.u8(flag);
            e.i64(hi);
            e.u64(lo);
            for t in [
                f.instance_id,
                f.resource_group,
                f.resource_location,
                f.consumed_service,
                f.tags,
                f.additional_info,
                f.service_info1,
                f.service_info2,
            ] {
                e.str(t);
            }
            ids.str(n.as_str());
            ids.str(f.record_id);
            ids.i32(f.day.raw());
            ids.i64(ingest);
            Ok(Flow::Continue)
        })?;
        let host = self.shard(n);
        self.insert(
            host,
            "facts",
            "enrollment, ingest, day, record_id, subscription, meter, quantity, booked, \
             rate_period, correction, rate_hi, rate_lo, instance_id, resource_group, \
             resource_location, consumed_service, tags, additional_info, service_info1, \
             service_info2",
            &facts.buf,
        )?;
        self.insert(
            host,
            "fact_ids",
            "enrollment, record_id, day, ingest",
            &ids.buf,
        )
    }

    fn insert_day_sums(
        &self,
        n: &EnrollmentNumber,
        ingest: IngestId,
        sums: &[DailyUsage],
    ) -> StoreResult<()> {
        if sums.is_empty() {
            return Ok(());
        }
        let mut e = Encoder::default();
        for s in sums {
            let (flag, hi, lo) = rate_parts(s.correction_rate);
            e.str(n.as_str());
            e.i64(ingest);
            e.i32(s.day.raw());
            e.i64(s.subscription);
            e.i64(s.meter);
            e.u32(s.booked.id());
            e.u8(flag);
            e.i64(hi);
            e.u64(lo);
            e.i64(s.quantity.raw());
            e.i64(s.rows);
        }
        self.insert(
            self.shard(n),
            "day_sums",
            "enrollment, ingest, day, subscription, meter, booked, correction, rate_hi, \
             rate_lo, quantity, rows",
            &e.buf,
        )
    }

    fn ids(
        &self,
        n: &EnrollmentNumber,
        vis: &Visibility,
        each: &mut dyn FnMut(Day, &str) -> StoreResult<()>,
    ) -> StoreResult<()> {
        // The id index alone (two columns), unsorted: what an ingest loads
        // to know which RecordIds may be stored.
        let sql = format!(
            "SELECT day, record_id FROM {} WHERE enrollment = {} AND {} FORMAT RowBinary",
            self.read_table("fact_ids"),
            lit(n.as_str()),
            vis_sql(vis)
        );
        let (host, resp) = self.read(self.shard(n), &sql)?;
        let reader = BufReader::with_capacity(1 << 20, resp.into_body().into_reader());
        let mut d = Decoder::new(reader, &self.addr.hosts[host]);
        let mut buf = Vec::new();
        while !d.at_end()? {
            let day = Day::from_raw(d.i32()?);
            buf.clear();
            d.bytes_into(&mut buf)?;
            let id = std::str::from_utf8(&buf).map_err(|_| {
                StoreError::Backend(format!(
                    "{}: a RecordId is not UTF-8",
                    self.addr.hosts[host]
                ))
            })?;
            each(day, id)?;
        }
        Ok(())
    }

    fn lookup(
        &self,
        n: &EnrollmentNumber,
        vis: &Visibility,
        ids: &[&str],
        found: &mut dyn FnMut(&UsageFact<'_>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let first = self.shard(n);
        let en = lit(n.as_str());
        let vis = vis_sql(vis);
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut list = String::new();
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    list.push(',');
                }
                list.push_str(&lit(id));
            }
            // The days the ids are stored on (an index range read), then
            // the rows of those days and ids (key ranges of the facts).
            let sql = format!(
                "SELECT DISTINCT day FROM {} WHERE enrollment = {en} AND {vis} \
                 AND record_id IN ({list}) FORMAT TSV",
                self.read_table("fact_ids")
            );
            let (host, mut resp) = self.read(first, &sql)?;
            let mut text = String::new();
            resp.body_mut()
                .as_reader()
                .read_to_string(&mut text)
                .map_err(|e| {
                    StoreError::Backend(format!(
                        "reading a response of ClickHouse at {}: {e}",
                        self.addr.hosts[host]
                    ))
                })?;
            let days = text.split_whitespace().collect::<Vec<_>>().join(",");
            if days.is_empty() {
                continue;
            }
            let sql = format!(
                "SELECT {FACT_COLUMNS} FROM {} WHERE enrollment = {en} AND {vis} \
                 AND day IN ({days}) AND record_id IN ({list}) FORMAT RowBinary",
                self.read_table("facts")
            );
            self.read_facts(first, &sql, &mut |f| found(f).map(|()| Flow::Continue))?;
        }
        Ok(())
    }

    fn scan(
        &self,
        n: &EnrollmentNumber,
        vis: &Visibility,
        sel: &UsageSelection,
        each: &mut dyn FnMut(Box<dyn FactBatch>) -> Result<Flow, StoreError>,
    ) -> StoreResult<()> {
        let mut base = format!(
            "SELECT {FACT_COLUMNS} FROM {} WHERE enrollment = {} AND {}",
            self.read_table("facts"),
            lit(n.as_str()),
            vis_sql(vis)
        );
        if let Some(d) = sel.from {
            let _ = write!(base, " AND day >= {}", d.raw());
        }
        if let Some(d) = sel.to {
            let _ = write!(base, " AND day <= {}", d.raw());
        }
        let after = |sql: &mut String| {
            if let Some(c) = &sel.after {
                let d = c.day.raw();
                let _ = write!(
                    sql,
                    " AND (day > {d} OR (day = {d} AND record_id > {}))",
                    lit(&c.record_id)
                );
            }
        };
        // The queries of the selection's phases, in order; a cursor in the
        // corrections' phase skips the period's own days.
        let resumes_in_corrections = sel.after.as_ref().is_some_and(|c| c.correction_phase);
        let mut queries = Vec::new();
        match sel.booked {
            None if resumes_in_corrections => {}
            None => {
                let mut q = base.clone();
                after(&mut q);
                queries.push(q);
            }
            Some(p) => {
                if !resumes_in_corrections {
                    let mut q = format!(
                        "{base} AND correction = 0 AND day >= {} AND day <= {}",
                        p.first_day().raw(),
                        p.last_day().raw()
                    );
                    after(&mut q);
                    queries.push(q);
                }
                let mut q = format!("{base} AND correction = 1 AND booked = {}", p.id());
                if resumes_in_corrections {
                    after(&mut q);
                }
                queries.push(q);
            }
        }
        let first = self.shard(n);
        let mut batch = OwnedBatch::default();
        for q in queries {
            let sql = format!("{q} ORDER BY day, record_id FORMAT RowBinary");
            let flow = self.read_facts(first, &sql, &mut |f| {
                batch.push(f);
                if batch.len() >= SCAN_BATCH {
                    return each(Box::new(std::mem::take(&mut batch)));
                }
                Ok(Flow::Continue)
            })?;
            if flow == Flow::Stop {
                return Ok(());
            }
        }
        if !batch.is_empty() {
            each(Box::new(batch))?;
        }
        Ok(())
    }

    fn day_sums(
        &self,
        n: &EnrollmentNumber,
        vis: &Visibility,
        from: Day,
        to: Day,
    ) -> StoreResult<Vec<DailyUsage>> {
        // Summed as Decimal128 so a total beyond i64 is seen, not wrapped.
        let sql = format!(
            "SELECT day, subscription, meter, booked, correction, rate_hi, rate_lo, \
             sum(toDecimal128(quantity, 0)), sum(rows) FROM {} \
             WHERE enrollment = {} AND {} AND day >= {} AND day <= {} \
             GROUP BY day, subscription, meter, booked, correction, rate_hi, rate_lo \
             FORMAT RowBinary",
            self.read_table("day_sums"),
            lit(n.as_str()),
            vis_sql(vis),
            from.raw(),
            to.raw()
        );
        let (host, resp) = self.read(self.shard(n), &sql)?;
        let reader = BufReader::new(resp.into_body().into_reader());
        let mut d = Decoder::new(reader, &self.addr.hosts[host]);
        let mut out = Vec::new();
        while !d.at_end()? {
            let day = Day::from_raw(d.i32()?);
            let subscription = d.i64()?;
            let meter = d.i64()?;
            let booked = period(&mut d)?;
            let correction_rate = read_rate(&mut d)?;
            let quantity = i64::try_from(d.i128()?).map_err(|_| {
                StoreError::Invalid("a day's quantity exceeds the supported range".into())
            })?;
            let rows = d.i64()?;
            out.push(DailyUsage {
                day,
                subscription,
                meter,
                booked,
                correction_rate,
                quantity: Quantity(quantity),
                rows,
            });
        }
        out.sort_by_key(|s| {
            (
                s.day,
                s.subscription,
                s.meter,
                s.booked,
                s.correction_rate.map(|r| r.raw()),
            )
        });
        Ok(out)
    }

    fn purge(&self, n: &EnrollmentNumber, ingest: IngestId) -> StoreResult<bool> {
        let db = self.db();
        let cond = format!("enrollment = {} AND ingest = {ingest}", lit(n.as_str()));
        let mut done = true;
        for host in 0..self.addr.hosts.len() {
            for t in TABLES {
                let left = self.select_text(
                    host,
                    &format!("SELECT count() FROM {db}.{t}_local WHERE {cond} FORMAT TSV"),
                )?;
                if left.trim() == "0" {
                    continue;
                }
                done = false;
                // One deletion at a time per table: a running one may be
                // this one (rows written after it started need another).
                let running = self.select_text(
                    host,
                    &format!(
                        "SELECT count() FROM system.mutations WHERE database = {} \
                         AND table = {} AND is_done = 0 FORMAT TSV",
                        lit(db),
                        lit(&format!("{t}_local"))
                    ),
                )?;
                if running.trim() == "0" {
                    self.exec(
                        host,
                        &format!("ALTER TABLE {db}.{t}_local DELETE WHERE {cond}"),
                    )?;
                }
            }
        }
        Ok(done)
    }

    fn doctor(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let db = self.db();
        for (host, h) in self.addr.hosts.iter().enumerate() {
            let version = match self.select_text(host, "SELECT version() FORMAT TSV") {
                Ok(v) => v.trim().to_owned(),
                Err(_) => {
                    problems.push(format!("ClickHouse at {h} is unreachable"));
                    continue;
                }
            };
            let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            if (major, minor) < MIN_VERSION {
                problems.push(format!(
                    "ClickHouse at {h} is version {version}; {}.{} or later is needed",
                    MIN_VERSION.0, MIN_VERSION.1
                ));
            }
            let tables = self.select_text(
                host,
                &format!(
                    "SELECT name FROM system.tables WHERE database = {} FORMAT TSV",
                    lit(db)
                ),
            );
            let tables: Vec<String> = match tables {
                Ok(t) => t.lines().map(str::to_owned).collect(),
                Err(_) => {
                    problems.push(format!("ClickHouse at {h}: its tables could not be listed"));
                    continue;
                }
            };
            if tables.is_empty() {
                problems.push(format!(
                    "ClickHouse at {h}: database {db} is missing or empty"
                ));
                continue;
            }
            let mut wanted: Vec<String> = TABLES.iter().map(|t| format!("{t}_local")).collect();
            wanted.push("schema_version".into());
            if self.addr.cluster.is_some() {
                wanted.extend(TABLES.iter().map(|t| t.to_string()));
            }
            for t in wanted {
                if !tables.contains(&t) {
                    problems.push(format!("ClickHouse at {h}: table {db}.{t} is missing"));
                }
            }
            match self.schema_version(host) {
                Ok(SCHEMA_VERSION) => {}
                Ok(v) => problems.push(format!(
                    "ClickHouse at {h}: database {db} is at schema version {v}, this build \
                     needs {SCHEMA_VERSION}"
                )),
                Err(_) => problems.push(format!(
                    "ClickHouse at {h}: the schema version of {db} could not be read"
                )),
            }
            if let Some(c) = &self.addr.cluster {
                let shards = self.select_text(
                    host,
                    &format!(
                        "SELECT uniqExact(shard_num) FROM system.clusters WHERE cluster = {} \
                         FORMAT TSV",
                        lit(c)
                    ),
                );
                match shards.map(|s| s.trim().parse::<usize>()) {
                    Ok(Ok(0)) => problems.push(format!(
                        "ClickHouse at {h}: cluster {c} is not in its remote_servers"
                    )),
                    Ok(Ok(k)) if k != self.addr.hosts.len() => problems.push(format!(
                        "ClickHouse at {h}: cluster {c} has {k} shards but the address lists {} hosts",
                        self.addr.hosts.len()
                    )),
                    Ok(Ok(_)) => {}
                    _ => problems.push(format!(
                        "ClickHouse at {h}: the clusters could not be listed"
                    )),
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable() {
        let n = EnrollmentNumber::parse("8608480").unwrap();
        assert_eq!(shard_of(&n, 1), 0);
        // FNV-1a is fixed: a changed hash would move stored enrollments.
        let h = shard_of(&n, usize::MAX);
        assert_eq!(h, shard_of(&n, usize::MAX));
        let spread: std::collections::BTreeSet<usize> = (0..64)
            .map(|i| shard_of(&EnrollmentNumber::parse(&format!("E{i}")).unwrap(), 4))
            .collect();
        assert_eq!(spread.len(), 4);
    }

    #[test]
    fn an_error_after_the_first_rows_is_an_error_not_a_row() {
        let mut e = Encoder::default();
        e.i32(Day::from_ymd(2026, 1, 5).unwrap().raw());
        e.str("id-1");
        e.i64(1);
        e.i64(2);
        e.i64(3);
        e.u32(202601);
        e.u32(202601);
        e.u8(0);
        e.i64(0);
        e.u64(0);
        for t in ["a", "b", "", "", "{}", "", "", "é"] {
            e.str(t);
        }
        // What ClickHouse 18.16 appends when a query fails mid-answer.
        e.buf.extend_from_slice(
            b"Code: 241, e.displayText() = DB::Exception: Memory limit (for query) exceeded: \
              would use 9.31 GiB, maximum: 9.31 GiB, e.what() = DB::Exception\n",
        );
        let mut d = Decoder::new(&e.buf[..], "h:1");
        let mut scratch = Vec::new();
        let mut rows = Vec::new();
        let mut failed = None;
        while !d.at_end().unwrap() {
            match read_fact(&mut d, &mut scratch, |f| {
                (f.record_id.to_owned(), f.service_info2.to_owned())
            }) {
                Ok(r) => rows.push(r),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        assert_eq!(rows, [("id-1".to_owned(), "é".to_owned())]);
        assert!(matches!(failed, Some(StoreError::Backend(m)) if m.contains("h:1")));
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(lit("a'b\\c"), "'a\\'b\\\\c'");
    }

    #[test]
    fn rates_round_trip_through_halves() {
        for raw in [
            0i128,
            1,
            -1,
            i128::MAX,
            i128::MIN,
            123_456_789_000_000_000_000_000,
        ] {
            let (flag, hi, lo) = rate_parts(Some(Price(raw)));
            let mut e = Encoder::default();
            e.u8(flag);
            e.i64(hi);
            e.u64(lo);
            let mut d = Decoder::new(&e.buf[..], "h");
            assert_eq!(read_rate(&mut d).unwrap(), Some(Price(raw)));
        }
    }
}
