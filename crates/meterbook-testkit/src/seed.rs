//! Seeding through the storage traits: enrollments with a hierarchy, price
//! sheets, usage, API keys of any scope, portal users of any role.

use meterbook_core::access::{KeyRecord, KeyStore, Scope, Slot};
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::hierarchy::HierarchyRow;
use meterbook_core::ingest::{ingest, IngestOptions, UsageSource};
use meterbook_core::prices::{build_price_sheet, MeterPrice, PriceRow};
use meterbook_core::store::MetadataStore;
use meterbook_core::usage::{RawUsage, Reject};
use meterbook_core::users::{Role, UserStore};
use meterbook_core::{Currency, Day, EnrollmentNumber, Period};
use meterbook_sqlite::SqliteStore;

pub fn num(s: &str) -> EnrollmentNumber {
    EnrollmentNumber::parse(s).expect("enrollment number")
}

pub fn day(s: &str) -> Day {
    s.parse().expect("test date")
}

pub fn period(s: &str) -> Period {
    s.parse().expect("test period")
}

/// Creates enrollment `n` ("Enrollment {n}", all charges visible).
pub fn enrollment(store: &SqliteStore, n: &str, currency: &str, start: Day, end: Day) {
    store
        .create_enrollment(&NewEnrollment {
            number: num(n),
            name: format!("Enrollment {n}"),
            currency: Currency::parse(currency).expect("currency"),
            start,
            end,
            visibility: ChargeVisibility::default(),
        })
        .expect("create enrollment");
}

/// A hierarchy line: the account owned by `{account}@example.com`, cost
/// centre `CC-{account}`, the subscription named `sub-{account}`, the
/// department without a cost centre. Change fields with `..` as needed.
pub fn hierarchy_row(line: u64, dept: &str, account: &str, guid: &str) -> HierarchyRow {
    HierarchyRow {
        line,
        department_name: dept.into(),
        department_cost_center: String::new(),
        account_name: account.into(),
        account_owner_email: format!("{account}@example.com"),
        account_cost_center: format!("CC-{account}"),
        subscription_guid: guid.into(),
        subscription_name: format!("sub-{account}"),
    }
}

/// Hierarchy lines from (department, account, subscription), from line 2.
pub fn hierarchy(rows: &[(&str, &str, &str)]) -> Vec<HierarchyRow> {
    rows.iter()
        .enumerate()
        .map(|(i, (dept, account, guid))| hierarchy_row(i as u64 + 2, dept, account, guid))
        .collect()
}

/// A price-sheet line of a virtual-machine meter `id`.
pub fn price_row(line: u64, id: &str, included: &str, min: &str, price: &str) -> PriceRow {
    PriceRow {
        line,
        meter_id: id.into(),
        meter_name: format!("{id} hours"),
        meter_category: "Virtual Machines".into(),
        meter_sub_category: "D2 v3".into(),
        meter_region: "EU West".into(),
        unit_of_measure: "1 Hour".into(),
        part_number: format!("PN-{id}"),
        unit_price: price.parse().expect("price"),
        included_quantity: included.parse().expect("included"),
        tier_minimum_units: min.parse().expect("tier"),
        charges_billed_separately: false,
        publisher_name: String::new(),
        offer_name: String::new(),
        plan_name: String::new(),
    }
}

/// A price sheet from (meter, included, tier minimum, unit price), from line 2.
pub fn price_sheet(rows: &[(&str, &str, &str, &str)]) -> Vec<MeterPrice> {
    let rows: Vec<PriceRow> = rows
        .iter()
        .enumerate()
        .map(|(i, (id, included, min, price))| price_row(i as u64 + 2, id, included, min, price))
        .collect();
    build_price_sheet(&rows).expect("valid price sheet")
}

/// One usage record as the seeds write them.
pub struct UsageRow<'a> {
    pub id: &'a str,
    pub sub: &'a str,
    pub date: &'a str,
    pub meter: &'a str,
    pub qty: &'a str,
    pub tags: &'a str,
}

/// A seed's usage record: (id, subscription, date, meter, quantity[, tags]).
pub trait AsUsage {
    fn usage(&self) -> UsageRow<'_>;
}

impl AsUsage for (String, &'static str, String, &'static str, String) {
    fn usage(&self) -> UsageRow<'_> {
        UsageRow {
            id: &self.0,
            sub: self.1,
            date: &self.2,
            meter: self.3,
            qty: &self.4,
            tags: "",
        }
    }
}

impl AsUsage
    for (
        String,
        &'static str,
        String,
        &'static str,
        String,
        &'static str,
    )
{
    fn usage(&self) -> UsageRow<'_> {
        UsageRow {
            id: &self.0,
            sub: self.1,
            date: &self.2,
            meter: self.3,
            qty: &self.4,
            tags: self.5,
        }
    }
}

/// Seed rows as a usage source: instance id = record id, in rg-web,
/// westeurope, Microsoft.Compute; line numbers from 2.
pub struct Rows<'a, R>(std::slice::Iter<'a, R>, u64);

impl<'a, R> Rows<'a, R> {
    pub fn new(rows: &'a [R]) -> Self {
        Rows(rows.iter(), 0)
    }
}

impl<R: AsUsage> UsageSource for Rows<'_, R> {
    fn next_record(&mut self) -> Option<Result<RawUsage<'_>, Reject>> {
        let r = self.0.next()?.usage();
        self.1 += 1;
        Some(Ok(RawUsage {
            line: self.1 + 1,
            record_id: r.id,
            subscription_guid: r.sub,
            date: r.date,
            meter_id: r.meter,
            consumed_quantity: r.qty,
            instance_id: r.id,
            resource_group: "rg-web",
            resource_location: "westeurope",
            consumed_service: "Microsoft.Compute",
            tags: r.tags,
            ..Default::default()
        }))
    }
}

/// Ingests `rows` into `n`; every one must be stored.
pub fn ingest_rows<R: AsUsage + Sync>(store: &SqliteStore, n: &str, rows: &[R]) {
    let sum = ingest(
        store,
        &num(n),
        &mut Rows::new(rows),
        IngestOptions::default(),
        &mut |_, _| {},
    )
    .expect("ingest");
    assert_eq!(sum.stored, rows.len() as u64, "{sum:?}");
}

/// Closes every period from `from` through `to`, as of `today`.
pub fn close_periods(store: &SqliteStore, n: &str, from: Period, to: Period, today: Day) {
    for p in from.through(to) {
        meterbook_core::ledger::close_period(store, &num(n), p, today).expect("close period");
    }
}

/// An API key record's settings.
#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    pub slot: Slot,
    pub read_only: bool,
    pub created_at: i64,
    pub expires_at: i64,
    pub disabled: bool,
}

impl KeySpec {
    /// A primary read-write key valid from a minute before `now` for a year.
    pub fn valid_at(now: i64) -> KeySpec {
        KeySpec {
            slot: Slot::Primary,
            read_only: false,
            created_at: now - 60,
            expires_at: now + 365 * 86_400,
            disabled: false,
        }
    }
}

/// Stores an API key of `scope`; returns the whole `mbk_...` token.
pub fn put_key(store: &SqliteStore, n: &str, scope: Scope, spec: KeySpec) -> String {
    let k = meterbook_server::keys::generate().expect("random");
    store
        .put_key(&KeyRecord {
            id: k.id.clone(),
            enrollment: num(n),
            scope,
            slot: spec.slot,
            read_only: spec.read_only,
            secret_hash: k.secret_hash,
            created_at: spec.created_at,
            expires_at: spec.expires_at,
            disabled: spec.disabled,
            last_used_at: None,
        })
        .expect("put key");
    k.token
}

pub fn role(n: &str, scope: Scope, read_only: bool) -> Role {
    Role {
        enrollment: num(n),
        scope,
        read_only,
    }
}

/// Creates a portal user (with a password hash, or invited without one)
/// holding `roles`; returns the user's id.
pub fn user(
    store: &SqliteStore,
    email: &str,
    name: &str,
    password_hash: Option<&str>,
    at: i64,
    roles: &[Role],
) -> i64 {
    let u = store
        .create_user(email, name, password_hash, at)
        .expect("create user");
    for r in roles {
        store.grant_role(u.id, r).expect("grant role");
    }
    u.id
}
