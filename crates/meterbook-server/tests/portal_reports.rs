//! The portal's Reports and API access pages through the real server on a
//! random port, signed in as people of each role: monthly downloads (the
//! CLI's writers, limited to the viewer's scope), advanced report requests,
//! their job list, download and cancel, CSRF, and API access keys.
//!
//! The seed: enrollment 8608480 (USD, term 2025 to 2026) with departments A
//! (accounts a1, a2) and B (b1), an account c1 without a department, price
//! sheets for October to December 2025 (one marketplace meter), 240 usage
//! rows over those months, a purchase, and periods closed through October
//! 2025; users of every role. The store is wrapped so a test can hold the
//! report workers off the queue (a job stays queued until released).

use meterbook_core::access::{KeyStore, Scope, Slot};
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::hierarchy::HierarchyRow;
use meterbook_core::jobs::{Job, JobStatus, JobStore};
use meterbook_core::prices::{build_price_sheet, MeterPrice, PriceRow};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, MetadataStore, UsageSelection};
use meterbook_core::users::UserStore;
use meterbook_core::{Currency, Day, Money, Period};
use meterbook_io::report::usage::{UsageFilter, UsageReport};
use meterbook_io::report::{balance, prices, ReportFormat, ReportMeta, ReportScope};
use meterbook_server::ServerSettings;
use meterbook_sqlite::SqliteStore;
use meterbook_testkit::seed::{self, ingest_rows};
use meterbook_testkit::seed::{day, num, period};
use meterbook_testkit::{Browser, Clock, ManualClock, Resp};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The seed
// ---------------------------------------------------------------------------

const N: &str = "8608480";
const G1: &str = "11111111-0000-4000-8000-000000000001";
const G2: &str = "11111111-0000-4000-8000-000000000002";
const G3: &str = "11111111-0000-4000-8000-000000000003";
const G4: &str = "11111111-0000-4000-8000-000000000004";
const ROWS: usize = 240;
const PASSWORD: &str = "correct horse battery staple";
const PATIENCE: Duration = Duration::from_secs(60);

const ADMIN: &str = "admin@example.com";
const READER: &str = "reader@example.com";
const DEPT_A: &str = "dept-a@example.com";
const DEPT_A_RO: &str = "dept-a-ro@example.com";
const OWNER_B1: &str = "owner-b1@example.com";

/// (record id, subscription, date, meter, quantity, tags)
type SeedRow = (
    String,
    &'static str,
    String,
    &'static str,
    String,
    &'static str,
);

const TAGS: &str = r#"{"env":"prod"}"#;

fn rows() -> Vec<SeedRow> {
    const SUBS: [&str; 4] = [G1, G2, G3, G4];
    let first = day("2025-10-01");
    (0..ROWS)
        .map(|i| {
            (
                format!("r{i:05}"),
                SUBS[i % 4],
                first.add_days(((i * 13) % 92) as i32).to_string(),
                match i % 3 {
                    0 => "TIER01",
                    1 => "FLAT01",
                    _ => "MKT01",
                },
                format!("{}.{:03}", 1 + i % 9, (i * 37) % 1000),
                TAGS,
            )
        })
        .collect()
}

fn price_sheet() -> Vec<MeterPrice> {
    let row = |line: u64, id: &str, included: &str, min: &str, price: &str, publisher: &str| {
        let (offer, plan) = if publisher.is_empty() {
            ("", "")
        } else {
            ("Firewall", "Standard")
        };
        PriceRow {
            publisher_name: publisher.into(),
            offer_name: offer.into(),
            plan_name: plan.into(),
            ..seed::price_row(line, id, included, min, price)
        }
    };
    build_price_sheet(&[
        row(2, "TIER01", "10", "0", "1.00", ""),
        row(3, "TIER01", "10", "100", "0.50", ""),
        row(4, "FLAT01", "0", "0", "0.123456", ""),
        row(5, "MKT01", "0", "0", "2.50", "Contoso"),
    ])
    .expect("valid price sheet")
}

fn seed(store: &SqliteStore, clock: &ManualClock) {
    let n = num(N);
    store
        .create_enrollment(&NewEnrollment {
            number: n.clone(),
            name: "Contoso Ltd".into(),
            currency: Currency::parse("USD").expect("currency"),
            start: day("2025-01-01"),
            end: day("2026-12-31"),
            visibility: ChargeVisibility::default(),
        })
        .expect("create enrollment");
    let h: Vec<HierarchyRow> = seed::hierarchy(&[
        ("A", "a1", G1),
        ("A", "a2", G2),
        ("B", "b1", G3),
        ("", "c1", G4),
    ])
    .into_iter()
    .map(|r| HierarchyRow {
        subscription_name: format!(
            "sub-{}",
            &r.subscription_guid[r.subscription_guid.len() - 1..]
        ),
        ..r
    })
    .collect();
    store.upsert_hierarchy(&n, &h).expect("hierarchy");
    for p in ["202510", "202511", "202512"] {
        store
            .import_prices(&n, period(p), &price_sheet())
            .expect("prices");
    }
    let rows = rows();
    assert_eq!(rows.len(), ROWS);
    ingest_rows(store, N, &rows);
    store
        .add_entry(
            &n,
            EntryKind::Purchase,
            &CommitmentEntry {
                date: day("2025-10-01"),
                amount: Money::parse("500.00", 2).expect("money"),
                description: "Prepaid commitment".into(),
            },
        )
        .expect("purchase");
    for p in period("202501").through(period("202510")) {
        meterbook_core::ledger::close_period(store, &n, p, clock.today()).expect("close period");
    }
    // People of every role, all with the same password.
    let hash = meterbook_server::portal::password::hash(PASSWORD).expect("hash");
    let h = store.hierarchy(&n).expect("hierarchy");
    let dept_a = h.department_by_name("A").expect("A").id;
    let b1 = h.account_by_name("b1").expect("b1").id;
    for (email, scope, read_only) in [
        (ADMIN, Scope::Enrollment, false),
        (READER, Scope::Enrollment, true),
        (DEPT_A, Scope::Department(dept_a), false),
        (DEPT_A_RO, Scope::Department(dept_a), true),
        (OWNER_B1, Scope::Account(b1), false),
    ] {
        seed::user(
            store,
            email,
            email,
            Some(&hash),
            0,
            &[seed::role(N, scope, read_only)],
        );
    }
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

/// The shared harness (its store's `faults.hold` holds the workers off the queue).
struct TestApp {
    app: meterbook_testkit::TestApp,
}

impl std::ops::Deref for TestApp {
    type Target = meterbook_testkit::TestApp;
    fn deref(&self) -> &Self::Target {
        &self.app
    }
}

async fn spawn_app() -> TestApp {
    let (app, ()) = meterbook_testkit::spawn().no_redirects().seed(seed).await;
    TestApp { app }
}

impl TestApp {
    /// `/portal/e/{N}{suffix}`.
    fn e(&self, suffix: &str) -> String {
        format!("/portal/e/{N}{suffix}")
    }

    /// Signs in and reads the form token from the reports page.
    async fn sign_in(&self, email: &str) -> Browser {
        let mut b = self.browser();
        b.sign_in(email, PASSWORD).await;
        b.read_csrf(&self.e("/reports")).await;
        b
    }

    async fn get(&self, b: &Browser, path: &str) -> Resp {
        b.get_bytes(path, &[]).await
    }

    async fn get_with(&self, b: &Browser, path: &str, headers: &[(&str, &str)]) -> Resp {
        b.get_bytes(path, headers).await
    }

    async fn head(&self, b: &Browser, path: &str) -> Resp {
        b.head(path).await
    }

    async fn post(&self, b: &Browser, path: &str, form: &[(&str, &str)]) -> Resp {
        b.post_bytes(path, form).await
    }

    /// The CLI's `meterbook report <kind> --period P --format F` output for
    /// the same data, as `meterbook_io` writes it, with a scope and cost
    /// visibility (the CLI's: no scope, costs shown).
    fn cli_report(
        &self,
        kind: &str,
        p: &str,
        format: ReportFormat,
        scope: Option<Scope>,
        show_costs: bool,
    ) -> Vec<u8> {
        let s = &*self.store;
        let n = num(N);
        let e = s.enrollment(&n).expect("enrollment");
        let p = period(p);
        let meta = ReportMeta {
            enrollment: N.into(),
            scope: ReportScope::Period(p.to_string()),
            generated_at: "2000-01-01T00:00:00Z".into(),
            watermark: e.watermark.map(|d| d.to_string()),
            currency: e.currency.code().to_string(),
        };
        let mut out = Vec::new();
        match kind {
            "balance" => {
                let sts: Vec<_> = meterbook_core::ledger::statements(s, &n, p)
                    .expect("statements")
                    .into_iter()
                    .map(|(st, _)| st)
                    .filter(|st| st.period >= p)
                    .collect();
                balance::write(&meta, &sts, e.currency.exponent(), format, &mut out)
                    .expect("write");
            }
            "prices" => {
                let sheet: Vec<_> = s
                    .price_sheet(&n, p)
                    .expect("sheet")
                    .into_iter()
                    .map(|(_, m)| m)
                    .collect();
                prices::write(&meta, &sheet, format, &mut out).expect("write");
            }
            _ => {
                let selection = UsageSelection {
                    booked: Some(p),
                    ..Default::default()
                };
                let filter = UsageFilter {
                    marketplace_only: kind == "marketplace",
                    show_costs,
                    ..match scope {
                        Some(scope) => UsageFilter::within(scope, show_costs, selection),
                        None => UsageFilter::operator(selection),
                    }
                };
                let report = UsageReport::prepare(s, &n, filter, meta).expect("prepare");
                report.write(s, &n, format, &mut out).expect("write");
            }
        }
        out
    }

    fn scope_of(&self, kind: &str, name: &str) -> Scope {
        let h = self.store.hierarchy(&num(N)).expect("hierarchy");
        match kind {
            "department" => Scope::Department(h.department_by_name(name).expect("dept").id),
            _ => Scope::Account(h.account_by_name(name).expect("account").id),
        }
    }

    fn audit_actions(&self) -> Vec<(String, String, String)> {
        self.store
            .audit_log(&num(N), 1000)
            .expect("audit log")
            .into_iter()
            .map(|e| (e.actor, e.action, e.detail))
            .collect()
    }

    fn jobs(&self) -> Vec<Job> {
        self.store.jobs(&num(N)).expect("jobs")
    }

    async fn wait_for_job(&self, id: &str) -> Job {
        let start = Instant::now();
        loop {
            let j = self.store.job(id).expect("job").expect("the job exists");
            if j.status.is_final() {
                return j;
            }
            assert!(start.elapsed() < PATIENCE, "job {id} did not end: {j:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// JSON reports differ only in when they were generated.
fn without_generated_at(b: &[u8]) -> String {
    let s = String::from_utf8(b.to_vec()).expect("utf-8");
    let marker = "\"generatedAt\":\"";
    match s.find(marker) {
        None => s,
        Some(i) => {
            let from = i + marker.len();
            let to = from + s[from..].find('"').expect("end of generatedAt");
            format!("{}{}", &s[..from], &s[to..])
        }
    }
}

fn column(body: &[u8], name: &str) -> Vec<String> {
    let mut r = csv::Reader::from_reader(body);
    let i = r
        .headers()
        .expect("csv header")
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    r.records()
        .map(|rec| rec.expect("csv record")[i].to_string())
        .collect()
}

/// The job id in a `Location` after a request.
fn job_of(location: &str) -> String {
    let at = location.find("job=").expect("job= in the location") + 4;
    location[at..]
        .split(['&', '#'])
        .next()
        .expect("id")
        .to_string()
}

// ---------------------------------------------------------------------------
// Monthly reports
// ---------------------------------------------------------------------------

/// "The current period" is the one the server's clock is in: the monthly
/// list ends there, and a download without a period is of that month.
#[tokio::test]
async fn the_current_period_follows_the_servers_clock() {
    let app = spawn_app().await;
    let noon = chrono::NaiveDate::from_ymd_opt(2025, 12, 15)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .expect("a date")
        .and_utc();
    app.clock.set_millis(noon.timestamp_millis());
    let admin = app.sign_in(ADMIN).await;
    let html = app.get(&admin, &app.e("/reports")).await.text();
    assert!(
        html.contains("period=202512&amp;format=csv"),
        "December listed"
    );
    assert!(
        !html.contains("period=202601&amp;"),
        "nothing after December"
    );
    let r = app.get(&admin, &app.e("/download/usage?format=csv")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let dates = column(&r.body, "Date");
    assert!(!dates.is_empty());
    assert!(dates.iter().all(|d| d.starts_with("2025-12-")), "{dates:?}");
}

#[tokio::test]
async fn monthly_downloads_equal_the_cli_writers_for_an_administrator() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let page = app.get(&admin, &app.e("/reports")).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    // Newest first, up to the current period; October 2025 is closed.
    let cur = app.clock.today().period().to_string();
    let (i_cur, i_nov, i_oct) = (
        html.find(&format!("period={cur}&amp;format=csv"))
            .expect("current period"),
        html.find("period=202511&amp;format=csv").expect("Nov 2025"),
        html.find("period=202510&amp;format=csv").expect("Oct 2025"),
    );
    assert!(i_cur < i_nov && i_nov < i_oct);
    assert!(!html.contains(&format!(
        "period={}&amp;",
        app.clock.today().period().next()
    )));
    assert!(html.contains("Closed"));
    for kind in ["balance", "usage", "prices", "marketplace"] {
        assert!(
            html.contains(&format!("/download/{kind}?period=202511&amp;format=csv")),
            "{kind} link"
        );
    }
    assert!(html.contains(r#"<th scope="col">Balance and charges</th>"#));

    for kind in ["balance", "usage", "prices", "marketplace"] {
        for (f, rf) in [("csv", ReportFormat::Csv), ("json", ReportFormat::Json)] {
            let r = app
                .get(
                    &admin,
                    &app.e(&format!("/download/{kind}?period=202511&format={f}")),
                )
                .await;
            assert_eq!(r.status, 200, "{kind} {f}: {}", r.text());
            let cd = r.header("content-disposition").expect("attachment");
            assert!(
                cd.starts_with("attachment;") && cd.contains("202511"),
                "{cd}"
            );
            let want = app.cli_report(kind, "202511", rf, None, true);
            match rf {
                ReportFormat::Csv => {
                    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
                    assert_eq!(r.text(), String::from_utf8(want).unwrap(), "{kind} {f}");
                }
                ReportFormat::Json => {
                    serde_json::from_slice::<serde_json::Value>(&r.body).expect("valid JSON");
                    assert_eq!(
                        without_generated_at(&r.body),
                        without_generated_at(&want),
                        "{kind} {f}"
                    );
                }
            }
        }
    }
    // The usage rows are real, with costs; marketplace rows are a subset.
    let usage = app
        .get(&admin, &app.e("/download/usage?period=202511&format=csv"))
        .await;
    let costs = column(&usage.body, "Cost");
    assert!(costs.len() > 20);
    assert!(costs.iter().any(|c| c != "0"));
    let mkt = app
        .get(
            &admin,
            &app.e("/download/marketplace?period=202511&format=csv"),
        )
        .await;
    let mkt_rows = column(&mkt.body, "MeterId");
    assert!(!mkt_rows.is_empty() && mkt_rows.iter().all(|m| m == "MKT01"));

    // A bad period, a bad format, an unknown kind.
    for (path, status) in [
        ("/download/usage?period=202401&format=csv", 400),
        ("/download/usage?period=2025-11&format=csv", 400),
        ("/download/usage?period=202511&format=xml", 400),
        ("/download/nothing?period=202511&format=csv", 404),
    ] {
        let r = app.get(&admin, &app.e(path)).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
    }

    // Every download is in the audit log.
    let audit = app.audit_actions();
    for kind in ["balance", "usage", "prices", "marketplace"] {
        for f in ["csv", "json"] {
            let detail = format!("{kind} 202511 {f}");
            assert!(
                audit
                    .iter()
                    .any(|(who, a, d)| who == ADMIN && a == "download" && *d == detail),
                "no audit entry {detail}: {audit:?}"
            );
        }
    }
}

#[tokio::test]
async fn department_admins_and_owners_get_their_rows_and_no_balance() {
    let app = spawn_app().await;
    let dept = app.sign_in(DEPT_A).await;
    let html = app.get(&dept, &app.e("/reports")).await.text();
    assert!(!html.contains("/download/balance"), "balance link shown");
    assert!(!html.contains("/download/prices"), "price list link shown");
    assert!(!html.contains("Balance and charges</th>"));
    assert!(html.contains("/download/usage?period=202511"));
    assert!(html.contains("cost and rate columns read 0"));
    for kind in ["balance", "prices"] {
        for f in ["csv", "json"] {
            let r = app
                .get(
                    &dept,
                    &app.e(&format!("/download/{kind}?period=202511&format={f}")),
                )
                .await;
            assert_eq!(r.status, 403, "{kind} {f}");
            assert!(r.text().contains("Not allowed"));
        }
    }
    // Usage: department A's accounts only, cost and rate 0 (the default setting).
    let scope = app.scope_of("department", "A");
    for kind in ["usage", "marketplace"] {
        let r = app
            .get(
                &dept,
                &app.e(&format!("/download/{kind}?period=202511&format=csv")),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.body,
            app.cli_report(kind, "202511", ReportFormat::Csv, Some(scope), false),
            "{kind}"
        );
        let accounts = column(&r.body, "AccountName");
        assert!(!accounts.is_empty());
        assert!(
            accounts.iter().all(|a| a == "a1" || a == "a2"),
            "{accounts:?}"
        );
        assert!(column(&r.body, "Cost").iter().all(|c| c == "0"));
        assert!(column(&r.body, "ResourceRate").iter().all(|c| c == "0"));
    }
    let json = app
        .get(&dept, &app.e("/download/usage?period=202511&format=json"))
        .await;
    assert_eq!(
        without_generated_at(&json.body),
        without_generated_at(&app.cli_report(
            "usage",
            "202511",
            ReportFormat::Json,
            Some(scope),
            false
        ))
    );

    // With the setting on, department administrators see costs.
    let mut v = app.store.enrollment(&num(N)).expect("e").visibility;
    v.department_admins_view_charges = true;
    app.store.set_visibility(&num(N), v).expect("visibility");
    let r = app
        .get(&dept, &app.e("/download/usage?period=202511&format=csv"))
        .await;
    assert_eq!(
        r.body,
        app.cli_report("usage", "202511", ReportFormat::Csv, Some(scope), true)
    );
    assert!(column(&r.body, "Cost").iter().any(|c| c != "0"));

    // An account owner: its own account only, no costs (that setting is off).
    let owner = app.sign_in(OWNER_B1).await;
    let r = app
        .get(&owner, &app.e("/download/usage?period=202512&format=csv"))
        .await;
    assert_eq!(r.status, 200);
    let accounts = column(&r.body, "AccountName");
    assert!(!accounts.is_empty() && accounts.iter().all(|a| a == "b1"));
    assert!(column(&r.body, "Cost").iter().all(|c| c == "0"));
    let r = app
        .get(&owner, &app.e("/download/balance?period=202512&format=csv"))
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn pages_need_a_session() {
    let app = spawn_app().await;
    for path in [
        "/reports",
        "/reports/jobs",
        "/download/usage?period=202511&format=csv",
        "/keys",
    ] {
        let r = app.send(app.client.get(app.url(&app.e(path)))).await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location").as_deref(), Some("/portal/sign-in"));
    }
    // Another enrollment's number: not found.
    let admin = app.sign_in(ADMIN).await;
    let r = app.get(&admin, "/portal/e/9999999/reports").await;
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------------------
// Advanced reports
// ---------------------------------------------------------------------------

#[tokio::test]
async fn advanced_request_lists_the_job_and_downloads_its_file() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let html = app.get(&admin, &app.e("/reports")).await.text();
    // The form: every department and account, labelled; all five formats.
    for s in [
        r#"<label for="start">"#,
        r#"<label for="end">"#,
        r#"<label for="accounts">"#,
        r#"<label for="departments">"#,
        r#"<label for="format">"#,
        r#"value="a1""#,
        r#"value="c1""#,
        r#"value="B""#,
        r#"value="csv.gz""#,
        r#"value="focus-parquet""#,
        r#"id="jobs" data-refresh="/portal/e/8608480/reports/jobs""#,
    ] {
        assert!(html.contains(s), "missing {s}");
    }
    let r = app
        .post(
            &admin,
            &app.e("/reports/request"),
            &[
                ("csrf", &admin.csrf),
                ("start", "2025-10-01"),
                ("end", "2025-12-31"),
                ("accounts", "a1"),
                ("accounts", "c1"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let id = job_of(&r.header("location").expect("location"));
    let job = app.wait_for_job(&id).await;
    assert_eq!(job.status, JobStatus::ReadyToDownload);
    assert_eq!(job.requested_by, ADMIN);
    assert_eq!(job.spec.scope, Scope::Enrollment);
    assert_eq!(job.spec.accounts, vec!["a1".to_string(), "c1".to_string()]);

    // The page and the fragment list it, with a download link; nothing open.
    for path in ["/reports", "/reports/jobs"] {
        let html = app.get(&admin, &app.e(path)).await.text();
        assert!(html.contains(&id[..8]), "{path}");
        assert!(
            html.contains(&format!("/reports/jobs/{id}/download")),
            "{path}"
        );
        assert!(html.contains("Ready"));
        assert!(!html.contains(r#"data-open="true""#));
    }
    let fragment = app.get(&admin, &app.e("/reports/jobs")).await.text();
    assert!(
        !fragment.contains("<html"),
        "the fragment is not a whole page"
    );

    // The file: only a1 and c1, with HEAD, Range and ETag.
    let url = app.e(&format!("/reports/jobs/{id}/download"));
    let r = app.get(&admin, &url).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let accounts = column(&r.body, "AccountName");
    assert!(!accounts.is_empty());
    assert!(accounts.iter().all(|a| a == "a1" || a == "c1"));
    assert_eq!(accounts.len() as u64, job.rows_done);
    let etag = r.header("etag").expect("etag");
    let head = app.head(&admin, &url).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(r.body.len().to_string())
    );
    assert!(head.body.is_empty());
    let part = app.get_with(&admin, &url, &[("range", "bytes=0-9")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, r.body[..10]);
    let same = app
        .get_with(&admin, &url, &[("if-none-match", &etag)])
        .await;
    assert_eq!(same.status, 304);

    // A department administrator sees neither the job nor its file; the
    // administrator sees the department's jobs.
    let dept = app.sign_in(DEPT_A).await;
    assert!(!app
        .get(&dept, &app.e("/reports"))
        .await
        .text()
        .contains(&id[..8]));
    assert_eq!(app.get(&dept, &url).await.status, 404);
    let r = app
        .post(
            &dept,
            &app.e("/reports/request"),
            &[
                ("csrf", &dept.csrf),
                ("start", "2025-11-01"),
                ("end", "2025-11-30"),
                ("format", "csv.gz"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let dept_job = job_of(&r.header("location").unwrap());
    let j = app.wait_for_job(&dept_job).await;
    assert_eq!(j.spec.scope, app.scope_of("department", "A"));
    assert!(app
        .get(&admin, &app.e("/reports"))
        .await
        .text()
        .contains(&dept_job[..8]));
    let dept_html = app.get(&dept, &app.e("/reports")).await.text();
    assert!(dept_html.contains(&dept_job[..8]));
    // Its form offers only department A and its accounts.
    assert!(dept_html.contains(r#"value="a2""#) && !dept_html.contains(r#"value="b1""#));
    assert!(!dept_html.contains(r#"value="B""#));
    let r = app
        .get(&dept, &app.e(&format!("/reports/jobs/{dept_job}/download")))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/gzip")
    );

    // Filters outside the scope: 403; an invalid range: the page again, with the reason.
    let r = app
        .post(
            &dept,
            &app.e("/reports/request"),
            &[
                ("csrf", &dept.csrf),
                ("start", "2025-11-01"),
                ("end", "2025-11-30"),
                ("accounts", "b1"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = app
        .post(
            &dept,
            &app.e("/reports/request"),
            &[
                ("csrf", &dept.csrf),
                ("start", "2025-11-30"),
                ("end", "2025-11-01"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    let html = r.text();
    assert!(html.contains(r#"role="alert""#) && html.contains("before the start date"));
    assert!(
        html.contains(r#"value="2025-11-30""#),
        "the form keeps its values"
    );
    let r = app
        .post(
            &dept,
            &app.e("/reports/request"),
            &[
                ("csrf", &dept.csrf),
                ("start", "not a date"),
                ("end", "2025-11-01"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(app.jobs().len(), 2);

    let audit = app.audit_actions();
    assert!(audit
        .iter()
        .any(|(who, a, d)| who == ADMIN && a == "report-requested" && d.contains(&id)));
    assert!(audit
        .iter()
        .any(|(who, a, d)| who == ADMIN && a == "download" && d.contains(&id)));
}

#[tokio::test]
async fn a_queued_job_can_be_cancelled() {
    let app = spawn_app().await;
    app.faults.hold.store(true, Ordering::SeqCst);
    let owner = app.sign_in(OWNER_B1).await;
    let r = app
        .post(
            &owner,
            &app.e("/reports/request"),
            &[
                ("csrf", &owner.csrf),
                ("start", "2025-10-01"),
                ("end", "2025-10-31"),
                ("format", "parquet"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let id = job_of(&r.header("location").unwrap());
    let html = app.get(&owner, &app.e("/reports")).await.text();
    assert!(html.contains(r#"data-open="true""#), "an open row");
    assert!(html.contains("Queued"));
    assert!(html.contains(&format!("/reports/jobs/{id}/cancel")));
    assert!(!html.contains(&format!("/reports/jobs/{id}/download")));
    // Not ready: the download says so.
    let r = app
        .get(&owner, &app.e(&format!("/reports/jobs/{id}/download")))
        .await;
    assert_eq!(r.status, 409);

    // Without the form token: refused, still queued.
    let cancel = app.e(&format!("/reports/jobs/{id}/cancel"));
    let r = app.post(&owner, &cancel, &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        app.store.job(&id).unwrap().unwrap().status,
        JobStatus::Queued
    );
    // Someone else's scope cannot cancel it.
    let dept = app.sign_in(DEPT_A).await;
    let r = app.post(&dept, &cancel, &[("csrf", &dept.csrf)]).await;
    assert_eq!(r.status, 404);

    let r = app.post(&owner, &cancel, &[("csrf", &owner.csrf)]).await;
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().contains("done=cancelled"));
    let j = app.store.job(&id).unwrap().unwrap();
    assert_eq!(j.status, JobStatus::Cancelled);
    assert!(j.error.unwrap_or_default().contains(OWNER_B1));
    let html = app
        .get(&owner, &app.e(&format!("/reports?done=cancelled&job={id}")))
        .await
        .text();
    assert!(html.contains("Cancelled"));
    assert!(!html.contains(r#"data-open="true""#));
    // Cancelling again: nothing to do, said so.
    let r = app.post(&owner, &cancel, &[("csrf", &owner.csrf)]).await;
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().contains("done=ended"));
    assert!(app
        .audit_actions()
        .iter()
        .any(|(who, a, _)| who == OWNER_B1 && a == "report-cancelled"));
    app.faults.hold.store(false, Ordering::SeqCst);
}

#[tokio::test]
async fn forms_without_the_right_token_are_refused() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let request = [
        ("start", "2025-10-01"),
        ("end", "2025-10-31"),
        ("format", "csv"),
    ];
    let mut wrong = vec![("csrf", "0123456789abcdef")];
    wrong.extend(request);
    for form in [&request[..], &wrong[..]] {
        let r = app.post(&admin, &app.e("/reports/request"), form).await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(r.text().contains("reload the page"));
    }
    assert!(app.jobs().is_empty());
    for form in [
        vec![("scope", "enrollment"), ("slot", "primary")],
        vec![
            ("csrf", "0123456789abcdef"),
            ("scope", "enrollment"),
            ("slot", "primary"),
        ],
    ] {
        for action in ["generate", "disable"] {
            let r = app
                .post(&admin, &app.e(&format!("/keys/{action}")), &form)
                .await;
            assert_eq!(r.status, 403, "{action}");
        }
    }
    assert!(app.store.keys(&num(N)).unwrap().is_empty());
    // Another session's token does not work either.
    let other = app.sign_in(READER).await;
    let mut form = vec![("csrf", other.csrf.as_str())];
    form.extend(request);
    let r = app.post(&admin, &app.e("/reports/request"), &form).await;
    assert_eq!(r.status, 403);
}

// ---------------------------------------------------------------------------
// API access keys
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_generated_key_is_shown_once_and_works() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let html = app.get(&admin, &app.e("/keys")).await.text();
    // The enrollment, both departments and all four accounts, two slots each.
    for label in [
        "Enrollment 8608480",
        "Department A",
        "Department B",
        "Account a1",
        "Account a2",
        "Account b1",
        "Account c1",
    ] {
        assert!(html.contains(label), "{label}");
    }
    assert_eq!(html.matches("Generate<span").count(), 14);
    assert!(html.contains(r#"href="/docs""#));

    let r = app
        .post(
            &admin,
            &app.e("/keys/generate"),
            &[
                ("csrf", &admin.csrf),
                ("scope", "enrollment"),
                ("slot", "primary"),
                ("days", "20"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let shown = r.header("location").expect("location");
    let r = app.get(&admin, &shown).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let html = r.text();
    let at = html.find("mbk_").expect("the key");
    let token: String = html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert_eq!(token.len(), 4 + 16 + 1 + 64, "{token}");
    assert!(html.contains("data-copy"));
    assert!(html.contains("Expires in 20 days"));
    assert!(html.contains(r#"href="/docs""#));
    assert!(html.contains("only time it is shown"));

    // The key works on the API.
    let api = |key: String| {
        app.client
            .get(app.url(&format!("/v3/enrollments/{N}/billingPeriods")))
            .header("authorization", format!("bearer {key}"))
    };
    let r = app.send(api(token.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let periods: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(periods.as_array().is_some_and(|a| !a.is_empty()));

    // The list shows the key's id, never the secret, with the warning.
    let html = app.get(&admin, &app.e("/keys")).await.text();
    let secret = token.rsplit('_').next().unwrap();
    assert!(!html.contains(secret), "the secret is shown again");
    assert!(html.contains(&token[..4 + 16]), "the key id");
    assert!(html.contains("Expires in 20 days"));
    assert!(html.contains("Regenerate<span"));

    // Too long a lifetime: refused.
    let r = app
        .post(
            &admin,
            &app.e("/keys/generate"),
            &[
                ("csrf", &admin.csrf),
                ("scope", "enrollment"),
                ("slot", "secondary"),
                ("days", "100000"),
            ],
        )
        .await;
    assert_eq!(r.status, 400);

    // Disabled: the API refuses it.
    let r = app
        .post(
            &admin,
            &app.e("/keys/disable"),
            &[
                ("csrf", &admin.csrf),
                ("scope", "enrollment"),
                ("slot", "primary"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let r = app.send(api(token.clone())).await;
    assert!(r.status == 401 || r.status == 403, "{}", r.status);
    let html = app.get(&admin, &app.e("/keys?done=disabled")).await.text();
    assert!(html.contains("Disabled"));
    // Nothing to disable in an empty slot.
    let r = app
        .post(
            &admin,
            &app.e("/keys/disable"),
            &[
                ("csrf", &admin.csrf),
                ("scope", "enrollment"),
                ("slot", "secondary"),
            ],
        )
        .await;
    assert_eq!(r.status, 404);

    let audit = app.audit_actions();
    assert!(audit.iter().any(|(who, a, d)| who == ADMIN
        && a == "key-generated"
        && d.contains(&token[..4 + 16])
        && !d.contains(secret)));
    assert!(audit
        .iter()
        .any(|(who, a, _)| who == ADMIN && a == "key-disabled"));
}

/// Generating is post/redirect/get: the key is shown once on the page the
/// POST redirects to; reloading that page shows no secret and makes no new
/// key, so the key just copied keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloading_the_new_key_page_keeps_the_key() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let form = [
        ("csrf", admin.csrf.as_str()),
        ("scope", "enrollment"),
        ("slot", "primary"),
        ("days", "20"),
    ];
    let r = app.post(&admin, &app.e("/keys/generate"), &form).await;
    assert_eq!(r.status, 303, "the POST redirects: {}", r.text());
    let shown = r.header("location").expect("location");
    assert_eq!(shown, app.e("/keys/new"));
    let keys_now = || {
        app.store
            .keys(&num(N))
            .expect("keys")
            .into_iter()
            .map(|k| k.id)
            .collect::<Vec<_>>()
    };
    let made = keys_now();
    assert_eq!(made.len(), 1);

    let page = app.get(&admin, &shown).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    let at = html.find("mbk_").expect("the key is shown");
    let token: String = html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let secret = token.rsplit('_').next().expect("secret").to_string();

    // Reloads: no secret, no new key.
    for _ in 0..2 {
        let again = app.get(&admin, &shown).await;
        assert_eq!(again.status, 303);
        let back = again.header("location").expect("location");
        let html = app.get(&admin, &back).await.text();
        assert!(!html.contains(&secret), "the secret is shown again");
        assert!(html.contains("not shown again"), "{html}");
    }
    assert_eq!(keys_now(), made, "a reload made another key");
    let r = app
        .send(
            app.client
                .get(app.url(&format!("/v3/enrollments/{N}/billingPeriods")))
                .header("authorization", format!("bearer {token}")),
        )
        .await;
    assert_eq!(r.status, 200, "the copied key still works: {}", r.text());

    // Another session of the same user never sees it either.
    let other = app.sign_in(ADMIN).await;
    let r = app.post(&admin, &app.e("/keys/generate"), &form).await;
    assert_eq!(r.status, 303);
    let r = app.get(&other, &shown).await;
    assert_eq!(r.status, 303, "not another session's key");
}

#[tokio::test]
async fn keys_only_for_scopes_the_maker_covers() {
    let app = spawn_app().await;
    let dept = app.sign_in(DEPT_A).await;
    let html = app.get(&dept, &app.e("/keys")).await.text();
    assert!(html.contains("Department A") && html.contains("Account a2"));
    assert!(!html.contains("Enrollment 8608480"));
    assert!(!html.contains("Account b1") && !html.contains("Department B"));
    let b1 = match app.scope_of("account", "b1") {
        Scope::Account(id) => format!("account:{id}"),
        _ => unreachable!(),
    };
    let a1 = match app.scope_of("account", "a1") {
        Scope::Account(id) => format!("account:{id}"),
        _ => unreachable!(),
    };
    for scope in ["enrollment", b1.as_str()] {
        let r = app
            .post(
                &dept,
                &app.e("/keys/generate"),
                &[("csrf", &dept.csrf), ("scope", scope), ("slot", "primary")],
            )
            .await;
        assert_eq!(r.status, 403, "{scope}");
    }
    // A department or account that does not exist: 404, for any maker.
    let admin = app.sign_in(ADMIN).await;
    for (b, scope) in [(&dept, "account:999999"), (&admin, "department:999999")] {
        let r = app
            .post(
                b,
                &app.e("/keys/generate"),
                &[("csrf", &b.csrf), ("scope", scope), ("slot", "primary")],
            )
            .await;
        assert_eq!(r.status, 404, "{scope}: {}", r.text());
    }
    let r = app
        .post(
            &dept,
            &app.e("/keys/generate"),
            &[("csrf", &dept.csrf), ("scope", &a1), ("slot", "secondary")],
        )
        .await;
    assert_eq!(r.status, 303);
    let keys = app.store.keys(&num(N)).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].scope, app.scope_of("account", "a1"));
    assert_eq!(keys[0].slot, Slot::Secondary);
    // The default lifetime of the settings.
    let days = (keys[0].expires_at - keys[0].created_at) / 86_400;
    assert_eq!(days, ServerSettings::default().key_default_days as i64);
}

#[tokio::test]
async fn read_only_roles_see_keys_but_cannot_change_them() {
    let app = spawn_app().await;
    // A key made by the administrator, to be seen.
    let admin = app.sign_in(ADMIN).await;
    let r = app
        .post(
            &admin,
            &app.e("/keys/generate"),
            &[
                ("csrf", &admin.csrf),
                ("scope", "enrollment"),
                ("slot", "primary"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    for who in [READER, DEPT_A_RO] {
        let b = app.sign_in(who).await;
        let html = app.get(&b, &app.e("/keys")).await.text();
        assert!(html.contains("read-only"), "{who}");
        assert!(!html.contains("/keys/generate"), "{who}: a generate form");
        assert!(!html.contains("/keys/disable"), "{who}: a disable form");
        if who == READER {
            assert!(html.contains("Active"));
        }
        let scope = if who == READER {
            "enrollment".to_string()
        } else {
            match app.scope_of("department", "A") {
                Scope::Department(id) => format!("department:{id}"),
                _ => unreachable!(),
            }
        };
        for action in ["generate", "disable"] {
            let r = app
                .post(
                    &b,
                    &app.e(&format!("/keys/{action}")),
                    &[("csrf", &b.csrf), ("scope", &scope), ("slot", "primary")],
                )
                .await;
            assert_eq!(r.status, 403, "{who} {action}");
        }
    }
    let keys = app.store.keys(&num(N)).unwrap();
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].disabled);
}

/// A read-only administrator sees every job but may cancel only its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_role_cannot_cancel_someone_elses_job() {
    let app = spawn_app().await;
    app.faults.hold.store(true, Ordering::SeqCst);
    let admin = app.sign_in(ADMIN).await;
    let r = app
        .post(
            &admin,
            &app.e("/reports/request"),
            &[
                ("csrf", &admin.csrf),
                ("start", "2025-10-01"),
                ("end", "2025-10-31"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let id = job_of(&r.header("location").unwrap());
    let reader = app.sign_in(READER).await;
    let html = app.get(&reader, &app.e("/reports")).await.text();
    assert!(html.contains(&id[..8]), "the reader sees the job");
    assert!(
        !html.contains(&format!("/reports/jobs/{id}/cancel")),
        "but no cancel button"
    );
    let r = app
        .post(
            &reader,
            &app.e(&format!("/reports/jobs/{id}/cancel")),
            &[("csrf", &reader.csrf)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let still = app.get(&admin, &app.e("/reports")).await.text();
    assert!(still.contains("Queued"), "still queued");
}

/// A report made while a department administrator could see charges is not
/// served once the enrollment hides them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_with_charges_is_withheld_once_charges_are_hidden() {
    let app = spawn_app().await;
    let mut v = app.store.enrollment(&num(N)).expect("e").visibility;
    v.department_admins_view_charges = true;
    app.store.set_visibility(&num(N), v).expect("visibility");
    let dept = app.sign_in(DEPT_A).await;
    let r = app
        .post(
            &dept,
            &app.e("/reports/request"),
            &[
                ("csrf", &dept.csrf),
                ("start", "2025-10-01"),
                ("end", "2025-10-31"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let id = job_of(&r.header("location").unwrap());
    app.wait_for_job(&id).await;
    let url = app.e(&format!("/reports/jobs/{id}/download"));
    assert_eq!(app.get(&dept, &url).await.status, 200);
    v.department_admins_view_charges = false;
    app.store.set_visibility(&num(N), v).expect("visibility");
    let r = app.get(&dept, &url).await;
    assert_eq!(r.status, 410, "{}", r.text());
    // The list says so, and offers no Download that would answer 410.
    for path in ["/reports", "/reports/jobs"] {
        let html = app.get(&dept, &app.e(path)).await.text();
        assert!(html.contains(&id[..8]), "{path}");
        assert!(html.contains("Withheld"), "{path}: {html}");
        assert!(
            !html.contains(&format!("/reports/jobs/{id}/download")),
            "{path}"
        );
        assert!(!html.contains(">Ready<"), "{path}");
    }
}

/// The advanced form offers a billing period as billed: the job holds the
/// rows of the period's monthly Usage details download (a correction booked
/// in it included), not the rows dated in its days.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_advanced_report_of_a_billing_period_is_its_usage_details() {
    let app = spawn_app().await;
    // Dated in October, which is closed: booked in November as a correction.
    let late: Vec<SeedRow> = vec![(
        "late-oct".into(),
        G1,
        "2025-10-20".into(),
        "FLAT01",
        "3.5".into(),
        TAGS,
    )];
    ingest_rows(app.store.as_ref(), N, &late);
    let admin = app.sign_in(ADMIN).await;
    let html = app.get(&admin, &app.e("/reports")).await.text();
    for s in [
        r#"id="kind-period" name="kind" value="period""#,
        r#"id="kind-range" name="kind" value="range""#,
        r#"<label for="period">"#,
        r#"<option value="202511""#,
    ] {
        assert!(html.contains(s), "missing {s}");
    }
    let r = app
        .post(
            &admin,
            &app.e("/reports/request"),
            &[
                ("csrf", &admin.csrf),
                ("kind", "period"),
                ("period", "202511"),
                ("start", "2025-11-01"),
                ("end", "2025-11-30"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let id = job_of(&r.header("location").expect("location"));
    let job = app.wait_for_job(&id).await;
    assert_eq!(job.spec.billing_period, Some(period("202511")));
    let file = app
        .get(&admin, &app.e(&format!("/reports/jobs/{id}/download")))
        .await;
    assert_eq!(file.status, 200, "{}", file.text());
    let monthly = app
        .get(&admin, &app.e("/download/usage?period=202511&format=csv"))
        .await;
    assert_eq!(monthly.status, 200);
    assert_eq!(file.text(), monthly.text());
    assert!(column(&file.body, "RecordId").contains(&"late-oct".to_string()));
    let list = app.get(&admin, &app.e("/reports/jobs")).await.text();
    assert!(list.contains("Billing period"), "{list}");

    // A billing period outside the term is refused on the page, form kept.
    let r = app
        .post(
            &admin,
            &app.e("/reports/request"),
            &[
                ("csrf", &admin.csrf),
                ("kind", "period"),
                ("period", "202401"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("not inside the enrollment"),
        "{}",
        r.text()
    );
}

/// A portal user past the quota of active jobs sees why on the reports page
/// (429), and nothing is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_report_quota_is_shown_on_the_page() {
    let app = spawn_app().await;
    app.faults.hold.store(true, Ordering::SeqCst);
    let owner = app.sign_in(OWNER_B1).await;
    let request = |end: &'static str| {
        let owner = &owner;
        let app = &app;
        async move {
            app.post(
                owner,
                &app.e("/reports/request"),
                &[
                    ("csrf", &owner.csrf),
                    ("start", "2025-10-01"),
                    ("end", end),
                    ("format", "csv"),
                ],
            )
            .await
        }
    };
    for end in ["2025-10-28", "2025-10-29", "2025-10-30", "2025-10-31"] {
        let r = request(end).await;
        assert_eq!(r.status, 303, "{}", r.text());
    }
    let r = request("2025-10-27").await;
    assert_eq!(r.status, 429, "{}", r.text());
    let html = r.text();
    assert!(html.contains("the most allowed at once is 4"), "{html}");
    assert_eq!(app.jobs().len(), 4);
}

// ---------------------------------------------------------------------------
// Layout and forms (issue 11)
// ---------------------------------------------------------------------------

/// The current billing period inside the seed's term (2025 to 2026).
fn current() -> Period {
    Day::today()
        .period()
        .clamp(period("202501"), period("202612"))
}

#[tokio::test]
async fn a_single_department_or_account_is_shown_plainly_without_the_multi_select() {
    let app = spawn_app().await;
    // The owner of b1: one account, no department to choose.
    let owner = app.sign_in(OWNER_B1).await;
    let html = app.get(&owner, &app.e("/reports")).await.text();
    assert!(
        !html.contains(r#"<select id="accounts""#),
        "no multi-select for one account"
    );
    assert!(!html.contains(r#"<select id="departments""#));
    assert!(!html.contains("Hold Ctrl"), "no help for choosing several");
    assert!(
        html.contains(r#"<p class="single">b1 (B)</p>"#),
        "the account, plainly"
    );
    // Department A's administrator: one department (plain), two accounts (a list).
    let dept = app.sign_in(DEPT_A).await;
    let html = app.get(&dept, &app.e("/reports")).await.text();
    assert!(!html.contains(r#"<select id="departments""#));
    assert!(html.contains(r#"<p class="single">A</p>"#));
    assert!(html.contains(r#"<select id="accounts" name="accounts" multiple"#));
    assert!(html.contains("Hold Ctrl"));
    // The enterprise: lists of both.
    let admin = app.sign_in(ADMIN).await;
    let html = app.get(&admin, &app.e("/reports")).await.text();
    assert!(html.contains(r#"<select id="departments" name="departments" multiple"#));
    assert!(html.contains(r#"<select id="accounts" name="accounts" multiple"#));
    // The plain choice is the whole scope: a request without a list covers b1.
    let r = app
        .post(
            &owner,
            &app.e("/reports/request"),
            &[
                ("csrf", owner.csrf.as_str()),
                ("kind", "range"),
                ("start", "2025-11-01"),
                ("end", "2025-11-30"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
}

/// The markup of the field `id` up to the end of its `<div>`.
fn field(html: &str, id: &str) -> String {
    let s = &html[html.find(&format!(r#"id="{id}""#)).expect("the field")..];
    s[..s.find("</div>").expect("the field's end")].to_string()
}

#[tokio::test]
async fn a_refused_advanced_request_keeps_the_menu_the_form_and_says_why_at_the_field() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let r = app
        .post(
            &admin,
            &app.e("/reports/request"),
            &[
                ("csrf", admin.csrf.as_str()),
                ("kind", "range"),
                ("start", "2025-11-20"),
                ("end", "2025-11-02"),
                ("departments", "B"),
                ("format", "parquet"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let html = r.text();
    assert!(
        html.contains(r#"<nav class="tabs" aria-label="Sections">"#),
        "the menu"
    );
    // The form as entered.
    assert!(field(&html, "start").contains(r#"value="2025-11-20""#));
    let end = field(&html, "end");
    assert!(end.contains(r#"value="2025-11-02""#), "{end}");
    assert!(html.contains(r#"<option value="B" selected>"#));
    assert!(html.contains(r#"<option value="parquet" selected>"#));
    // The reason next to the End date, tied to it, and not above the form.
    assert!(
        end.contains(r#"aria-invalid="true" aria-describedby="form-error""#),
        "{end}"
    );
    assert!(
        end.contains(r#"id="form-error""#) && end.contains("is before the start date"),
        "{end}"
    );
    assert_eq!(html.matches("is before the start date").count(), 1);
    // Nothing was requested.
    let jobs = app.store.jobs(&num(N)).expect("jobs");
    assert!(jobs.is_empty(), "{jobs:?}");
}

#[tokio::test]
async fn dates_and_periods_are_limited_to_the_term_and_today() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let html = app.get(&admin, &app.e("/reports")).await.text();
    let max = Day::today().clamp(day("2025-01-01"), day("2026-12-31"));
    for id in ["start", "end"] {
        let f = field(&html, id);
        assert!(
            f.contains(&format!(r#"min="2025-01-01" max="{max}""#)),
            "{id}: {f}"
        );
    }
    // The server refuses what the inputs do not offer, at the field.
    let request = |start: &'static str, end: String| {
        let app = &app;
        let admin = &admin;
        async move {
            app.post(
                admin,
                &app.e("/reports/request"),
                &[
                    ("csrf", admin.csrf.as_str()),
                    ("kind", "range"),
                    ("start", start),
                    ("end", end.as_str()),
                    ("format", "csv"),
                ],
            )
            .await
        }
    };
    let r = request("2024-12-01", "2025-01-31".into()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(field(&r.text(), "start").contains(r#"id="form-error""#));
    if max < day("2026-12-31") {
        // A date after today, inside the term.
        let r = request("2025-01-01", max.add_days(1).to_string()).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(
            field(&r.text(), "end").contains("up to today"),
            "{}",
            r.text()
        );
    }
    if current() < period("202612") {
        // A billing period after the current one: not offered, refused.
        let later = current().next().to_string();
        let r = app
            .post(
                &admin,
                &app.e("/reports/request"),
                &[
                    ("csrf", admin.csrf.as_str()),
                    ("kind", "period"),
                    ("period", later.as_str()),
                    ("format", "csv"),
                ],
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(field(&r.text(), "period").contains(r#"id="form-error""#));
        assert!(!html.contains(&format!(r#"<option value="{later}""#)));
    }
    // The usage page offers the term's months up to the current one.
    let usage = app.get(&admin, &app.e("/usage")).await.text();
    let to = &usage[usage.find(r#"<select id="to""#).expect("To")..];
    let to = &to[..to.find("</select>").expect("end")];
    let months: Vec<&str> = to
        .split(r#"<option value=""#)
        .skip(1)
        .map(|o| &o[..6])
        .collect();
    assert_eq!(months.first(), Some(&"202501"));
    assert_eq!(months.last().copied(), Some(current().to_string().as_str()));
    if current() < period("202612") {
        let later = current().next();
        let r = app
            .get(&admin, &app.e(&format!("/usage?from={later}&to={later}")))
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains(r#"<nav class="tabs""#));
    }
}

#[tokio::test]
async fn wide_tables_stay_inside_the_page() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let css = app.get(&admin, "/portal/static/app.css").await.text();
    let rule = |sel: &str| {
        let i = css
            .find(&format!("\n{sel} {{"))
            .unwrap_or_else(|| panic!("a rule for {sel}"));
        css[i..i + css[i..].find('}').expect("rule end")].to_string()
    };
    // A table too wide scrolls inside its box, which also holds its visually
    // hidden labels (absolutely positioned: without a positioned box they
    // widen the page itself).
    let scroll = rule(".scroll");
    assert!(
        scroll.contains("overflow-x:auto") && scroll.contains("position:relative"),
        "{scroll}"
    );
    let chart = rule(".chart-box");
    assert!(
        chart.contains("overflow-x:auto") && chart.contains("position:relative"),
        "{chart}"
    );
    // Job cells may wrap (the Download link stays on screen at 1400 px).
    assert!(
        !css.contains("table.jobs td { white-space:nowrap"),
        "job cells wrap"
    );
    assert!(
        !css.contains("table.periods td, table.jobs td"),
        "job cells wrap"
    );
    // On a phone, job and key tables stack, each cell labelled.
    assert!(css.contains("table.stack [data-label]::before { content:attr(data-label)"));
    // A job, to list.
    let r = app
        .post(
            &admin,
            &app.e("/reports/request"),
            &[
                ("csrf", admin.csrf.as_str()),
                ("kind", "range"),
                ("start", "2025-11-01"),
                ("end", "2025-11-30"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    for (page, table) in [("/reports", "jobs"), ("/keys", "keys")] {
        let html = app.get(&admin, &app.e(page)).await.text();
        let t = &html[html
            .find(&format!(r#"<table class="{table} stack">"#))
            .expect("a stacking table")..];
        let body = &t[t.find("<tbody>").expect("a body")..t.find("</tbody>").expect("end")];
        let tds = body.matches("<td").count();
        assert!(tds > 0);
        assert_eq!(
            body.matches("<td data-label=\"").count(),
            tds,
            "{page}: every cell labelled"
        );
        assert!(t.find("<table").is_some());
        let before = &html[..html
            .find(&format!(r#"<table class="{table} stack">"#))
            .expect("table")];
        assert!(
            before.ends_with(r#"<div class="scroll">"#),
            "{page}: the table is in a scroll box"
        );
    }
}

#[tokio::test]
async fn the_commitment_chart_reads_0_for_used_up_months_with_total_percent_and_axis() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let html = app.get(&admin, &app.e("")).await.text();
    let sts: Vec<_> = meterbook_core::ledger::statements(&*app.store, &num(N), current())
        .expect("statements")
        .into_iter()
        .map(|(st, _)| st)
        .collect();
    let zero = sts.iter().filter(|s| s.ending_balance.0 <= 0).count();
    assert!(zero > 0, "the seed has months without commitment left");
    let card = &html[html
        .find("<h2>Commitment balance trend</h2>")
        .expect("the chart")..];
    let card = &card[..card.find("</section>").expect("end")];
    // One total per month, 0.00 for each month with nothing left.
    assert_eq!(
        card.matches(r##"fill="#333">"##).count(),
        sts.len(),
        "{card}"
    );
    assert_eq!(card.matches(r##"fill="#333">0.00</text>"##).count(), zero);
    // A y axis with labelled ticks from 0.00.
    assert!(card.contains(r##"class="axis" "##) && card.contains(r##"fill="#555">0.00</text>"##));
    // The total commitment (the purchase) and the share used.
    assert!(
        card.contains("<h3>Total commitment</h3><p class=\"value\">500.00 USD</p>"),
        "{card}"
    );
    let left = sts.last().expect("a statement").ending_balance.0.max(0);
    let used = (50_000 - left) * 1000 / 50_000; // tenths of a percent (exact here or below)
    let shown = &card[card.find("<h3>Used</h3><p class=\"value\">").expect("used") + 30..];
    let shown = &shown[..shown.find('%').expect("percent")];
    let tenths: i64 = shown.replace('.', "").parse().expect("a percentage");
    assert!(
        (tenths - used as i64).abs() <= 1,
        "{shown}% used, {left} left"
    );
}
