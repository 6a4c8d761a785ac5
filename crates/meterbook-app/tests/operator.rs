//! The operator's use cases over a real store: what the operator API and the
//! CLI both call.

mod common;

use meterbook_app::{AppError, Operator};
use meterbook_conformance::fixture::{self, day, n, period};
use meterbook_core::access::Scope;
use meterbook_core::clock::{Clock, ManualClock};
use meterbook_core::prices::PriceRow;
use meterbook_core::users::Role;
use meterbook_sqlite::SqliteStore;
use std::sync::Arc;

struct Fixture {
    op: Operator,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

/// Enrollment E100 (2025-01-01 to 2027-12-31) with its hierarchy, seen by
/// the operator, at noon on `today`.
fn fixture(today: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
    fixture::enrollment(&store, "USD");
    let clock = ManualClock::at_millis(common::noon(today));
    let app = common::layer(Arc::new(store), dir.path().join("reports"), clock.clone());
    Fixture {
        op: app.local_operator(),
        clock,
        _dir: dir,
    }
}

#[test]
fn periods_close_by_the_clocks_today() {
    let f = fixture("2025-01-31");
    let err = f.op.close_period(&n(), period("202501")).unwrap_err();
    assert!(
        matches!(&err, AppError::Invalid(m) if m.contains("has not ended yet")),
        "{err}"
    );
    f.clock.advance(std::time::Duration::from_secs(86_400));
    f.op.close_period(&n(), period("202501")).unwrap();
    assert!(f.op.periods(&n()).unwrap()[0].closed);
    // Through a later period: only those that have ended by today close.
    f.clock
        .set_millis(f.clock.now_millis() + 40 * 86_400 * 1000);
    let closed = f.op.close_periods_through(&n(), period("202502")).unwrap();
    assert_eq!(closed, vec![period("202502")]);
}

#[test]
fn visibility_settings_left_out_keep_their_value() {
    let f = fixture("2025-03-01");
    let v = f.op.set_visibility(&n(), Some(true), None).unwrap();
    assert!(v.department_admins_view_charges && !v.account_owners_view_charges);
    let v = f.op.set_visibility(&n(), None, Some(true)).unwrap();
    assert!(v.department_admins_view_charges && v.account_owners_view_charges);
    assert_eq!(f.op.enrollment(&n()).unwrap().enrollment().visibility, v);
}

#[test]
fn a_bad_price_sheet_is_refused_naming_its_source_and_line() {
    let f = fixture("2025-03-01");
    let row = |line, min: &str| PriceRow {
        line,
        meter_id: "vm".into(),
        meter_name: "VM".into(),
        meter_category: "Compute".into(),
        meter_sub_category: String::new(),
        meter_region: "EU West".into(),
        unit_of_measure: "1 Hour".into(),
        part_number: "P-vm".into(),
        unit_price: "0.5".parse().unwrap(),
        included_quantity: "0".parse().unwrap(),
        tier_minimum_units: min.parse().unwrap(),
        charges_billed_separately: false,
        publisher_name: String::new(),
        offer_name: String::new(),
        plan_name: String::new(),
    };
    // A meter must have a tier from zero.
    let err =
        f.op.import_prices(&n(), period("202501"), "sheet.csv", &[row(2, "10")])
            .unwrap_err();
    assert!(
        matches!(&err, AppError::Invalid(m) if m.starts_with("sheet.csv:2:")),
        "{err}"
    );
    let count =
        f.op.import_prices(&n(), period("202501"), "sheet.csv", &[row(2, "0")])
            .unwrap();
    assert_eq!(count, 1);
}

#[test]
fn operator_tokens_are_made_listed_and_disabled() {
    let f = fixture("2025-03-01");
    let t = f.op.create_operator_token("billing feed").unwrap();
    assert!(t.token.starts_with("mbo_"));
    let list = f.op.operator_tokens().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "billing feed");
    assert_eq!(list[0].created_at, f.clock.now_unix());
    f.op.set_operator_token_disabled(&t.record.id, true)
        .unwrap();
    assert!(f.op.operator_tokens().unwrap()[0].disabled);
    let err =
        f.op.set_operator_token_disabled("0000000000000000", true)
            .unwrap_err();
    assert!(matches!(err, AppError::NotFound(_)), "{err}");
}

#[test]
fn a_user_without_a_password_gets_an_invitation_once_they_have_one_not() {
    let f = fixture("2025-03-01");
    let role = Role {
        enrollment: n(),
        scope: Scope::Enrollment,
        read_only: true,
    };
    let (u, created) =
        f.op.ensure_user("ann@example.com", "Ann", None, &role)
            .unwrap();
    assert!(created);
    assert!(f.op.invite(u.id, &[7; 32]).unwrap());
    let (again, created) =
        f.op.ensure_user("ann@example.com", "", Some("$argon2id$stub"), &role)
            .unwrap();
    assert_eq!((again.id, created), (u.id, false));
    assert!(!f.op.invite(u.id, &[8; 32]).unwrap());
    // A role in an enrollment that does not exist makes no user.
    let missing = Role {
        enrollment: meterbook_core::EnrollmentNumber::parse("E999").unwrap(),
        ..role
    };
    let err =
        f.op.ensure_user("bob@example.com", "Bob", None, &missing)
            .unwrap_err();
    assert!(matches!(err, AppError::NotFound(_)), "{err}");
}

#[test]
fn monitoring_ages_the_watermark_by_the_clock() {
    let f = fixture("2025-03-10");
    f.op.set_watermark(&n(), day("2025-03-08")).unwrap();
    let m = f.op.monitoring().unwrap();
    // Complete through the 8th: whole up to the 9th's midnight; now is noon on the 10th.
    assert_eq!(m.watermark_age, vec![("E100".to_string(), 36 * 3600)]);
    assert!(m.jobs_by_status.iter().all(|(_, c)| *c == 0));
    assert_eq!(m.jobs_by_status.len(), 8);
}

#[test]
fn a_key_made_into_a_full_slot_says_which_it_replaced() {
    use meterbook_core::access::Slot;
    let f = fixture("2025-03-01");
    let h = f.op.enrollment(&n()).unwrap().hierarchy().unwrap();
    let dept = Scope::Department(h.department_by_name("A").unwrap().id);
    let (first, replaced) = f.op.scope_key(&n(), dept, Slot::Primary, 30, true).unwrap();
    assert!(replaced.is_none());
    assert!(first.record.read_only);
    assert_eq!(
        first.record.expires_at - first.record.created_at,
        30 * 86_400
    );
    // The other slot, or another scope, replaces nothing.
    let (_, replaced) =
        f.op.scope_key(&n(), dept, Slot::Secondary, 30, false)
            .unwrap();
    assert!(replaced.is_none());
    let (second, replaced) = f.op.scope_key(&n(), dept, Slot::Primary, 7, false).unwrap();
    assert_eq!(replaced.map(|k| k.id), Some(first.record.id));
    assert_ne!(second.token, first.token);
}
