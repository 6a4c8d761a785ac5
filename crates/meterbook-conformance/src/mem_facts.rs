//! An in-memory [`FactStore`]: the reference for what a fact database must
//! do, and a test double for the ledger's side of the exactly-once protocol
//! (it can be told to fail the n-th write, as a shard that goes down would).

use meterbook_core::calendar::Day;
use meterbook_core::enrollment::EnrollmentNumber;
use meterbook_core::facts::{FactStore, IngestId, Visibility};
use meterbook_core::store::{
    DailyUsage, FactBatch, Flow, OwnedBatch, StoreError, StoreResult, UsageFact, UsageSelection,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// One stored row with its texts owned.
#[derive(Clone, Debug)]
struct Row {
    ingest: IngestId,
    texts: [String; 9],
    fact: UsageFact<'static>,
}

impl Row {
    fn of(ingest: IngestId, f: &UsageFact<'_>) -> Row {
        Row {
            ingest,
            texts: [
                f.record_id,
                f.instance_id,
                f.resource_group,
                f.resource_location,
                f.consumed_service,
                f.tags,
                f.additional_info,
                f.service_info1,
                f.service_info2,
            ]
            .map(str::to_owned),
            fact: UsageFact {
                record_id: "",
                instance_id: "",
                resource_group: "",
                resource_location: "",
                consumed_service: "",
                tags: "",
                additional_info: "",
                service_info1: "",
                service_info2: "",
                ..*f
            },
        }
    }

    fn fact(&self) -> UsageFact<'_> {
        let t = &self.texts;
        UsageFact {
            record_id: &t[0],
            instance_id: &t[1],
            resource_group: &t[2],
            resource_location: &t[3],
            consumed_service: &t[4],
            tags: &t[5],
            additional_info: &t[6],
            service_info1: &t[7],
            service_info2: &t[8],
            ..self.fact
        }
    }

    fn correction(&self) -> bool {
        self.fact.correction_rate.is_some()
    }
}

#[derive(Default)]
struct Tables {
    /// Per enrollment: rows in arrival order.
    facts: BTreeMap<String, Vec<Row>>,
    sums: BTreeMap<String, Vec<(IngestId, DailyUsage)>>,
}

/// Facts in memory.
#[derive(Default)]
pub struct MemFacts {
    tables: Mutex<Tables>,
    /// Writes left before one fails (negative: never).
    fail_after: AtomicI64,
}

impl MemFacts {
    pub fn new() -> MemFacts {
        MemFacts {
            tables: Mutex::default(),
            fail_after: AtomicI64::new(-1),
        }
    }

    /// Makes the write after the next `n` fail, and every write after it,
    /// until [`MemFacts::recover`].
    pub fn fail_after(&self, n: i64) {
        self.fail_after.store(n, Ordering::SeqCst);
    }

    pub fn recover(&self) {
        self.fail_after.store(-1, Ordering::SeqCst);
    }

    /// Rows stored for `n`, visible or not (what a purge must remove).
    pub fn stored_rows(&self, n: &EnrollmentNumber) -> usize {
        let t = self.tables.lock().unwrap();
        t.facts.get(n.as_str()).map_or(0, Vec::len)
    }

    fn write(&self) -> StoreResult<()> {
        let left = self.fail_after.load(Ordering::SeqCst);
        if left == 0 {
            return Err(StoreError::Backend("the fact store is down".into()));
        }
        if left > 0 {
            self.fail_after.store(left - 1, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl FactStore for MemFacts {
    fn insert_facts(
        &self,
        n: &EnrollmentNumber,
        ingest: IngestId,
        rows: &OwnedBatch,
    ) -> StoreResult<()> {
        self.write()?;
        let mut t = self.tables.lock().unwrap();
        let to = t.facts.entry(n.as_str().to_owned()).or_default();
        rows.for_each(&mut |f| {
            to.push(Row::of(ingest, f));
            Ok(Flow::Continue)
        })?;
        Ok(())
    }

    fn insert_day_sums(
        &self,
        n: &EnrollmentNumber,
        ingest: IngestId,
        sums: &[DailyUsage],
    ) -> StoreResult<()> {
        self.write()?;
        let mut t = self.tables.lock().unwrap();
        let to = t.sums.entry(n.as_str().to_owned()).or_default();
        to.extend(sums.iter().map(|s| (ingest, *s)));
        Ok(())
    }

    fn lookup(
        &self,
        n: &EnrollmentNumber,
        vis: &Visibility,
        ids: &[&str],
        found: &mut dyn FnMut(&UsageFact<'_>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let t = self.tables.lock().unwrap();
        for r in t.facts.get(n.as_str()).into_iter().flatten() {
            if vis.sees(r.ingest) && ids.contains(&r.texts[0].as_str()) {
                found(&r.fact())?;
            }
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
        let rows: Vec<Row> = {
            let t = self.tables.lock().unwrap();
            t.facts
                .get(n.as_str())
                .into_iter()
                .flatten()
                .filter(|r| vis.sees(r.ingest))
                .cloned()
                .collect()
        };
        // (phase, day, RecordId) of each selected row.
        let mut keyed: Vec<((bool, Day, &str), &Row)> = Vec::new();
        for r in &rows {
            let f = &r.fact;
            let in_range = sel.from.is_none_or(|d| f.day >= d) && sel.to.is_none_or(|d| f.day <= d);
            if !in_range {
                continue;
            }
            let phase = match sel.booked {
                None => false,
                // The period's own days, then the corrections booked into it.
                Some(p) if !r.correction() && f.day.period() == p => false,
                Some(p) if r.correction() && f.booked == p => true,
                Some(_) => continue,
            };
            keyed.push(((phase, f.day, r.texts[0].as_str()), r));
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut batch = OwnedBatch::default();
        for (key, r) in keyed {
            if let Some(c) = &sel.after {
                if key <= (c.correction_phase, c.day, c.record_id.as_str()) {
                    continue;
                }
            }
            batch.push(&r.fact());
            if batch.len() == OwnedBatch::ROWS
                && each(Box::new(std::mem::take(&mut batch)))? == Flow::Stop
            {
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
        type Key = (Day, i64, i64, u32, Option<i128>);
        let t = self.tables.lock().unwrap();
        let mut sums: BTreeMap<Key, DailyUsage> = BTreeMap::new();
        for (ingest, s) in t.sums.get(n.as_str()).into_iter().flatten() {
            if !vis.sees(*ingest) || s.day < from || s.day > to {
                continue;
            }
            let key = (
                s.day,
                s.subscription,
                s.meter,
                s.booked.id(),
                s.correction_rate.map(|r| r.raw()),
            );
            match sums.get_mut(&key) {
                Some(e) => {
                    e.quantity = e.quantity.checked_add(s.quantity).map_err(|_| {
                        StoreError::Invalid("a day's quantity exceeds the supported range".into())
                    })?;
                    e.rows += s.rows;
                }
                None => {
                    sums.insert(key, *s);
                }
            }
        }
        Ok(sums.into_values().collect())
    }

    fn purge(&self, n: &EnrollmentNumber, ingest: IngestId) -> StoreResult<bool> {
        self.write()?;
        let mut t = self.tables.lock().unwrap();
        if let Some(rows) = t.facts.get_mut(n.as_str()) {
            rows.retain(|r| r.ingest != ingest);
        }
        if let Some(sums) = t.sums.get_mut(n.as_str()) {
            sums.retain(|(i, _)| *i != ingest);
        }
        Ok(true)
    }

    fn doctor(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod conformance {
    //! The reference passes its own conformance checks (which keeps the
    //! checks honest: they must hold for the reference first).
    use super::MemFacts;
    use crate::fact_store;

    #[test]
    fn scans() {
        fact_store::scans(&MemFacts::new());
    }
    #[test]
    fn scans_stop() {
        fact_store::scans_stop(&MemFacts::new());
    }
    #[test]
    fn lookups() {
        fact_store::lookups(&MemFacts::new());
    }
    #[test]
    fn day_sums() {
        fact_store::day_sums(&MemFacts::new());
    }
    #[test]
    fn day_sum_overflow() {
        fact_store::day_sum_overflow(&MemFacts::new());
    }
    #[test]
    fn purge() {
        fact_store::purge(&MemFacts::new());
    }
}
