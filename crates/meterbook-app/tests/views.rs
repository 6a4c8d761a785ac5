//! The figures pages show, through the use-case layer exactly as the portal
//! calls it, tie out: over generated enrollments (tiered meters, marketplace
//! and separately billed ones, a correction booked in a later period, a moved
//! subscription, USD/JPY/CLF), for every role's reach and both groupings,
//!
//! - the overview tile, the overview chart's bar for the month and the Usage
//!   page's total are one figure, and for the enterprise it is the statement's;
//! - every view's rows add up to its total per period, and a service's meters
//!   to the service;
//! - drilling down never changes a figure (a department's page total is its
//!   row one level up);
//! - the usage-details download of the same selection has the page's exact
//!   cost, and for a department or account rounds to the page's figure;
//! - the forecast's actual charges are the tile's (the term's, the bars'
//!   sum, which its daily figures add up to), and it projects no less when
//!   the burn rate is not negative;
//! - a budget of the role's scope (monthly and for the term) shows the same
//!   actual charges and forecast, and the alerts it fires carry exactly those
//!   figures (what e-mails and webhooks send).

mod common;

use meterbook_app::forecast::Horizon;
use meterbook_app::reads::Details;
use meterbook_app::{Access, App, Span};
use meterbook_conformance::fixture::{self, close, day, ingest_ok, n, period, Row};
use meterbook_conformance::properties::generated::{
    late_rows_strategy, meter_strategy, rows_strategy, setup_in, Meter,
};
use meterbook_core::access::{Scope, Slot};
use meterbook_core::clock::ManualClock;
use meterbook_core::figures::{Focus, Group, Grouping};
use meterbook_core::store::MetadataStore;
use meterbook_core::{Amount, Money};
use meterbook_io::report::ReportFormat;
use meterbook_sqlite::SqliteStore;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::sync::Arc;

struct Setup {
    app: App,
    _dir: tempfile::TempDir,
}

fn setup(meters: &[Meter], currency: &str, early: &[Row], late: &[Row], moved: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
    setup_in(&store, meters, currency);
    if moved {
        store
            .move_subscription(&n(), fixture::G2, "b1", day("2025-02-01"))
            .unwrap();
    }
    ingest_ok(&store, early);
    close(&store, "202501");
    ingest_ok(&store, late);
    let noon = common::at("2025-02-20", 12);
    let app = common::layer(
        Arc::new(store),
        dir.path().join("r"),
        ManualClock::at_millis(noon),
    );
    let op = app.local_operator();
    op.set_visibility(&n(), Some(true), Some(true)).unwrap();
    Setup { app, _dir: dir }
}

/// Every role's access: the enterprise, departments A and B, accounts a1, b1, c1.
fn accesses(app: &App) -> Vec<Access> {
    let op = app.local_operator();
    let ent = op.enrollment(&n()).unwrap();
    let h = ent.hierarchy().unwrap();
    let mut out = vec![ent];
    let scopes = [
        Scope::Department(h.department_by_name("A").unwrap().id),
        Scope::Department(h.department_by_name("B").unwrap().id),
        Scope::Account(h.account_by_name("a1").unwrap().id),
        Scope::Account(h.account_by_name("b1").unwrap().id),
        Scope::Account(h.account_by_name("c1").unwrap().id),
    ];
    for scope in scopes {
        let (key, _) = op.scope_key(&n(), scope, Slot::Primary, 30, false).unwrap();
        out.push(app.key(&key.token).unwrap());
    }
    out
}

/// The usage download's exact cost of a selection.
fn download_cost(a: &Access, p: &str, d: &Details) -> Amount {
    let report = a.usage_details(Span::Period(period(p)), d).unwrap();
    let mut out = Vec::new();
    report.write(ReportFormat::Csv, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut rdr = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let cost = rdr
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "Cost")
        .expect("a Cost column");
    let mut sum = Amount::ZERO;
    for r in rdr.records() {
        let v: Amount = r.unwrap()[cost].parse().expect("a cost");
        sum = sum.checked_add(v).unwrap();
    }
    sum
}

fn check(app: &App, a: &Access, exp: u32) -> Result<(), TestCaseError> {
    let (jan, feb) = (period("202501"), period("202502"));
    for grouping in [Grouping::Hierarchy, Grouping::Service] {
        let ov = a.overview(grouping).unwrap();
        let what = format!("{:?} {grouping:?}", a.scope());
        // The tile is the chart's bar for the month and the Usage page's total.
        let bar = *ov.history.total.charges_per_period.last().unwrap();
        prop_assert_eq!(ov.charges_this_month, Some(bar), "tile vs bar, {}", &what);
        let page = a
            .usage_table(feb, feb, &Focus::Scope, grouping, true)
            .unwrap();
        prop_assert_eq!(page.total.charges, bar, "Usage page vs tile, {}", &what);
        for (p, table) in [
            (
                "202501",
                a.usage_table(jan, jan, &Focus::Scope, grouping, true)
                    .unwrap(),
            ),
            ("202502", page),
        ] {
            // The enterprise's figure is the statement's.
            if a.scope() == Scope::Enrollment {
                let st = a.enterprise().unwrap().statement(period(p)).unwrap();
                let want = st.total_usage.checked_add(st.marketplace_charges).unwrap();
                prop_assert_eq!(table.total.charges, want, "statement {} {}", p, &what);
            }
            // Rows add up to the total; meters to their service.
            let rows: i64 = table.rows.iter().map(|r| r.figures.charges.0).sum();
            prop_assert_eq!(rows, table.total.charges.0, "rows {} {}", p, &what);
            for r in &table.rows {
                if !r.meters.is_empty() {
                    let m: i64 = r.meters.iter().map(|m| m.charges.0).sum();
                    prop_assert_eq!(m, r.figures.charges.0, "meters {} {}", p, &what);
                }
            }
            // The download has the page's exact cost; a department's or an
            // account's figure is it, rounded once.
            let exact = download_cost(a, p, &Details::default());
            prop_assert_eq!(exact, table.total.cost_exact, "download {} {}", p, &what);
            if a.scope() != Scope::Enrollment {
                prop_assert_eq!(
                    exact.round_to_minor(exp).unwrap(),
                    table.total.charges,
                    "rounded download {} {}",
                    p,
                    &what
                );
            }
            // Drilling down keeps the figure.
            if grouping == Grouping::Hierarchy {
                for r in &table.rows {
                    if let Group::Department(d) = &r.group {
                        let focus = a.focus(Some(d), None).unwrap();
                        let below = a
                            .usage_table(period(p), period(p), &focus, grouping, false)
                            .unwrap();
                        prop_assert_eq!(below.total.charges, r.figures.charges, "{} {}", d, &what);
                        let rows: i64 = below.rows.iter().map(|r| r.figures.charges.0).sum();
                        prop_assert_eq!(rows, below.total.charges.0, "below {} {}", d, &what);
                    }
                }
            }
        }
        // The forecast's actual charges are the tile's; the term's are the
        // bars' sum; its days add up to them.
        let f = a.forecast(Horizon::Period).unwrap();
        prop_assert_eq!(Some(f.actual), ov.charges_this_month, "forecast, {}", &what);
        prop_assert_eq!(f.commitment.is_some(), a.scope() == Scope::Enrollment);
        if let (Some(c), Some(st)) = (f.commitment, ov.statements.last()) {
            prop_assert_eq!(c.balance, st.ending_balance, "commitment, {}", &what);
        }
        if f.daily_burn.0 >= 0 {
            prop_assert!(f.projected >= f.actual, "projected, {}", &what);
        }
        let (t, days) = app
            .forecast_detail(a.enrollment(), a.scope(), Horizon::Term)
            .unwrap();
        let bars = Money::checked_sum(ov.history.total.charges_per_period.iter().copied()).unwrap();
        let sum = Money::checked_sum(days.iter().map(|d| d.charges)).unwrap();
        prop_assert_eq!((t.actual, sum), (bars, bars), "term, {}", &what);
        if grouping == Grouping::Hierarchy {
            alerts_tie_out(app, a, exp, (f.actual, f.projected), (bars, t.projected))?;
        }
        // History parts add up to each month's bar.
        for i in 0..ov.history.periods.len() {
            let parts: i64 = ov
                .history
                .rows
                .iter()
                .map(|r| r.figures.charges_per_period[i].0)
                .sum();
            prop_assert_eq!(parts, ov.history.total.charges_per_period[i].0, "{}", &what);
        }
    }
    Ok(())
}

/// Budgets of `a`'s scope, one monthly and one for the term, each with a
/// threshold at 1% of actual charges on an amount of one minor unit (so it
/// fires whenever there are charges): their figures are the overview's and
/// the forecast's, and so are their alerts' payloads.
fn alerts_tie_out(
    app: &App,
    a: &Access,
    exp: u32,
    month: (Money, Money),
    term: (Money, Money),
) -> Result<(), TestCaseError> {
    use meterbook_app::budgets::BudgetInput;
    let ent = app.local_operator().enrollment(&n()).unwrap();
    let h = ent.hierarchy().unwrap();
    let (scope, name) = match a.scope() {
        Scope::Enrollment => ("enrollment", None),
        Scope::Department(id) => ("department", h.department(Some(id)).map(|d| d.name.clone())),
        Scope::Account(id) => ("account", h.accounts.get(&id).map(|x| x.name.clone())),
    };
    let one = Money(1).format(exp);
    let mut made = Vec::new();
    for (cadence, (actual, projected)) in [("monthly", month), ("term", term)] {
        let st = ent
            .admin()
            .unwrap()
            .create_budget(&BudgetInput {
                name: format!("{scope} {cadence}"),
                scope: scope.into(),
                scope_name: name.clone(),
                cadence: cadence.into(),
                amount: one.clone(),
                thresholds: vec![("actual".into(), 1)],
            })
            .unwrap();
        prop_assert_eq!(st.actual, actual, "{} {} budget", scope, cadence);
        prop_assert_eq!(
            st.forecast,
            Some(projected),
            "{} {} forecast",
            scope,
            cadence
        );
        made.push(st);
    }
    let fired = app.evaluate_notifications(&n()).unwrap();
    for st in &made {
        let alert = fired.iter().find(|e| e.budget == Some(st.budget.id));
        prop_assert_eq!(
            alert.is_some(),
            st.actual.0 >= 1,
            "fired, {:?}",
            st.budget.name
        );
        if let Some(e) = alert {
            let v: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
            prop_assert_eq!(&v["actual"], &serde_json::json!(st.actual.format(exp)));
            prop_assert_eq!(
                &v["forecast"],
                &serde_json::json!(st.forecast.map(|f| f.format(exp)))
            );
        }
        ent.admin().unwrap().delete_budget(st.budget.id).unwrap();
    }
    Ok(())
}

#[test]
fn every_page_figure_ties_out_for_every_role() {
    let cases = std::env::var("MB_VIEW_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(meter_strategy(), 3),
        rows_strategy(),
        late_rows_strategy(),
        0usize..3,
        any::<bool>(),
    );
    runner
        .run(&strategy, |(meters, early, late, currency, moved)| {
            let (currency, exp) = [("USD", 2), ("JPY", 0), ("CLF", 4)][currency];
            let s = setup(&meters, currency, &early, &late, moved);
            for a in accesses(&s.app) {
                check(&s.app, &a, exp)?;
            }
            Ok(())
        })
        .unwrap();
}
