//! Scheduled exports by role: enterprise administrators list schedules and
//! runs, read-write ones create, delete and run them; department and
//! account reach is refused; input is checked before anything is stored.

mod common;

use meterbook_app::exports::NewExport;
use meterbook_app::{AppError, Span};
use meterbook_conformance::fixture::{self, day, ingest_ok, n, row};
use meterbook_core::access::{Scope, Slot};
use meterbook_core::clock::ManualClock;
use meterbook_core::exports::RunStatus;
use meterbook_core::jobs::ExportFormat;
use meterbook_jobs::exports::DirExportRoot;
use meterbook_sqlite::SqliteStore;
use std::sync::Arc;

fn new(name: &str, folder: &str, schedule: &str, span: Option<Span>) -> NewExport {
    NewExport {
        name: name.into(),
        folder: folder.into(),
        schedule: schedule.into(),
        span,
        format: ExportFormat::Csv,
    }
}

#[test]
fn exports_by_role() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
    fixture::enrollment(&store, "USD");
    fixture::prices(&store, "202501", &[fixture::meter("m", "0", &[("0", "1")])]);
    ingest_ok(&store, &[row("a", fixture::G1, "2025-01-05", "m", "2")]);
    let at = common::at("2025-01-20", 8);
    let app = common::layer(
        Arc::new(store),
        dir.path().join("r"),
        ManualClock::at_millis(at),
    );
    let op = app.local_operator();
    let admin = op.enrollment(&n()).unwrap();
    let h = admin.hierarchy().unwrap();
    let key = |scope, ro| {
        let (k, _) = op.scope_key(&n(), scope, Slot::Primary, 30, ro).unwrap();
        app.key(&k.token).unwrap()
    };
    let read_only = key(Scope::Enrollment, true);
    let dept = key(
        Scope::Department(h.department_by_name("A").unwrap().id),
        false,
    );
    let acct = key(Scope::Account(h.account_by_name("a1").unwrap().id), false);

    let jan = Some(Span::Range(day("2025-01-01"), day("2025-01-19")));
    let s = admin
        .create_export(new(" January ", "jan", "once", jan))
        .unwrap();
    assert_eq!(s.name, "January");
    // Bad input: refused as invalid, nothing stored.
    for bad in [
        new("x", "../etc", "daily", None),
        new("x", "", "daily", None),
        new("", "ok", "daily", None),
        new("x", "ok", "hourly", None),
        new("x", "ok", "once", None),
        new("x", "ok", "daily", jan),
        new(
            "x",
            "ok",
            "once",
            Some(Span::Range(day("2025-02-01"), day("2025-01-01"))),
        ),
        // Outside the term (2025-01-01 to 2027-12-31).
        new(
            "x",
            "ok",
            "once",
            Some(Span::Range(day("2024-12-01"), day("2025-01-10"))),
        ),
    ] {
        assert!(
            matches!(admin.create_export(bad.clone()), Err(AppError::Invalid(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        admin.create_export(new("January", "other", "daily", None)),
        Err(AppError::Conflict(_))
    ));
    assert_eq!(admin.exports().unwrap().len(), 1);

    // Run now needs an export root.
    assert!(matches!(
        admin.run_export_now(&s.id),
        Err(AppError::Conflict(_))
    ));
    app.set_export_root(Arc::new(DirExportRoot(dir.path().join("exports"))));
    let run = admin.run_export_now(&s.id).unwrap();
    assert_eq!(
        (run.status, run.run_key.as_str()),
        (RunStatus::Succeeded, "once")
    );
    assert!(dir
        .path()
        .join("exports")
        .join(n().as_str())
        .join("jan")
        .join("once")
        .join("manifest.json")
        .exists());

    // A read-only enterprise administrator sees, but changes nothing.
    assert_eq!(read_only.exports().unwrap(), admin.exports().unwrap());
    assert_eq!(read_only.export_runs(&s.id).unwrap().len(), 1);
    assert!(matches!(
        read_only.create_export(new("y", "y", "daily", None)),
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        read_only.run_export_now(&s.id),
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        read_only.delete_export(&s.id),
        Err(AppError::Forbidden(_))
    ));
    // Departments and accounts: nothing at all.
    for a in [&dept, &acct] {
        assert!(matches!(a.exports(), Err(AppError::Forbidden(_))));
        assert!(matches!(a.export_runs(&s.id), Err(AppError::Forbidden(_))));
        assert!(matches!(
            a.create_export(new("y", "y", "daily", None)),
            Err(AppError::Forbidden(_))
        ));
        assert!(matches!(
            a.delete_export(&s.id),
            Err(AppError::Forbidden(_))
        ));
        assert!(matches!(
            a.run_export_now(&s.id),
            Err(AppError::Forbidden(_))
        ));
    }
    // Unknown ids are not found; delete removes schedule and runs.
    assert!(matches!(
        admin.export_runs("nope"),
        Err(AppError::NotFound(_))
    ));
    admin.delete_export(&s.id).unwrap();
    assert!(matches!(
        admin.delete_export(&s.id),
        Err(AppError::NotFound(_))
    ));
    assert!(admin.exports().unwrap().is_empty());
    // At most MAX_SCHEDULES an enrollment: one more is a conflict.
    let max = meterbook_app::exports::MAX_SCHEDULES;
    for i in 0..max {
        admin
            .create_export(new(&format!("s{i}"), &format!("f{i}"), "daily", None))
            .unwrap();
    }
    assert!(matches!(
        admin.create_export(new("one more", "more", "daily", None)),
        Err(AppError::Conflict(_))
    ));
    assert_eq!(admin.exports().unwrap().len(), max);
}
