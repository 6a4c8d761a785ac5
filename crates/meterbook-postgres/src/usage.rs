//! Usage over two databases: the ledger here, the facts in a [`FactStore`].
//!
//! The exactly-once protocol (docs/design-notes.md, "Exactly once across two
//! databases"):
//!
//! 1. **Begin.** In one transaction holding the enrollment's row lock: take
//!    the enrollment's single writer slot by inserting an ingest row in state
//!    `writing` with a lease (a live writer of another node makes this one
//!    wait, up to [`WAIT_FOR_WRITER`]; a writer whose lease ran out is marked
//!    `expired`), and read the catalog, its version and the rollups. Then
//!    load the hashes of every visible RecordId from the fact store.
//! 2. **Write.** Each record is checked against this ingest's own buffer and,
//!    when its RecordId's hash is known, against the stored row fetched from
//!    the fact store (a hash hit is never the answer). New rows are buffered
//!    and written to the fact store tagged with the ingest id, where no read
//!    sees them. The lease is renewed as writing goes on.
//! 3. **Commit.** Day sums are written to the fact store, still invisible.
//!    Then one PostgreSQL transaction checks that the catalog did not change
//!    and that this ingest still holds its slot, writes the rollups, and
//!    marks the ingest `committed`: from that instant every read sees all of
//!    its rows, and before it none.
//!
//! A writer that fails marks its ingest `abandoned` and deletes its rows; a
//! writer that dies leaves it `writing` until its lease runs out, and the
//! next ingest of the enrollment marks it `expired`. Both stay hidden from
//! reads (an expired one for good: its writer may still be running), and
//! the next begin deletes their rows.

use crate::{backend, metadata, FailPoint, PgStore};
use meterbook_core::calendar::{Day, Period};
use meterbook_core::enrollment::EnrollmentNumber;
use meterbook_core::facts::{IngestId, Visibility};
use meterbook_core::fixed::{Amount, Price, Quantity};
use meterbook_core::store::{
    DailyUsage, FactBatch, Flow, OwnedBatch, Rollup, StoreError, StoreResult, UsageFact,
    UsageSelection, UsageStore, UsageWriter, Written,
};
use meterbook_core::usage::{Catalog, Classified, FastMap, OwnedUsage};
use postgres::GenericClient;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a writer's slot is held without a renewal, unless set
/// ([`PgStore::set_ingest_lease`]); a writer renews every quarter of it.
pub(crate) const DEFAULT_LEASE_SECS: i64 = 60;
/// How long a begin waits for another node's writer of the same enrollment.
const WAIT_FOR_WRITER: Duration = Duration::from_secs(30);
/// Rows (or bytes of text) buffered before they go to the fact store: few
/// enough to bound memory, many enough for a columnar store's inserts.
const FLUSH_ROWS: usize = 16_384;
const FLUSH_BYTES: usize = 16 << 20;

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn hash_id(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// What reads of an enrollment see now: committed ingests, without the
/// abandoned and expired ones whose rows may remain.
fn visibility(c: &mut impl GenericClient, eid: i64) -> StoreResult<Visibility> {
    let row = c
        .query_one(
            "SELECT COALESCE(MAX(id) FILTER (WHERE state = 'committed'), 0),
                    COALESCE(ARRAY_AGG(id ORDER BY id) FILTER (
                        WHERE state = 'expired' OR (state = 'abandoned' AND NOT purged)),
                      '{}')
               FROM usage_ingest WHERE enrollment_id = $1",
            &[&eid],
        )
        .map_err(backend)?;
    Ok(Visibility {
        through: row.get(0),
        hidden: row.get(1),
    })
}

fn read_rollups(
    c: &mut impl GenericClient,
    eid: i64,
    booked: Option<Period>,
) -> StoreResult<Vec<Rollup>> {
    let booked = booked.map(|p| p.id() as i32);
    let rows = c
        .query(
            "SELECT booked, meter_key, rate_period, correction, quantity, fixed_cost::TEXT, rows
               FROM usage_rollup WHERE enrollment_id = $1 AND ($2::INTEGER IS NULL OR booked = $2)
              ORDER BY booked, meter_key, rate_period, correction",
            &[&eid, &booked],
        )
        .map_err(backend)?;
    let period = |v: i32| {
        Period::from_id(v as u32).ok_or_else(|| StoreError::Backend(format!("bad period {v}")))
    };
    rows.iter()
        .map(|r| {
            let cost: String = r.get(5);
            Ok(Rollup {
                booked: period(r.get(0))?,
                meter: r.get(1),
                rate_period: period(r.get(2))?,
                correction: r.get(3),
                quantity: Quantity(r.get(4)),
                fixed_cost: Amount(
                    cost.parse()
                        .map_err(|_| StoreError::Backend(format!("bad cost {cost}")))?,
                ),
                rows: r.get(6),
            })
        })
        .collect()
}

impl PgStore {
    /// The enrollment's id and what its reads see, in one snapshot.
    fn read_view(&self, n: &EnrollmentNumber) -> StoreResult<Visibility> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(backend)?;
        let eid = metadata::enrollment_id(&mut tx, n)?;
        let vis = visibility(&mut tx, eid)?;
        tx.commit().map_err(backend)?;
        Ok(vis)
    }

    /// Deletes the rows of hidden ingests still holding some; an ingest
    /// whose deletion has finished is marked purged. Best effort: what is
    /// left is tried again at the next begin.
    fn sweep(&self, n: &EnrollmentNumber, eid: i64) -> StoreResult<()> {
        let mut c = self.conn()?;
        let ids: Vec<i64> = c
            .query(
                "SELECT id FROM usage_ingest WHERE enrollment_id = $1
                    AND state IN ('abandoned', 'expired') AND NOT purged ORDER BY id",
                &[&eid],
            )
            .map_err(backend)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for id in ids {
            if let Ok(true) = self.facts().purge(n, id) {
                c.execute(
                    "UPDATE usage_ingest SET purged = TRUE WHERE id = $1",
                    &[&id],
                )
                .map_err(backend)?;
            }
        }
        Ok(())
    }
}

impl UsageStore for PgStore {
    fn begin_usage(&self, n: &EnrollmentNumber) -> StoreResult<Box<dyn UsageWriter + '_>> {
        let waited = Instant::now();
        let (eid, ingest, catalog, catalog_version, stored, vis) = loop {
            let mut c = self.conn()?;
            let mut tx = c.transaction().map_err(backend)?;
            let eid = metadata::enrollment_id(&mut tx, n)?;
            tx.execute("SELECT 1 FROM enrollment WHERE id = $1 FOR UPDATE", &[&eid])
                .map_err(backend)?;
            let now = unix_now();
            let writer = tx
                .query_opt(
                    "SELECT id, lease_until FROM usage_ingest
                      WHERE enrollment_id = $1 AND state = 'writing'",
                    &[&eid],
                )
                .map_err(backend)?
                .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)));
            if let Some((id, lease_until)) = writer {
                if lease_until >= now {
                    drop(tx);
                    if waited.elapsed() < WAIT_FOR_WRITER {
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                    return Err(StoreError::Conflict(format!(
                        "another ingest of enrollment {n} (number {id}) is still being written; \
                         try again when it has finished"
                    )));
                }
                // Its writer stopped renewing: it died, or is too slow to trust.
                tx.execute(
                    "UPDATE usage_ingest SET state = 'expired', finished_at = $2 WHERE id = $1",
                    &[&id, &now],
                )
                .map_err(backend)?;
            }
            let ingest: i64 = tx
                .query_one(
                    "INSERT INTO usage_ingest (enrollment_id, state, started_at, lease_until)
                     VALUES ($1, 'writing', $2, $3) RETURNING id",
                    &[&eid, &now, &(now + self.lease_secs())],
                )
                .map_err(backend)?
                .get(0);
            let catalog_version: i64 = tx
                .query_one(
                    "SELECT catalog_version FROM enrollment WHERE id = $1",
                    &[&eid],
                )
                .map_err(backend)?
                .get(0);
            let catalog = metadata::catalog(&mut tx, eid)?;
            let stored = read_rollups(&mut tx, eid, None)?;
            let vis = visibility(&mut tx, eid)?;
            tx.commit().map_err(backend)?;
            break (eid, ingest, catalog, catalog_version, stored, vis);
        };
        let mut writer = PgUsageWriter {
            store: self,
            n: n.clone(),
            eid,
            ingest,
            catalog: Arc::new(catalog),
            catalog_version,
            stored,
            committed: vis.clone(),
            vis: Visibility {
                through: ingest,
                hidden: vis.hidden,
            },
            known: KeySet::default(),
            buffer: Vec::new(),
            buffer_bytes: 0,
            buffered: FastMap::default(),
            flushed_any: false,
            rollups: FastMap::default(),
            day_sums: FastMap::default(),
            rows_stored: 0,
            renewed: Instant::now(),
            done: false,
        };
        // From here on, a failure drops the writer, which abandons the ingest.
        self.sweep(n, eid)?;
        let mut known = KeySet::default();
        self.facts().ids(n, &writer.committed, &mut |_, id| {
            known.insert(hash_id(id));
            Ok(())
        })?;
        writer.known = known;
        Ok(Box::new(writer))
    }

    fn rollups(&self, n: &EnrollmentNumber, booked: Period) -> StoreResult<Vec<Rollup>> {
        let mut c = self.conn()?;
        let eid = metadata::enrollment_id(&mut *c, n)?;
        read_rollups(&mut *c, eid, Some(booked))
    }

    fn daily_usage(
        &self,
        n: &EnrollmentNumber,
        from: Day,
        to: Day,
    ) -> StoreResult<Vec<DailyUsage>> {
        let vis = self.read_view(n)?;
        self.facts().day_sums(n, &vis, from, to)
    }

    fn scan_usage(
        &self,
        n: &EnrollmentNumber,
        sel: &UsageSelection,
        visit: &mut dyn FnMut(&UsageFact<'_>) -> Result<Flow, StoreError>,
    ) -> StoreResult<()> {
        let vis = self.read_view(n)?;
        self.facts()
            .scan(n, &vis, sel, &mut |batch| batch.for_each(visit))
    }

    fn scan_usage_batches(
        &self,
        n: &EnrollmentNumber,
        sel: &UsageSelection,
        each: &mut dyn FnMut(Box<dyn FactBatch>) -> Result<Flow, StoreError>,
    ) -> StoreResult<()> {
        let vis = self.read_view(n)?;
        self.facts().scan(n, &vis, sel, each)
    }
}

/// Hashes of RecordIds: sorted runs plus an unsorted tail, merged as they
/// grow (8 bytes an id, lookups in a few binary searches).
#[derive(Default)]
struct KeySet {
    runs: Vec<Vec<u64>>,
    /// Hashes not yet in a run: a set, since every row of an ingest asks it.
    tail: FastMap<u64, ()>,
}

impl KeySet {
    const TAIL: usize = 4096;

    fn insert(&mut self, h: u64) {
        self.tail.insert(h, ());
        if self.tail.len() == Self::TAIL {
            let mut run: Vec<u64> = self.tail.drain().map(|(k, ())| k).collect();
            run.sort_unstable();
            // Merge while the newest run is as large as the one before it:
            // each hash is merged O(log n) times.
            while let Some(last) = self.runs.last() {
                if last.len() > run.len() {
                    break;
                }
                let last = self.runs.pop().unwrap_or_default();
                run = merge(&last, &run);
            }
            self.runs.push(run);
        }
    }

    fn contains(&self, h: u64) -> bool {
        self.tail.contains_key(&h) || self.runs.iter().any(|r| r.binary_search(&h).is_ok())
    }
}

fn merge(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

type RollupKey = (Period, i64, Period, bool);
type DayKey = (Day, i64, i64, Period, Option<Price>);

struct PgUsageWriter<'a> {
    store: &'a PgStore,
    n: EnrollmentNumber,
    eid: i64,
    ingest: IngestId,
    catalog: Arc<Catalog>,
    catalog_version: i64,
    /// Rollups committed before this ingest began.
    stored: Vec<Rollup>,
    /// What reads saw when this ingest began.
    committed: Visibility,
    /// What this ingest's lookups see: the committed rows and its own.
    vis: Visibility,
    /// Hashes of the RecordIds visible to `vis`.
    known: KeySet,
    /// Rows not yet in the fact store, and where each RecordId is among them.
    buffer: Vec<(OwnedUsage, Classified)>,
    buffer_bytes: usize,
    buffered: FastMap<String, usize>,
    flushed_any: bool,
    /// This ingest's rollups: (quantity, fixed cost, rows).
    rollups: FastMap<RollupKey, (i128, Amount, i64)>,
    /// This ingest's day sums: (quantity, rows).
    day_sums: FastMap<DayKey, (i128, i64)>,
    rows_stored: i64,
    renewed: Instant,
    done: bool,
}

/// Whether a record as sent is the stored one: same day, subscription,
/// meter, quantity and descriptive fields.
fn same_content(stored: &UsageFact<'_>, raw: &OwnedUsage, c: &Classified) -> bool {
    let dims = raw.as_raw().dimensions();
    stored.day == c.day
        && stored.subscription == c.subscription
        && stored.meter == c.meter
        && stored.quantity == c.quantity
        && [
            stored.instance_id,
            stored.resource_group,
            stored.resource_location,
            stored.consumed_service,
            stored.tags,
            stored.additional_info,
            stored.service_info1,
            stored.service_info2,
        ] == dims
}

/// A buffered record as the fact it will be stored as.
fn fact_of<'r>(raw: &'r OwnedUsage, c: &Classified) -> UsageFact<'r> {
    let r = raw.as_raw();
    let [instance_id, resource_group, resource_location, consumed_service, tags, additional_info, service_info1, service_info2] =
        r.dimensions();
    UsageFact {
        record_id: r.record_id,
        subscription: c.subscription,
        day: c.day,
        meter: c.meter,
        quantity: c.quantity,
        booked: c.booked,
        rate_period: c.rate_period,
        correction_rate: c.correction_rate,
        instance_id,
        resource_group,
        resource_location,
        consumed_service,
        tags,
        additional_info,
        service_info1,
        service_info2,
    }
}

impl PgUsageWriter<'_> {
    fn flush(&mut self) -> StoreResult<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut batch = OwnedBatch::default();
        for (raw, c) in &self.buffer {
            batch.push(&fact_of(raw, c));
        }
        self.flushed_any = true;
        self.store
            .facts()
            .insert_facts(&self.n, self.ingest, &batch)?;
        self.buffer.clear();
        self.buffered.clear();
        self.buffer_bytes = 0;
        Ok(())
    }

    /// Keeps this ingest's slot; Conflict when another ingest took it over.
    fn renew(&mut self) -> StoreResult<()> {
        let lease = self.store.lease_secs();
        if self.renewed.elapsed() < Duration::from_millis(lease as u64 * 250) {
            return Ok(());
        }
        let mut c = self.store.conn()?;
        let held = c
            .execute(
                "UPDATE usage_ingest SET lease_until = $2 WHERE id = $1 AND state = 'writing'",
                &[&self.ingest, &(unix_now() + lease)],
            )
            .map_err(backend)?;
        if held == 0 {
            return Err(lost_slot(&self.n));
        }
        self.renewed = Instant::now();
        Ok(())
    }

    /// Checks the day sums against what is stored for the same days and
    /// writes them to the fact store.
    fn write_day_sums(&mut self) -> StoreResult<()> {
        if self.day_sums.is_empty() {
            return Ok(());
        }
        let out_of_range =
            || StoreError::Invalid("a day's quantity exceeds the supported range".into());
        let (mut lo, mut hi) = (Day::from_raw(i32::MAX), Day::from_raw(i32::MIN));
        for k in self.day_sums.keys() {
            lo = lo.min(k.0);
            hi = hi.max(k.0);
        }
        let mut before: FastMap<DayKey, i128> = FastMap::default();
        for s in self
            .store
            .facts()
            .day_sums(&self.n, &self.committed, lo, hi)?
        {
            let key = (s.day, s.subscription, s.meter, s.booked, s.correction_rate);
            before.insert(key, s.quantity.raw() as i128);
        }
        let mut sums = Vec::with_capacity(self.day_sums.len());
        for (&(day, subscription, meter, booked, correction_rate), &(q, rows)) in &self.day_sums {
            let total = q + before
                .get(&(day, subscription, meter, booked, correction_rate))
                .copied()
                .unwrap_or(0);
            if i64::try_from(total).is_err() {
                return Err(out_of_range());
            }
            sums.push(DailyUsage {
                day,
                subscription,
                meter,
                booked,
                correction_rate,
                quantity: Quantity(i64::try_from(q).map_err(|_| out_of_range())?),
                rows,
            });
        }
        sums.sort_by_key(|s| (s.day, s.subscription, s.meter, s.booked, s.correction_rate));
        self.flushed_any = true;
        self.store
            .facts()
            .insert_day_sums(&self.n, self.ingest, &sums)
    }

    /// The rollups after this ingest, for the keys it touched.
    fn new_rollups(&self) -> StoreResult<Vec<Rollup>> {
        let mut out = Vec::with_capacity(self.rollups.len());
        for (&(booked, meter, rate_period, correction), &(q, cost, rows)) in &self.rollups {
            let old = self.stored.iter().find(|r| {
                r.booked == booked
                    && r.meter == meter
                    && r.rate_period == rate_period
                    && r.correction == correction
            });
            let (oq, ocost, orows) = old.map_or((0, Amount::ZERO, 0), |r| {
                (r.quantity.raw(), r.fixed_cost, r.rows)
            });
            let quantity = i64::try_from(oq as i128 + q).map_err(|_| {
                StoreError::Invalid("a period's quantity exceeds the supported range".into())
            })?;
            let fixed_cost = ocost.checked_add(cost).map_err(|_| {
                StoreError::Invalid("a period's cost exceeds the supported range".into())
            })?;
            out.push(Rollup {
                booked,
                meter,
                rate_period,
                correction,
                quantity: Quantity(quantity),
                fixed_cost,
                rows: orows + rows,
            });
        }
        Ok(out)
    }

    /// The ledger's half of the commit: one transaction.
    fn commit_ledger(&mut self, rollups: &[Rollup]) -> StoreResult<()> {
        let mut c = self.store.conn()?;
        let mut tx = c.transaction().map_err(backend)?;
        let version: i64 = tx
            .query_one(
                "SELECT catalog_version FROM enrollment WHERE id = $1 FOR UPDATE",
                &[&self.eid],
            )
            .map_err(backend)?
            .get(0);
        if version != self.catalog_version {
            return Err(StoreError::Conflict(format!(
                "the price sheets, periods or subscriptions of enrollment {} changed while \
                 this file was being ingested; nothing was stored: ingest it again",
                self.n
            )));
        }
        let held = tx
            .execute(
                "UPDATE usage_ingest SET state = 'committed', finished_at = $2, rows_stored = $3
                  WHERE id = $1 AND state = 'writing'",
                &[&self.ingest, &unix_now(), &self.rows_stored],
            )
            .map_err(backend)?;
        if held == 0 {
            return Err(lost_slot(&self.n));
        }
        let upsert = tx
            .prepare(
                "INSERT INTO usage_rollup
                   (enrollment_id, booked, meter_key, rate_period, correction, quantity, fixed_cost, rows)
                 VALUES ($1, $2, $3, $4, $5, $6, $7::TEXT::NUMERIC, $8)
                 ON CONFLICT (enrollment_id, booked, meter_key, rate_period, correction)
                 DO UPDATE SET quantity = EXCLUDED.quantity, fixed_cost = EXCLUDED.fixed_cost,
                               rows = EXCLUDED.rows",
            )
            .map_err(backend)?;
        for r in rollups {
            tx.execute(
                &upsert,
                &[
                    &self.eid,
                    &(r.booked.id() as i32),
                    &r.meter,
                    &(r.rate_period.id() as i32),
                    &r.correction,
                    &r.quantity.raw(),
                    &r.fixed_cost.raw().to_string(),
                    &r.rows,
                ],
            )
            .map_err(backend)?;
        }
        metadata::bump_version(&mut tx, self.eid)?;
        tx.commit().map_err(backend)
    }
}

impl PgUsageWriter<'_> {
    /// At a test's fail point: stop here as a killed process would, leaving
    /// everything as it is (no clean-up runs).
    fn crash_if(&mut self, point: FailPoint) -> StoreResult<()> {
        if self.store.fails_at(point) {
            self.done = true;
            return Err(StoreError::Backend(format!(
                "stopped at {point:?} (a test's fail point)"
            )));
        }
        Ok(())
    }
}

fn lost_slot(n: &EnrollmentNumber) -> StoreError {
    StoreError::Conflict(format!(
        "this ingest of enrollment {n} stopped renewing its lease and another one took over; \
         nothing was stored: ingest the file again"
    ))
}

impl UsageWriter for PgUsageWriter<'_> {
    fn catalog(&self) -> Arc<Catalog> {
        self.catalog.clone()
    }

    fn stored_rollups(&self) -> StoreResult<Vec<Rollup>> {
        Ok(self.stored.clone())
    }

    fn write_batch(
        &mut self,
        rows: &[(OwnedUsage, Classified)],
        out: &mut Vec<Written>,
    ) -> StoreResult<()> {
        // RecordIds that may be stored already: fetch those rows in one lookup.
        let probe: Vec<&str> = rows
            .iter()
            .map(|(o, _)| o.as_raw().record_id)
            .filter(|id| !self.buffered.contains_key(*id) && self.known.contains(hash_id(id)))
            .collect();
        let mut found: FastMap<String, OwnedBatch> = FastMap::default();
        if !probe.is_empty() {
            self.store
                .facts()
                .lookup(&self.n, &self.vis, &probe, &mut |f| {
                    let mut b = OwnedBatch::default();
                    b.push(f);
                    found.insert(f.record_id.to_owned(), b);
                    Ok(())
                })?;
        }
        for (owned, c) in rows {
            let raw = owned.as_raw();
            let id = raw.record_id;
            let same = if let Some(&i) = self.buffered.get(id) {
                let (o, bc) = &self.buffer[i];
                Some(same_content(&fact_of(o, bc), owned, c))
            } else if let Some(stored) = found.get(id) {
                let mut same = false;
                stored.for_each(&mut |f| {
                    same = same_content(f, owned, c);
                    Ok(Flow::Stop)
                })?;
                Some(same)
            } else {
                None
            };
            if let Some(same) = same {
                out.push(if same {
                    Written::Duplicate
                } else {
                    Written::Conflict
                });
                continue;
            }
            let e = self
                .rollups
                .entry((c.booked, c.meter, c.rate_period, c.is_correction()))
                .or_insert((0, Amount::ZERO, 0));
            e.0 += c.quantity.raw() as i128;
            if let Some(rate) = c.correction_rate {
                // A correction's cost is fixed row by row at its locked rate.
                e.1 = c
                    .quantity
                    .checked_mul(rate)
                    .and_then(|a| e.1.checked_add(a))
                    .map_err(|_| {
                        StoreError::Invalid(format!(
                            "line {}: meter {}: the cost of the correction exceeds the supported range",
                            raw.line, raw.meter_id
                        ))
                    })?;
            }
            e.2 += 1;
            let d = self
                .day_sums
                .entry((c.day, c.subscription, c.meter, c.booked, c.correction_rate))
                .or_insert((0, 0));
            d.0 += c.quantity.raw() as i128;
            d.1 += 1;
            self.known.insert(hash_id(id));
            self.buffered.insert(id.to_owned(), self.buffer.len());
            self.buffer_bytes += owned.len();
            self.buffer.push((owned.clone(), *c));
            self.rows_stored += 1;
            out.push(Written::Stored);
        }
        if self.buffer.len() >= FLUSH_ROWS || self.buffer_bytes >= FLUSH_BYTES {
            self.flush()?;
        }
        self.renew()
    }

    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        self.flush()?;
        self.crash_if(FailPoint::AfterFacts)?;
        self.write_day_sums()?;
        self.crash_if(FailPoint::AfterDaySums)?;
        let rollups = self.new_rollups()?;
        self.commit_ledger(&rollups)?;
        self.done = true;
        self.crash_if(FailPoint::AfterLedgerCommit)
    }
}

impl Drop for PgUsageWriter<'_> {
    /// An ingest that did not commit gives its slot up and deletes what it
    /// wrote. Best effort: if the ledger cannot be reached, the lease runs
    /// out and the next ingest of the enrollment does it.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Ok(mut c) = self.store.conn() else {
            return;
        };
        // A commit that failed after the ledger said yes has nothing to undo.
        let gave_up = c.execute(
            "UPDATE usage_ingest SET state = 'abandoned', finished_at = $2, purged = $3
              WHERE id = $1 AND state = 'writing'",
            &[&self.ingest, &unix_now(), &!self.flushed_any],
        );
        if matches!(gave_up, Ok(1)) && self.flushed_any {
            if let Ok(true) = self.store.facts().purge(&self.n, self.ingest) {
                let _ = c.execute(
                    "UPDATE usage_ingest SET purged = TRUE WHERE id = $1",
                    &[&self.ingest],
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KeySet;

    #[test]
    fn a_key_set_finds_what_was_inserted_and_nothing_else() {
        let mut k = KeySet::default();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let inserted: Vec<u64> = (0..3 * KeySet::TAIL + 17).map(|_| next()).collect();
        for &h in &inserted {
            k.insert(h);
        }
        assert!(k.runs.len() > 1 && !k.tail.is_empty());
        assert!(inserted.iter().all(|&h| k.contains(h)));
        assert!((0..10_000).map(|_| next()).all(|h| !k.contains(h)));
    }
}
