//! Report jobs, users and sessions, hierarchy renames and operator tokens.

use crate::fixture::*;
use meterbook_core::store::{Store, StoreError};

fn job(id: &str, spec: &meterbook_core::jobs::JobSpec, at: i64) -> meterbook_core::jobs::Job {
    use meterbook_core::jobs::{Job, JobStatus};
    Job {
        id: id.into(),
        enrollment: n(),
        spec: spec.clone(),
        requested_by: "test".into(),
        requested_at: at,
        status: JobStatus::Queued,
        started_at: None,
        finished_at: None,
        rows_done: 0,
        rows_expected: None,
        bytes: 0,
        error: None,
        attempts: 0,
        lease_until: None,
        manifest: None,
    }
}

/// Report jobs: identical requests share a queued job; workers claim the
/// oldest; a stalled worker's job is taken over after its lease; only the
/// current attempt may finish it; cancel; retention; the signing secret is
/// made once.
pub fn report_jobs_lifecycle<S: Store>(s: &S) {
    use meterbook_core::access::Scope;
    use meterbook_core::jobs::{JobOutcome, JobProgress, JobSpec, JobStatus};
    enrollment(s, "USD");
    let spec = JobSpec {
        scope: Scope::Enrollment,
        billing_period: None,
        from: day("2025-01-01"),
        to: day("2025-01-31"),
        accounts: vec!["b".into(), "a".into()],
        departments: vec![],
        format: meterbook_core::jobs::ExportFormat::Csv,
    };
    let (j1, new) = s.submit_job(&job("j1", &spec, 1_000)).unwrap();
    assert!(new);
    assert_eq!(j1.status, JobStatus::Queued);
    assert_eq!(j1.spec, spec);
    // Same filters in another order: the same job.
    let mut same = spec.clone();
    same.accounts.reverse();
    let (again, new) = s.submit_job(&job("j2", &same, 2_000)).unwrap();
    assert!(!new);
    assert_eq!(again.id, "j1");
    // Another scope or format: a job of its own.
    let mut other = spec.clone();
    other.format = meterbook_core::jobs::ExportFormat::Parquet;
    assert!(s.submit_job(&job("j3", &other, 3_000)).unwrap().1);

    // The oldest is claimed first; then nothing else is claimable but j3.
    let c = s.claim_job(10_000, 20_000, None).unwrap().unwrap();
    assert_eq!(
        (c.id.as_str(), c.attempts, c.status),
        ("j1", 1, JobStatus::InProgress)
    );
    assert_eq!(s.claim_job(10_000, 20_000, None).unwrap().unwrap().id, "j3");
    assert!(s.claim_job(10_000, 20_000, None).unwrap().is_none());
    let p = JobProgress {
        rows_done: 5,
        rows_expected: Some(10),
        bytes: 99,
    };
    assert_eq!(
        s.job_heartbeat("j1", 1, p, 30_000).unwrap(),
        Some(JobStatus::InProgress)
    );
    let seen = s.job("j1").unwrap().unwrap();
    assert_eq!(
        (seen.rows_done, seen.rows_expected, seen.bytes),
        (5, Some(10), 99)
    );
    // The worker stalls: past its lease another one takes over (attempt 2) ...
    assert!(s.claim_job(25_000, 40_000, Some("j1")).unwrap().is_none());
    let c2 = s.claim_job(31_000, 60_000, Some("j1")).unwrap().unwrap();
    assert_eq!(c2.attempts, 2);
    // ... and the first attempt can no longer report or finish.
    assert_eq!(
        s.job_heartbeat("j1", 1, p, 90_000).unwrap(),
        Some(JobStatus::Failed)
    );
    let done = JobOutcome {
        status: JobStatus::ReadyToDownload,
        progress: JobProgress {
            rows_done: 10,
            rows_expected: Some(10),
            bytes: 123,
        },
        error: None,
        manifest: Some("{}".into()),
    };
    assert!(!s.finish_job("j1", 1, 50_000, &done).unwrap());
    assert!(s.finish_job("j1", 2, 50_000, &done).unwrap());
    let f = s.job("j1").unwrap().unwrap();
    assert_eq!(
        (f.status, f.finished_at, f.bytes),
        (JobStatus::ReadyToDownload, Some(50_000), 123)
    );
    // A finished job is no longer shared: the same request makes a new job.
    assert!(s.submit_job(&job("j4", &spec, 60_000)).unwrap().1);
    // Cancel: a running job stops; a finished one keeps its status.
    assert_eq!(
        s.cancel_job("j3", 70_000, "by test").unwrap(),
        Some(JobStatus::Cancelled)
    );
    assert_eq!(
        s.job_heartbeat("j3", 1, p, 90_000).unwrap(),
        Some(JobStatus::Cancelled)
    );
    assert_eq!(
        s.cancel_job("j1", 70_000, "late").unwrap(),
        Some(JobStatus::ReadyToDownload)
    );
    assert_eq!(s.cancel_job("nope", 70_000, "x").unwrap(), None);
    // Listing, newest first; retention finds ended jobs only.
    let ids: Vec<String> = s.jobs(&n()).unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(ids, ["j4", "j3", "j1"]);
    let old: Vec<String> = s
        .expired_jobs(65_000)
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(old, ["j1"]);
    s.delete_job("j1").unwrap();
    assert!(s.job("j1").unwrap().is_none());
    // The secret is made once and kept.
    let a = s.secret("link", b"first").unwrap();
    assert_eq!(a, b"first");
    assert_eq!(s.secret("link", b"second").unwrap(), b"first");
    // Listing reads the secrets and makes none.
    s.secret("another", b"2nd").unwrap();
    let all = s.secrets().unwrap();
    assert_eq!(
        all,
        [
            ("another".to_string(), b"2nd".to_vec()),
            ("link".to_string(), b"first".to_vec())
        ]
    );
    assert_eq!(s.secrets().unwrap(), all);
}

/// Users: unique e-mails (case-insensitive), one role per enrollment, sessions
/// signed out one by one or everywhere, set-password tokens used once and only
/// before they expire, and the audit log newest first.
pub fn users_roles_sessions_and_audit<S: Store>(s: &S) {
    use meterbook_core::access::Scope;
    use meterbook_core::users::{AuditEntry, Role, Session};
    enrollment(s, "USD");
    let u = s
        .create_user("Ada@Example.com", "Ada", Some("$argon2id$x"), 10)
        .unwrap();
    assert_eq!(u.email, "ada@example.com");
    assert!(matches!(
        s.create_user("ada@example.com", "Again", None, 11),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.user_by_email(" ADA@example.com ").unwrap().unwrap().id,
        u.id
    );
    let h = s.hierarchy(&n()).unwrap();
    let a = h.department_by_name("A").unwrap().id;
    let admin = Role {
        enrollment: n(),
        scope: Scope::Enrollment,
        read_only: false,
    };
    s.grant_role(u.id, &admin).unwrap();
    let dept = Role {
        enrollment: n(),
        scope: Scope::Department(a),
        read_only: true,
    };
    s.grant_role(u.id, &dept).unwrap();
    assert_eq!(
        s.roles(u.id).unwrap(),
        std::slice::from_ref(&dept),
        "one role per enrollment"
    );
    let users = s.enrollment_users(&n()).unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].1, dept);
    s.revoke_role(u.id, &n()).unwrap();
    assert!(s.roles(u.id).unwrap().is_empty());
    // Listing every user: by id, role or not, with hash and disabled flag.
    let b = s.create_user("bo@example.com", "Bo", None, 12).unwrap();
    s.set_user_disabled(b.id, true).unwrap();
    let all = s.users().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], u);
    assert_eq!(all[1].email, "bo@example.com");
    assert!(all[1].disabled && all[1].password_hash.is_none());

    let sess = |b: u8| Session {
        token_hash: [b; 32],
        user_id: u.id,
        csrf: format!("csrf{b}"),
        created_at: 100,
        last_seen_at: 100,
    };
    s.create_session(&sess(1)).unwrap();
    s.create_session(&sess(2)).unwrap();
    s.touch_session(&[1; 32], 150).unwrap();
    assert_eq!(s.session(&[1; 32]).unwrap().unwrap().last_seen_at, 150);
    s.delete_session(&[1; 32]).unwrap();
    assert!(s.session(&[1; 32]).unwrap().is_none());
    assert!(s.session(&[2; 32]).unwrap().is_some());
    s.delete_user_sessions(u.id).unwrap();
    assert!(s.session(&[2; 32]).unwrap().is_none());

    s.put_password_token(&[7; 32], u.id, 1000).unwrap();
    assert_eq!(s.take_password_token(&[7; 32], 500).unwrap(), Some(u.id));
    assert_eq!(
        s.take_password_token(&[7; 32], 500).unwrap(),
        None,
        "used once"
    );
    // Using a token ends the user's other tokens.
    s.put_password_token(&[5; 32], u.id, 1000).unwrap();
    s.put_password_token(&[6; 32], u.id, 1000).unwrap();
    assert_eq!(s.take_password_token(&[5; 32], 500).unwrap(), Some(u.id));
    assert_eq!(
        s.take_password_token(&[6; 32], 500).unwrap(),
        None,
        "ended by the other's use"
    );
    s.put_password_token(&[8; 32], u.id, 1000).unwrap();
    assert_eq!(
        s.take_password_token(&[8; 32], 1000).unwrap(),
        None,
        "expired"
    );
    s.set_password(u.id, "$argon2id$y").unwrap();
    assert_eq!(
        s.user(u.id).unwrap().unwrap().password_hash.as_deref(),
        Some("$argon2id$y")
    );

    for i in 0..3 {
        s.audit(
            &n(),
            &AuditEntry {
                at: i,
                actor: "ada".into(),
                action: format!("a{i}"),
                detail: String::new(),
            },
        )
        .unwrap();
    }
    let log: Vec<String> = s
        .audit_log(&n(), 2)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(log, ["a2", "a1"]);
}

/// Renaming a department or an account keeps its id, so its usage and keys
/// stay with it; names stay unique.
pub fn departments_and_accounts_rename<S: Store>(s: &S) {
    use meterbook_core::store::Renamed;
    enrollment(s, "USD");
    let before = s.hierarchy(&n()).unwrap();
    let a_id = before.department_by_name("A").unwrap().id;
    let a1_id = before.account_by_name("a1").unwrap().id;
    s.rename(&n(), Renamed::Department, "A", "Research")
        .unwrap();
    s.rename(&n(), Renamed::Account, "a1", "lab").unwrap();
    let h = s.hierarchy(&n()).unwrap();
    assert_eq!(h.department_by_name("Research").unwrap().id, a_id);
    assert_eq!(h.account_by_name("lab").unwrap().id, a1_id);
    assert!(h.department_by_name("A").is_none());
    assert!(matches!(
        s.rename(&n(), Renamed::Account, "lab", "b1"),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.rename(&n(), Renamed::Department, "nope", "x"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.rename(&n(), Renamed::Department, "B", " "),
        Err(StoreError::Invalid(_))
    ));
}

/// Operator tokens: listed oldest first, disabled and enabled by id; an
/// unknown id changes nothing.
pub fn operator_tokens_list_and_disable<S: Store>(s: &S) {
    use meterbook_core::access::OperatorToken;
    let token = |id: &str, at: i64| OperatorToken {
        id: id.into(),
        name: format!("feed {id}"),
        secret_hash: [at as u8; 32],
        created_at: at,
        disabled: false,
    };
    assert!(s.operator_tokens().unwrap().is_empty());
    s.put_operator_token(&token("b2", 20)).unwrap();
    s.put_operator_token(&token("a1", 10)).unwrap();
    let listed = s.operator_tokens().unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["a1", "b2"]
    );
    assert!(listed[0] == token("a1", 10), "read back as written");
    assert!(s.set_operator_token_disabled("b2", true).unwrap());
    assert!(s.operator_token("b2").unwrap().unwrap().disabled);
    assert!(!s.operator_token("a1").unwrap().unwrap().disabled);
    assert!(!s.set_operator_token_disabled("zz", true).unwrap());
    assert!(s.set_operator_token_disabled("b2", false).unwrap());
    assert!(!s.operator_token("b2").unwrap().unwrap().disabled);
}
