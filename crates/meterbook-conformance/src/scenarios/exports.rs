//! Scheduled exports: schedules are kept per enrollment with unique names
//! and folders; a run key is claimed once, taken over only when its lease
//! runs out or its retry time comes, finished only by the attempt that holds
//! it, and run again only on request.

use crate::fixture::*;
use meterbook_core::exports::{Cadence, Claim, ExportSchedule, RunOutcome, RunStatus};
use meterbook_core::jobs::ExportFormat;
use meterbook_core::store::{Store, StoreError};

fn schedule(id: &str, name: &str, folder: &str, cadence: Cadence, at: i64) -> ExportSchedule {
    ExportSchedule {
        id: id.into(),
        enrollment: n(),
        name: name.into(),
        folder: folder.into(),
        cadence,
        format: ExportFormat::CsvGzip,
        created_at: at,
        created_by: "admin@example.com".into(),
    }
}

pub fn export_schedules_and_runs<S: Store>(s: &S) {
    enrollment(s, "USD");
    let daily = schedule("s1", "Daily", "daily", Cadence::DailyMonthToDate, 1_000);
    let once = schedule(
        "s2",
        "Q1",
        "q1",
        Cadence::Once {
            from: day("2025-01-01"),
            to: day("2025-03-31"),
        },
        2_000,
    );
    s.create_export(&daily).unwrap();
    s.create_export(&once).unwrap();
    // Same name or same folder: refused.
    for dup in [
        schedule("s3", "Daily", "other", Cadence::MonthlyClosed, 3_000),
        schedule("s3", "Other", "daily", Cadence::MonthlyClosed, 3_000),
    ] {
        assert!(
            matches!(s.create_export(&dup), Err(StoreError::Conflict(_))),
            "{dup:?}"
        );
    }
    let other = meterbook_core::EnrollmentNumber::parse("999").unwrap();
    assert!(matches!(
        s.create_export(&ExportSchedule {
            enrollment: other.clone(),
            ..schedule("s4", "X", "x", Cadence::MonthlyClosed, 1)
        }),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.export_schedule("s2").unwrap(), Some(once.clone()));
    assert_eq!(s.export_schedule("nope").unwrap(), None);
    assert_eq!(
        s.export_schedules(Some(&n())).unwrap(),
        vec![daily.clone(), once.clone()]
    );
    assert_eq!(s.export_schedules(None).unwrap().len(), 2);

    // A first claim creates the run; a second, while the lease lasts, gets nothing.
    let r = s
        .claim_export_run("s1", "2025-03-01", "run-a", Claim::Due, 10_000, 20_000)
        .unwrap()
        .expect("claimed");
    assert_eq!(
        (r.status, r.attempts, r.run_id.as_str(), r.lease_until),
        (RunStatus::Running, 1, "run-a", Some(20_000))
    );
    assert_eq!(
        s.claim_export_run("s1", "2025-03-01", "run-b", Claim::Due, 15_000, 25_000)
            .unwrap(),
        None
    );
    assert_eq!(
        s.claim_export_run("s1", "2025-03-01", "run-b", Claim::Again, 15_000, 25_000)
            .unwrap(),
        None,
        "a run under a live lease is never taken, even on request"
    );
    // A renewal by the holder extends the lease; by anyone else, nothing.
    assert!(s
        .renew_export_run("s1", "2025-03-01", "run-a", 20_000)
        .unwrap());
    assert!(!s
        .renew_export_run("s1", "2025-03-01", "run-x", 99_000)
        .unwrap());
    assert_eq!(s.export_runs("s1").unwrap()[0].lease_until, Some(20_000));
    // The lease ran out: taken over as attempt 2; the first attempt can no
    // longer finish it, nor renew it.
    let r = s
        .claim_export_run("s1", "2025-03-01", "run-b", Claim::Due, 20_000, 30_000)
        .unwrap()
        .expect("taken over");
    assert_eq!((r.attempts, r.run_id.as_str()), (2, "run-b"));
    let ok = RunOutcome::Succeeded {
        manifest: "{\"m\":1}".into(),
    };
    assert!(!s
        .finish_export_run("s1", "2025-03-01", "run-a", 21_000, &ok)
        .unwrap());
    assert!(!s
        .renew_export_run("s1", "2025-03-01", "run-a", 90_000)
        .unwrap());
    // It fails: due again at retry_at, not before.
    let fail = RunOutcome::Failed {
        error: "the destination refused the file".into(),
        retry_at: Some(40_000),
    };
    assert!(s
        .finish_export_run("s1", "2025-03-01", "run-b", 22_000, &fail)
        .unwrap());
    let runs = s.export_runs("s1").unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0].status,
            runs[0].retry_at,
            runs[0].error.as_deref(),
            runs[0].finished_at,
            runs[0].lease_until
        ),
        (
            RunStatus::Retrying,
            Some(40_000),
            Some("the destination refused the file"),
            Some(22_000),
            None
        )
    );
    assert_eq!(
        s.claim_export_run("s1", "2025-03-01", "run-c", Claim::Due, 39_999, 50_000)
            .unwrap(),
        None
    );
    let r = s
        .claim_export_run("s1", "2025-03-01", "run-c", Claim::Due, 40_000, 50_000)
        .unwrap()
        .expect("due again");
    assert_eq!((r.attempts, r.status), (3, RunStatus::Running));
    assert!(s
        .finish_export_run("s1", "2025-03-01", "run-c", 41_000, &ok)
        .unwrap());
    // Finishing twice does nothing.
    assert!(!s
        .finish_export_run("s1", "2025-03-01", "run-c", 41_500, &ok)
        .unwrap());
    let done = &s.export_runs("s1").unwrap()[0];
    assert_eq!(
        (
            done.status,
            done.manifest.as_deref(),
            done.error.as_deref(),
            done.retry_at
        ),
        (RunStatus::Succeeded, Some("{\"m\":1}"), None, None)
    );
    // Done: never due again, but run again on request (a fresh count).
    assert_eq!(
        s.claim_export_run("s1", "2025-03-01", "run-d", Claim::Due, 99_000, 100_000)
            .unwrap(),
        None
    );
    let again = s
        .claim_export_run("s1", "2025-03-01", "run-d", Claim::Again, 99_000, 100_000)
        .unwrap()
        .expect("run again");
    assert_eq!((again.attempts, again.status), (1, RunStatus::Running));
    // Given up: not due, only on request.
    let give_up = RunOutcome::Failed {
        error: "no".into(),
        retry_at: None,
    };
    assert!(s
        .finish_export_run("s1", "2025-03-01", "run-d", 99_500, &give_up)
        .unwrap());
    assert_eq!(s.export_runs("s1").unwrap()[0].status, RunStatus::Failed);
    assert_eq!(
        s.claim_export_run(
            "s1",
            "2025-03-01",
            "run-e",
            Claim::Due,
            i64::MAX / 2,
            i64::MAX / 2
        )
        .unwrap(),
        None
    );

    // Runs list newest key first, and are per schedule.
    s.claim_export_run("s1", "2025-03-02", "run-f", Claim::Due, 1, 2)
        .unwrap()
        .unwrap();
    let keys: Vec<String> = s
        .export_runs("s1")
        .unwrap()
        .into_iter()
        .map(|r| r.run_key)
        .collect();
    assert_eq!(keys, ["2025-03-02", "2025-03-01"]);
    assert!(s.export_runs("s2").unwrap().is_empty());

    // Deleting: only within its enrollment; the runs go with it.
    assert!(matches!(
        s.delete_export(&n(), "nope"),
        Err(StoreError::NotFound(_))
    ));
    s.delete_export(&n(), "s1").unwrap();
    assert_eq!(s.export_schedule("s1").unwrap(), None);
    assert!(s.export_runs("s1").unwrap().is_empty());
    assert!(matches!(
        s.claim_export_run("s1", "2025-03-03", "run-g", Claim::Due, 1, 2),
        Err(StoreError::NotFound(_))
    ));
    // The folder is free again.
    s.create_export(&schedule(
        "s5",
        "Daily",
        "daily",
        Cadence::DailyMonthToDate,
        5,
    ))
    .unwrap();
}

/// Two handles on one database (two nodes) claim the same run keys at once,
/// many times over: each key is taken by exactly one of them.
pub fn export_runs_are_claimed_once_across_handles<S: Store>(a: &S, b: &S) {
    enrollment(a, "USD");
    a.create_export(&schedule(
        "s1",
        "Daily",
        "daily",
        Cadence::DailyMonthToDate,
        1,
    ))
    .unwrap();
    let keys: Vec<String> = (1..=40).map(|d| format!("2025-01-{d:02}")).collect();
    let won = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|t| {
        for (node, s) in [("a", a as &dyn Store), ("b", b as &dyn Store)] {
            for worker in 0..2 {
                let (keys, won) = (&keys, &won);
                t.spawn(move || {
                    for k in keys {
                        let run_id = format!("{node}{worker}-{k}");
                        if let Some(r) = s
                            .claim_export_run("s1", k, &run_id, Claim::Due, 1_000, 60_000)
                            .unwrap()
                        {
                            won.lock().unwrap().push((k.clone(), r.run_id));
                        }
                    }
                });
            }
        }
    });
    let mut won = won.into_inner().unwrap();
    won.sort();
    let claimed: Vec<&String> = won.iter().map(|(k, _)| k).collect();
    assert_eq!(claimed, keys.iter().collect::<Vec<_>>(), "{won:?}");
    // What each handle reads is the winner's attempt.
    for (k, run_id) in &won {
        let runs = b.export_runs("s1").unwrap();
        let r = runs.iter().find(|r| &r.run_key == k).unwrap();
        assert_eq!((&r.run_id, r.attempts), (run_id, 1));
    }
}
