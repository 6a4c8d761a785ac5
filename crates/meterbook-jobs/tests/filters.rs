//! Advanced reports against the store itself: for random date ranges and
//! account/department sets, a job's rows are exactly the rows a direct scan of
//! the store selects, and each row's cost is the one the usage-details report
//! of the whole range gives it.

use meterbook_conformance::fixture::*;
use meterbook_core::access::Scope;
use meterbook_core::jobs::{ExportFormat, JobSpec, JobStatus, JobStore};
use meterbook_core::store::{Flow, MetadataStore, UsageSelection, UsageStore};
use meterbook_core::Day;
use meterbook_io::report::usage::UsageFilter;
use meterbook_io::report::ReportScope;
use meterbook_jobs::{DirReportFiles, JobSettings, Manifest, ReportFiles, Runner};
use meterbook_sqlite::SqliteStore;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

const SUBS: [&str; 4] = [G1, G2, G3, G4];

fn seeded(dir: &std::path::Path) -> Arc<SqliteStore> {
    let s = SqliteStore::open(dir.join("t.db")).unwrap();
    enrollment(&s, "USD");
    for p in ["202501", "202502", "202503", "202504"] {
        prices(
            &s,
            p,
            &[
                meter("m1", "5", &[("0", "1.25"), ("40", "0.75")]),
                meter("m2", "0", &[("0", "0.333333")]),
            ],
        );
    }
    let mut rng = fastrand::Rng::with_seed(7);
    let rows: Vec<Row> = (0..1500)
        .map(|i| {
            let d = day("2025-01-01").add_days(rng.i32(0..120));
            row(
                &format!("r{i:05}"),
                SUBS[rng.usize(0..4)],
                &d.to_string(),
                if rng.bool() { "m1" } else { "m2" },
                &format!("{}.{:03}", rng.u32(0..9), rng.u32(0..1000)),
            )
        })
        .collect();
    ingest_ok(&s, &rows[..1000]);
    // Close January, then late January usage: corrections booked in February.
    close(&s, "202501");
    let mut late = rows[1000..].to_vec();
    for (i, r) in late.iter_mut().enumerate().take(50) {
        r.date = day("2025-01-01").add_days(i as i32 % 31).to_string();
    }
    ingest_ok(&s, &late);
    // G2 moves to b1 from March 1st: earlier rows stay with a1.
    s.move_subscription(&n(), G2, "b1", day("2025-03-01"))
        .unwrap();
    Arc::new(s)
}

fn run_job(runner: &Runner, store: &SqliteStore, spec: JobSpec) -> String {
    let (job, created) = runner.submit(&n(), spec, "test").unwrap();
    assert!(created);
    assert!(runner.run_next(Some(&job.id)).unwrap());
    let j = store.job(&job.id).unwrap().unwrap();
    assert!(j.status.has_file(), "{j:?}");
    let m = Manifest::parse(j.manifest.as_deref().unwrap()).unwrap();
    let mut f = runner.files().open(&m.file).unwrap().unwrap();
    let mut s = String::new();
    f.reader.read_to_string(&mut s).unwrap();
    assert_eq!(m.rows as usize, s.lines().count() - 1);
    assert_eq!(
        j.status,
        if m.rows == 0 {
            JobStatus::NoDataFound
        } else {
            JobStatus::ReadyToDownload
        }
    );
    s
}

/// RecordIds of the range in store order, kept when the row's account (on its
/// date) is one of `accounts` or in one of `departments`; all when both are empty.
fn direct(
    store: &SqliteStore,
    from: Day,
    to: Day,
    accounts: &[String],
    departments: &[String],
) -> Vec<String> {
    let h = store.hierarchy(&n()).unwrap();
    let mut ids = Vec::new();
    let sel = UsageSelection {
        from: Some(from),
        to: Some(to),
        ..Default::default()
    };
    store
        .scan_usage(&n(), &sel, &mut |f| {
            let acc = h.account_on(f.subscription, f.day);
            let dept = acc.and_then(|a| h.department(a.department_id));
            let keep = (accounts.is_empty() && departments.is_empty())
                || acc.is_some_and(|a| accounts.contains(&a.name))
                || dept.is_some_and(|d| departments.contains(&d.name));
            if keep {
                ids.push(f.record_id.to_string());
            }
            Ok(Flow::Continue)
        })
        .unwrap();
    ids
}

#[test]
fn random_ranges_and_filters_select_exactly_the_stored_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path());
    let files = Arc::new(DirReportFiles::new(dir.path().join("reports")).unwrap());
    let runner = Runner::new(store.clone(), files, JobSettings::default());

    // Each row's cost, from the usage-details report of the whole span.
    let (all, _) = report(
        store.as_ref(),
        UsageFilter::operator(UsageSelection {
            from: Some(day("2025-01-01")),
            to: Some(day("2025-12-31")),
            ..Default::default()
        }),
        ReportScope::Range {
            from: "2025-01-01".into(),
            to: "2025-12-31".into(),
        },
    );
    let cost: HashMap<String, String> = column(&all, "RecordId")
        .into_iter()
        .zip(column(&all, "Cost"))
        .collect();
    assert_eq!(cost.len(), 1500);

    let mut rng = fastrand::Rng::with_seed(42);
    let mut non_empty = 0;
    for case in 0..40 {
        let a = day("2025-01-01").add_days(rng.i32(0..130));
        let b = day("2025-01-01").add_days(rng.i32(0..130));
        let (from, to) = (a.min(b), a.max(b));
        let pick = |rng: &mut fastrand::Rng, names: &[&str]| -> Vec<String> {
            names
                .iter()
                .filter(|_| rng.u8(0..3) == 0)
                .map(|s| s.to_string())
                .collect()
        };
        let accounts = pick(&mut rng, &["a1", "b1", "c1"]);
        let departments = pick(&mut rng, &["A", "B"]);
        let csv = run_job(
            &runner,
            &store,
            JobSpec {
                scope: Scope::Enrollment,
                billing_period: None,
                from,
                to,
                accounts: accounts.clone(),
                departments: departments.clone(),
                format: ExportFormat::Csv,
            },
        );
        let got = column(&csv, "RecordId");
        let want = direct(&store, from, to, &accounts, &departments);
        assert_eq!(
            got, want,
            "case {case}: {from}..{to} {accounts:?} {departments:?}"
        );
        for (id, c) in got.iter().zip(column(&csv, "Cost")) {
            assert_eq!(cost[id], c, "case {case}: cost of {id}");
        }
        non_empty += usize::from(!got.is_empty());
    }
    assert!(non_empty > 20, "the cases select rows");
}

#[test]
fn a_department_scope_sees_its_accounts_only_and_costs_per_setting() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path());
    let files = Arc::new(DirReportFiles::new(dir.path().join("reports")).unwrap());
    let runner = Runner::new(store.clone(), files, JobSettings::default());
    let h = store.hierarchy(&n()).unwrap();
    let a = h.department_by_name("A").unwrap().id;
    let spec = JobSpec {
        scope: Scope::Department(a),
        billing_period: None,
        from: day("2025-01-01"),
        to: day("2025-04-30"),
        accounts: vec![],
        departments: vec![],
        format: ExportFormat::Csv,
    };
    let csv = run_job(&runner, &store, spec.clone());
    let want = direct(
        &store,
        day("2025-01-01"),
        day("2025-04-30"),
        &[],
        &["A".to_string()],
    );
    assert_eq!(column(&csv, "RecordId"), want);
    // Department admins may not see charges by default: cost and rate read 0.
    assert!(column(&csv, "Cost").iter().all(|c| c == "0"));
    assert!(column(&csv, "ResourceRate").iter().all(|c| c == "0"));
    // A filter outside the scope is refused.
    let mut outside = spec.clone();
    outside.accounts = vec!["b1".into()];
    let err = runner.submit(&n(), outside, "test").unwrap_err();
    assert!(
        matches!(err, meterbook_jobs::runner::RequestError::Forbidden(_)),
        "{err}"
    );
    let mut dept = spec;
    dept.departments = vec!["B".into()];
    assert!(matches!(
        runner.submit(&n(), dept, "test").unwrap_err(),
        meterbook_jobs::runner::RequestError::Forbidden(_)
    ));
}

#[test]
fn requests_are_checked_before_they_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path());
    let files = Arc::new(DirReportFiles::new(dir.path().join("reports")).unwrap());
    let runner = Runner::new(store.clone(), files, JobSettings::default());
    let spec = |from: &str, to: &str, format: ExportFormat| JobSpec {
        scope: Scope::Enrollment,
        billing_period: None,
        from: day(from),
        to: day(to),
        accounts: vec![],
        departments: vec![],
        format,
    };
    let csv = ExportFormat::Csv;
    for (s, why) in [
        (spec("2025-02-01", "2025-01-01", csv), "before the start"),
        (
            spec("2024-12-31", "2025-01-31", csv),
            "not inside the enrollment's term",
        ),
    ] {
        let e = runner.submit(&n(), s, "t").unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
    // The whole 36-month term is allowed (longer spans are refused: see the
    // CLI test `report_requests_are_limited_to_36_months`).
    runner
        .submit(&n(), spec("2025-01-01", "2027-12-31", csv), "t")
        .unwrap();
    let mut unknown = spec("2025-01-01", "2025-01-31", csv);
    unknown.accounts = vec!["nobody".into()];
    let e = runner.submit(&n(), unknown, "t").unwrap_err().to_string();
    assert!(e.contains("no account \"nobody\""), "{e}");
    // A billing period: inside the term, with its own days as the range.
    let period = |p: &str, from: &str, to: &str| JobSpec {
        billing_period: Some(p.parse().unwrap()),
        ..spec(from, to, csv)
    };
    for (s, why) in [
        (
            period("202412", "2025-01-01", "2025-01-31"),
            "not inside the enrollment's term",
        ),
        (
            period("202502", "2025-02-01", "2025-02-27"),
            "covers 2025-02-01 to 2025-02-28",
        ),
    ] {
        let e = runner.submit(&n(), s, "t").unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
    // A period and the range of its days are different requests.
    let (by_period, _) = runner
        .submit(&n(), period("202502", "2025-02-01", "2025-02-28"), "t")
        .unwrap();
    let (by_days, created) = runner
        .submit(&n(), spec("2025-02-01", "2025-02-28", csv), "t")
        .unwrap();
    assert!(created && by_days.id != by_period.id);
    assert_eq!(
        store
            .job(&by_period.id)
            .unwrap()
            .unwrap()
            .spec
            .billing_period,
        Some("202502".parse().unwrap()),
        "the store keeps the kind"
    );
    // Nothing of the refused requests was stored.
    assert_eq!(store.jobs(&n()).unwrap().len(), 3);
}

#[test]
fn cancel_a_queued_job_and_identical_requests_share_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path());
    let files = Arc::new(DirReportFiles::new(dir.path().join("reports")).unwrap());
    let runner = Runner::new(store.clone(), files, JobSettings::default());
    let spec = JobSpec {
        scope: Scope::Enrollment,
        billing_period: None,
        from: day("2025-01-01"),
        to: day("2025-03-31"),
        accounts: vec!["a1".into(), "c1".into()],
        departments: vec![],
        format: ExportFormat::Csv,
    };
    let (j1, new1) = runner.submit(&n(), spec.clone(), "k1").unwrap();
    let mut reordered = spec.clone();
    reordered.accounts.reverse();
    let (j2, new2) = runner.submit(&n(), reordered, "k2").unwrap();
    assert!(new1 && !new2);
    assert_eq!(j1.id, j2.id);
    assert_eq!(
        store.cancel_job(&j1.id, 1, "test").unwrap(),
        Some(JobStatus::Cancelled)
    );
    // A cancelled job is never run and has no file.
    assert!(!runner.run_next(Some(&j1.id)).unwrap());
    assert!(!store.job(&j1.id).unwrap().unwrap().status.has_file());
}

#[test]
fn retention_removes_old_jobs_and_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path());
    let files = Arc::new(DirReportFiles::new(dir.path().join("reports")).unwrap());
    let settings = JobSettings {
        retention: std::time::Duration::from_secs(3600),
        ..Default::default()
    };
    let runner = Runner::new(store.clone(), files.clone(), settings);
    let spec = JobSpec {
        scope: Scope::Enrollment,
        billing_period: None,
        from: day("2025-01-01"),
        to: day("2025-01-31"),
        accounts: vec![],
        departments: vec![],
        format: ExportFormat::Csv,
    };
    run_job(&runner, &store, spec);
    let j = store.jobs(&n()).unwrap().remove(0);
    let m = Manifest::parse(j.manifest.as_deref().unwrap()).unwrap();
    let finished = j.finished_at.unwrap();
    // Not yet: within the retention period.
    assert_eq!(runner.cleanup(finished + 3_599_000).unwrap(), 0);
    assert!(files.open(&m.file).unwrap().is_some());
    assert_eq!(runner.cleanup(finished + 3_601_000).unwrap(), 1);
    assert!(files.open(&m.file).unwrap().is_none());
    assert!(store.job(&j.id).unwrap().is_none());
}

/// Progress shows rows expected only where the estimate counts what the
/// report will hold: the whole enrollment, never a filtered or scoped report
/// (the rollups cannot split rows by account, so they overstated it).
#[test]
fn rows_are_estimated_only_for_reports_of_the_whole_enrollment() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path());
    let h = store.hierarchy(&n()).unwrap();
    let whole = JobSpec {
        scope: Scope::Enrollment,
        billing_period: None,
        from: day("2025-02-01"),
        to: day("2025-03-31"),
        accounts: vec![],
        departments: vec![],
        format: ExportFormat::Csv,
    };
    let rows = direct(&store, whole.from, whole.to, &[], &[]).len() as u64;
    let est = meterbook_jobs::runner::estimated_rows(store.as_ref(), &n(), &whole);
    assert!(
        est.is_some_and(|e| e > 0 && e <= rows + rows / 10),
        "{est:?} for {rows} rows"
    );
    let narrowed = [
        JobSpec {
            departments: vec!["A".into()],
            ..whole.clone()
        },
        JobSpec {
            accounts: vec!["b1".into()],
            ..whole.clone()
        },
        JobSpec {
            scope: Scope::Department(h.department_by_name("A").unwrap().id),
            ..whole.clone()
        },
    ];
    for spec in narrowed {
        assert_eq!(
            meterbook_jobs::runner::estimated_rows(store.as_ref(), &n(), &spec),
            None,
            "{spec:?}"
        );
    }
}

/// The runner reads the time from its clock: when a job was requested,
/// started and finished, the manifest's `generatedAt`, and when a stalled
/// worker's lease has run out (only then is its job taken over).
#[test]
fn times_and_leases_follow_the_runners_clock() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path());
    let files = Arc::new(DirReportFiles::new(dir.path().join("reports")).unwrap());
    let start = 1_800_000_000_000; // 2027-01-15T08:00:00Z
    let clock = meterbook_core::clock::ManualClock::at_millis(start);
    let settings = JobSettings {
        lease: std::time::Duration::from_secs(30),
        ..Default::default()
    };
    let runner = Runner::with_clock(store.clone(), files, settings, Arc::new(clock.clone()));
    let spec = JobSpec {
        scope: Scope::Enrollment,
        billing_period: None,
        from: day("2025-01-01"),
        to: day("2025-01-31"),
        accounts: vec![],
        departments: vec![],
        format: ExportFormat::Csv,
    };
    let (job, _) = runner.submit(&n(), spec, "test").unwrap();
    assert_eq!(job.requested_at, start);
    // A worker claims the job for 30 s, then stalls.
    let stalled = store
        .claim_job(start, start + 30_000, Some(&job.id))
        .unwrap()
        .expect("claimed");
    assert_eq!(stalled.attempts, 1);
    clock.advance(std::time::Duration::from_secs(29));
    assert!(
        !runner.run_next(Some(&job.id)).unwrap(),
        "taken over within the lease"
    );
    clock.advance(std::time::Duration::from_secs(2));
    assert!(runner.run_next(Some(&job.id)).unwrap(), "not taken over");
    let j = store.job(&job.id).unwrap().unwrap();
    assert_eq!(j.status, JobStatus::ReadyToDownload, "{j:?}");
    assert_eq!(j.attempts, 2);
    assert_eq!(j.started_at, Some(start + 31_000));
    assert_eq!(j.finished_at, Some(start + 31_000));
    let manifest = j.manifest.as_deref().unwrap();
    assert!(
        manifest.contains(r#""generatedAt":"2027-01-15T08:00:31Z""#),
        "{manifest}"
    );
}
