//! Forecasts through the use-case layer, on a hand-computed enrollment: the
//! actual figure is the one the overview shows, the burn rate is taken from
//! the daily figures (reaching back into the previous period), the
//! commitment's run-out comes from the statements, and a role that may not
//! see charges is refused.
//!
//! The enrollment (the conformance fixture's E100, USD, term 2025-01-01 to
//! 2027-12-31; one meter at 1.00 an hour; 1000.00 bought on 2025-01-01),
//! seen on 2025-02-10:
//!
//! | days | G1 (account a1, department A) | G3 (account b1, department B) | a day |
//! |---|---|---|---|
//! | 2025-01-01..19 | 10 h | – | 10.00 |
//! | 2025-01-20..31 | 10 h | 5 h | 15.00 |
//! | 2025-02-01..10 | 20 h | – | 20.00 |

mod common;

use meterbook_app::forecast::{Forecast, Horizon};
use meterbook_app::{App, AppError};
use meterbook_conformance::fixture::{self, day, ingest_ok, meter, n, prices, row, Row};
use meterbook_core::access::{Scope, Slot};
use meterbook_core::clock::ManualClock;
use meterbook_core::figures::Grouping;
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, MetadataStore};
use meterbook_core::{Day, Money};
use meterbook_sqlite::SqliteStore;
use std::sync::Arc;

struct Setup {
    app: App,
    _dir: tempfile::TempDir,
}

fn setup(today: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
    fixture::enrollment(&store, "USD");
    let vm = [meter("VM", "0", &[("0", "1")])];
    prices(&store, "202501", &vm);
    prices(&store, "202502", &vm);
    store
        .add_entry(
            &n(),
            EntryKind::Purchase,
            &CommitmentEntry {
                date: day("2025-01-01"),
                amount: Money(100_000),
                description: "commitment".into(),
            },
        )
        .unwrap();
    let mut rows: Vec<Row> = Vec::new();
    let mut add = |sub: &str, from: &str, to: &str, q: &str| {
        let (mut d, to) = (day(from), day(to));
        while d <= to {
            let id = format!("r{}", rows.len());
            rows.push(row(&id, sub, &d.to_string(), "VM", q));
            d = d.succ();
        }
    };
    add(fixture::G1, "2025-01-01", "2025-01-31", "10");
    add(fixture::G3, "2025-01-20", "2025-01-31", "5");
    add(fixture::G1, "2025-02-01", "2025-02-10", "20");
    ingest_ok(&store, &rows);
    let noon = common::at(today, 12);
    let app = common::layer(
        Arc::new(store),
        dir.path().join("r"),
        ManualClock::at_millis(noon),
    );
    Setup { app, _dir: dir }
}

fn scope_of(app: &App, dept: Option<&str>, account: Option<&str>) -> Scope {
    let h = app
        .local_operator()
        .enrollment(&n())
        .unwrap()
        .hierarchy()
        .unwrap();
    match (dept, account) {
        (Some(d), _) => Scope::Department(h.department_by_name(d).unwrap().id),
        (_, Some(a)) => Scope::Account(h.account_by_name(a).unwrap().id),
        _ => Scope::Enrollment,
    }
}

fn forecast(app: &App, scope: Scope, h: Horizon) -> Forecast {
    let e = app.local_operator().enrollment(&n()).unwrap();
    app.forecast_of(e.enrollment(), scope, h).unwrap()
}

fn d(s: &str) -> Option<Day> {
    Some(day(s))
}

#[test]
fn the_enterprise_period_forecast_by_hand() {
    let s = setup("2025-02-10");
    let f = forecast(&s.app, Scope::Enrollment, Horizon::Period);
    assert_eq!(f.period.to_string(), "202502");
    assert_eq!(
        (f.first_day, f.last_day),
        (day("2025-02-01"), day("2025-02-28"))
    );
    // No watermark: the last day with usage.
    assert_eq!(f.as_of, d("2025-02-10"));
    assert_eq!(f.days_left, 18);
    // February: 10 days × 20.00.
    assert_eq!(f.actual, Money(20_000));
    // Window 2025-01-12..2025-02-10: 8 × 1000 + 12 × 1500 + 10 × 2000 =
    // 46000 / 30 = 1533.33 → 1533. Sorted, the lower 15 days are 8 × 1000 +
    // 7 × 1500 = 18500 / 15 = 1233.33 → 1233; the upper 15 are 10 × 2000 +
    // 5 × 1500 = 27500 / 15 = 1833.33 → 1833.
    assert_eq!(f.basis_days, 30);
    assert_eq!(
        (f.daily_burn, f.daily_low, f.daily_high),
        (Money(1533), Money(1233), Money(1833))
    );
    // 20000 + 18 × 1533 = 47594; + 18 × 1233 = 42194; + 18 × 1833 = 52994.
    assert_eq!(
        (f.projected, f.projected_low, f.projected_high),
        (Money(47_594), Money(42_194), Money(52_994))
    );
    // Commitment: 100000 − January's 31 × 1000 + 12 × 500 = 37000 −
    // February's 20000 = 43000 left. ⌈43000 / 1533⌉ = 29 days after
    // 2025-02-10 → 2025-03-11; ⌈43000 / 1833⌉ = 24 → 03-06;
    // ⌈43000 / 1233⌉ = 35 → 03-17.
    let c = f.commitment.expect("the enterprise has a commitment");
    assert_eq!((c.balance, c.total), (Money(43_000), Money(100_000)));
    assert!(!c.already_used);
    assert_eq!(c.runs_out_on, d("2025-03-11"));
    assert_eq!((c.earliest, c.latest), (d("2025-03-06"), d("2025-03-17")));
    assert!(f.method.contains("30 days"));
}

#[test]
fn actual_is_the_overview_figure_for_every_role() {
    let s = setup("2025-02-10");
    let op = s.app.local_operator();
    op.set_visibility(&n(), Some(true), Some(true)).unwrap();
    let scopes = [
        Scope::Enrollment,
        scope_of(&s.app, Some("A"), None),
        scope_of(&s.app, Some("B"), None),
        scope_of(&s.app, None, Some("a1")),
        scope_of(&s.app, None, Some("b1")),
        scope_of(&s.app, None, Some("c1")),
    ];
    for scope in scopes {
        let access = if scope == Scope::Enrollment {
            op.enrollment(&n()).unwrap()
        } else {
            let (key, _) = op.scope_key(&n(), scope, Slot::Primary, 30, false).unwrap();
            s.app.key(&key.token).unwrap()
        };
        let f = access.forecast(Horizon::Period).unwrap();
        let o = access.overview(Grouping::Hierarchy).unwrap();
        assert_eq!(Some(f.actual), o.charges_this_month, "{scope:?}");
        assert_eq!(f.commitment.is_some(), scope == Scope::Enrollment);
        // The period's days add up to it; the term's to the sum of the
        // overview's bars.
        let (_, days) = s
            .app
            .forecast_detail(access.enrollment(), scope, Horizon::Period)
            .unwrap();
        let sum = Money::checked_sum(days.iter().map(|d| d.charges)).unwrap();
        assert_eq!(sum, f.actual, "{scope:?}");
        let t = access.forecast(Horizon::Term).unwrap();
        let bars = Money::checked_sum(o.history.total.charges_per_period.iter().copied()).unwrap();
        assert_eq!(t.actual, bars, "{scope:?}");
        assert!(f.projected >= f.actual && t.projected >= t.actual);
        assert!(f.projected_low <= f.projected && f.projected <= f.projected_high);
    }
}

#[test]
fn department_and_account_by_hand() {
    let s = setup("2025-02-10");
    // Department A (G1 only): window 20 × 1000 + 10 × 2000 = 40000 / 30 =
    // 1333.33 → 1333; lower 15 × 1000 → 1000; upper 10 × 2000 + 5 × 1000 =
    // 25000 / 15 = 1666.67 → 1667. 20000 + 18 × … = 43994, 38000, 50006.
    let f = forecast(&s.app, scope_of(&s.app, Some("A"), None), Horizon::Period);
    assert_eq!(f.actual, Money(20_000));
    assert_eq!(
        (f.daily_burn, f.daily_low, f.daily_high),
        (Money(1333), Money(1000), Money(1667))
    );
    assert_eq!(
        (f.projected, f.projected_low, f.projected_high),
        (Money(43_994), Money(38_000), Money(50_006))
    );
    assert!(f.commitment.is_none());
    // Account b1: nothing in February; 12 × 500 = 6000 in the window →
    // 200 a day; lower half all zero days → 0; upper 6000 / 15 = 400.
    // 0 + 18 × 200 = 3600; 0; 18 × 400 = 7200.
    let f = forecast(&s.app, scope_of(&s.app, None, Some("b1")), Horizon::Period);
    assert_eq!(f.actual, Money(0));
    assert_eq!(
        (f.daily_burn, f.daily_low, f.daily_high),
        (Money(200), Money(0), Money(400))
    );
    assert_eq!(
        (f.projected, f.projected_low, f.projected_high),
        (Money(3600), Money(0), Money(7200))
    );
    // The as-of day is the enrollment's, not the account's last usage.
    assert_eq!(f.as_of, d("2025-02-10"));
}

#[test]
fn the_term_and_the_watermark() {
    let s = setup("2025-02-10");
    // The term: January 37000 + February 20000; 2025-02-11..2027-12-31 is
    // 324 + 365 + 365 = 1054 days: 57000 + 1533 × 1054 = 1672782.
    let f = forecast(&s.app, Scope::Enrollment, Horizon::Term);
    assert_eq!(
        (f.first_day, f.last_day),
        (day("2025-01-01"), day("2027-12-31"))
    );
    assert_eq!((f.actual, f.days_left), (Money(57_000), 1054));
    assert_eq!(f.projected, Money(1_672_782));
    assert_eq!(f.commitment.unwrap().runs_out_on, d("2025-03-11"));

    // A watermark at 2025-02-05: window 2025-01-07..02-05 = 13 × 1000 +
    // 12 × 1500 + 5 × 2000 = 41000 / 30 = 1366.67 → 1367; 23 days left:
    // 20000 + 23 × 1367 = 51441.
    s.app
        .local_operator()
        .set_watermark(&n(), day("2025-02-05"))
        .unwrap();
    let f = forecast(&s.app, Scope::Enrollment, Horizon::Period);
    assert_eq!((f.as_of, f.days_left), (d("2025-02-05"), 23));
    assert_eq!((f.daily_burn, f.projected), (Money(1367), Money(51_441)));
}

#[test]
fn month_end_and_after_the_data() {
    // On 2025-02-28 with usage through the 10th: as-of is still the 10th.
    let s = setup("2025-02-28");
    let f = forecast(&s.app, Scope::Enrollment, Horizon::Period);
    assert_eq!((f.as_of, f.days_left), (d("2025-02-10"), 18));
    // A watermark at the month's end: nothing left to project.
    s.app
        .local_operator()
        .set_watermark(&n(), day("2025-02-28"))
        .unwrap();
    let f = forecast(&s.app, Scope::Enrollment, Horizon::Period);
    assert_eq!((f.as_of, f.days_left), (d("2025-02-28"), 0));
    assert_eq!(f.projected, f.actual);
    // A watermark past today is capped to today.
    let s = setup("2025-02-10");
    s.app
        .local_operator()
        .set_watermark(&n(), day("2025-02-20"))
        .unwrap();
    let f = forecast(&s.app, Scope::Enrollment, Horizon::Period);
    assert_eq!(f.as_of, d("2025-02-10"));
}

#[test]
fn already_used_and_before_any_usage() {
    // On 2025-03-02 (a new period, no usage in it), after the commitment is
    // spent down by a large adjustment.
    let s = setup("2025-03-02");
    let op = s.app.local_operator();
    op.add_entry(
        &n(),
        EntryKind::Adjustment,
        &CommitmentEntry {
            date: day("2025-02-15"),
            amount: Money(-60_000),
            description: "credit back".into(),
        },
    )
    .unwrap();
    let f = forecast(&s.app, Scope::Enrollment, Horizon::Period);
    // As-of is the last usage day, before the horizon: all of March is left.
    assert_eq!(
        (f.as_of, f.days_left, f.actual),
        (d("2025-02-10"), 31, Money(0))
    );
    let c = f.commitment.unwrap();
    // 100000 − 60000 − 57000 < 0: used.
    assert!(c.already_used);
    assert_eq!(c.total, Money(40_000));
    assert_eq!((c.runs_out_on, c.earliest, c.latest), (None, None, None));
}

#[test]
fn hidden_charges_are_refused() {
    let s = setup("2025-02-10");
    let op = s.app.local_operator();
    let scope = scope_of(&s.app, None, Some("a1"));
    let (key, _) = op.scope_key(&n(), scope, Slot::Primary, 30, false).unwrap();
    let a = s.app.key(&key.token).unwrap();
    assert!(matches!(
        a.forecast(Horizon::Period),
        Err(AppError::Forbidden(_))
    ));
    // The system's view (budgets) is not bound by the setting.
    assert_eq!(
        forecast(&s.app, scope, Horizon::Period).actual,
        Money(20_000)
    );
}

#[test]
fn horizon_names() {
    assert_eq!(Horizon::parse("period").unwrap(), Horizon::Period);
    assert_eq!(Horizon::parse("term").unwrap(), Horizon::Term);
    assert!(matches!(Horizon::parse("month"), Err(AppError::Invalid(_))));
    assert_eq!(Horizon::Term.as_str(), "term");
}

#[test]
fn usage_that_stopped_long_ago_keeps_its_window() {
    // On 2025-04-20 with usage through 2025-02-10 and no watermark: as-of
    // 2025-02-10, so the window is still 2025-01-12..02-10 (burn 1533, as
    // in the first test), and all 30 days of April are left:
    // 0 + 30 × 1533 = 45990.
    let s = setup("2025-04-20");
    let f = forecast(&s.app, Scope::Enrollment, Horizon::Period);
    assert_eq!(f.period.to_string(), "202504");
    assert_eq!(
        (f.as_of, f.days_left, f.actual),
        (d("2025-02-10"), 30, Money(0))
    );
    assert_eq!((f.daily_burn, f.basis_days), (Money(1533), 30));
    assert_eq!(f.projected, Money(45_990));
}
