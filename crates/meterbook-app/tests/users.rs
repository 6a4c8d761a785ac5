//! Signing in, the people of an enrollment and who may change them, through
//! the use-case layer alone (the portal's tests cover the same over HTTP).

use meterbook_app::access::SessionPolicy;
use meterbook_app::{credentials, password, App, AppError};
use meterbook_core::access::Scope;
use meterbook_core::clock::ManualClock;
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::hierarchy::HierarchyRow;
use meterbook_core::store::MetadataStore;
use meterbook_core::users::{Role, UserStore};
use meterbook_core::{Currency, EnrollmentNumber};
use meterbook_sqlite::SqliteStore;
use std::sync::Arc;
use std::time::Duration;

const PW: &str = "correct horse battery";
const POLICY: SessionPolicy = SessionPolicy {
    idle_secs: 1800,
    absolute_secs: 43_200,
};

struct Fixture {
    app: App,
    store: Arc<SqliteStore>,
    clock: ManualClock,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn num(s: &str) -> EnrollmentNumber {
    EnrollmentNumber::parse(s).expect("enrollment number")
}

fn enrollment(store: &SqliteStore, n: &str, account: &str, guid: &str) {
    store
        .create_enrollment(&NewEnrollment {
            number: num(n),
            name: format!("Enrollment {n}"),
            currency: Currency::parse("USD").expect("currency"),
            start: "2025-10-01".parse().expect("day"),
            end: "2026-09-30".parse().expect("day"),
            visibility: ChargeVisibility::default(),
        })
        .expect("enrollment");
    let row = HierarchyRow {
        line: 2,
        department_name: "Research".into(),
        department_cost_center: "D1".into(),
        account_name: account.into(),
        account_owner_email: format!("{account}@example.com"),
        account_cost_center: "A1".into(),
        subscription_guid: guid.into(),
        subscription_name: format!("sub-{account}"),
    };
    store.upsert_hierarchy(&num(n), &[row]).expect("hierarchy");
}

/// Enrollment 100100 with admin@ (read-write), reader@ (read-only) and
/// other@ who holds a role only in 200200.
fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!(
        "meterbook-app-users-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = Arc::new(SqliteStore::open(dir.join("db.sqlite")).expect("store"));
    enrollment(
        &store,
        "100100",
        "a1",
        "11111111-0000-4000-8000-000000000001",
    );
    enrollment(
        &store,
        "200200",
        "b1",
        "22222222-0000-4000-8000-000000000001",
    );
    let hash = password::hash(PW).expect("hash");
    for (email, n, read_only) in [
        ("admin@example.com", "100100", false),
        ("reader@example.com", "100100", true),
        ("other@example.com", "200200", false),
    ] {
        let u = store.create_user(email, "", Some(&hash), 0).expect("user");
        store
            .grant_role(
                u.id,
                &Role {
                    enrollment: num(n),
                    scope: Scope::Enrollment,
                    read_only,
                },
            )
            .expect("role");
    }
    let clock = ManualClock::at_millis(1_764_000_000_000);
    let files = Arc::new(meterbook_jobs::DirReportFiles::new(dir.join("reports")).expect("files"));
    let app = App::new(
        store.clone(),
        files,
        meterbook_jobs::JobSettings::default(),
        Arc::new(clock.clone()),
    );
    Fixture {
        app,
        store,
        clock,
        dir,
    }
}

#[test]
fn sign_in_opens_a_session_that_resolves_and_ends() {
    let f = fixture();
    assert!(f
        .app
        .sign_in("admin@example.com", "wrong password!", "test")
        .expect("sign in")
        .is_none());
    assert!(f
        .app
        .sign_in("nobody@example.com", PW, "test")
        .expect("sign in")
        .is_none());
    f.app
        .sign_in_failed("admin@example.com", "from 192.0.2.1")
        .expect("failure");
    let new = f
        .app
        .sign_in(" Admin@Example.com ", PW, "from 192.0.2.1")
        .expect("sign in")
        .expect("signed in");
    let hash = credentials::hash_secret(&new.token);
    let signed = f
        .app
        .session(&hash, POLICY)
        .expect("session")
        .expect("live");
    assert_eq!(signed.user.email, "admin@example.com");
    let log = signed
        .access(&f.app, "100100")
        .expect("access")
        .enterprise()
        .expect("enterprise")
        .audit_log(10)
        .expect("log");
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["sign-in", "sign-in-failed"], "newest first");
    // No role in the other enrollment: not found, whether or not it exists.
    assert!(matches!(
        signed.access(&f.app, "200200"),
        Err(AppError::NotFound(_))
    ));
    // Idle past the policy: gone.
    f.clock.advance(Duration::from_secs(1801));
    assert!(f.app.session(&hash, POLICY).expect("session").is_none());
    let again = f
        .app
        .sign_in("admin@example.com", PW, "test")
        .expect("sign in")
        .expect("signed in");
    again.signed_in.sign_out(&f.app).expect("sign out");
    let h = credentials::hash_secret(&again.token);
    assert!(f.app.session(&h, POLICY).expect("session").is_none());
}

#[test]
fn a_read_only_administrator_reads_but_cannot_change() {
    let f = fixture();
    let reader = f
        .app
        .sign_in("reader@example.com", PW, "test")
        .expect("sign in")
        .expect("signed in")
        .signed_in
        .access(&f.app, "100100")
        .expect("access");
    let (_, members) = reader
        .enterprise()
        .expect("enterprise")
        .members()
        .expect("members");
    assert_eq!(members.len(), 2);
    assert!(matches!(reader.admin(), Err(AppError::Forbidden(_))));
}

#[test]
fn invitations_issue_a_link_only_for_this_enrollments_own_people() {
    let f = fixture();
    let admin = f
        .app
        .sign_in("admin@example.com", PW, "test")
        .expect("sign in")
        .expect("signed in")
        .signed_in
        .access(&f.app, "100100")
        .expect("access");
    let admin = admin.admin().expect("admin");
    // Someone new: a link, which sets a password once.
    let inv = admin
        .invite("New@Example.com", "", "enterprise-reader")
        .expect("invite");
    assert!(inv.created);
    let token = inv.token.expect("a link");
    assert!(matches!(
        f.app.set_password(&token, "short"),
        Err(AppError::Invalid(_))
    ));
    assert!(f
        .app
        .set_password(&token, "a long new password")
        .expect("set"));
    assert!(!f
        .app
        .set_password(&token, "a long new password")
        .expect("set"));
    assert!(f
        .app
        .sign_in("new@example.com", "a long new password", "test")
        .expect("sign in")
        .is_some());
    // Someone without a password who holds a role in another enrollment:
    // a role here, never a link (it would hand over their account).
    let u = f
        .store
        .create_user("elsewhere@example.com", "", None, 0)
        .expect("user");
    f.store
        .grant_role(
            u.id,
            &Role {
                enrollment: num("200200"),
                scope: Scope::Enrollment,
                read_only: true,
            },
        )
        .expect("role");
    let other = admin
        .invite("elsewhere@example.com", "", "enterprise-reader")
        .expect("invite");
    assert!(!other.created);
    assert!(other.token.is_none());
    // Not one's own role.
    let me = f
        .store
        .user_by_email("admin@example.com")
        .expect("user")
        .expect("admin")
        .id;
    assert!(matches!(
        admin.change_role(me, "enterprise-reader"),
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        admin.invite("admin@example.com", "", "enterprise-reader"),
        Err(AppError::Invalid(_))
    ));
}
