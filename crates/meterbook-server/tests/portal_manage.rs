//! The portal's Usage and Manage pages through the real server on a random
//! port: usage summaries that add up to the usage-details report, drill-down
//! links, scopes, the usage-details download of a selection; Manage for
//! read-write enterprise administrators only, charge visibility, the
//! hierarchy forms (add, edit, rename, move with an effective date), invites
//! with one-time set-password links, role changes and removals, the audit
//! log, and CSRF.
//!
//! Every test seeds a fresh SQLite store: enrollment 300300 (USD, October
//! 2025 to September 2026) with departments Research (accounts r1, r2) and
//! Operations (o1), an account s1 without a department, and 240 usage rows
//! over October to December 2025; enrollment 400400 with one row. The client
//! keeps no cookie jar and follows no redirect: each test carries
//! `mb_session` itself.

use meterbook_core::access::Scope;
use meterbook_core::enrollment::ChargeVisibility;
use meterbook_core::hierarchy::HierarchyRow;
use meterbook_core::prices::{build_price_sheet, MeterPrice, PriceRow};
use meterbook_core::store::{MetadataStore, UsageSelection};
use meterbook_core::users::{Role, UserStore};
use meterbook_core::{Amount, Day};
use meterbook_io::report::usage::{ReportTotals, UsageFilter, UsageReport};
use meterbook_io::report::{ReportFormat, ReportMeta, ReportScope};
use meterbook_server::portal::password;
use meterbook_sqlite::SqliteStore;
use meterbook_testkit::seed::{self, ingest_rows};
use meterbook_testkit::seed::{day, num, period};
use meterbook_testkit::{Browser, Clock, ManualClock};
use std::collections::HashMap;

// ---------------------------------------------------------------------------
// The seed
// ---------------------------------------------------------------------------

const N: &str = "300300";
const OTHER: &str = "400400";
const G1: &str = "33333333-0000-4000-8000-000000000001";
const G2: &str = "33333333-0000-4000-8000-000000000002";
const G3: &str = "33333333-0000-4000-8000-000000000003";
const G4: &str = "33333333-0000-4000-8000-000000000004";
const G9: &str = "99999999-0000-4000-8000-000000000009";
const PW: &str = "correct horse battery";

const ADMIN: &str = "admin@example.com";
/// A second read-write enterprise administrator.
const ADMIN2: &str = "admin2@example.com";
const AUDITOR: &str = "auditor@example.com";
/// Department administrator of Research.
const DANA: &str = "dana@example.com";
/// Account owner of o1.
const ERIK: &str = "erik@example.com";

fn price_sheet() -> Vec<MeterPrice> {
    let row = |line: u64, id: &str, cat: &str, min: &str, price: &str| PriceRow {
        meter_category: cat.into(),
        ..seed::price_row(line, id, "5", min, price)
    };
    build_price_sheet(&[
        row(2, "TIER01", "Virtual Machines", "0", "1.00"),
        row(3, "TIER01", "Virtual Machines", "100", "0.50"),
        row(4, "FLAT01", "Storage", "0", "0.123457"),
    ])
    .expect("valid price sheet")
}

/// (record id, subscription, date, meter, quantity)
type SeedRow = (String, &'static str, String, &'static str, String);

fn create_enrollment(store: &SqliteStore, n: &str, rows: &[(&str, &str, &str)]) {
    create_enrollment_in(store, n, "USD", rows)
}

fn create_enrollment_in(store: &SqliteStore, n: &str, currency: &str, rows: &[(&str, &str, &str)]) {
    seed::enrollment(store, n, currency, day("2025-10-01"), day("2026-09-30"));
    let rows: Vec<HierarchyRow> = seed::hierarchy(rows)
        .into_iter()
        .map(|r| HierarchyRow {
            department_cost_center: if r.department_name.is_empty() {
                String::new()
            } else {
                format!("DCC-{}", r.department_name)
            },
            ..r
        })
        .collect();
    store.upsert_hierarchy(&num(n), &rows).expect("hierarchy");
    for p in ["202510", "202511", "202512"] {
        store
            .import_prices(&num(n), period(p), &price_sheet())
            .expect("prices");
    }
}

/// E300300's usage: 240 rows, October to December 2025, every subscription.
fn seed_rows() -> Vec<SeedRow> {
    let start = day("2025-10-01");
    (0..240)
        .map(|i| {
            (
                format!("u{i:04}"),
                [G1, G2, G3, G4][i % 4],
                start.add_days(((i * 7) % 92) as i32).to_string(),
                if i % 3 == 0 { "TIER01" } else { "FLAT01" },
                format!("{}.{:03}", 1 + i % 7, (i * 37) % 1000),
            )
        })
        .collect()
}

type Users = HashMap<&'static str, i64>;

fn seed(store: &SqliteStore, clock: &ManualClock) -> Users {
    create_enrollment(
        store,
        N,
        &[
            ("Research", "r1", G1),
            ("Research", "r2", G2),
            ("Operations", "o1", G3),
            ("", "s1", G4),
        ],
    );
    ingest_rows(store, N, &seed_rows());
    create_enrollment(store, OTHER, &[("Elsewhere", "x1", G9)]);
    ingest_rows(
        store,
        OTHER,
        &[("z1".into(), G9, "2025-11-03".into(), "TIER01", "5".into())],
    );
    let h = store.hierarchy(&num(N)).expect("hierarchy");
    let research = h.department_by_name("Research").expect("Research").id;
    let o1 = h.account_by_name("o1").expect("o1").id;
    let hash = password::hash(PW).expect("hash");
    let now = clock.now_unix();
    let role = |scope: Scope, read_only: bool| Role {
        enrollment: num(N),
        scope,
        read_only,
    };
    let mut users = Users::new();
    for (email, r) in [
        (ADMIN, role(Scope::Enrollment, false)),
        (ADMIN2, role(Scope::Enrollment, false)),
        (AUDITOR, role(Scope::Enrollment, true)),
        (DANA, role(Scope::Department(research), false)),
        (ERIK, role(Scope::Account(o1), false)),
    ] {
        users.insert(email, seed::user(store, email, "", Some(&hash), now, &[r]));
    }
    users
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

/// The shared harness, with this file's users.
struct TestApp {
    app: meterbook_testkit::TestApp,
    users: Users,
}

impl std::ops::Deref for TestApp {
    type Target = meterbook_testkit::TestApp;
    fn deref(&self) -> &Self::Target {
        &self.app
    }
}

async fn spawn_app() -> TestApp {
    let (app, users) = meterbook_testkit::spawn().no_redirects().seed(seed).await;
    TestApp { app, users }
}

type Resp = meterbook_testkit::Resp<String>;

/// A page's text between tags, HTML entities undone (good enough for asserts).
trait PageText {
    fn text(&self) -> String;
}

impl PageText for Resp {
    fn text(&self) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in self.body.chars() {
            match c {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    out.push(' ');
                }
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        unescape(&out)
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..end];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| ent.strip_prefix('#').map(|d| d.parse::<u32>()))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every `href` of a page, unescaped.
fn hrefs(page: &str) -> Vec<String> {
    page.split("href=\"")
        .skip(1)
        .filter_map(|s| s.find('"').map(|e| unescape(&s[..e])))
        .collect()
}

/// The value of attribute `name` on the first element that has it.
fn attr(page: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let i = page.find(&key)? + key.len();
    let rest = &page[i..];
    Some(unescape(&rest[..rest.find('"')?]))
}

impl TestApp {
    async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        self.app.send_text(rb).await
    }

    async fn get(&self, path: &str, b: &Browser) -> Resp {
        b.get(path).await
    }

    async fn post(&self, path: &str, b: &Browser, form: &[(&str, &str)]) -> Resp {
        b.post(path, form).await
    }

    /// POSTs a form with the browser's CSRF token added.
    async fn submit(&self, path: &str, b: &Browser, form: &[(&str, &str)]) -> Resp {
        b.submit(path, form).await
    }

    /// Signs in and reads the form token from the usage page.
    async fn sign_in_with(&self, email: &str, pw: &str) -> Browser {
        let mut b = self.browser();
        b.sign_in(email, pw).await;
        b.read_csrf(&format!("/portal/e/{N}/usage")).await;
        b
    }

    async fn sign_in(&self, email: &str) -> Browser {
        self.sign_in_with(email, PW).await
    }

    fn e(&self, suffix: &str) -> String {
        format!("/portal/e/{N}{suffix}")
    }

    /// The totals of the usage-details report of a selection, computed in the store.
    async fn report_totals(
        &self,
        sel: UsageSelection,
        scope: Scope,
        show_costs: bool,
        accounts: Vec<String>,
    ) -> ReportTotals {
        self.blocking(move |s| {
            let meta = ReportMeta {
                enrollment: N.into(),
                scope: ReportScope::Period(String::new()),
                generated_at: String::new(),
                watermark: None,
                currency: "USD".into(),
            };
            let f = UsageFilter {
                accounts,
                ..UsageFilter::within(scope, show_costs, sel)
            };
            let r = UsageReport::prepare(s, &num(N), f, meta).expect("prepare");
            let mut sink: Vec<u8> = Vec::new();
            r.write(s, &num(N), ReportFormat::Csv, &mut sink)
                .expect("write")
        })
        .await
    }

    async fn audit_actions(&self) -> Vec<(String, String, String)> {
        self.blocking(|s| {
            s.audit_log(&num(N), 1000)
                .expect("audit log")
                .into_iter()
                .map(|e| (e.actor, e.action, e.detail))
                .collect()
        })
        .await
    }
}

/// The page's total row: (records, exact cost if shown).
fn totals(page: &str) -> (i64, Option<Amount>) {
    let i = page.find("class=\"total\"").expect("a total row");
    let row = &page[i..];
    let row = &row[..row.find('>').expect("tag end")];
    let rows = attr(row, "data-rows")
        .expect("data-rows")
        .parse()
        .expect("an integer");
    let cost = attr(row, "data-cost").map(|c| c.parse().expect("an exact amount"));
    (rows, cost)
}

/// A CSV download: (rows, summed Cost, values of `column` per row).
fn csv_sum(body: &str, column: &str) -> (i64, Amount, Vec<String>) {
    let mut r = csv::Reader::from_reader(body.as_bytes());
    let head = r.headers().expect("header").clone();
    let cost = head.iter().position(|h| h == "Cost").expect("Cost column");
    let col = head.iter().position(|h| h == column).expect("column");
    let (mut n, mut sum, mut vals) = (0, Amount::ZERO, Vec::new());
    for rec in r.records() {
        let rec = rec.expect("record");
        n += 1;
        sum = sum
            .checked_add(rec[cost].parse::<Amount>().expect("cost"))
            .expect("in range");
        vals.push(rec[col].to_string());
    }
    (n, sum, vals)
}

fn range(from: &str, to: &str) -> UsageSelection {
    UsageSelection {
        from: Some(day(from)),
        to: Some(day(to)),
        ..Default::default()
    }
}

fn booked(p: &str) -> UsageSelection {
    UsageSelection {
        booked: Some(period(p)),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------

#[tokio::test]
async fn usage_totals_equal_the_usage_report_for_the_same_period_and_scope() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    for by in ["hierarchy", "service"] {
        let page = app
            .get(
                &app.e(&format!("/usage?from=202511&to=202511&by={by}")),
                &admin,
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.describe());
        let (rows, cost) = totals(&page.body);
        let want = app
            .report_totals(booked("202511"), Scope::Enrollment, true, vec![])
            .await;
        assert_eq!(rows as u64, want.rows, "{by}");
        assert!(want.rows > 0);
        assert_eq!(cost, Some(want.cost), "{by}: exact charges");
        assert!(page.body.contains("Charges (USD)"));
        assert!(page.body.contains("<svg"), "a chart");
    }
    // The download the month links to agrees too.
    let page = app
        .get(&app.e("/usage?from=202511&to=202511"), &admin)
        .await;
    let (rows, cost) = totals(&page.body);
    let csv = app
        .get(&app.e("/usage/details.csv?period=202511"), &admin)
        .await;
    assert_eq!(csv.status, 200, "{}", csv.describe());
    assert!(csv
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/csv"));
    let (n, sum, _) = csv_sum(&csv.body, "AccountName");
    assert_eq!((n, Some(sum)), (rows, cost));
    // A range of months: the summary by booked month equals the range by date (no corrections here).
    let page = app
        .get(&app.e("/usage?from=202510&to=202512"), &admin)
        .await;
    let (rows, cost) = totals(&page.body);
    assert_eq!(rows, 240);
    let want = app
        .report_totals(
            range("2025-10-01", "2025-12-31"),
            Scope::Enrollment,
            true,
            vec![],
        )
        .await;
    assert_eq!((rows as u64, cost), (want.rows, Some(want.cost)));
    let link = hrefs(&page.body)
        .into_iter()
        .find(|h| h.contains("/usage/details.csv"))
        .expect("a link to the range's details");
    assert!(
        link.contains("from=2025-10-01&to=2025-12-31"),
        "the range's days: {link}"
    );
    let csv = app.get(&link, &admin).await;
    let (n, sum, _) = csv_sum(&csv.body, "AccountName");
    assert_eq!((n, Some(sum)), (rows, cost));
    // A single unfiltered month links the Reports tab's monthly download.
    let page = app
        .get(&app.e("/usage?from=202511&to=202511"), &admin)
        .await;
    let monthly = hrefs(&page.body)
        .into_iter()
        .find(|h| h.starts_with(&app.e("/download/usage?period=202511")))
        .expect("the monthly download");
    let csv = app.get(&monthly, &admin).await;
    assert_eq!(csv.status, 200, "{}", csv.describe());
    let (n, sum, _) = csv_sum(&csv.body, "AccountName");
    assert_eq!((n, Some(sum)), totals(&page.body));

    // A department administrator that sees charges: the department's figures.
    app.blocking(|s| {
        s.set_visibility(
            &num(N),
            ChargeVisibility {
                department_admins_view_charges: true,
                account_owners_view_charges: false,
            },
        )
        .expect("visibility")
    })
    .await;
    let dana = app.sign_in(DANA).await;
    let research = app
        .blocking(|s| {
            s.hierarchy(&num(N))
                .expect("h")
                .department_by_name("Research")
                .expect("Research")
                .id
        })
        .await;
    let page = app.get(&app.e("/usage?from=202512&to=202512"), &dana).await;
    let (rows, cost) = totals(&page.body);
    let want = app
        .report_totals(booked("202512"), Scope::Department(research), true, vec![])
        .await;
    assert_eq!((rows as u64, cost), (want.rows, Some(want.cost)));
    assert!(want.rows > 0 && want.rows < 240 / 3);
}

/// A figure as the page shows it, without separators or currency: `1234.56`.
fn plain(s: &str) -> String {
    s.trim().trim_end_matches(" USD").replace(',', "")
}

/// The value of the overview's figure `label`.
fn tile(page: &str, label: &str) -> String {
    let key = format!("<h2>{label}</h2><p class=\"value\">");
    let i = page.find(&key).expect("the figure") + key.len();
    plain(&page[i..i + page[i..].find("</p>").expect("value end")])
}

/// The total written above the usage-history chart's bar for `month` (`Nov`).
fn bar_total(page: &str, month: &str) -> String {
    let chart = &page[page.find("<h2>Usage history</h2>").expect("the history")..];
    let end = chart
        .find(&format!(">{month}</text>"))
        .expect("the month's bar");
    let before = &chart[..end];
    let i = before.rfind("fill=\"#333\">").expect("a bar total") + "fill=\"#333\">".len();
    plain(&before[i..i + before[i..].find("</text>").expect("text end")])
}

/// The charges of the Usage page's total row.
fn usage_total(page: &str) -> String {
    let row = &page[page.find("class=\"total\"").expect("a total row")..];
    let row = &row[..row.find("</tr>").expect("row end")];
    let i = row.rfind("<td class=\"num\">").expect("charges") + "<td class=\"num\">".len();
    plain(&row[i..i + row[i..].find("</td>").expect("cell end")])
}

/// The cells of a table's rows whose first cell (a row header) is a name:
/// name → the `num` cells' texts.
fn named_rows(table: &str) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    for tr in table.split("<tr").skip(1) {
        let Some(h) = tr.find("<th scope=\"row\">") else {
            continue;
        };
        let name = &tr[h + "<th scope=\"row\">".len()..];
        let name = &name[..name.find("</th>").expect("header end")];
        let cells = tr
            .split("<td class=\"num\">")
            .skip(1)
            .map(|c| plain(&c[..c.find("</td>").expect("cell end")]))
            .collect();
        out.insert(name.to_string(), cells);
    }
    out
}

#[tokio::test]
async fn overview_tile_chart_and_usage_page_show_the_statements_figures() {
    let app = spawn_app().await;
    // Usage this month too (the overview's tile is the current month's; the
    // term ends in September 2026, so that is September), with fractions of
    // a cent in every row.
    app.blocking(|s| {
        s.import_prices(&num(N), period("202609"), &price_sheet())
            .expect("prices");
        let rows: Vec<SeedRow> = (0..60)
            .map(|i| {
                (
                    format!("sep{i:03}"),
                    [G1, G2, G3, G4][i % 4],
                    format!("2026-09-{:02}", 1 + i % 28),
                    if i % 5 == 0 { "TIER01" } else { "FLAT01" },
                    format!("{}.{:03}", 3 + i % 11, (i * 131) % 1000),
                )
            })
            .collect();
        ingest_rows(s, N, &rows);
    })
    .await;
    let admin = app.sign_in(ADMIN).await;
    let statement = |p: &'static str| {
        app.blocking(move |s| {
            let st = meterbook_core::ledger::statement(s, &num(N), period(p)).expect("statement");
            // What balancesummary serves: totalUsage and marketplaceCharges.
            st.total_usage
                .checked_add(st.marketplace_charges)
                .expect("in range")
                .format(2)
        })
    };
    let overview = app.get(&app.e(""), &admin).await;
    assert_eq!(overview.status, 200, "{}", overview.describe());
    let by_service = app.get(&app.e("?by=service"), &admin).await;
    let sep = statement("202609").await;
    assert_ne!(sep, "0.00");
    assert_eq!(tile(&overview.body, "Charges this month"), sep);
    for (p, month) in [
        ("202510", "Oct"),
        ("202511", "Nov"),
        ("202512", "Dec"),
        ("202609", "Sep"),
    ] {
        let want = statement(p).await;
        assert_eq!(
            bar_total(&overview.body, month),
            want,
            "{month}: by department"
        );
        assert_eq!(
            bar_total(&by_service.body, month),
            want,
            "{month}: by service"
        );
        let usage = app
            .get(
                &app.e(&format!("/usage?from={p}&to={p}&by=service")),
                &admin,
            )
            .await;
        assert_eq!(usage.status, 200, "{}", usage.describe());
        assert_eq!(usage_total(&usage.body), want, "{month}: the Usage page");
        // Each service has the same figure on both pages, and they add up.
        let column = [
            "202510", "202511", "202512", "202601", "202602", "202603", "202604", "202605",
            "202606", "202607", "202608", "202609",
        ]
        .iter()
        .position(|x| *x == p)
        .expect("a month of the chart");
        let services = named_rows(&usage.body);
        let mut cents = 0i64;
        for (name, cells) in named_rows(&by_service.body) {
            let usage_row = &services[&name];
            assert_eq!(
                usage_row.last(),
                Some(&cells[column]),
                "{month}: {name} on the overview and the Usage page"
            );
            cents += cells[column]
                .replace('.', "")
                .parse::<i64>()
                .expect("cents");
        }
        assert_eq!(
            format!("{}.{:02}", cents / 100, cents % 100),
            want,
            "{month}: parts"
        );
    }
}

#[tokio::test]
async fn charts_read_in_each_currencys_decimals() {
    let app = spawn_app().await;
    let admin_id = app.users[ADMIN];
    for (n, currency, exponent) in [("500500", "CLF", 4u32), ("600600", "JPY", 0)] {
        app.blocking(move |s| {
            create_enrollment_in(s, n, currency, &[("Research", "r1", G1), ("", "s1", G2)]);
            ingest_rows(
                s,
                n,
                &[
                    (
                        "c1".into(),
                        G1,
                        "2025-11-03".into(),
                        "FLAT01",
                        "1234.567".into(),
                    ),
                    (
                        "c2".into(),
                        G2,
                        "2025-11-04".into(),
                        "TIER01",
                        "321.5".into(),
                    ),
                ],
            );
            s.grant_role(
                admin_id,
                &Role {
                    enrollment: num(n),
                    scope: Scope::Enrollment,
                    read_only: false,
                },
            )
            .expect("grant role");
        })
        .await;
        let admin = app.sign_in(ADMIN).await;
        let want = app
            .blocking(move |s| {
                let st = meterbook_core::ledger::statement(s, &num(n), period("202511"))
                    .expect("statement");
                st.total_usage.format(exponent)
            })
            .await;
        assert_ne!(want, meterbook_core::Money::ZERO.format(exponent));
        let page = app.get(&format!("/portal/e/{n}"), &admin).await;
        assert_eq!(page.status, 200, "{}", page.describe());
        assert_eq!(bar_total(&page.body, "Nov"), want, "{currency}");
        let usage = app
            .get(
                &format!("/portal/e/{n}/usage?from=202511&to=202511"),
                &admin,
            )
            .await;
        assert_eq!(
            usage_total(&usage.body).trim_end_matches(&format!(" {currency}")),
            want
        );
        // The chart of the Usage page reads the same.
        let chart = usage
            .body
            .replace("<h2>Departments", "<h2>Usage history</h2><h2>");
        assert_eq!(
            bar_total(&chart, "Nov"),
            want,
            "{currency}: the Usage page's chart"
        );
    }
}

#[tokio::test]
async fn drill_down_goes_department_account_subscription_then_details() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let top = app
        .get(&app.e("/usage?from=202510&to=202512"), &admin)
        .await;
    assert_eq!(top.status, 200);
    let links = hrefs(&top.body);
    let usage_links: Vec<&String> = links
        .iter()
        .filter(|h| h.starts_with(&app.e("/usage?")))
        .collect();
    let research = usage_links
        .iter()
        .find(|h| h.contains("department=Research"))
        .expect("a link to Research");
    assert!(usage_links
        .iter()
        .any(|h| h.contains("department=Operations")));
    assert!(
        usage_links.iter().any(|h| h.contains("account=s1")),
        "an account without a department is at the top level"
    );
    // Department → its accounts.
    let dept = app.get(research, &admin).await;
    assert_eq!(dept.status, 200, "{}", dept.describe());
    let text = dept.text();
    assert!(text.contains("Department Research"));
    let dl = hrefs(&dept.body);
    assert!(dl.iter().any(|h| h.contains("account=r1")));
    assert!(dl.iter().any(|h| h.contains("account=r2")));
    assert!(!dl.iter().any(|h| h.contains("account=o1")));
    let (dept_rows, dept_cost) = totals(&dept.body);
    assert_eq!(dept_rows, 120, "r1 and r2 have half the rows");
    // The department's download.
    let d_csv = dl
        .iter()
        .find(|h| h.contains("/usage/details.csv") && h.contains("department=Research"))
        .expect("the department's details");
    let csv = app.get(d_csv, &admin).await;
    let (n, sum, depts) = csv_sum(&csv.body, "DepartmentName");
    assert_eq!((n, Some(sum)), (dept_rows, dept_cost));
    assert!(depts.iter().all(|d| d == "Research"));
    // Account → its subscriptions, and its usage details.
    let r1 = dl.iter().find(|h| h.contains("account=r1")).expect("r1");
    let acct = app.get(r1, &admin).await;
    assert_eq!(acct.status, 200);
    assert!(acct.text().contains("Account r1"));
    assert!(acct.text().contains("sub-r1"));
    assert!(acct.text().contains("Subscription"));
    let crumbs = hrefs(&acct.body);
    assert!(
        crumbs.iter().any(|h| h.contains("department=Research")),
        "the breadcrumb leads back to the department"
    );
    let (rows, cost) = totals(&acct.body);
    assert_eq!(rows, 60);
    let details = crumbs
        .iter()
        .find(|h| h.contains("/usage/details.csv"))
        .expect("the account's details");
    assert!(details.contains("account=r1"));
    let csv = app.get(details, &admin).await;
    assert_eq!(csv.status, 200);
    assert!(csv
        .header("content-disposition")
        .unwrap_or_default()
        .contains("r1"));
    let (n, sum, accounts) = csv_sum(&csv.body, "AccountName");
    assert_eq!((n, Some(sum)), (rows, cost));
    assert!(accounts.iter().all(|a| a == "r1"));
    // A single month with an account: the booked month's download.
    let one = app
        .get(&app.e("/usage?from=202511&to=202511&account=r1"), &admin)
        .await;
    let link = hrefs(&one.body)
        .into_iter()
        .find(|h| h.contains("/usage/details.csv"))
        .expect("details");
    assert!(link.contains("period=202511") && link.contains("account=r1"));
    let (rows, cost) = totals(&one.body);
    let csv = app.get(&link, &admin).await;
    let (n, sum, _) = csv_sum(&csv.body, "AccountName");
    assert_eq!((n, Some(sum)), (rows, cost));
    // Every link on the pages works.
    for page in [&top, &dept, &acct] {
        for h in hrefs(&page.body) {
            if h.starts_with(&app.e("/usage")) {
                let r = app.get(&h, &admin).await;
                assert_eq!(r.status, 200, "{h}: {}", r.describe());
            }
        }
    }
    // By service: meters with quantities and units.
    let svc = app
        .get(&app.e("/usage?from=202510&to=202512&by=service"), &admin)
        .await;
    let text = svc.text();
    assert!(text.contains("Virtual Machines") && text.contains("Storage"));
    assert!(text.contains("TIER01") && text.contains("1 Hour"));
    assert_eq!(totals(&svc.body).0, 240);
}

#[tokio::test]
async fn a_department_administrator_sees_only_its_departments() {
    let app = spawn_app().await;
    let dana = app.sign_in(DANA).await;
    let page = app.get(&app.e("/usage?from=202510&to=202512"), &dana).await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("Research"));
    for other in ["Operations", "o1", "s1", "sub-o1", "Elsewhere"] {
        assert!(!text.contains(other), "{other} shown to a department admin");
    }
    assert_eq!(totals(&page.body), (120, None), "no charges by default");
    assert!(!page.body.contains("Charges (USD)"));
    assert!(text.contains("not shown to your role"));
    // Filters outside the scope read as unknown.
    for q in [
        "department=Operations",
        "account=o1",
        "account=s1",
        "account=nope",
    ] {
        let r = app
            .get(&app.e(&format!("/usage?from=202510&to=202512&{q}")), &dana)
            .await;
        assert_eq!(r.status, 404, "{q}: {}", r.describe());
        assert!(r.is_html());
        let r = app
            .get(
                &app.e(&format!("/usage/details.csv?period=202511&{q}")),
                &dana,
            )
            .await;
        assert_eq!(r.status, 404, "download {q}");
    }
    // Inside the scope: fine.
    let r = app
        .get(&app.e("/usage?from=202510&to=202512&account=r2"), &dana)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(totals(&r.body).0, 60);
    // The unfiltered download has the department's rows only, costs as 0.
    let csv = app
        .get(
            &app.e("/usage/details.csv?from=2025-10-01&to=2025-12-31"),
            &dana,
        )
        .await;
    assert_eq!(csv.status, 200);
    let (n, sum, depts) = csv_sum(&csv.body, "DepartmentName");
    assert_eq!((n, sum), (120, Amount::ZERO));
    assert!(depts.iter().all(|d| d == "Research"));
    // An account owner: one account.
    let erik = app.sign_in(ERIK).await;
    let page = app.get(&app.e("/usage?from=202510&to=202512"), &erik).await;
    assert_eq!(totals(&page.body).0, 60);
    assert!(!page.text().contains("Research"));
    // Bad input is a 400 page.
    for q in [
        "from=2025-10",
        "from=202512&to=202510",
        "from=202401&to=202401",
    ] {
        let r = app.get(&app.e(&format!("/usage?{q}")), &erik).await;
        assert_eq!(r.status, 400, "{q}");
        assert!(r.is_html());
    }
    // Another enrollment: not found.
    let r = app.get(&format!("/portal/e/{OTHER}/usage"), &erik).await;
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------------------
// Manage
// ---------------------------------------------------------------------------

/// Every Manage page.
const MANAGE_PAGES: [&str; 6] = [
    "/manage",
    "/manage/hierarchy",
    "/manage/users",
    "/manage/budgets",
    "/manage/exports",
    "/manage/audit",
];

/// Every Manage form, with fields that would change something.
fn manage_forms(users: &Users) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    vec![
        (
            "/manage/settings",
            vec![
                ("department_admins_view_charges", "true".into()),
                ("account_owners_view_charges", "true".into()),
            ],
        ),
        (
            "/manage/hierarchy/subscription",
            vec![
                ("guid", "44444444-0000-4000-8000-000000000001".into()),
                ("name", "sub-new".into()),
                ("account", "r1".into()),
            ],
        ),
        (
            "/manage/hierarchy/rename",
            vec![("guid", G1.into()), ("name", "renamed".into())],
        ),
        (
            "/manage/hierarchy/move",
            vec![
                ("guid", G1.into()),
                ("account", "o1".into()),
                ("effective", "2025-12-01".into()),
            ],
        ),
        (
            "/manage/hierarchy/account",
            vec![
                ("id", "1".into()),
                ("owner_email", "x@example.com".into()),
                ("cost_center", "X".into()),
                ("department", String::new()),
            ],
        ),
        (
            "/manage/hierarchy/department",
            vec![("id", "1".into()), ("cost_center", "X".into())],
        ),
        (
            "/manage/users/invite",
            vec![
                ("email", "mallory@example.com".into()),
                ("role", "enterprise-admin".into()),
            ],
        ),
        (
            "/manage/users/role",
            vec![
                ("user_id", users[ERIK].to_string()),
                ("role", "enterprise-admin".into()),
            ],
        ),
        (
            "/manage/users/remove",
            vec![("user_id", users[ADMIN].to_string())],
        ),
        (
            "/manage/budgets/create",
            vec![
                ("name", "Sneaky".into()),
                ("scope", "enrollment".into()),
                ("cadence", "monthly".into()),
                ("amount", "10".into()),
                ("thresholds", "actual:1".into()),
            ],
        ),
        ("/manage/budgets/delete", vec![("id", "1".into())]),
        (
            "/manage/budgets/channels/add",
            vec![
                ("kind", "webhook".into()),
                ("address", "https://evil.example/x".into()),
                ("alert", "on".into()),
            ],
        ),
        ("/manage/budgets/channels/remove", vec![("id", "1".into())]),
        (
            "/manage/exports",
            vec![
                ("name", "Sneaky".into()),
                ("folder", "sneaky".into()),
                ("schedule", "daily".into()),
                ("format", "csv".into()),
            ],
        ),
    ]
}

/// Everything the forms could change.
async fn snapshot(app: &TestApp) -> String {
    app.blocking(|s| {
        let n = num(N);
        let e = s.enrollment(&n).expect("enrollment");
        let h = s.hierarchy(&n).expect("hierarchy");
        let mut subs: Vec<String> = h
            .subscriptions
            .values()
            .map(|x| format!("{} {} {:?}", x.guid, x.name, x.owners))
            .collect();
        subs.sort();
        let mut accts: Vec<String> = h.accounts.values().map(|a| format!("{a:?}")).collect();
        accts.sort();
        let mut depts: Vec<String> = h.departments.values().map(|d| format!("{d:?}")).collect();
        depts.sort();
        let users: Vec<String> = s
            .enrollment_users(&n)
            .expect("users")
            .into_iter()
            .map(|(u, r)| format!("{} {r:?}", u.email))
            .collect();
        use meterbook_core::notify::NotifyStore;
        let budgets = s.budgets(&n).expect("budgets");
        let channels = s.channels(&n).expect("channels");
        let exports =
            meterbook_core::exports::ExportStore::export_schedules(s, Some(&n)).expect("exports");
        format!(
            "{:?}\n{subs:?}\n{accts:?}\n{depts:?}\n{users:?}\n{budgets:?}\n{channels:?}\n{exports:?}",
            e.visibility
        )
    })
    .await
}

#[tokio::test]
async fn manage_is_for_read_write_enterprise_administrators_only() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    for p in MANAGE_PAGES {
        let r = app.get(&app.e(p), &admin).await;
        assert_eq!(r.status, 200, "{p}: {}", r.describe());
        assert!(r.is_html());
    }
    let before = snapshot(&app).await;
    for who in [AUDITOR, DANA, ERIK] {
        let b = app.sign_in(who).await;
        for (path, fields) in manage_forms(&app.users) {
            let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = app.submit(&app.e(path), &b, &form).await;
            assert_eq!(r.status, 403, "{who} POST {path}: {}", r.describe());
        }
        if who == AUDITOR {
            continue; // Sees Manage read-only: see the next test.
        }
        let usage = app.get(&app.e("/usage"), &b).await;
        assert!(
            !usage
                .body
                .contains(&format!("href=\"/portal/e/{N}/manage\"")),
            "{who} is not offered the Manage tab"
        );
        for p in MANAGE_PAGES {
            let r = app.get(&app.e(p), &b).await;
            assert_eq!(r.status, 403, "{who} GET {p}: {}", r.describe());
            assert!(r.is_html(), "a 403 page");
        }
    }
    assert_eq!(snapshot(&app).await, before, "nothing changed");
    // Signed out: to the sign-in page.
    let nobody = app.browser().with_token(&"0".repeat(64));
    let r = app.get(&app.e("/manage"), &nobody).await;
    assert_eq!(r.status, 303);
}

/// A read-only enterprise administrator sees Manage (settings, hierarchy,
/// users, audit log) without a form or button that would change anything;
/// every change is still refused with 403.
#[tokio::test]
async fn a_read_only_enterprise_administrator_sees_manage_read_only() {
    let app = spawn_app().await;
    let before = snapshot(&app).await;
    let admin = app.sign_in(ADMIN).await;
    let auditor = app.sign_in(AUDITOR).await;
    let usage = app.get(&app.e("/usage"), &auditor).await;
    assert!(
        usage
            .body
            .contains(&format!("href=\"/portal/e/{N}/manage\"")),
        "the Manage tab is offered"
    );
    for p in MANAGE_PAGES {
        let full = app.get(&app.e(p), &admin).await;
        let r = app.get(&app.e(p), &auditor).await;
        assert_eq!(r.status, 200, "GET {p}: {}", r.describe());
        assert!(r.is_html());
        assert!(r.body.contains("read-only"), "{p} says it is read-only");
        // No form that changes anything (the layout's sign-out form aside).
        let manage_form = format!("action=\"/portal/e/{N}/manage/");
        assert!(
            full.body.contains(&manage_form) || p.ends_with("audit"),
            "{p}: the admin's forms"
        );
        assert!(
            !r.body.contains(&manage_form),
            "{p}: a form for a read-only role"
        );
        assert_eq!(
            r.body.matches("<button").count(),
            r.body.matches("action=\"/portal/sign-out").count(),
            "{p}: only the layout's sign-out buttons: {}",
            r.body
        );
        assert!(!r.body.contains("<select"), "{p}: a select");
    }
    // What the administrator sees, the reader sees as text.
    let users = app.get(&app.e("/manage/users"), &auditor).await.body;
    for who in [ADMIN, DANA, ERIK] {
        assert!(users.contains(who), "{who} is listed");
    }
    let settings = app.get(&app.e("/manage"), &auditor).await.body;
    assert!(settings.contains("Department administrators view charges"));
    let hierarchy = app.get(&app.e("/manage/hierarchy"), &auditor).await.body;
    assert!(hierarchy.contains(G1), "subscriptions listed");
    let audit = app.get(&app.e("/manage/audit"), &auditor).await.body;
    assert!(audit.contains("sign-in"), "the audit log");
    for (path, fields) in manage_forms(&app.users) {
        let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = app.submit(&app.e(path), &auditor, &form).await;
        assert_eq!(r.status, 403, "POST {path}: {}", r.describe());
    }
    assert_eq!(snapshot(&app).await, before, "nothing changed");
}

#[tokio::test]
async fn a_wrong_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let before = snapshot(&app).await;
    let audit_before = app.audit_actions().await.len();
    for (path, fields) in manage_forms(&app.users) {
        for csrf in ["wrong", ""] {
            let mut form: Vec<(&str, &str)> = vec![("csrf", csrf)];
            form.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
            let r = app.post(&app.e(path), &admin, &form).await;
            assert_eq!(r.status, 403, "{path}: {}", r.describe());
            assert!(r.is_html());
        }
        // Without the field at all.
        let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = app.post(&app.e(path), &admin, &form).await;
        assert_eq!(r.status, 403, "{path} without csrf: {}", r.describe());
    }
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(app.audit_actions().await.len(), audit_before);
}

#[tokio::test]
async fn a_settings_change_takes_effect_and_is_audited() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let dana = app.sign_in(DANA).await;
    let page = app.get(&app.e("/usage?from=202511&to=202511"), &dana).await;
    assert_eq!(totals(&page.body).1, None, "no charges yet");
    let settings = app.get(&app.e("/manage"), &admin).await;
    let text = settings.text();
    for want in [N, "Enrollment 300300", "USD", "2025-10-01 to 2026-09-30"] {
        assert!(text.contains(want), "{want} in {text}");
    }
    assert!(text.contains("DepartmentAdminsViewCharges"));
    let r = app
        .submit(
            &app.e("/manage/settings"),
            &admin,
            &[("department_admins_view_charges", "true")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r
        .text()
        .contains("DepartmentAdminsViewCharges: false → true"));
    let v = app
        .blocking(|s| s.enrollment(&num(N)).expect("e").visibility)
        .await;
    assert!(v.department_admins_view_charges && !v.account_owners_view_charges);
    // Dana now sees charges: the department's exact figures.
    let page = app.get(&app.e("/usage?from=202511&to=202511"), &dana).await;
    let (_, cost) = totals(&page.body);
    let research = app
        .blocking(|s| {
            s.hierarchy(&num(N))
                .expect("h")
                .department_by_name("Research")
                .expect("R")
                .id
        })
        .await;
    let want = app
        .report_totals(booked("202511"), Scope::Department(research), true, vec![])
        .await;
    assert_eq!(cost, Some(want.cost));
    assert!(want.cost > Amount::ZERO);
    assert!(page.body.contains("Charges (USD)"));
    // Erik (an account owner) still does not.
    let erik = app.sign_in(ERIK).await;
    let page = app.get(&app.e("/usage?from=202511&to=202511"), &erik).await;
    assert_eq!(totals(&page.body).1, None);
    // Unticking both turns them off again; the same form twice changes nothing.
    let r = app.submit(&app.e("/manage/settings"), &admin, &[]).await;
    assert!(r
        .text()
        .contains("DepartmentAdminsViewCharges: true → false"));
    let r = app.submit(&app.e("/manage/settings"), &admin, &[]).await;
    assert!(r.text().contains("Nothing changed"));
    let log = app.audit_actions().await;
    let changes: Vec<_> = log
        .iter()
        .filter(|(_, a, _)| a == "setting-changed")
        .collect();
    assert_eq!(changes.len(), 2, "{log:?}");
    assert!(changes.iter().all(|(actor, _, _)| actor == ADMIN));
}

/// The one-time link in an invite's answer.
fn invite_link(page: &str) -> String {
    let i = page.find("data-copy").expect("a copyable link");
    let rest = &page[i..];
    let start = rest.find('>').expect("tag end") + 1;
    let end = rest.find("</").expect("element end");
    unescape(rest[start..end].trim())
}

/// An invite's set-password link lasts the invite's days by the server's
/// clock, and not a second longer.
#[tokio::test]
async fn an_invite_link_expires_after_its_days() {
    let app = spawn_app().await;
    // The server's clock a month behind the system's: the link's life is the server's.
    app.clock
        .set_millis(app.clock.now_millis() - 30 * 86_400_000);
    let admin = app.sign_in(ADMIN).await;
    let mut tokens = Vec::new();
    for email in ["early@example.com", "late@example.com"] {
        let r = app
            .submit(
                &app.e("/manage/users/invite"),
                &admin,
                &[("email", email), ("role", "enterprise-reader")],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.describe());
        let link = invite_link(&r.body);
        tokens.push(link.split("token=").nth(1).expect("a token").to_string());
    }
    let pw = "a brand new passphrase";
    let browser = app.browser();
    let set = |token: String| {
        let browser = browser.clone();
        async move {
            browser
                .post(
                    "/portal/set-password",
                    &[("token", &token), ("password", pw), ("confirm", pw)],
                )
                .await
        }
    };
    let days = meterbook_server::portal::manage::INVITE_DAYS as u64;
    app.advance(std::time::Duration::from_secs(days * 86_400 - 1));
    let r = set(tokens[0].clone()).await;
    assert_eq!(r.status, 303, "a second before: {}", r.describe());
    app.advance(std::time::Duration::from_secs(2));
    let r = set(tokens[1].clone()).await;
    assert_eq!(r.status, 400, "a second after: {}", r.describe());
    assert!(r.body.contains("expired or was already used"), "{}", r.body);
}

#[tokio::test]
async fn an_invited_user_sets_a_password_through_the_link_and_signs_in() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let users = app.get(&app.e("/manage/users"), &admin).await;
    let text = users.text();
    for who in [ADMIN, AUDITOR, DANA, ERIK] {
        assert!(text.contains(who), "{who} listed");
    }
    assert!(text.contains("Department administrator of Research"));
    assert!(text.contains("Account owner of o1"));
    let o1 = app
        .blocking(|s| {
            s.hierarchy(&num(N))
                .expect("h")
                .account_by_name("o1")
                .expect("o1")
                .id
        })
        .await;
    let role = format!("account-owner:{o1}");
    let r = app
        .submit(
            &app.e("/manage/users/invite"),
            &admin,
            &[
                ("email", "New.Person@Example.com"),
                ("name", "New Person"),
                ("role", &role),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let link = invite_link(&r.body);
    let path = link
        .find("/portal/set-password?token=")
        .map(|i| link[i..].to_string())
        .unwrap_or_else(|| panic!("a set-password link: {link}"));
    let token = path.split("token=").nth(1).expect("token").to_string();
    assert_eq!(token.len(), 64);
    assert!(r.text().contains("new.person@example.com"));
    // The link's page, then the password.
    let page = app
        .send(app.client.get(format!("{}{path}", app.base)))
        .await;
    assert_eq!(page.status, 200);
    let new_pw = "a brand new passphrase";
    let set = |t: String| {
        app.client
            .post(format!("{}/portal/set-password", app.base))
            .form(&[
                ("token", t.as_str()),
                ("password", new_pw),
                ("confirm", new_pw),
            ])
    };
    let r = app.send(set(token.clone())).await;
    assert_eq!(r.status, 303, "{}", r.describe());
    let r = app.send(set(token.clone())).await;
    assert_eq!(r.status, 400, "the link works once");
    let b = app.sign_in_with("new.person@example.com", new_pw).await;
    let page = app.get(&app.e("/usage?from=202510&to=202512"), &b).await;
    assert_eq!(totals(&page.body).0, 60, "o1's usage only");
    // Inviting someone who has a password: the role, no link.
    let r = app
        .submit(
            &app.e("/manage/users/invite"),
            &admin,
            &[("email", ERIK), ("role", "enterprise-reader")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        !r.body.contains("data-copy"),
        "no link for a user with a password"
    );
    assert!(r.text().contains("already had a role here"));
    let roles = app
        .blocking(move |s| s.roles(s.user_by_email(ERIK).unwrap().unwrap().id).unwrap())
        .await;
    assert_eq!(roles.len(), 1);
    assert_eq!(
        (roles[0].scope, roles[0].read_only),
        (Scope::Enrollment, true)
    );
    // Bad invitations.
    for (email, role, status) in [
        ("not-an-email", "enterprise-admin", 400),
        ("x@example.com", "emperor", 400),
        ("x@example.com", "department-admin:99999", 404),
        ("x@example.com", "account-owner:abc", 400),
    ] {
        let r = app
            .submit(
                &app.e("/manage/users/invite"),
                &admin,
                &[("email", email), ("role", role)],
            )
            .await;
        assert_eq!(r.status, status, "{email} {role}: {}", r.describe());
        assert!(r.body.contains("class=\"alert\""));
    }
    let log = app.audit_actions().await;
    let invited: Vec<_> = log.iter().filter(|(_, a, _)| a == "user-invited").collect();
    assert_eq!(invited.len(), 2, "{log:?}");
    assert!(invited
        .iter()
        .any(|(_, _, d)| d.contains("new.person@example.com") && d.contains("set-password link")));
    assert!(
        !log.iter().any(|(_, _, d)| d.contains(&token)),
        "the token is never logged"
    );
}

#[tokio::test]
async fn roles_change_and_go_but_never_the_administrators_own() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let erik = app.sign_in(ERIK).await;
    let research = app
        .blocking(|s| {
            s.hierarchy(&num(N))
                .expect("h")
                .department_by_name("Research")
                .expect("R")
                .id
        })
        .await;
    let (erik_id, me) = (app.users[ERIK].to_string(), app.users[ADMIN].to_string());
    let role = format!("department-reader:{research}");
    let r = app
        .submit(
            &app.e("/manage/users/role"),
            &admin,
            &[("user_id", &erik_id), ("role", &role)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r
        .text()
        .contains("Account owner of o1 → Department administrator (read-only) of Research"));
    // Takes effect on Erik's next request.
    let page = app.get(&app.e("/usage?from=202510&to=202512"), &erik).await;
    assert_eq!(totals(&page.body).0, 120);
    // Not their own.
    for (path, form) in [
        (
            "/manage/users/role",
            vec![("user_id", me.as_str()), ("role", "enterprise-reader")],
        ),
        ("/manage/users/remove", vec![("user_id", me.as_str())]),
    ] {
        let r = app.submit(&app.e(path), &admin, &form).await;
        assert_eq!(r.status, 403, "{path}: {}", r.describe());
        assert!(r.text().contains("your own role"));
    }
    let roles = app
        .blocking(|s| {
            s.roles(s.user_by_email(ADMIN).unwrap().unwrap().id)
                .unwrap()
        })
        .await;
    assert_eq!(
        (roles[0].scope, roles[0].read_only),
        (Scope::Enrollment, false)
    );
    // Someone of another enrollment (or nobody) is not found.
    let outsider = app
        .blocking(|s| {
            s.create_user("out@example.com", "", None, 0)
                .expect("user")
                .id
        })
        .await
        .to_string();
    for id in [outsider.as_str(), "999999", "x"] {
        let r = app
            .submit(&app.e("/manage/users/remove"), &admin, &[("user_id", id)])
            .await;
        assert_eq!(r.status, 404, "{id}");
    }
    // Removing Erik's role: he can no longer open the enrollment.
    let r = app
        .submit(
            &app.e("/manage/users/remove"),
            &admin,
            &[("user_id", &erik_id)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(!app
        .get(&app.e("/manage/users"), &admin)
        .await
        .text()
        .contains(ERIK));
    let r = app.get(&app.e("/usage"), &erik).await;
    assert_eq!(r.status, 404);
    // Another administrator may change the first one's role.
    let other = app.sign_in(ADMIN2).await;
    let r = app
        .submit(
            &app.e("/manage/users/role"),
            &other,
            &[("user_id", &me), ("role", "enterprise-reader")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = app.get(&app.e("/manage"), &admin).await;
    assert_eq!(r.status, 200, "a read-only administrator now");
    assert!(
        !r.body
            .contains(&format!("action=\"/portal/e/{N}/manage/settings\"")),
        "no settings form for a read-only administrator"
    );
    let log = app.audit_actions().await;
    assert_eq!(
        log.iter().filter(|(_, a, _)| a == "role-changed").count(),
        2
    );
    assert!(log
        .iter()
        .any(|(actor, a, d)| actor == ADMIN && a == "role-removed" && d.contains(ERIK)));
}

#[tokio::test]
async fn a_move_attributes_later_usage_to_the_new_account() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    // r1's (G1's) November rows before and from the 15th.
    let rows = seed_rows();
    let count = |from: &str, to: &str| {
        rows.iter()
            .filter(|r| r.1 == G1 && r.2.as_str() >= from && r.2.as_str() <= to)
            .count() as i64
    };
    let (before, after) = (
        count("2025-11-01", "2025-11-14"),
        count("2025-11-15", "2025-11-30"),
    );
    assert!(before > 0 && after > 0);
    let o1_nov = rows
        .iter()
        .filter(|r| r.1 == G3 && r.2.starts_with("2025-11"))
        .count() as i64;
    let r = app
        .submit(
            &app.e("/manage/hierarchy/move"),
            &admin,
            &[("guid", G1), ("account", "o1"), ("effective", "2025-11-15")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let text = r.text();
    assert!(text.contains("moved from account r1 to o1 effective 2025-11-15"));
    assert!(text.contains("r1 from 2025-10-01, o1 from 2025-11-15"));
    let r1 = app
        .get(&app.e("/usage?from=202511&to=202511&account=r1"), &admin)
        .await;
    assert_eq!(totals(&r1.body).0, before);
    let o1 = app
        .get(&app.e("/usage?from=202511&to=202511&account=o1"), &admin)
        .await;
    assert_eq!(totals(&o1.body).0, o1_nov + after);
    assert!(
        o1.text().contains("sub-r1"),
        "the moved subscription under o1"
    );
    // The account's download follows the move too.
    let csv = app
        .get(
            &app.e("/usage/details.csv?period=202511&account=o1"),
            &admin,
        )
        .await;
    let (n, _, subs) = csv_sum(&csv.body, "SubscriptionGuid");
    assert_eq!(n, o1_nov + after);
    assert_eq!(subs.iter().filter(|s| *s == G1).count() as i64, after);
    // A closed period is refused, with the store's reason on the page.
    app.blocking(|s| {
        meterbook_core::ledger::close_period(s, &num(N), period("202510"), Day::today())
            .expect("close")
    })
    .await;
    let before_state = snapshot(&app).await;
    let r = app
        .submit(
            &app.e("/manage/hierarchy/move"),
            &admin,
            &[("guid", G2), ("account", "o1"), ("effective", "2025-10-20")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.describe());
    assert!(r.text().contains("closed period 202510"), "{}", r.text());
    assert!(r.body.contains("class=\"alert\""));
    for (guid, account, day, status) in [
        (G2, "o1", "2030-01-01", 400),
        (G2, "o1", "someday", 400),
        (G2, "nope", "2025-12-01", 404),
        ("nope", "o1", "2025-12-01", 404),
        (G2, "r2", "2025-12-01", 400),
    ] {
        let r = app
            .submit(
                &app.e("/manage/hierarchy/move"),
                &admin,
                &[("guid", guid), ("account", account), ("effective", day)],
            )
            .await;
        assert_eq!(r.status, status, "{guid} {account} {day}: {}", r.describe());
    }
    assert_eq!(snapshot(&app).await, before_state);
    let log = app.audit_actions().await;
    assert_eq!(
        log.iter()
            .filter(|(_, a, _)| a == "hierarchy-changed")
            .count(),
        1,
        "only the move that happened: {log:?}"
    );
}

#[tokio::test]
async fn hierarchy_forms_add_and_edit_through_the_upsert() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let page = app.get(&app.e("/manage/hierarchy"), &admin).await;
    // Names as text, editable values in their inputs.
    let (text, body) = (page.text(), unescape(&page.body));
    for want in ["Research", "Operations", "r1", "o1", "s1", G1] {
        assert!(text.contains(want), "{want}");
    }
    for want in ["sub-s1", "DCC-Research", "CC-o1", "o1@example.com"] {
        assert!(body.contains(&format!("value=\"{want}\"")), "{want}");
    }
    const NEW: &str = "55555555-0000-4000-8000-000000000001";
    const NEW2: &str = "55555555-0000-4000-8000-000000000002";
    // A subscription with a new account in a new department.
    let r = app
        .submit(
            &app.e("/manage/hierarchy/subscription"),
            &admin,
            &[
                ("guid", NEW),
                ("name", "sub-lab"),
                ("account", ""),
                ("new_account", "lab1"),
                ("owner_email", "lab@example.com"),
                ("account_cost_center", "CC-lab"),
                ("department", "Lab"),
                ("department_cost_center", "DCC-Lab"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    // One in an existing account.
    let r = app
        .submit(
            &app.e("/manage/hierarchy/subscription"),
            &admin,
            &[("guid", NEW2), ("name", "sub-r1-b"), ("account", "r1")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    // Again: a conflict; a new account that exists: a conflict.
    let r = app
        .submit(
            &app.e("/manage/hierarchy/subscription"),
            &admin,
            &[("guid", NEW2), ("name", "again"), ("account", "r2")],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.describe());
    let r = app
        .submit(
            &app.e("/manage/hierarchy/subscription"),
            &admin,
            &[
                ("guid", "66666666-0000-4000-8000-000000000001"),
                ("name", "x"),
                ("new_account", "r2"),
                ("owner_email", "r2@example.com"),
            ],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.describe());
    let h = app.blocking(|s| s.hierarchy(&num(N)).expect("h")).await;
    let lab = h.department_by_name("Lab").expect("the new department");
    assert_eq!(lab.cost_center, "DCC-Lab");
    let lab1 = h.account_by_name("lab1").expect("the new account");
    assert_eq!(
        (
            lab1.owner_email.as_str(),
            lab1.cost_center.as_str(),
            lab1.department_id
        ),
        ("lab@example.com", "CC-lab", Some(lab.id))
    );
    let r1 = h.account_by_name("r1").expect("r1").clone();
    let sub = h
        .subscriptions
        .values()
        .find(|s| s.guid == NEW2)
        .expect("added");
    assert_eq!(sub.owners.last().map(|o| o.1), Some(r1.id));
    let research = h.department_by_name("Research").expect("R").clone();
    // Edit: department cost center; account owner, cost center and department; rename.
    let r = app
        .submit(
            &app.e("/manage/hierarchy/department"),
            &admin,
            &[("id", &research.id.to_string()), ("cost_center", "DCC-R2")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = app
        .submit(
            &app.e("/manage/hierarchy/account"),
            &admin,
            &[
                ("id", &r1.id.to_string()),
                ("owner_email", "owner@example.com"),
                ("cost_center", "CC-new"),
                ("department", "Lab"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = app
        .submit(
            &app.e("/manage/hierarchy/rename"),
            &admin,
            &[("guid", &G1.to_uppercase()), ("name", "renamed-r1")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let h = app.blocking(|s| s.hierarchy(&num(N)).expect("h")).await;
    assert_eq!(
        h.department_by_name("Research").expect("R").cost_center,
        "DCC-R2"
    );
    let r1b = h.account_by_name("r1").expect("r1");
    assert_eq!(
        (
            r1b.owner_email.as_str(),
            r1b.cost_center.as_str(),
            r1b.department_id
        ),
        ("owner@example.com", "CC-new", Some(lab.id))
    );
    let g1 = h.subscriptions.values().find(|s| s.guid == G1).expect("G1");
    assert_eq!(g1.name, "renamed-r1");
    assert_eq!(g1.owners.len(), 1, "a rename is not a move");
    // The other subscriptions and accounts kept what they had.
    let r2 = h.account_by_name("r2").expect("r2");
    assert_eq!(
        (r2.cost_center.as_str(), r2.department_id),
        ("CC-r2", Some(research.id))
    );
    // The usage page follows: r1 is now in Lab.
    let lab_page = app
        .get(
            &app.e("/usage?from=202510&to=202512&department=Lab"),
            &admin,
        )
        .await;
    assert_eq!(lab_page.status, 200);
    assert_eq!(totals(&lab_page.body).0, 60);
    assert!(lab_page.text().contains("r1"));
    // Each change is audited once, by the admin.
    let log = app.audit_actions().await;
    let changes: Vec<_> = log
        .iter()
        .filter(|(_, a, _)| a == "hierarchy-changed")
        .collect();
    assert_eq!(changes.len(), 5, "{log:?}");
    assert!(changes.iter().all(|(actor, _, _)| actor == ADMIN));
    // Changes that change nothing are refused.
    let r = app
        .submit(
            &app.e("/manage/hierarchy/rename"),
            &admin,
            &[("guid", G1), ("name", "renamed-r1")],
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn the_audit_log_lists_the_newest_entries_with_actor_action_and_detail() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    app.submit(
        &app.e("/manage/settings"),
        &admin,
        &[("account_owners_view_charges", "true")],
    )
    .await;
    app.submit(
        &app.e("/manage/users/invite"),
        &admin,
        &[("email", "zoe@example.com"), ("role", "enterprise-reader")],
    )
    .await;
    app.submit(
        &app.e("/manage/hierarchy/rename"),
        &admin,
        &[("guid", G4), ("name", "sub-s1-renamed")],
    )
    .await;
    let page = app.get(&app.e("/manage/audit"), &admin).await;
    assert_eq!(page.status, 200);
    let text = page.text();
    for want in [
        "setting-changed",
        "AccountOwnersViewCharges: false → true",
        "user-invited",
        "zoe@example.com",
        "hierarchy-changed",
        "sub-s1-renamed",
        "sign-in",
        ADMIN,
    ] {
        assert!(text.contains(want), "{want} in the audit page");
    }
    // Newest first.
    let (a, b) = (
        text.find("hierarchy-changed").expect("h"),
        text.find("setting-changed").expect("s"),
    );
    assert!(a < b, "newest first");
    // At most 200 entries.
    app.blocking(|s| {
        for i in 0..250 {
            s.audit(
                &num(N),
                &meterbook_core::users::AuditEntry {
                    at: 1_700_000_000 + i,
                    actor: "cli".into(),
                    action: "filler".into(),
                    detail: format!("entry {i}"),
                },
            )
            .expect("audit");
        }
    })
    .await;
    let page = app.get(&app.e("/manage/audit"), &admin).await;
    assert_eq!(page.body.matches("<td>filler</td>").count(), 200);
    assert!(page.text().contains("entry 249") && !page.text().contains("entry 49 "));
    assert!(page.text().contains("2023-11-14"), "times as UTC dates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departments_and_accounts_are_renamed_keeping_their_usage() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let r = app
        .submit(
            &app.e("/manage/hierarchy/rename-unit"),
            &admin,
            &[("unit", "department:Research"), ("name", "R&D")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = app
        .submit(
            &app.e("/manage/hierarchy/rename-unit"),
            &admin,
            &[("unit", "account:r1"), ("name", "lab-one")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    // A taken name is a conflict and changes nothing.
    let r = app
        .submit(
            &app.e("/manage/hierarchy/rename-unit"),
            &admin,
            &[("unit", "account:lab-one"), ("name", "o1")],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.describe());
    let page = app.get(&app.e("/manage/hierarchy"), &admin).await;
    let text = page.text();
    assert!(text.contains("R&D") && text.contains("lab-one"), "{text}");
    // The usage summary shows the new names.
    let usage = app.get(&app.e("/usage"), &admin).await.text();
    assert!(usage.contains("R&D"), "{usage}");
}

/// An administrator cannot take over a user of another enrollment: inviting
/// someone who holds a role elsewhere grants the role but shows no
/// set-password link; and an administrator cannot invite themselves into
/// another role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_never_hands_out_another_enrollments_user() {
    let app = spawn_app().await;
    app.blocking(|s| {
        create_enrollment(
            s,
            "500500",
            &[("Other", "x1", "44444444-0000-4000-8000-000000000001")],
        );
        // Invited in 500500, no password yet.
        let u = s
            .create_user("alice@example.com", "Alice", None, 1)
            .expect("user");
        s.grant_role(
            u.id,
            &meterbook_core::users::Role {
                enrollment: num("500500"),
                scope: meterbook_core::access::Scope::Enrollment,
                read_only: false,
            },
        )
        .expect("grant");
    })
    .await;
    let admin = app.sign_in(ADMIN).await;
    let r = app
        .submit(
            &app.e("/manage/users/invite"),
            &admin,
            &[
                ("email", "alice@example.com"),
                ("role", "enterprise-reader"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(
        !r.body.contains("data-copy"),
        "no link for another enrollment's user"
    );
    assert!(!r.body.contains("set-password?token="));
    // Inviting oneself into another role is refused.
    let r = app
        .submit(
            &app.e("/manage/users/invite"),
            &admin,
            &[("email", ADMIN), ("role", "enterprise-reader")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.describe());
    let still = app.sign_in(ADMIN).await;
    let page = app.get(&app.e("/manage"), &still).await;
    assert_eq!(page.status, 200, "still a read-write administrator");
}

// ---------------------------------------------------------------------------
// Layout and forms (issue 11)
// ---------------------------------------------------------------------------

/// The texts between `open` and the next `</td>` after each `open` in `html`.
fn cells(html: &str, open: &str) -> Vec<String> {
    html.split(open)
        .skip(1)
        .map(|c| c[..c.find("</td>").expect("cell end")].to_string())
        .collect()
}

#[tokio::test]
async fn quantities_stand_apart_from_their_unit_with_one_decimals_per_column() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let page = app
        .get(&app.e("/usage?from=202510&to=202512&by=service"), &admin)
        .await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert!(page
        .body
        .contains(r#"<th scope="col" class="unit">Unit</th>"#));
    // Every meter row: the quantity alone in its cell, its unit in the next.
    let meters: Vec<&str> = page.body.split(r#"<tr class="detail">"#).skip(1).collect();
    assert!(meters.len() >= 2, "meter rows");
    let mut decimals = Vec::new();
    for tr in &meters {
        let tr = &tr[..tr.find("</tr>").expect("row end")];
        let q = &cells(tr, r#"<td class="num">"#)[0];
        assert!(
            q.chars()
                .all(|c| c.is_ascii_digit() || c == ',' || c == '.'),
            "a bare quantity: {q:?}"
        );
        assert_eq!(cells(tr, r#"<td class="unit">"#), ["× 1 Hour"], "{tr}");
        decimals.push(q.split_once('.').map_or(0, |(_, f)| f.len()));
    }
    assert!(
        decimals.windows(2).all(|w| w[0] == w[1]),
        "one number of decimals in the column: {decimals:?}"
    );
}

/// The legend's (name, swatch class) pairs of the chart after `heading`.
fn legend(page: &str, heading: &str) -> Vec<(String, String)> {
    let from = &page[page.find(heading).expect("the heading")..];
    let ul = &from[from.find(r#"<ul class="legend">"#).expect("a legend")..];
    let ul = &ul[..ul.find("</ul>").expect("legend end")];
    ul.split(r#"<span class="swatch "#)
        .skip(1)
        .map(|li| {
            let (class, rest) = li.split_once('"').expect("class");
            let name = &rest["></span>".len()..rest.find("</li>").expect("item end")];
            (name.to_string(), class.to_string())
        })
        .collect()
}

#[tokio::test]
async fn a_department_keeps_its_colour_and_place_on_every_page() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let overview = app.get(&app.e(""), &admin).await;
    let over = legend(&overview.body, "<h2>Usage history</h2>");
    let mut seen: HashMap<String, String> = HashMap::new();
    for (name, class) in &over {
        // The overview says which accounts have no department.
        seen.insert(
            name.trim_end_matches(" (no department)").to_string(),
            class.clone(),
        );
    }
    assert!(seen.len() >= 3, "{over:?}");
    for span in [
        "from=202510&to=202512",
        "from=202511&to=202511",
        "from=202512&to=202512",
    ] {
        let page = app.get(&app.e(&format!("/usage?{span}")), &admin).await;
        assert_eq!(page.status, 200, "{}", page.describe());
        let l = legend(&page.body, "<h2>Departments");
        assert!(!l.is_empty());
        for (name, class) in &l {
            assert_eq!(
                Some(class),
                seen.get(name),
                "{name}'s colour on the usage page of {span}"
            );
        }
        // The table lists them in the legend's order (charges descending).
        let table = &page.body[page
            .body
            .find(r#"<table class="usage">"#)
            .expect("the table")..];
        let table = &table[..table.find("<tfoot>").expect("the foot")];
        let rows: Vec<String> = table
            .split(r#"<th scope="row">"#)
            .skip(1)
            .map(|c| {
                let c = &c[..c.find("</th>").expect("end")];
                let c = c.rsplit_once("\">").map_or(c, |(_, t)| t);
                c.trim_end_matches("</a>").to_string()
            })
            .collect();
        let names: Vec<String> = l.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(rows, names, "{span}: table and legend in one order");
        let charges: Vec<Amount> = cells(table, r#"<td class="num">"#)
            .iter()
            .skip(1)
            .step_by(2)
            .map(|c| plain(c).parse().expect("charges"))
            .collect();
        assert!(
            charges.windows(2).all(|w| w[0] >= w[1]),
            "{span}: charges descending: {charges:?}"
        );
    }
    // The overview's legend is in the same order as the whole term's table.
    let page = app
        .get(&app.e("/usage?from=202510&to=202512"), &admin)
        .await;
    let names: Vec<String> = legend(&page.body, "<h2>Departments")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let over_names: Vec<String> = over
        .iter()
        .map(|(n, _)| n.trim_end_matches(" (no department)").to_string())
        .collect();
    assert_eq!(over_names, names);
}

#[tokio::test]
async fn a_refused_choice_of_months_keeps_the_menu_the_form_and_says_why_at_the_field() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let page = app
        .get(&app.e("/usage?from=202512&to=202510&by=service"), &admin)
        .await;
    assert_eq!(page.status, 400, "{}", page.describe());
    let html = &page.body;
    assert!(
        html.contains(r#"<nav class="tabs" aria-label="Sections">"#),
        "the menu"
    );
    // The form as entered.
    let select = |id: &str| {
        let s = &html[html
            .find(&format!(r#"<select id="{id}""#))
            .expect("the select")..];
        s[..s.find("</select>").expect("end")].to_string()
    };
    assert!(select("from").contains(r#"<option value="202512" selected>"#));
    assert!(select("to").contains(r#"<option value="202510" selected>"#));
    assert!(select("by").contains(r#"<option value="service" selected>"#));
    // The reason right after the To field, tied to it.
    assert!(select("to").contains(r#"aria-invalid="true" aria-describedby="span-error""#));
    let after_to = &html[html.find(r#"<select id="to""#).expect("to")..];
    let after_to = &after_to[after_to.find("</select>").expect("end")..];
    let next = after_to[..after_to.find("</div>").expect("the field's end")].to_string();
    assert!(
        next.contains(r#"id="span-error""#) && next.contains("is before the first"),
        "{next}"
    );
    // A month outside the term: refused the same way, at its field.
    let page = app
        .get(&app.e("/usage?from=202409&to=202510"), &admin)
        .await;
    assert_eq!(page.status, 400, "{}", page.describe());
    assert!(page.body.contains(r#"<nav class="tabs""#));
    assert!(page
        .body
        .contains(r#"<select id="from" name="from" aria-invalid="true""#));
}

/// Every form on the Manage pages, found on the pages themselves (so a form
/// added later is covered, or this test says it has no fields to post), is
/// refused by the one Manage form extractor: a missing or wrong CSRF token
/// (the CSRF refusal), then a read-only enterprise administrator and a
/// department administrator with a right token (the administrators-only
/// refusal). Nothing changes and nothing is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manage_form_refuses_a_bad_csrf_token_and_a_read_only_administrator() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let auditor = app.sign_in(AUDITOR).await;
    let dana = app.sign_in(DANA).await;
    // A budget and a channel, so their delete and remove forms show.
    app.blocking(|s| {
        use meterbook_core::notify::*;
        s.create_budget(
            &num(N),
            &NewBudget {
                name: "B".into(),
                scope: Scope::Enrollment,
                cadence: Cadence::Monthly,
                amount: meterbook_core::Money(100),
                thresholds: vec![Threshold {
                    basis: Basis::Actual,
                    percent: 50,
                }],
            },
            "seed",
            0,
        )
        .unwrap();
        s.add_channel(
            &num(N),
            &NewChannel {
                target: ChannelTarget::Email {
                    address: "ops@example.com".into(),
                },
                events: vec![EventKind::Alert],
                salt: vec![1; 16],
            },
            "seed",
            0,
        )
        .unwrap();
    })
    .await;
    let prefix = format!("action=\"/portal/e/{N}");
    let mut actions: Vec<String> = Vec::new();
    for p in MANAGE_PAGES {
        let page = app.get(&app.e(p), &admin).await.body;
        for part in page.split(&prefix).skip(1) {
            let path = part.split('"').next().unwrap_or_default().to_string();
            if path.starts_with("/manage/") && !actions.contains(&path) {
                actions.push(path);
            }
        }
    }
    let mut known = manage_forms(&app.users);
    known.push((
        "/manage/hierarchy/rename-unit",
        vec![
            ("unit", "department:Research".into()),
            ("name", "R&D".into()),
        ],
    ));
    let mut want: Vec<String> = known.iter().map(|(p, _)| p.to_string()).collect();
    want.sort();
    actions.sort();
    assert_eq!(actions, want, "every Manage form has a case here");
    let before = snapshot(&app).await;
    let audit_before = app.audit_actions().await.len();
    for (path, fields) in &known {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for csrf in [Some("wrong"), Some(""), None] {
            let mut form = fields.clone();
            if let Some(c) = csrf {
                form.push(("csrf", c));
            }
            let r = app.post(&app.e(path), &admin, &form).await;
            assert_eq!(r.status, 403, "{path} csrf {csrf:?}: {}", r.describe());
            assert!(
                r.is_html() && r.body.contains("did not come from this site"),
                "{path} csrf {csrf:?}: the CSRF refusal: {}",
                r.body
            );
        }
        for who in [&auditor, &dana] {
            let r = app.submit(&app.e(path), who, &fields).await;
            assert_eq!(r.status, 403, "{path}: {}", r.describe());
            assert!(
                r.is_html()
                    && r.body.contains(
                        "managing this enrollment is for its read-write enterprise administrators"
                    ),
                "{path}: the administrators-only refusal: {}",
                r.body
            );
        }
    }
    assert_eq!(snapshot(&app).await, before, "nothing changed");
    assert_eq!(
        app.audit_actions().await.len(),
        audit_before,
        "nothing audited"
    );
}

/// With `--public-url`, an invite's set-password link is made on it: an
/// administrator's request with a forged `Host` (a proxy passing it through)
/// cannot make the link point at someone else's host.
#[tokio::test]
async fn an_invite_link_is_made_on_the_public_url_whatever_the_host_header_says() {
    let mut settings = meterbook_testkit::roomy();
    settings.public_url =
        Some(meterbook_server::PublicUrl::parse("https://usage.example.com").expect("URL"));
    let (app, users) = meterbook_testkit::spawn()
        .settings(settings)
        .no_redirects()
        .seed(seed)
        .await;
    let app = TestApp { app, users };
    let admin = app.sign_in(ADMIN).await;
    let r = app
        .send(
            app.client
                .post(format!("{}{}", app.base, app.e("/manage/users/invite")))
                .header("cookie", admin.cookie())
                .header("host", "evil.example")
                .form(&[
                    ("csrf", admin.csrf.as_str()),
                    ("email", "forged@example.com"),
                    ("role", "enterprise-reader"),
                ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let link = invite_link(&r.body);
    assert!(
        link.starts_with("https://usage.example.com/portal/set-password?token="),
        "{link}"
    );
    assert!(!r.body.contains("evil.example"));
}

/// Manage › Budgets and alerts: a budget added through the form shows its
/// figures and bar; a webhook channel's signing secret is shown once, on the
/// answer to the form, never again; delete and remove take them away.
#[tokio::test]
async fn budgets_and_channels_through_the_manage_page() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let r = app
        .submit(
            &app.e("/manage/budgets/create"),
            &admin,
            &[
                ("name", "Research monthly"),
                ("scope", "department:Research"),
                ("cadence", "term"),
                ("amount", "100000"),
                ("thresholds", "actual:50, forecast:100"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let text = r.text();
    assert!(
        text.contains("Budget \"Research monthly\" added."),
        "{text}"
    );
    assert!(text.contains("department Research"), "{text}");
    assert!(r.body.contains("<meter"), "a bar");
    assert!(text.contains("of 100000.00 USD"), "{text}");
    // A bad amount: the reason, and the page.
    let r = app
        .submit(
            &app.e("/manage/budgets/create"),
            &admin,
            &[
                ("name", "x"),
                ("scope", "enrollment"),
                ("cadence", "monthly"),
                ("amount", "0"),
                ("thresholds", "actual:50"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.describe());
    assert!(r.text().contains("more than 0"));
    let r = app
        .submit(
            &app.e("/manage/budgets/channels/add"),
            &admin,
            &[
                ("kind", "webhook"),
                ("address", "https://hooks.example.com/mb"),
                ("alert", "on"),
                ("watermark", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(
        r.body.contains("<code class=\"secret\" data-copy>whsec_"),
        "{}",
        r.body
    );
    let shown = r.body.split("whsec_").nth(1).unwrap()[..64].to_string();
    let page = app.get(&app.e("/manage/budgets"), &admin).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("https://hooks.example.com/mb"));
    assert!(page.text().contains("alert, watermark"));
    assert!(!page.body.contains(&shown), "the secret is shown once");
    assert!(!page.body.contains("whsec_"));
    // Remove and delete.
    let (budget, channel) = app
        .blocking(|s| {
            use meterbook_core::notify::NotifyStore;
            (
                s.budgets(&num(N)).unwrap()[0].id,
                s.channels(&num(N)).unwrap()[0].id,
            )
        })
        .await;
    let r = app
        .submit(
            &app.e("/manage/budgets/channels/remove"),
            &admin,
            &[("id", &channel.to_string())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = app
        .submit(
            &app.e("/manage/budgets/delete"),
            &admin,
            &[("id", &budget.to_string())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.text().contains("No budgets yet."));
    assert!(r.text().contains("No channels yet."));
    let r = app
        .submit(&app.e("/manage/budgets/delete"), &admin, &[("id", "x")])
        .await;
    assert_eq!(r.status, 404, "{}", r.describe());
}

/// Manage › Exports: an enterprise administrator creates a schedule, runs
/// it now and sees the run; bad input is answered on the page (400), and the
/// schedule can be deleted.
#[tokio::test]
async fn exports_are_created_run_and_deleted_from_manage() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let r = app
        .submit(
            &app.e("/manage/exports"),
            &admin,
            &[
                ("name", "Bad"),
                ("folder", "../up"),
                ("schedule", "daily"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.describe());
    assert!(r.body.contains("folder:"), "the reason is shown");
    let r = app
        .submit(
            &app.e("/manage/exports"),
            &admin,
            &[
                ("name", "November"),
                ("folder", "nov"),
                ("schedule", "once"),
                ("format", "csv.gz"),
                ("from", "2025-11-01"),
                ("to", "2025-11-30"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.body.contains("November"), "listed");
    assert!(r.body.contains("No run yet."));
    let id = app
        .blocking(|s| {
            meterbook_core::exports::ExportStore::export_schedules(s, Some(&num(N))).unwrap()[0]
                .id
                .clone()
        })
        .await;
    let r = app
        .submit(&app.e("/manage/exports/run"), &admin, &[("export_id", &id)])
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.body.contains("Run once: succeeded."), "{}", r.body);
    assert!(r.body.contains("<td>succeeded</td>"));
    let manifest = app
        .app
        .dir
        .path()
        .join("exports")
        .join(N)
        .join("nov")
        .join("once")
        .join("manifest.json");
    assert!(manifest.exists());
    let r = app
        .submit(
            &app.e("/manage/exports/delete"),
            &admin,
            &[("export_id", &id)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.body.contains("No scheduled export yet."));
}

/// Every role's overview lists the budgets of its own reach, read-only:
/// the enterprise administrator both, the Research administrator (who sees
/// charges) only Research's, an account owner who may not see charges none.
#[tokio::test]
async fn the_overview_shows_each_role_its_own_budgets() {
    let app = spawn_app().await;
    app.blocking(|s| {
        s.set_visibility(
            &num(N),
            ChargeVisibility {
                department_admins_view_charges: true,
                account_owners_view_charges: false,
            },
        )
        .expect("visibility")
    })
    .await;
    let admin = app.sign_in(ADMIN).await;
    for (name, scope) in [
        ("Company monthly", "enrollment"),
        ("Research term", "department:Research"),
    ] {
        let r = app
            .submit(
                &app.e("/manage/budgets/create"),
                &admin,
                &[
                    ("name", name),
                    ("scope", scope),
                    ("cadence", "monthly"),
                    ("amount", "100000"),
                    ("thresholds", "actual:50"),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.describe());
    }
    let seen = |text: &str| {
        (
            text.contains("Company monthly"),
            text.contains("Research term"),
        )
    };
    let page = app.get(&app.e(""), &admin).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert!(page.body.contains("aria-label=\"Budgets\""));
    assert_eq!(seen(&page.text()), (true, true));
    let dana = app.sign_in(DANA).await;
    let page = app.get(&app.e(""), &dana).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert_eq!(seen(&page.text()), (false, true), "only Research's");
    assert!(!page.body.contains("/manage/budgets/delete"), "read-only");
    let erik = app.sign_in(ERIK).await;
    let page = app.get(&app.e(""), &erik).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert_eq!(seen(&page.text()), (false, false), "no charges, no budgets");
    assert!(!page.body.contains("aria-label=\"Budgets\""));
}
