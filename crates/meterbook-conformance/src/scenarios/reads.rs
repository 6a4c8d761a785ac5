//! What reads return: enrollments kept apart, stable paging, summaries that
//! agree with the usage report.

use crate::fixture::*;
use meterbook_core::store::{Store, StoreError, UsageSelection};
use meterbook_io::report::usage::UsageFilter;
use meterbook_io::report::ReportScope;

/// Another enrollment's data is never visible.
pub fn enrollments_are_isolated<S: Store>(s: &S) {
    enrollment(s, "USD");
    prices(s, "202501", &[meter("c", "0", &[("0", "1")])]);
    ingest_ok(s, &[row("a", G1, "2025-01-01", "c", "1")]);
    let other = meterbook_core::EnrollmentNumber::parse("E200").unwrap();
    s.create_enrollment(&meterbook_core::enrollment::NewEnrollment {
        number: other.clone(),
        name: "Other".into(),
        currency: meterbook_core::Currency::parse("USD").unwrap(),
        start: day("2025-01-01"),
        end: day("2025-12-31"),
        visibility: Default::default(),
    })
    .unwrap();
    assert!(s.hierarchy(&other).unwrap().subscriptions.is_empty());
    assert!(s.price_sheet(&other, period("202501")).unwrap().is_empty());
    assert!(s.rollups(&other, period("202501")).unwrap().is_empty());
    let mut seen = 0;
    s.scan_usage(&other, &UsageSelection::default(), &mut |_| {
        seen += 1;
        Ok(meterbook_core::store::Flow::Continue)
    })
    .unwrap();
    assert_eq!(seen, 0);
    assert!(matches!(
        s.create_enrollment(&meterbook_core::enrollment::NewEnrollment {
            number: other,
            name: "Again".into(),
            currency: meterbook_core::Currency::parse("USD").unwrap(),
            start: day("2025-01-01"),
            end: day("2025-12-31"),
            visibility: Default::default(),
        }),
        Err(StoreError::Conflict(_))
    ));
}

/// Keyset paging: walking a booked period page by page returns every row once,
/// in order (own days, then corrections), even while new usage arrives.
pub fn paging_is_stable_while_usage_arrives<S: Store>(s: &S) {
    enrollment(s, "USD");
    let sheet = [meter("c", "0", &[("0", "1")])];
    prices(s, "202501", &sheet);
    prices(s, "202502", &sheet);
    close(s, "202501");
    let mut rows: Vec<Row> = (0..40)
        .map(|i| {
            row(
                &format!("f{i:02}"),
                G1,
                &format!("2025-02-{:02}", 1 + i % 28),
                "c",
                "1",
            )
        })
        .collect();
    rows.extend((0..5).map(|i| row(&format!("late{i}"), G2, "2025-01-15", "c", "2")));
    ingest_ok(s, &rows);
    let (all, _) = usage_csv(s, "202502", &[], &[]);
    let expected = column(&all, "RecordId");
    assert_eq!(expected.len(), 45);
    let mut seen: Vec<String> = Vec::new();
    let mut filter = UsageFilter::operator(UsageSelection {
        booked: Some(period("202502")),
        ..Default::default()
    });
    let mut extra = 0;
    loop {
        let report = meterbook_io::report::usage::UsageReport::prepare(
            s,
            &n(),
            filter.clone(),
            meterbook_io::report::ReportMeta {
                enrollment: n().to_string(),
                scope: ReportScope::Period("202502".into()),
                generated_at: String::new(),
                watermark: None,
                currency: "USD".into(),
            },
        )
        .expect("prepare");
        let mut out = Vec::new();
        let (count, next) = report.write_page(s, &n(), 7, &mut out).expect("page");
        let text = String::from_utf8(out).expect("utf8");
        let ids: Vec<String> = text
            .split("\"recordId\":\"")
            .skip(1)
            .map(|t| t[..t.find('"').expect("end")].to_string())
            .collect();
        assert_eq!(ids.len() as u64, count);
        seen.extend(ids);
        // New usage arrives between pages: one row early in the month (already
        // passed) and one at its end (still ahead).
        extra += 1;
        ingest_ok(
            s,
            &[
                row(&format!("new-early{extra}"), G3, "2025-02-01", "c", "1"),
                row(&format!("new-late{extra}"), G3, "2025-02-28", "c", "1"),
            ],
        );
        match next {
            Some(c) => filter.selection.after = Some(c),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    let original: Vec<&String> = seen.iter().filter(|id| !id.starts_with("new-")).collect();
    assert_eq!(
        original,
        expected.iter().collect::<Vec<_>>(),
        "every original row once, in order"
    );
    assert!(
        !seen.iter().any(|id| id.starts_with("new-early")),
        "rows behind the cursor are not returned"
    );
}

/// Summaries from the daily sums agree exactly with the usage-details report:
/// per booked period, corrections included, for the whole enrollment and for
/// a department's scope; moves attribute usage by date.
pub fn summaries_match_the_usage_report<S: Store>(s: &S) {
    use meterbook_core::access::Scope;
    use meterbook_core::summary::usage_summary;
    enrollment(s, "USD");
    for p in ["202501", "202502"] {
        prices(
            s,
            p,
            &[
                meter("c", "3", &[("0", "0.7"), ("20", "0.3")]),
                meter("d", "0", &[("0", "1.1")]),
            ],
        );
    }
    let subs = [G1, G2, G3, G4];
    let rows: Vec<Row> = (0..80)
        .map(|i| {
            row(
                &format!("r{i}"),
                subs[i % 4],
                &format!("2025-01-{:02}", 1 + i % 28),
                if i % 3 == 0 { "d" } else { "c" },
                &format!("{}.25", i % 7),
            )
        })
        .collect();
    ingest_ok(s, &rows);
    s.move_subscription(&n(), G2, "b1", day("2025-01-15"))
        .unwrap();
    close(s, "202501");
    ingest_ok(
        s,
        &[
            row("late", G1, "2025-01-15", "c", "2"),
            row("feb", G3, "2025-02-02", "c", "1.5"),
        ],
    );
    let a = s
        .hierarchy(&n())
        .unwrap()
        .department_by_name("A")
        .unwrap()
        .id;
    for p in ["202501", "202502"] {
        let sum = usage_summary(s, &n(), Scope::Enrollment, true, period(p), period(p)).unwrap();
        let (_, t) = usage_csv(s, p, &[], &[]);
        let cost = meterbook_core::Amount::checked_sum(sum.iter().map(|r| r.cost));
        assert_eq!(cost, Ok(t.cost), "period {p}");
        assert_eq!(sum.iter().map(|r| r.rows).sum::<i64>() as u64, t.rows);
        let dept =
            usage_summary(s, &n(), Scope::Department(a), true, period(p), period(p)).unwrap();
        let (_, td) = usage_csv(s, p, &[], &["A"]);
        assert_eq!(
            meterbook_core::Amount::checked_sum(dept.iter().map(|r| r.cost)),
            Ok(td.cost),
            "dept {p}"
        );
        assert!(dept.iter().all(|r| r.department.as_deref() == Some("A")));
        let hidden =
            usage_summary(s, &n(), Scope::Department(a), false, period(p), period(p)).unwrap();
        assert!(hidden
            .iter()
            .all(|r| r.cost == meterbook_core::Amount::ZERO));
    }
}
