//! `meterbook store copy`: moves a deployment from one store to another (the
//! embedded file to PostgreSQL + ClickHouse, typically), then proves the copy
//! says what the source says.
//!
//! Everything goes through the storage traits, so any pair of backends works
//! and no backend-specific SQL is needed here. What is copied: enrollments
//! (term, currency, visibility, watermark), their hierarchy with its moves,
//! every period's price sheet, purchases and adjustments, closed periods with
//! their locked rates, every usage fact with its own booking (so corrections
//! stay booked where they were), users with their password hashes, roles, API
//! keys (hashes: the keys keep working), operator tokens, the audit log and
//! the server secrets (signed download links stay valid), export schedules.
//! Report jobs, export runs and sessions are not copied: jobs are
//! re-requested in seconds, the exports' due keys run again (replacing their
//! files with the same ones), and people sign in again. Budgets,
//! notification channels and the events already fired are copied (nothing
//! fires again on the target, and webhook signing secrets stay the same);
//! the delivery log is not (send what is pending before moving).
//!
//! Ids: departments, accounts and subscriptions are created in the source's
//! id order (each account with the first subscription it owned), across all
//! enrollments, so an empty target of either kind hands out the same ids —
//! which the reports show.
//!
//! Usage is written with one writer per enrollment: the enrollment's facts
//! appear on the target at once (a reader never sees half of them), while the
//! writers themselves bound memory (they flush as they go) and the scan
//! streams batches, so nothing holds all rows.
//!
//! The verification reads both stores through the use-case layer with one
//! fixed clock, so reports are comparable byte for byte.

use crate::backend::Backend;
use crate::cli::StoreCopyArgs;
use crate::settings::StoreConfig;
use anyhow::{anyhow, bail, Context, Result};
use meterbook_app::monthly::{MonthlyKind, Within};
use meterbook_app::{App, Span};
use meterbook_core::access::{KeyRecord, Scope};
use meterbook_core::enrollment::{Enrollment, NewEnrollment};
use meterbook_core::hierarchy::{Hierarchy, HierarchyRow};
use meterbook_core::store::{Flow, Store, StoreError, UsageSelection, Written};
use meterbook_core::usage::{Classified, OwnedUsage, RawUsage};
use meterbook_core::{EnrollmentNumber, Period};
use meterbook_io::report::ReportFormat;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Rows handed to the target's writer at a time.
const WRITE_ROWS: usize = 4096;

pub fn run(a: &StoreCopyArgs) -> Result<()> {
    let from = StoreConfig::from_args(Path::new(""), Some(&a.from), a.from_usage_store.as_deref())
        .context("--from")?;
    let to = StoreConfig::from_args(Path::new(""), Some(&a.to), a.to_usage_store.as_deref())
        .context("--to")?;
    if from == to {
        bail!("--from and --to are the same store");
    }
    if let StoreConfig::Embedded(p) = &from {
        if !p.exists() {
            bail!("no database at {}", p.display());
        }
    }
    let src = Backend::open(&from)?.store();
    let dst = Backend::open(&to)?.store();
    if !a.verify_only {
        let t = Instant::now();
        let rows = copy(&*src, &*dst)?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "copied {} to {} in {secs:.1} s: {rows} usage rows ({:.0} rows/s)",
            from.describe(),
            to.describe(),
            rows as f64 / secs.max(1e-9)
        );
        println!(
            "not copied: report jobs (request them again), export runs (due ones run again), sessions (people sign in again), the delivery log (send what is pending first)"
        );
    }
    let diffs = verify(src, dst)?;
    if diffs > 0 {
        bail!(
            "{diffs} difference(s) between {} and {}",
            from.describe(),
            to.describe()
        );
    }
    println!("verified: {} and {} agree", from.describe(), to.describe());
    Ok(())
}

/// Copies everything; returns the number of usage rows written.
pub fn copy(src: &dyn Store, dst: &dyn Store) -> Result<u64> {
    let mut enrollments = src.enrollments()?;
    enrollments.sort_by_key(|e| e.id);
    // Refuse before writing anything.
    let held: Vec<String> = dst
        .enrollments()?
        .into_iter()
        .map(|e| e.number.to_string())
        .filter(|n| enrollments.iter().any(|e| e.number.as_str() == n))
        .collect();
    if !held.is_empty() {
        bail!(
            "the target already holds enrollment(s) {}: nothing was copied (copy into an empty store)",
            held.join(", ")
        );
    }
    for e in &enrollments {
        dst.create_enrollment(&NewEnrollment {
            number: e.number.clone(),
            name: e.name.clone(),
            currency: e.currency,
            start: e.start,
            end: e.end,
            visibility: e.visibility,
        })?;
    }
    let hierarchies: Vec<Hierarchy> = enrollments
        .iter()
        .map(|e| src.hierarchy(&e.number))
        .collect::<Result<_, _>>()?;
    copy_hierarchies(dst, &enrollments, &hierarchies)?;
    let mut rows = 0;
    for (e, h) in enrollments.iter().zip(&hierarchies) {
        let n = &e.number;
        // Price sheets, each in its meters' key order (keys are handed out
        // in that order on the target too).
        let mut meter_ids: HashMap<i64, String> = HashMap::new();
        let periods = src.periods(n)?;
        for p in periods.iter().filter(|p| p.has_price_sheet) {
            let mut sheet = src.price_sheet(n, p.period)?;
            sheet.sort_by_key(|(k, _)| *k);
            for (k, m) in &sheet {
                meter_ids.insert(*k, m.info.meter_id.clone());
            }
            let sheet: Vec<_> = sheet.into_iter().map(|(_, m)| m).collect();
            dst.import_prices(n, p.period, &sheet)?;
        }
        let mut target_meters: HashMap<String, i64> = HashMap::new();
        for p in periods.iter().filter(|p| p.has_price_sheet) {
            for (k, m) in dst.price_sheet(n, p.period)? {
                target_meters.insert(m.info.meter_id, k);
            }
        }
        for (kind, entry) in src.entries(n)? {
            dst.add_entry(n, kind, &entry)?;
        }
        let th = dst.hierarchy(n)?;
        let target_subs: HashMap<&str, i64> = th
            .subscriptions
            .values()
            .map(|s| (s.guid.as_str(), s.key))
            .collect();
        let subs: HashMap<i64, (&str, i64)> = h
            .subscriptions
            .values()
            .filter_map(|s| Some((s.key, (s.guid.as_str(), *target_subs.get(s.guid.as_str())?))))
            .collect();
        let meters: HashMap<i64, (&str, i64)> = meter_ids
            .iter()
            .filter_map(|(k, id)| Some((*k, (id.as_str(), *target_meters.get(id)?))))
            .collect();
        rows += copy_usage(src, dst, n, &subs, &meters)?;
        for p in periods.iter().filter(|p| p.closed) {
            let rates: Vec<_> =
                src.locked_rates(n, p.period)?
                    .into_iter()
                    .map(|(k, r)| {
                        meters.get(&k).map(|m| (m.1, r)).ok_or_else(|| {
                            anyhow!("{n}: a locked rate of {} has no meter", p.period)
                        })
                    })
                    .collect::<Result<_>>()?;
            dst.close_period(n, p.period, &rates)?;
        }
        if let Some(w) = e.watermark {
            dst.set_watermark(n, w)?;
        }
    }
    copy_people(src, dst, &enrollments, &hierarchies)?;
    Ok(rows)
}

/// Departments, accounts and subscriptions in the source's id order across
/// all enrollments, then the moves.
fn copy_hierarchies(
    dst: &dyn Store,
    enrollments: &[Enrollment],
    hierarchies: &[Hierarchy],
) -> Result<()> {
    let mut subs: Vec<(usize, &meterbook_core::hierarchy::Subscription)> = hierarchies
        .iter()
        .enumerate()
        .flat_map(|(i, h)| h.subscriptions.values().map(move |s| (i, s)))
        .collect();
    subs.sort_by_key(|(_, s)| s.key);
    let mut run: Vec<HierarchyRow> = Vec::new();
    let mut run_of: Option<usize> = None;
    let flush = |run: &mut Vec<HierarchyRow>, of: Option<usize>| -> Result<()> {
        if let Some(i) = of {
            if !run.is_empty() {
                dst.upsert_hierarchy(&enrollments[i].number, run)?;
            }
        }
        run.clear();
        Ok(())
    };
    for (i, s) in &subs {
        if run_of != Some(*i) {
            flush(&mut run, run_of)?;
            run_of = Some(*i);
        }
        let h = &hierarchies[*i];
        let Some(a) = s.owners.first().and_then(|(_, a)| h.accounts.get(a)) else {
            bail!(
                "{}: subscription {} has no owner",
                enrollments[*i].number,
                s.guid
            );
        };
        let d = h.department(a.department_id);
        run.push(HierarchyRow {
            line: run.len() as u64 + 1,
            department_name: d.map(|d| d.name.clone()).unwrap_or_default(),
            department_cost_center: d.map(|d| d.cost_center.clone()).unwrap_or_default(),
            account_name: a.name.clone(),
            account_owner_email: a.owner_email.clone(),
            account_cost_center: a.cost_center.clone(),
            subscription_guid: s.guid.clone(),
            subscription_name: s.name.clone(),
        });
    }
    flush(&mut run, run_of)?;
    for (i, s) in &subs {
        let h = &hierarchies[*i];
        for (day, acc) in s.owners.iter().skip(1) {
            let Some(a) = h.accounts.get(acc) else {
                bail!(
                    "{}: subscription {} moves to no account",
                    enrollments[*i].number,
                    s.guid
                );
            };
            dst.move_subscription(&enrollments[*i].number, &s.guid, &a.name, *day)?;
        }
    }
    for (e, h) in enrollments.iter().zip(hierarchies) {
        let used: std::collections::HashSet<i64> = h
            .accounts
            .values()
            .filter_map(|a| a.department_id)
            .collect();
        for d in h.departments.values().filter(|d| !used.contains(&d.id)) {
            eprintln!(
                "warning: {}: department {:?} has no account, and the store traits can only make a department with one: not copied",
                e.number, d.name
            );
        }
    }
    Ok(())
}

/// Streams an enrollment's facts into one writer on the target.
fn copy_usage(
    src: &dyn Store,
    dst: &dyn Store,
    n: &EnrollmentNumber,
    subs: &HashMap<i64, (&str, i64)>,
    meters: &HashMap<i64, (&str, i64)>,
) -> Result<u64> {
    let mut w = dst.begin_usage(n)?;
    let mut pending: Vec<(OwnedUsage, Classified)> = Vec::with_capacity(WRITE_ROWS);
    let mut outs = Vec::with_capacity(WRITE_ROWS);
    let mut rows = 0u64;
    let mut seen = 0u64;
    let mut write = |w: &mut Box<dyn meterbook_core::store::UsageWriter + '_>,
                     pending: &mut Vec<(OwnedUsage, Classified)>|
     -> Result<(), StoreError> {
        outs.clear();
        w.write_batch(pending, &mut outs)?;
        if let Some(i) = outs.iter().position(|o| *o != Written::Stored) {
            return Err(StoreError::Conflict(format!(
                "enrollment {n}: record {} is already stored on the target",
                pending[i].0.as_raw().record_id
            )));
        }
        rows += pending.len() as u64;
        pending.clear();
        Ok(())
    };
    src.scan_usage_batches(n, &UsageSelection::default(), &mut |batch| {
        batch.for_each(&mut |f| {
            seen += 1;
            let (guid, sub) = subs.get(&f.subscription).ok_or_else(|| {
                StoreError::Invalid(format!(
                    "record {}: subscription key {} unknown",
                    f.record_id, f.subscription
                ))
            })?;
            let (meter_id, meter) = meters.get(&f.meter).ok_or_else(|| {
                StoreError::Invalid(format!(
                    "record {}: meter key {} is in no price sheet",
                    f.record_id, f.meter
                ))
            })?;
            let (date, qty) = (f.day.to_string(), f.quantity.to_string());
            let raw = RawUsage {
                line: seen,
                record_id: f.record_id,
                subscription_guid: guid,
                date: &date,
                meter_id,
                consumed_quantity: &qty,
                instance_id: f.instance_id,
                resource_group: f.resource_group,
                resource_location: f.resource_location,
                consumed_service: f.consumed_service,
                tags: f.tags,
                additional_info: f.additional_info,
                service_info1: f.service_info1,
                service_info2: f.service_info2,
            };
            let c = Classified {
                subscription: *sub,
                day: f.day,
                meter: *meter,
                quantity: f.quantity,
                booked: f.booked,
                rate_period: f.rate_period,
                correction_rate: f.correction_rate,
            };
            pending.push((OwnedUsage::from_raw(&raw), c));
            Ok(Flow::Continue)
        })?;
        if pending.len() >= WRITE_ROWS {
            write(&mut w, &mut pending)?;
        }
        Ok(Flow::Continue)
    })?;
    if !pending.is_empty() {
        write(&mut w, &mut pending)?;
    }
    w.commit()?;
    Ok(rows)
}

/// Where a department or account id of the source is on the target (by name).
fn scope_on(h: &Hierarchy, th: &Hierarchy, s: Scope) -> Option<Scope> {
    Some(match s {
        Scope::Enrollment => Scope::Enrollment,
        Scope::Department(d) => {
            Scope::Department(th.department_by_name(&h.departments.get(&d)?.name)?.id)
        }
        Scope::Account(a) => Scope::Account(th.account_by_name(&h.accounts.get(&a)?.name)?.id),
    })
}

fn copy_people(
    src: &dyn Store,
    dst: &dyn Store,
    enrollments: &[Enrollment],
    hierarchies: &[Hierarchy],
) -> Result<()> {
    let targets: Vec<Hierarchy> = enrollments
        .iter()
        .map(|e| dst.hierarchy(&e.number))
        .collect::<Result<_, _>>()?;
    let at = |n: &EnrollmentNumber| enrollments.iter().position(|e| &e.number == n);
    for u in src.users()? {
        let id = match dst.user_by_email(&u.email)? {
            Some(t) => {
                eprintln!(
                    "warning: user {} exists on the target: kept as it is, roles added",
                    u.email
                );
                t.id
            }
            None => {
                let t =
                    dst.create_user(&u.email, &u.name, u.password_hash.as_deref(), u.created_at)?;
                if u.disabled {
                    dst.set_user_disabled(t.id, true)?;
                }
                t.id
            }
        };
        for mut r in src.roles(u.id)? {
            let Some(i) = at(&r.enrollment) else { continue };
            let Some(s) = scope_on(&hierarchies[i], &targets[i], r.scope) else {
                eprintln!(
                    "warning: {}: a role of {} names a scope the copy lacks: not copied",
                    r.enrollment, u.email
                );
                continue;
            };
            r.scope = s;
            dst.grant_role(id, &r)?;
        }
    }
    for (i, e) in enrollments.iter().enumerate() {
        for k in src.keys(&e.number)? {
            let Some(scope) = scope_on(&hierarchies[i], &targets[i], k.scope) else {
                eprintln!(
                    "warning: {}: key {} names a scope the copy lacks: not copied",
                    e.number, k.id
                );
                continue;
            };
            dst.put_key(&KeyRecord { scope, ..k })?;
        }
        // Oldest first, as they were written.
        let mut log = src.audit_log(&e.number, usize::MAX >> 1)?;
        log.reverse();
        for entry in &log {
            dst.audit(&e.number, entry)?;
        }
    }
    for t in src.operator_tokens()? {
        if dst.operator_token(&t.id)?.is_none() {
            dst.put_operator_token(&t)?;
        }
    }
    // Export schedules, not their runs: on the target, the keys in the
    // catch-up window run again, writing the same files in the same place.
    for x in src.export_schedules(None)? {
        if dst.export_schedule(&x.id)?.is_none() {
            dst.create_export(&x)?;
        }
    }
    for (i, e) in enrollments.iter().enumerate() {
        copy_notify(src, dst, &e.number, &hierarchies[i], &targets[i])?;
    }
    for (name, value) in src.secrets()? {
        if dst.secret(&name, &value)? != value {
            eprintln!(
                "warning: the target already has a different secret {name:?}: links signed by the source stop working"
            );
        }
    }
    Ok(())
}

/// Budgets, notification channels and the events already fired, so that
/// nothing fires again on the target. Budgets get the target's ids: event
/// keys naming a budget are rewritten to its new id. Channels keep their
/// salt, so (with the deployment secret, copied after) a webhook's signing
/// secret stays the same. The delivery log is not copied: deliveries still
/// pending on the source are not sent from the target.
fn copy_notify(
    src: &dyn Store,
    dst: &dyn Store,
    n: &EnrollmentNumber,
    h: &Hierarchy,
    th: &Hierarchy,
) -> Result<()> {
    use meterbook_core::notify::{NewBudget, NewChannel, NewEvent};
    let mut ids: HashMap<i64, i64> = HashMap::new();
    let mut budgets = src.budgets(n)?;
    budgets.sort_by_key(|b| b.id);
    for b in budgets {
        let Some(scope) = scope_on(h, th, b.scope) else {
            eprintln!(
                "warning: {n}: budget {:?} names a scope the copy lacks: not copied",
                b.name
            );
            continue;
        };
        let made = dst.create_budget(
            n,
            &NewBudget {
                name: b.name.clone(),
                scope,
                cadence: b.cadence,
                amount: b.amount,
                thresholds: b.thresholds.clone(),
            },
            &b.created_by,
            b.created_at,
        )?;
        ids.insert(b.id, made.id);
    }
    let mut channels = src.channels(n)?;
    channels.sort_by_key(|c| c.id);
    for c in channels {
        dst.add_channel(
            n,
            &NewChannel {
                target: c.target.clone(),
                events: c.events.clone(),
                salt: c.salt.clone(),
            },
            &c.created_by,
            c.created_at,
        )?;
    }
    // Oldest first, as they fired.
    let mut events = src.events(n, 1_000_000)?;
    events.reverse();
    for ev in events {
        let budget = ev.budget.and_then(|b| ids.get(&b).copied());
        let key = match (ev.budget, budget) {
            (Some(old), Some(new)) => ev
                .key
                .strip_prefix(&format!("budget:{old}:"))
                .map_or(ev.key.clone(), |rest| format!("budget:{new}:{rest}")),
            _ => ev.key.clone(),
        };
        let copied = NewEvent {
            kind: ev.kind,
            key,
            budget,
            payload: ev.payload.clone(),
        };
        dst.record_event(n, &copied, &[], ev.fired_at)?;
    }
    Ok(())
}

/// The use-case layer over a store, with a fixed clock (reports state when
/// they were made).
fn app(store: Arc<dyn Store>) -> App {
    App::new(
        store,
        Arc::new(super::NoReportFiles),
        meterbook_jobs::JobSettings::default(),
        Arc::new(meterbook_core::clock::ManualClock::at_millis(0)),
    )
}

/// One thing compared: its name and what each side says.
struct Check {
    enrollment: String,
    period: String,
    what: &'static str,
    source: String,
    target: String,
}

/// What a report says and a digest of its bytes.
fn report(app: &App, n: &EnrollmentNumber, kind: MonthlyKind, p: Period) -> String {
    let run = || -> Result<String> {
        let access = app.local_operator().enrollment(n)?;
        let r = access.monthly_report(kind, Span::Period(p), &Within::default())?;
        let mut h = HashWriter(Sha256::new());
        let stated = r.write(ReportFormat::Csv, &mut h)?;
        let digest = h.0.finalize();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("{stated:?} sha256:{hex}"))
    };
    run().unwrap_or_else(|e| format!("error: {e:#}"))
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Each period's statement figures, by name.
type Figures = HashMap<Period, Vec<(&'static str, String)>>;

fn statement_figures(app: &App, n: &EnrollmentNumber, through: Period) -> Result<Figures> {
    let access = app.local_operator().enrollment(n)?;
    let exp = access.enrollment().currency.exponent();
    let mut out = HashMap::new();
    for (st, _) in access.enterprise()?.statements(through)? {
        let m = |v: meterbook_core::fixed::Money| v.format(exp);
        out.insert(
            st.period,
            vec![
                ("beginning balance", m(st.beginning_balance)),
                ("new purchases", m(st.new_purchases)),
                ("adjustments", m(st.adjustments)),
                ("utilized", m(st.utilized)),
                ("ending balance", m(st.ending_balance)),
                ("service overage", m(st.service_overage)),
                ("charges billed separately", m(st.charges_billed_separately)),
                ("total overage", m(st.total_overage)),
                ("total usage", m(st.total_usage)),
                ("marketplace charges", m(st.marketplace_charges)),
                ("purchase details", format!("{:?}", st.purchase_details)),
                ("adjustment details", format!("{:?}", st.adjustment_details)),
            ],
        );
    }
    Ok(out)
}

fn hierarchy_text(h: &Hierarchy) -> Vec<String> {
    let mut lines: Vec<String> = h
        .departments
        .values()
        .map(|d| format!("department {} {:?} {:?}", d.id, d.name, d.cost_center))
        .chain(h.accounts.values().map(|a| {
            format!(
                "account {} {:?} {:?} {:?} department {:?}",
                a.id, a.name, a.owner_email, a.cost_center, a.department_id
            )
        }))
        .chain(
            h.subscriptions
                .values()
                .map(|s| format!("subscription {} {:?} owners {:?}", s.guid, s.name, s.owners)),
        )
        .collect();
    lines.sort();
    lines
}

const REPORTS: [&str; 4] = ["usage details", "marketplace", "price list", "balance"];

fn add(checks: &mut Vec<Check>, e: &str, p: &str, what: &'static str, s: String, t: String) {
    checks.push(Check {
        enrollment: e.to_string(),
        period: p.to_string(),
        what,
        source: s,
        target: t,
    })
}

/// Compares the two stores; prints a table; returns the number of differences.
pub fn verify(src: Arc<dyn Store>, dst: Arc<dyn Store>) -> Result<usize> {
    let (sa, ta) = (app(src.clone()), app(dst.clone()));
    let mut checks: Vec<Check> = Vec::new();
    let mut enrollments = src.enrollments()?;
    enrollments.sort_by_key(|e| e.id);
    println!(
        "{:<12} {:<7} {:<9} {:<12} {:<12} {:<6} {:<7} {:<7}",
        "enrollment",
        "period",
        "statement",
        "usage rows",
        "marketplace",
        "prices",
        "balance",
        "result"
    );
    for e in &enrollments {
        let n = &e.number;
        let num = n.to_string();
        let te = match dst.enrollment(n) {
            Ok(te) => te,
            Err(err) => {
                add(
                    &mut checks,
                    &num,
                    "-",
                    "enrollment",
                    "present".into(),
                    format!("{err}"),
                );
                continue;
            }
        };
        let describe = |e: &Enrollment| {
            format!(
                "{:?} {} {}..{} {:?} watermark {:?}",
                e.name,
                e.currency.code(),
                e.start,
                e.end,
                e.visibility,
                e.watermark
            )
        };
        add(
            &mut checks,
            &num,
            "-",
            "enrollment",
            describe(e),
            describe(&te),
        );
        let (sh, th) = (
            hierarchy_text(&src.hierarchy(n)?),
            hierarchy_text(&dst.hierarchy(n)?),
        );
        let only_s: Vec<_> = sh.iter().filter(|l| !th.contains(l)).cloned().collect();
        let only_t: Vec<_> = th.iter().filter(|l| !sh.contains(l)).cloned().collect();
        add(
            &mut checks,
            &num,
            "-",
            "hierarchy",
            only_s.join("; "),
            only_t.join("; "),
        );
        let count = |s: &dyn Store| -> Result<String> {
            let keys: Vec<String> = s
                .keys(n)?
                .into_iter()
                .map(|k| format!("{}:{}:{}", k.id, k.slot.as_str(), k.disabled))
                .collect();
            Ok(format!(
                "{} keys {:?}; {} audit entries",
                keys.len(),
                keys,
                s.audit_log(n, usize::MAX >> 1)?.len()
            ))
        };
        let (ks, kt) = (count(&*src)?, count(&*dst)?);
        add(&mut checks, &num, "-", "keys and audit log", ks, kt);
        let last = e.last_period();
        let (ss, ts) = (
            statement_figures(&sa, n, last).map_err(|e| e.to_string()),
            statement_figures(&ta, n, last).map_err(|e| e.to_string()),
        );
        for p in e.first_period().through(last) {
            let ps = p.to_string();
            let before = checks.len();
            let figures = |r: &Result<Figures, String>| match r {
                Ok(m) => m.get(&p).cloned().unwrap_or_default(),
                Err(e) => vec![("statement", format!("error: {e}"))],
            };
            let (fs, ft) = (figures(&ss), figures(&ts));
            let longest = fs.len().max(ft.len());
            for i in 0..longest {
                let what = fs.get(i).or(ft.get(i)).map_or("statement", |f| f.0);
                add(
                    &mut checks,
                    &num,
                    &ps,
                    what,
                    fs.get(i).map(|f| f.1.clone()).unwrap_or_default(),
                    ft.get(i).map(|f| f.1.clone()).unwrap_or_default(),
                );
            }
            for (kind, what) in [
                (MonthlyKind::Usage, "usage details"),
                (MonthlyKind::Marketplace, "marketplace"),
                (MonthlyKind::Prices, "price list"),
                (MonthlyKind::Balance, "balance"),
            ] {
                add(
                    &mut checks,
                    &num,
                    &ps,
                    what,
                    report(&sa, n, kind, p),
                    report(&ta, n, kind, p),
                );
            }
            let bad = |what: &str| {
                let hit = checks[before..].iter().any(|c| {
                    c.source != c.target
                        && if what == "statement" {
                            !REPORTS.contains(&c.what)
                        } else {
                            c.what == what
                        }
                });
                if hit {
                    "DIFF"
                } else {
                    "ok"
                }
            };
            let usage_rows = checks[before..]
                .iter()
                .find(|c| c.what == "usage details")
                .map(|c| rows_of(&c.source))
                .unwrap_or_default();
            let any = checks[before..].iter().any(|c| c.source != c.target);
            println!(
                "{:<12} {:<7} {:<9} {:<12} {:<12} {:<6} {:<7} {:<7}",
                num,
                ps,
                bad("statement"),
                format!("{usage_rows} {}", bad("usage details")),
                bad("marketplace"),
                bad("price list"),
                bad("balance"),
                if any { "DIFF" } else { "ok" }
            );
        }
    }
    let counts = |s: &dyn Store| -> Result<Vec<String>> {
        let users = s.users()?;
        let disabled = users.iter().filter(|u| u.disabled).count();
        let tokens = s.operator_tokens()?;
        let mut keys = 0;
        for e in &enrollments {
            keys += s.keys(&e.number)?.len();
        }
        Ok(vec![
            format!("{} users ({disabled} disabled)", users.len()),
            format!("{keys} API keys"),
            format!("{} operator tokens", tokens.len()),
            format!("{} server secrets", s.secrets()?.len()),
        ])
    };
    let (cs, ct) = (counts(&*src)?, counts(&*dst)?);
    for (what, (s, t)) in ["users", "API keys", "operator tokens", "server secrets"]
        .into_iter()
        .zip(cs.into_iter().zip(ct))
    {
        println!(
            "{what:<16} source: {s:<28} target: {t}{}",
            if s == t { "" } else { "  DIFF" }
        );
        add(&mut checks, "-", "-", what, s, t);
    }
    let diffs: Vec<&Check> = checks.iter().filter(|c| c.source != c.target).collect();
    for c in &diffs {
        println!(
            "DIFF enrollment {} period {} {}: source {} | target {}",
            c.enrollment, c.period, c.what, c.source, c.target
        );
    }
    Ok(diffs.len())
}

/// The row count a usage report states, for the table.
fn rows_of(stated: &str) -> String {
    stated
        .split("rows: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or("-")
        .to_string()
}
