//! The figures the portal shows tie out with the usage-details rows,
//! however they are fetched.

use crate::fixture::*;
use meterbook_core::access::Scope;
use meterbook_core::fixed::Amount;
use meterbook_core::store::{ScanCursor, Store, UsageSelection};
use meterbook_core::Money;
use meterbook_io::report::usage::{Col, UsageFilter, UsageReport, USAGE_DETAIL_COLUMNS};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::value::RawValue;
use std::collections::HashMap;

use super::generated::*;

/// One usage-details row as a JSON page has it: each key's value as written.
type JsonRow = HashMap<String, Box<RawValue>>;

/// The usage-details rows booked in `p` inside `scope`, as the API pages
/// them: `size` rows a page, each page prepared afresh and resumed after the
/// cursor the previous one returned (as `usagedetails?skiptoken=` does).
/// Stops after `most` pages: paging that does not end is an error.
fn json_pages<S: Store>(
    s: &S,
    p: &str,
    scope: Scope,
    size: usize,
    most: usize,
) -> Result<Vec<Vec<JsonRow>>, TestCaseError> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let r = UsageReport::prepare(s, &n(), scoped_filter(p, scope, after), page_meta(p))
            .expect("prepare a page");
        let mut out = Vec::new();
        let (rows, next) = r.write_page(s, &n(), size, &mut out).expect("write a page");
        let text = format!("[{}]", std::str::from_utf8(&out).expect("utf-8"));
        let page: Vec<JsonRow> = serde_json::from_str(&text).expect("a page is JSON");
        assert_eq!(page.len() as u64, rows, "a page counts its rows");
        pages.push(page);
        match next {
            Some(c) => after = Some(c),
            None => return Ok(pages),
        }
        prop_assert!(
            pages.len() < most,
            "{:?} {}: more than {} pages of {} rows",
            scope,
            p,
            most,
            size
        );
    }
}

fn page_meta(p: &str) -> meterbook_io::report::ReportMeta {
    meta(meterbook_io::report::ReportScope::Period(p.into()))
}

/// What a key of `scope` gets for booked period `p`: its rows, with costs.
fn scoped_filter(p: &str, scope: Scope, after: Option<ScanCursor>) -> UsageFilter {
    UsageFilter::within(
        scope,
        true,
        UsageSelection {
            booked: Some(period(p)),
            after,
            ..Default::default()
        },
    )
}

/// A JSON value as the CSV writes the same cell: strings unquoted, `null` empty,
/// numbers, booleans and embedded JSON as written.
fn as_csv_cell(col: Col, v: &RawValue) -> String {
    let raw = v.get();
    match col {
        Col::Tags | Col::AdditionalInfo if raw != "null" => raw.to_string(),
        _ if raw == "null" => String::new(),
        _ if raw.starts_with('"') => serde_json::from_str(raw).expect("a JSON string"),
        _ => raw.to_string(),
    }
}

/// The usage-details download and JSON pages of `p` for a key of `scope`
/// agree with each other and with `shown`, the figure the overview, the
/// Usage page and (for the enterprise) the statement show: the pages hold
/// exactly the CSV's rows, in order, `size` to a page; the cost column adds up
/// to the same exact sum in both; and that sum, rounded to the currency's
/// minor unit as the figure is (`exponent`), is `shown`: once for a department
/// or an account, per kind of charge for the enterprise (the statement's
/// rule). `kinds[i]` is meter `m{i}`'s kind (1 billed separately, 2 marketplace).
fn downloads_tie_out<S: Store>(
    s: &S,
    p: &str,
    scope: Scope,
    size: usize,
    kinds: &[u8],
    exponent: u32,
    shown: Money,
) -> Result<(), TestCaseError> {
    let (csv, csv_totals) = report(s, scoped_filter(p, scope, None), page_meta(p).scope);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_string)
        .collect();
    let names: Vec<&str> = USAGE_DETAIL_COLUMNS.iter().map(|c| c.name()).collect();
    prop_assert_eq!(&header, &names);
    let csv_rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| {
            r.expect("a CSV record")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    prop_assert_eq!(csv_rows.len() as u64, csv_totals.rows);

    let most = csv_rows.len() / size + 1;
    let pages = json_pages(s, p, scope, size, most)?;
    let last = pages.len() - 1;
    for (k, page) in pages.iter().enumerate() {
        if k < last {
            prop_assert_eq!(page.len(), size, "page {} of {:?} {}", k, scope, p);
        } else {
            prop_assert!(page.len() <= size && (k == 0 || !page.is_empty()));
        }
    }
    let json_rows: Vec<Vec<String>> = pages
        .iter()
        .flatten()
        .map(|r| {
            prop_assert_eq!(r.len(), USAGE_DETAIL_COLUMNS.len());
            USAGE_DETAIL_COLUMNS
                .iter()
                .map(|c| {
                    let v = r.get(&c.json_name());
                    prop_assert!(v.is_some(), "no {} in {:?}", c.json_name(), r);
                    Ok(as_csv_cell(*c, v.expect("checked")))
                })
                .collect()
        })
        .collect::<Result<_, TestCaseError>>()?;
    prop_assert_eq!(
        &json_rows,
        &csv_rows,
        "{:?} {}: pages of {}",
        scope,
        p,
        size
    );

    let col = |name: &str| names.iter().position(|n| *n == name).expect("a column");
    let (cost, meter) = (col("Cost"), col("MeterId"));
    let sum = |rows: &[Vec<String>], kind: Option<u8>| -> Result<Amount, TestCaseError> {
        let mut total = Amount::ZERO;
        for r in rows {
            let i: usize = r[meter][1..].parse().expect("meter m<i>");
            if kind.is_some_and(|k| k != kinds[i]) {
                continue;
            }
            let c: Amount = r[cost].parse().expect("a cost");
            total = total.checked_add(c).expect("in range");
        }
        Ok(total)
    };
    let (pages_sum, csv_sum) = (sum(&json_rows, None)?, sum(&csv_rows, None)?);
    prop_assert_eq!(pages_sum, csv_sum);
    prop_assert_eq!(csv_sum, csv_totals.cost);
    let rounded = if scope == Scope::Enrollment {
        let mut by_kind = Vec::new();
        for k in 0..3 {
            by_kind.push(
                sum(&json_rows, Some(k))?
                    .round_to_minor(exponent)
                    .expect("in range"),
            );
        }
        Money::checked_sum(by_kind).expect("in range")
    } else {
        pages_sum.round_to_minor(exponent).expect("in range")
    };
    prop_assert_eq!(
        rounded,
        shown,
        "{:?} {}: the rows' cost against the figure shown",
        scope,
        p
    );
    Ok(())
}

/// For every period (and both together), scope (the enterprise, each
/// department, each account), focus inside it and grouping, the figures the
/// portal shows tie out: a scope's charges are the statement's (enterprise) or
/// its usage report's exact costs rounded once (department, account); every
/// breakdown's parts add up to its totals; and a focus below the scope shows
/// the part its group has one level up. And the usage-details rows agree
/// with those figures however they are fetched: JSON pages a few rows each,
/// followed by cursor, and the CSV download hold the same rows, and their cost
/// column adds up to the figure shown (see [`downloads_tie_out`]). Enrollments
/// have tiers, all three kinds of charges, corrections, a subscription move,
/// and USD, JPY or CLF. The forecast's figures tie out too (see
/// [`forecast_ties_out`]).
pub fn figures_tie_out<S: Store>(make: &dyn Fn() -> S, cases: u32) {
    use meterbook_core::figures::{breakdown, scope_charges, Focus, Group, Grouping};
    use meterbook_core::summary::usage_summary;
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(meter_strategy(), 3),
        rows_strategy(),
        late_rows_strategy(),
        0usize..3,
        prop::option::of((0usize..4, 0usize..3, 0i32..59)),
        1usize..6,
    );
    runner
        .run(
            &strategy,
            |(meters, rows, late, currency, moved, page_size)| {
                let (currency, exp) = [("USD", 2), ("JPY", 0), ("CLF", 4)][currency];
                let s = make();
                setup_in(&s, &meters, currency);
                if let Some((sub, to, d)) = moved {
                    s.move_subscription(
                        &n(),
                        SUBS[sub],
                        ["a1", "b1", "c1"][to],
                        day("2025-01-01").add_days(d),
                    )
                    .expect("move");
                }
                ingest_ok(&s, &rows);
                close(&s, "202501");
                ingest_ok(&s, &late);
                let h = s.hierarchy(&n()).expect("hierarchy");
                let dept = |d: &str| h.department_by_name(d).expect("department").id;
                let acct = |a: &str| h.account_by_name(a).expect("account").id;
                let scopes: [(Scope, &[&str], &[&str]); 6] = [
                    (Scope::Enrollment, &[], &[]),
                    (Scope::Department(dept("A")), &[], &["A"]),
                    (Scope::Department(dept("B")), &[], &["B"]),
                    (Scope::Account(acct("a1")), &["a1"], &[]),
                    (Scope::Account(acct("b1")), &["b1"], &[]),
                    (Scope::Account(acct("c1")), &["c1"], &[]),
                ];
                let (jan, feb) = (period("202501"), period("202502"));
                for (scope, accounts, departments) in scopes {
                    let summary = usage_summary(&s, &n(), scope, true, jan, feb).expect("summary");
                    let totals =
                        scope_charges(&s, &n(), scope, &summary, jan, feb, exp).expect("charges");
                    for (i, p) in ["202501", "202502"].into_iter().enumerate() {
                        let want = if scope == Scope::Enrollment {
                            let st = statement(&s, p);
                            st.total_usage
                                .checked_add(st.marketplace_charges)
                                .expect("in range")
                        } else {
                            usage_csv(&s, p, accounts, departments)
                                .1
                                .cost
                                .round_to_minor(exp)
                                .expect("in range")
                        };
                        prop_assert_eq!(totals[i], want, "{:?} {} {}", scope, p, currency);
                        let kinds: Vec<u8> = meters.iter().map(|m| m.kind).collect();
                        downloads_tie_out(&s, p, scope, page_size, &kinds, exp, totals[i])?;
                    }
                    forecast_ties_out(&s, scope, &totals)?;
                    let periods = [jan, feb];
                    let top = breakdown(
                        &summary,
                        &totals,
                        &periods,
                        &Focus::Scope,
                        Grouping::Hierarchy,
                        exp,
                    )
                    .expect("breakdown");
                    let mut focuses = vec![Focus::Scope];
                    for g in top.groups.keys() {
                        match g {
                            Group::Department(d) => {
                                focuses.push(Focus::Department(d.clone()));
                                for r in summary.iter().filter(|r| r.department.as_ref() == Some(d))
                                {
                                    let account = r.account.clone().expect("an account");
                                    let f = Focus::Account {
                                        department: Some(d.clone()),
                                        account,
                                    };
                                    if !focuses.contains(&f) {
                                        focuses.push(f);
                                    }
                                }
                            }
                            Group::Account(a) => focuses.push(Focus::Account {
                                department: None,
                                account: a.clone(),
                            }),
                            _ => {}
                        }
                    }
                    for focus in &focuses {
                        for grouping in [Grouping::Hierarchy, Grouping::Service] {
                            let b = breakdown(&summary, &totals, &periods, focus, grouping, exp)
                                .expect("breakdown");
                            for i in 0..periods.len() {
                                let parts: i64 = b.groups.values().map(|v| v[i].0).sum();
                                prop_assert_eq!(
                                    parts,
                                    b.totals[i].0,
                                    "{:?} {:?} {:?} {}",
                                    scope,
                                    focus,
                                    grouping,
                                    i
                                );
                            }
                            let whole = match focus {
                                Focus::Scope => totals.clone(),
                                Focus::Department(d) => {
                                    top.groups[&Group::Department(d.clone())].clone()
                                }
                                Focus::Account {
                                    department: None,
                                    account,
                                } => top.groups[&Group::Account(account.clone())].clone(),
                                Focus::Account {
                                    department: Some(d),
                                    account,
                                } => breakdown(
                                    &summary,
                                    &totals,
                                    &periods,
                                    &Focus::Department(d.clone()),
                                    Grouping::Hierarchy,
                                    exp,
                                )
                                .expect("breakdown")
                                .groups[&Group::Account(account.clone())]
                                    .clone(),
                            };
                            prop_assert_eq!(&b.totals, &whole, "{:?} {:?}", scope, focus);
                        }
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}

/// The figures a forecast is made from tie out, for `scope` whose shown
/// charges of 202501 and 202502 are `totals` (checked above against the
/// statement and the usage report): the daily figures of each period
/// ([`meterbook_core::figures::daily_figures`], what the use-case layer's
/// forecast reads) have the same period figures and add up to them day by
/// day without gaps; the forecast of February seen on 2025-02-20 has the
/// period's figure as its actual charges, never projects less than that
/// when the burn rate is not negative, keeps low ≤ projected ≤ high, and
/// for the enterprise reads the commitment's balance off the statement.
fn forecast_ties_out<S: Store>(s: &S, scope: Scope, totals: &[Money]) -> Result<(), TestCaseError> {
    use meterbook_core::figures::daily_figures;
    use meterbook_core::forecast::{forecast, Input};
    let (jan, feb, today) = (period("202501"), period("202502"), day("2025-02-20"));
    let e = s.enrollment(&n()).expect("enrollment");
    let df = daily_figures(s, &e, scope, jan, feb, today).expect("daily figures");
    prop_assert_eq!(&df.totals, &totals.to_vec(), "{:?}", scope);
    for (p, total) in [jan, feb].iter().zip(totals) {
        let sum = Money::checked_sum(
            df.days
                .iter()
                .filter(|d| d.day.period() == *p)
                .map(|d| d.charges),
        )
        .expect("in range");
        prop_assert_eq!(sum, *total, "{:?} {} days", scope, p);
    }
    for w in df.days.windows(2) {
        prop_assert_eq!(w[0].day.succ(), w[1].day, "{:?}: a gap", scope);
    }
    prop_assert_eq!(df.days.first().map(|d| d.day), Some(e.start));
    let balance = (scope == Scope::Enrollment).then(|| statement(s, "202502").ending_balance);
    let values: Vec<Money> = df.days.iter().map(|d| d.charges).collect();
    let as_of = df.last_usage.map(|d| d.min(today));
    let out = forecast(&Input {
        daily: &values,
        daily_first: e.start,
        term_start: e.start,
        term_end: e.end,
        first_day: feb.first_day(),
        last_day: feb.last_day(),
        as_of,
        actual: totals[1],
        balance,
    })
    .expect("in range");
    let p = out.projection;
    prop_assert!(
        p.low <= p.projected && p.projected <= p.high,
        "{:?} {:?}",
        scope,
        p
    );
    if out.burn.mean.0 >= 0 {
        prop_assert!(p.projected >= totals[1], "{:?} {:?}", scope, p);
    }
    if as_of.is_none() || out.days_left == 0 {
        prop_assert_eq!(p.projected, totals[1]);
    }
    if let Some(b) = balance {
        let r = out.runout.expect("a run-out for the enterprise");
        prop_assert_eq!(r.already_used, b.0 <= 0);
        if let (Some(early), Some(on)) = (r.earliest, r.runs_out_on) {
            prop_assert!(early <= on);
        }
    }
    Ok(())
}
