//! The ledger's traits on PostgreSQL against the embedded SQLite store: the
//! same calls on both must give the same answers (errors by kind and
//! message; backend errors only by kind, their texts differ), and the same
//! enrollment afterwards (its data version included). Then what only several
//! nodes can do to one database: claim jobs, take tokens, submit duplicates,
//! close periods at once.
//!
//! Needs `MB_TEST_STORE` (see `common`).

mod common;

use common::{url, TestStore};
use meterbook_core::access::{KeyRecord, KeyStore, OperatorStore, OperatorToken, Scope, Slot};
use meterbook_core::enrollment::{ChargeVisibility, NewEnrollment};
use meterbook_core::hierarchy::{Hierarchy, HierarchyRow};
use meterbook_core::jobs::{
    ExportFormat, Job, JobOutcome, JobProgress, JobSpec, JobStatus, JobStore,
};
use meterbook_core::prices::{MeterInfo, MeterPrice, Tier};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, MetadataStore, Renamed, StoreError, StoreResult};
use meterbook_core::users::{AuditEntry, Role, Session, UserStore};
use meterbook_core::{Currency, Day, EnrollmentNumber, Money, Period, Price, Quantity};
use meterbook_postgres::PgStore;
use meterbook_sqlite::SqliteStore;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;

trait Ledger: MetadataStore + KeyStore + OperatorStore + JobStore + UserStore {}
impl<T: MetadataStore + KeyStore + OperatorStore + JobStore + UserStore> Ledger for T {}

/// An answer as compared: backend errors by kind alone.
fn show<T: Debug>(r: StoreResult<T>) -> String {
    match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(StoreError::Backend(_)) => "Err(Backend)".into(),
        Err(e) => format!("Err({e:?})"),
    }
}

/// A hierarchy in a fixed order (its maps have none), by names rather than
/// ids: PostgreSQL's sequences leave gaps where a refused write took ids,
/// SQLite's row ids do not.
fn hierarchy_text(h: &Hierarchy) -> String {
    let dept = |id: Option<i64>| id.map(|d| h.departments[&d].name.clone());
    let mut lines = BTreeSet::new();
    for d in h.departments.values() {
        lines.insert(format!("department {:?} {:?}", d.name, d.cost_center));
    }
    for a in h.accounts.values() {
        lines.insert(format!(
            "account {:?} {:?} {:?} in {:?}",
            a.name,
            a.owner_email,
            a.cost_center,
            dept(a.department_id)
        ));
    }
    for s in h.subscriptions.values() {
        let owners: Vec<_> = s
            .owners
            .iter()
            .map(|(d, a)| (*d, h.accounts[a].name.clone()))
            .collect();
        lines.insert(format!("subscription {:?} {:?} {owners:?}", s.guid, s.name));
    }
    lines.into_iter().collect::<Vec<_>>().join("\n")
}

struct Both {
    sq: SqliteStore,
    pg: TestStore,
    _dir: tempfile::TempDir,
}

impl Both {
    fn new(url: &str) -> Both {
        let dir = tempfile::tempdir().expect("tempdir");
        Both {
            sq: SqliteStore::open(dir.path().join("m.db")).expect("sqlite"),
            pg: TestStore::new(url),
            _dir: dir,
        }
    }

    /// Runs `f` on both stores: the answers must agree, and so must every
    /// enrollment afterwards. Returns the answer as text.
    fn check<T: Debug>(&self, what: &str, f: impl Fn(&dyn Ledger) -> StoreResult<T>) -> String {
        let a = show(f(&self.sq));
        let b = show(f(&*self.pg as &PgStore));
        assert_eq!(a, b, "{what}: SQLite (left) and PostgreSQL (right) differ");
        let (ea, eb) = (show(self.sq.enrollments()), show(self.pg.enrollments()));
        assert_eq!(ea, eb, "after {what}: the enrollments differ");
        a
    }

    fn check_hierarchy(&self, n: &EnrollmentNumber) {
        let a = self.sq.hierarchy(n).map(|h| hierarchy_text(&h));
        let b = self.pg.hierarchy(n).map(|h| hierarchy_text(&h));
        assert_eq!(show(a), show(b), "hierarchies differ");
    }
}

fn num(s: &str) -> EnrollmentNumber {
    EnrollmentNumber::parse(s).unwrap()
}
fn day(s: &str) -> Day {
    s.parse().unwrap()
}
fn period(s: &str) -> Period {
    s.parse().unwrap()
}

fn new_enrollment(number: &str, currency: &str, name: &str) -> NewEnrollment {
    NewEnrollment {
        number: num(number),
        name: name.into(),
        currency: Currency::parse(currency).unwrap(),
        start: day("2025-01-01"),
        end: day("2025-12-31"),
        visibility: ChargeVisibility::default(),
    }
}

fn row(line: u64, d: &str, a: &str, g: &str, cc: &str) -> HierarchyRow {
    HierarchyRow {
        line,
        department_name: d.into(),
        department_cost_center: format!("{d}-{cc}"),
        account_name: a.into(),
        account_owner_email: format!("{a}@example.com"),
        account_cost_center: format!("{a}-{cc}"),
        subscription_guid: g.into(),
        subscription_name: format!("sub {g} {cc}"),
    }
}

fn meter(id: &str, included: i64, tiers: &[(i64, i128)]) -> MeterPrice {
    MeterPrice {
        info: MeterInfo {
            meter_id: id.into(),
            meter_name: format!("{id} name"),
            meter_category: "Compute".into(),
            meter_sub_category: "VM".into(),
            meter_region: "EU West".into(),
            unit_of_measure: "1 Hour".into(),
            part_number: format!("P-{id}"),
            charges_billed_separately: id.ends_with('s'),
            publisher_name: String::new(),
            offer_name: String::new(),
            plan_name: String::new(),
        },
        included: Quantity(included),
        tiers: tiers
            .iter()
            .map(|&(min, price)| Tier {
                min: Quantity(min),
                price: Price(price),
            })
            .collect(),
    }
}

const G1: &str = "AAAAAAAA-0000-4000-8000-000000000001";
const G2: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const G3: &str = "aaaaaaaa-0000-4000-8000-000000000003";

#[test]
fn metadata_answers_as_sqlite_does() {
    let Some(url) = url("metadata_answers_as_sqlite_does") else {
        return;
    };
    let b = Both::new(&url);
    let e1 = num("E1");
    let e2 = num("E2");
    b.check("create", |s| {
        s.create_enrollment(&new_enrollment("E1", "USD", "One"))
    });
    b.check("create again", |s| {
        s.create_enrollment(&new_enrollment("E1", "EUR", "Again"))
    });
    b.check("create unnamed", |s| {
        s.create_enrollment(&new_enrollment("E3", "EUR", " "))
    });
    b.check("create another", |s| {
        s.create_enrollment(&new_enrollment("E2", "JPY", "Two"))
    });
    b.check("enrollment", |s| s.enrollment(&e2));
    b.check("no enrollment", |s| s.enrollment(&num("E9")));
    b.check("visibility", |s| {
        s.set_visibility(
            &e1,
            ChargeVisibility {
                department_admins_view_charges: true,
                account_owners_view_charges: false,
            },
        )
    });
    b.check("visibility of none", |s| {
        s.set_visibility(&num("E9"), ChargeVisibility::default())
    });
    b.check("watermark", |s| s.set_watermark(&e1, day("2025-02-03")));

    // Hierarchy: added, updated, refused.
    b.check("hierarchy", |s| {
        s.upsert_hierarchy(
            &e1,
            &[
                row(2, "D1", "a1", G1, "x"),
                row(3, "D1", "a1", G2, "x"),
                row(4, "", "a2", G3, "x"),
            ],
        )
    });
    b.check_hierarchy(&e1);
    b.check("hierarchy update", |s| {
        s.upsert_hierarchy(
            &e1,
            &[
                row(2, "D2", "a1", &G1.to_lowercase(), "y"),
                row(3, "D1", "a3", "g4", "y"),
            ],
        )
    });
    b.check_hierarchy(&e1);
    b.check("hierarchy: owner changes", |s| {
        s.upsert_hierarchy(&e1, &[row(7, "D1", "a2", G1, "z")])
    });
    b.check("hierarchy: no account", |s| {
        s.upsert_hierarchy(
            &e1,
            &[row(1, "D9", "new", "g9", "z"), row(8, "D1", " ", G1, "z")],
        )
    });
    b.check("hierarchy: no guid", |s| {
        s.upsert_hierarchy(&e1, &[row(9, "D1", "a1", "  ", "z")])
    });
    b.check("hierarchy of none", |s| {
        s.upsert_hierarchy(&num("E9"), &[row(2, "D1", "a1", G1, "x")])
    });
    b.check_hierarchy(&e1);

    // Renames.
    b.check("rename dept", |s| {
        s.rename(&e1, Renamed::Department, "D1", "Dept one")
    });
    b.check("rename dept taken", |s| {
        s.rename(&e1, Renamed::Department, "D2", "Dept one")
    });
    b.check("rename dept missing", |s| {
        s.rename(&e1, Renamed::Department, "D1", "D5")
    });
    b.check("rename dept empty", |s| {
        s.rename(&e1, Renamed::Department, "D2", " ")
    });
    b.check("rename account", |s| {
        s.rename(&e1, Renamed::Account, "a3", " a4 ")
    });
    b.check("rename account taken", |s| {
        s.rename(&e1, Renamed::Account, "a1", "a2")
    });
    b.check_hierarchy(&e1);

    // Moves.
    b.check("move", |s| {
        s.move_subscription(&e1, G1, "a2", day("2025-03-01"))
    });
    b.check("move same day", |s| {
        s.move_subscription(&e1, &G1.to_lowercase(), "a4", day("2025-03-01"))
    });
    b.check("move outside", |s| {
        s.move_subscription(&e1, G1, "a2", day("2026-01-01"))
    });
    b.check("move missing sub", |s| {
        s.move_subscription(&e1, "nope", "a2", day("2025-04-01"))
    });
    b.check("move missing account", |s| {
        s.move_subscription(&e1, G2, "nobody", day("2025-04-01"))
    });
    b.check_hierarchy(&e1);

    // Prices: rates beyond i64 (10^8 per unit is 10^20 raw), tiers.
    let big: i128 = 100_000_000 * 1_000_000_000_000;
    let sheet = vec![
        meter("m1", 0, &[(0, 1_234_567_890_123)]),
        meter(
            "m2s",
            5_000_000,
            &[(0, big), (10_000_000, big - 1), (1_000_000_000, 7)],
        ),
        meter("m3", 0, &[(0, 0)]),
    ];
    b.check("prices", |s| s.import_prices(&e1, period("202501"), &sheet));
    b.check("sheet", |s| s.price_sheet(&e1, period("202501")));
    b.check("prices feb", |s| {
        s.import_prices(&e1, period("202502"), &sheet[1..])
    });
    b.check("prices feb again", |s| {
        s.import_prices(
            &e1,
            period("202502"),
            &[meter("m4", 0, &[(0, 5)]), sheet[0].clone()],
        )
    });
    b.check("sheet feb", |s| s.price_sheet(&e1, period("202502")));
    b.check("sheet none", |s| s.price_sheet(&e1, period("202505")));
    b.check("prices outside", |s| {
        s.import_prices(&e1, period("202601"), &sheet)
    });
    b.check("prices before", |s| {
        s.import_prices(&e1, period("202412"), &sheet)
    });
    b.check("prices of none", |s| {
        s.import_prices(&num("E9"), period("202501"), &sheet)
    });
    b.check("periods", |s| s.periods(&e1));

    // Commitment entries.
    let entry = |d: &str, minor: i64, text: &str| CommitmentEntry {
        date: day(d),
        amount: Money(minor),
        description: text.into(),
    };
    b.check("purchase", |s| {
        s.add_entry(
            &e1,
            EntryKind::Purchase,
            &entry("2025-01-05", 1_000_000, "prepay"),
        )
    });
    b.check("adjustment", |s| {
        s.add_entry(
            &e1,
            EntryKind::Adjustment,
            &entry("2025-01-02", -250, "fix"),
        )
    });
    b.check("purchase negative", |s| {
        s.add_entry(&e1, EntryKind::Purchase, &entry("2025-01-05", -1, "bad"))
    });
    b.check("purchase outside", |s| {
        s.add_entry(&e1, EntryKind::Purchase, &entry("2026-01-05", 1, "bad"))
    });
    b.check("purchase huge", |s| {
        s.add_entry(
            &e1,
            EntryKind::Purchase,
            &entry("2025-06-05", i64::MAX, "huge"),
        )
    });
    b.check("entries", |s| s.entries(&e1));
    b.check("entries of none", |s| s.entries(&num("E9")));

    // Closing: locked rates of any i128.
    let rates = [
        (1, Price(i128::MAX)),
        (2, Price(i128::MIN)),
        (3, Price(-5)),
        (7, Price(0)),
    ];
    b.check("close", |s| s.close_period(&e1, period("202501"), &rates));
    b.check("locked", |s| s.locked_rates(&e1, period("202501")));
    b.check("locked none", |s| s.locked_rates(&e1, period("202502")));
    b.check("close again", |s| {
        s.close_period(&e1, period("202501"), &[])
    });
    b.check("close earlier", |s| {
        s.close_period(&e1, period("202412"), &[])
    });
    b.check("prices closed", |s| {
        s.import_prices(&e1, period("202501"), &sheet)
    });
    b.check("entry closed", |s| {
        s.add_entry(&e1, EntryKind::Adjustment, &entry("2025-01-31", 5, "late"))
    });
    b.check("move closed", |s| {
        s.move_subscription(&e1, G2, "a2", day("2025-01-31"))
    });
    b.check("move after close", |s| {
        s.move_subscription(&e1, G2, "a2", day("2025-02-01"))
    });
    b.check("close feb", |s| {
        s.close_period(&e1, period("202502"), &[(4, Price(9))])
    });
    b.check("periods after", |s| s.periods(&e1));
    b.check("enrollments", |s| s.enrollments());
    b.check_hierarchy(&e1);
    b.check_hierarchy(&e2);
    b.check("ready", |s| s.check_ready());
}

fn key(id: &str, n: &EnrollmentNumber, scope: Scope, slot: Slot, h: u8) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        enrollment: n.clone(),
        scope,
        slot,
        read_only: h.is_multiple_of(2),
        secret_hash: [h; 32],
        created_at: 100 + i64::from(h),
        expires_at: 1_000_000 + i64::from(h),
        disabled: false,
        last_used_at: None,
    }
}

#[test]
fn access_and_users_answer_as_sqlite_does() {
    let Some(url) = url("access_and_users_answer_as_sqlite_does") else {
        return;
    };
    let b = Both::new(&url);
    let e1 = num("E1");
    b.check("create", |s| {
        s.create_enrollment(&new_enrollment("E1", "USD", "One"))
    });
    b.check("create 2", |s| {
        s.create_enrollment(&new_enrollment("E2", "USD", "Two"))
    });
    // Keys.
    b.check("key", |s| {
        s.put_key(&key("k1", &e1, Scope::Enrollment, Slot::Primary, 1))
    });
    b.check("key 2", |s| {
        s.put_key(&key("k2", &e1, Scope::Department(3), Slot::Secondary, 2))
    });
    b.check("key 3", |s| {
        s.put_key(&key("k3", &num("E2"), Scope::Account(9), Slot::Primary, 3))
    });
    b.check("key id taken", |s| {
        s.put_key(&key("k3", &e1, Scope::Account(9), Slot::Primary, 4))
    });
    b.check("key id taken in slot", |s| {
        s.put_key(&key("k2", &e1, Scope::Enrollment, Slot::Primary, 4))
    });
    b.check("key replaced", |s| {
        s.put_key(&key("k5", &e1, Scope::Enrollment, Slot::Primary, 5))
    });
    b.check("key same again", |s| {
        s.put_key(&key("k5", &e1, Scope::Enrollment, Slot::Primary, 6))
    });
    b.check("key no enrollment", |s| {
        s.put_key(&key("k6", &num("E9"), Scope::Enrollment, Slot::Primary, 6))
    });
    b.check("keys", |s| s.keys(&e1));
    b.check("keys none", |s| s.keys(&num("E9")));
    b.check("key k1", |s| s.key("k1"));
    b.check("key k5", |s| {
        s.key("k5").map(|k| k.map(|k| (k.secret_hash, k.read_only)))
    });
    b.check("disable", |s| {
        s.set_key_disabled(&e1, Scope::Department(3), Slot::Secondary, true)
    });
    b.check("disable none", |s| {
        s.set_key_disabled(&e1, Scope::Account(3), Slot::Secondary, true)
    });
    b.check("touch", |s| s.touch_key("k2", 12345));
    b.check("touch none", |s| s.touch_key("zz", 12345));
    b.check("key k2", |s| {
        s.key("k2").map(|k| k.map(|k| (k.disabled, k.last_used_at)))
    });

    // Operator tokens.
    let token = |id: &str, at: i64| OperatorToken {
        id: id.into(),
        name: format!("name {id}"),
        secret_hash: [at as u8; 32],
        created_at: at,
        disabled: false,
    };
    b.check("token", |s| s.put_operator_token(&token("t2", 5)));
    b.check("token 2", |s| s.put_operator_token(&token("t1", 5)));
    b.check("token 3", |s| s.put_operator_token(&token("t0", 9)));
    b.check("token taken", |s| s.put_operator_token(&token("t0", 1)));
    b.check("tokens", |s| s.operator_tokens());
    b.check("token get", |s| s.operator_token("t1"));
    b.check("token disable", |s| {
        s.set_operator_token_disabled("t1", true)
    });
    b.check("token disable none", |s| {
        s.set_operator_token_disabled("tx", true)
    });
    b.check("token got", |s| {
        s.operator_token("t1").map(|t| t.map(|t| t.disabled))
    });

    // Users.
    b.check("user", |s| {
        s.create_user(" Ann@Example.com ", "Ann", None, 10)
    });
    b.check("user 2", |s| {
        s.create_user("bob@example.com", "Bob", Some("$argon2id$x"), 11)
    });
    b.check("user taken", |s| {
        s.create_user("ANN@example.COM", "Ann 2", None, 12)
    });
    b.check("by email", |s| s.user_by_email("  ann@EXAMPLE.com"));
    b.check("by id", |s| s.user(2));
    b.check("by id none", |s| s.user(99));
    b.check("password", |s| s.set_password(1, "$argon2id$y"));
    b.check("password none", |s| s.set_password(99, "$argon2id$y"));
    b.check("disable user", |s| s.set_user_disabled(2, true));
    b.check("disable none", |s| s.set_user_disabled(99, true));
    b.check("users", |s| Ok((s.user(1)?, s.user(2)?)));
    let role = |n: &str, scope, ro| Role {
        enrollment: num(n),
        scope,
        read_only: ro,
    };
    b.check("grant", |s| {
        s.grant_role(1, &role("E2", Scope::Enrollment, false))
    });
    b.check("grant 2", |s| {
        s.grant_role(1, &role("E1", Scope::Department(4), true))
    });
    b.check("grant replace", |s| {
        s.grant_role(1, &role("E1", Scope::Account(5), false))
    });
    b.check("grant bob", |s| {
        s.grant_role(2, &role("E1", Scope::Enrollment, true))
    });
    b.check("grant none", |s| {
        s.grant_role(1, &role("E9", Scope::Enrollment, true))
    });
    b.check("grant no user", |s| {
        s.grant_role(99, &role("E1", Scope::Enrollment, true))
    });
    b.check("roles", |s| s.roles(1));
    b.check("enrollment users", |s| s.enrollment_users(&e1));
    b.check("revoke", |s| s.revoke_role(1, &num("E2")));
    b.check("revoke none", |s| s.revoke_role(1, &num("E9")));
    b.check("roles after", |s| s.roles(1));

    // Sessions and set-password tokens.
    let session = |h: u8, user: i64| Session {
        token_hash: [h; 32],
        user_id: user,
        csrf: format!("csrf{h}"),
        created_at: 50,
        last_seen_at: 60,
    };
    b.check("session", |s| s.create_session(&session(1, 1)));
    b.check("session 2", |s| s.create_session(&session(2, 1)));
    b.check("session 3", |s| s.create_session(&session(3, 2)));
    b.check("session taken", |s| s.create_session(&session(3, 2)));
    b.check("session no user", |s| s.create_session(&session(4, 99)));
    b.check("touch", |s| s.touch_session(&[1; 32], 70));
    b.check("get", |s| s.session(&[1; 32]));
    b.check("delete", |s| s.delete_session(&[1; 32]));
    b.check("get deleted", |s| s.session(&[1; 32]));
    b.check("sign out", |s| s.delete_user_sessions(1));
    b.check("gone", |s| Ok((s.session(&[2; 32])?, s.session(&[3; 32])?)));
    b.check("token", |s| s.put_password_token(&[7; 32], 1, 1000));
    b.check("token 2", |s| s.put_password_token(&[8; 32], 1, 1000));
    b.check("token 3", |s| s.put_password_token(&[9; 32], 2, 500));
    b.check("token taken", |s| s.put_password_token(&[9; 32], 2, 500));
    b.check("take expired", |s| s.take_password_token(&[9; 32], 600));
    b.check("take", |s| s.take_password_token(&[7; 32], 600));
    b.check("take other", |s| s.take_password_token(&[8; 32], 600));
    b.check("take again", |s| s.take_password_token(&[7; 32], 600));

    // Audit.
    for i in 0..5 {
        b.check("audit", |s| {
            s.audit(
                &e1,
                &AuditEntry {
                    at: 100 + i,
                    actor: "cli".into(),
                    action: format!("action{i}"),
                    detail: "d".into(),
                },
            )
        });
    }
    b.check("audit none", |s| {
        s.audit(
            &num("E9"),
            &AuditEntry {
                at: 1,
                actor: "x".into(),
                action: "y".into(),
                detail: "z".into(),
            },
        )
    });
    b.check("audit log", |s| s.audit_log(&e1, 3));
    b.check("audit log all", |s| s.audit_log(&e1, usize::MAX));
    b.check("audit log none", |s| s.audit_log(&num("E9"), 3));
}

fn spec(format: ExportFormat, accounts: &[&str]) -> JobSpec {
    JobSpec {
        scope: Scope::Department(4),
        billing_period: Some(period("202502")),
        from: day("2025-02-01"),
        to: day("2025-02-28"),
        accounts: accounts.iter().map(|a| a.to_string()).collect(),
        departments: vec!["Dé \"x\"".into()],
        format,
    }
}

fn job(id: &str, n: &str, spec: &JobSpec, at: i64) -> Job {
    Job {
        id: id.into(),
        enrollment: num(n),
        spec: spec.clone(),
        requested_by: "someone@example.com".into(),
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

#[test]
fn jobs_answer_as_sqlite_does() {
    let Some(url) = url("jobs_answer_as_sqlite_does") else {
        return;
    };
    let b = Both::new(&url);
    b.check("create", |s| {
        s.create_enrollment(&new_enrollment("E1", "USD", "One"))
    });
    let csv = spec(ExportFormat::Csv, &["b", "a"]);
    let parquet = spec(ExportFormat::Parquet, &[]);
    b.check("submit", |s| s.submit_job(&job("j1", "E1", &csv, 1000)));
    b.check("submit same", |s| {
        s.submit_job(&job(
            "j2",
            "E1",
            &spec(ExportFormat::Csv, &["a", "b", "a"]),
            2000,
        ))
    });
    b.check("submit id taken", |s| {
        s.submit_job(&job("j1", "E1", &parquet, 2500))
    });
    b.check("submit other", |s| {
        s.submit_job(&job("j3", "E1", &parquet, 3000))
    });
    b.check("submit none", |s| {
        s.submit_job(&job("j4", "E9", &parquet, 3000))
    });
    b.check("jobs", |s| s.jobs(&num("E1")));
    b.check("claim only", |s| s.claim_job(5000, 6000, Some("j3")));
    b.check("claim", |s| s.claim_job(5000, 6000, None));
    b.check("claim nothing", |s| s.claim_job(5500, 6500, None));
    b.check("heartbeat", |s| {
        s.job_heartbeat(
            "j1",
            1,
            JobProgress {
                rows_done: 10,
                rows_expected: Some(u64::MAX >> 2),
                bytes: 99,
            },
            7000,
        )
    });
    b.check("heartbeat wrong attempt", |s| {
        s.job_heartbeat("j1", 2, JobProgress::default(), 7000)
    });
    b.check("heartbeat none", |s| {
        s.job_heartbeat("jx", 1, JobProgress::default(), 7000)
    });
    b.check("take over", |s| s.claim_job(6600, 9000, None));
    b.check("finish stale", |s| {
        s.finish_job(
            "j3",
            1,
            9100,
            &JobOutcome {
                status: JobStatus::ReadyToDownload,
                progress: JobProgress::default(),
                error: None,
                manifest: None,
            },
        )
    });
    b.check("finish", |s| {
        s.finish_job(
            "j3",
            2,
            9100,
            &JobOutcome {
                status: JobStatus::ReadyToDownload,
                progress: JobProgress {
                    rows_done: 5,
                    rows_expected: Some(5),
                    bytes: 1 << 40,
                },
                error: None,
                manifest: Some("{\"files\":[]}".into()),
            },
        )
    });
    b.check("resubmit after finish", |s| {
        s.submit_job(&job("j5", "E1", &parquet, 9200))
    });
    b.check("cancel", |s| s.cancel_job("j1", 9300, "no longer wanted"));
    b.check("cancel finished", |s| s.cancel_job("j3", 9400, "late"));
    b.check("cancel none", |s| s.cancel_job("jx", 9400, "late"));
    b.check("job", |s| s.job("j1"));
    b.check("job none", |s| s.job("jx"));
    b.check("expired", |s| s.expired_jobs(9350));
    b.check("expired all", |s| s.expired_jobs(10_000));
    b.check("delete", |s| s.delete_job("j1"));
    b.check("delete none", |s| s.delete_job("jx"));
    b.check("jobs after", |s| s.jobs(&num("E1")));
    b.check("secret", |s| s.secret("signing", b"first"));
    b.check("secret kept", |s| s.secret("signing", b"second"));
}

/// Workers on two nodes (two pools) claiming at once: every job is claimed
/// exactly once.
#[test]
fn claims_across_nodes_take_each_job_once() {
    let Some(url) = url("claims_across_nodes_take_each_job_once") else {
        return;
    };
    let store = TestStore::new(&url);
    store
        .create_enrollment(&new_enrollment("E1", "USD", "One"))
        .unwrap();
    const JOBS: usize = 60;
    for i in 0..JOBS {
        let s = spec(ExportFormat::Csv, &[&format!("a{i}")]);
        assert!(
            store
                .submit_job(&job(&format!("j{i:03}"), "E1", &s, i as i64))
                .unwrap()
                .1
        );
    }
    let nodes = [Arc::new(store.another()), Arc::new(store.another())];
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let node = nodes[t % 2].clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Some(j) = node.claim_job(1000, 1_000_000, None).unwrap() {
                    assert_eq!(j.status, JobStatus::InProgress);
                    assert_eq!(j.attempts, 1);
                    got.push(j.id);
                }
                got
            })
        })
        .collect();
    let mut all: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(all.len(), JOBS, "every job claimed once");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), JOBS, "no job claimed twice");
    // Leases expired: each is taken over once more, no more.
    let again: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let node = &nodes[t % 2];
                sc.spawn(move || {
                    let mut n = 0;
                    while let Some(j) = node.claim_job(2_000_000, 3_000_000, None).unwrap() {
                        assert_eq!(j.attempts, 2);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(again, JOBS);
}

/// Identical requests submitted at once on two nodes share one job.
#[test]
fn duplicate_submits_across_nodes_share_a_job() {
    let Some(url) = url("duplicate_submits_across_nodes_share_a_job") else {
        return;
    };
    let store = TestStore::new(&url);
    store
        .create_enrollment(&new_enrollment("E1", "USD", "One"))
        .unwrap();
    let nodes = [Arc::new(store.another()), Arc::new(store.another())];
    for round in 0..10 {
        let s = spec(ExportFormat::FocusCsv, &[&format!("round{round}")]);
        let results: Vec<(Job, bool)> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..6)
                .map(|t| {
                    let node = &nodes[t % 2];
                    let j = job(&format!("r{round}t{t}"), "E1", &s, t as i64);
                    sc.spawn(move || node.submit_job(&j).unwrap())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|(_, new)| *new).count(),
            1,
            "one new job"
        );
        let ids: BTreeSet<&str> = results.iter().map(|(j, _)| j.id.as_str()).collect();
        assert_eq!(ids.len(), 1, "all share it: {ids:?}");
    }
}

/// A set-password link used at once on several nodes works once.
#[test]
fn a_password_token_is_taken_once() {
    let Some(url) = url("a_password_token_is_taken_once") else {
        return;
    };
    let store = TestStore::new(&url);
    let u = store.create_user("a@example.com", "A", None, 1).unwrap();
    let nodes = [Arc::new(store.another()), Arc::new(store.another())];
    for round in 0..10u8 {
        store.put_password_token(&[round; 32], u.id, 1000).unwrap();
        let taken: Vec<Option<i64>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..6)
                .map(|t| {
                    let node = &nodes[t % 2];
                    sc.spawn(move || node.take_password_token(&[round; 32], 10).unwrap())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            taken.iter().filter(|t| **t == Some(u.id)).count(),
            1,
            "{taken:?}"
        );
    }
}

/// Closing one period on two nodes at once: one closes it, the other is told
/// it is closed; imports and closes racing each other all end in order.
#[test]
fn period_closes_race_safely() {
    let Some(url) = url("period_closes_race_safely") else {
        return;
    };
    let store = TestStore::new(&url);
    store
        .create_enrollment(&new_enrollment("E1", "USD", "One"))
        .unwrap();
    let n = num("E1");
    let nodes = [Arc::new(store.another()), Arc::new(store.another())];
    let sheet = vec![meter("m1", 0, &[(0, 5)])];
    for p in ["202501", "202502", "202503"] {
        store.import_prices(&n, period(p), &sheet).unwrap();
        let results: Vec<String> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|t| {
                    let node = &nodes[t % 2];
                    let (n, sheet) = (&n, &sheet);
                    sc.spawn(move || {
                        if t < 2 {
                            show(node.close_period(n, period(p), &[(1, Price(5))]))
                        } else {
                            show(node.import_prices(n, period(p), sheet))
                        }
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let closes = &results[..2];
        assert_eq!(
            closes.iter().filter(|r| *r == "Ok(())").count(),
            1,
            "{results:?}"
        );
        assert!(
            closes.contains(&format!(
                "Err(Conflict(\"period {} is already closed\"))",
                period(p)
            )),
            "{results:?}"
        );
        for r in &results[2..] {
            assert!(
                r == "Ok(1)"
                    || *r
                        == format!(
                            "Err(Conflict(\"period {} is closed; its price sheet never changes\"))",
                            period(p)
                        ),
                "{r}"
            );
        }
        assert_eq!(
            store.locked_rates(&n, period(p)).unwrap(),
            vec![(1, Price(5))]
        );
    }
}

/// Every write that changes what an ingest validates against moves the
/// catalog version on; the others leave it.
#[test]
fn catalog_version_follows_catalog_writes() {
    let Some(url) = url("catalog_version_follows_catalog_writes") else {
        return;
    };
    let store = TestStore::new(&url);
    let mut c = store
        .schema
        .config()
        .connect(postgres::NoTls)
        .expect("connect");
    let n = num("E1");
    store
        .create_enrollment(&new_enrollment("E1", "USD", "One"))
        .unwrap();
    let mut version = || -> (i64, i64) {
        let r = c
            .query_one(
                "SELECT catalog_version, data_version FROM enrollment WHERE number = 'E1'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(version(), (0, 0));
    store
        .upsert_hierarchy(&n, &[row(2, "D", "a", G1, "x")])
        .unwrap();
    assert_eq!(version(), (1, 1));
    store
        .import_prices(&n, period("202501"), &[meter("m", 0, &[(0, 1)])])
        .unwrap();
    assert_eq!(version(), (2, 2));
    store
        .move_subscription(&n, G1, "a", day("2025-02-01"))
        .unwrap();
    assert_eq!(version(), (3, 3));
    store
        .close_period(&n, period("202501"), &[(1, Price(1))])
        .unwrap();
    assert_eq!(version(), (4, 4));
    // Not part of the catalog: the data version alone.
    store.rename(&n, Renamed::Account, "a", "b").unwrap();
    store
        .set_visibility(&n, ChargeVisibility::default())
        .unwrap();
    store.set_watermark(&n, day("2025-02-02")).unwrap();
    store
        .add_entry(
            &n,
            EntryKind::Purchase,
            &CommitmentEntry {
                date: day("2025-03-01"),
                amount: Money(5),
                description: "p".into(),
            },
        )
        .unwrap();
    assert_eq!(version(), (4, 8));
    // Refused writes change nothing.
    assert!(store
        .import_prices(&n, period("202501"), &[meter("m", 0, &[(0, 1)])])
        .is_err());
    assert!(store.close_period(&n, period("202501"), &[]).is_err());
    assert_eq!(version(), (4, 8));
}

/// The one input SQLite takes and PostgreSQL cannot: a NUL character in a
/// text. It is refused as invalid input (not a backend failure), and
/// nothing of the refused write is kept.
#[test]
fn nul_characters_are_refused_as_input() {
    let Some(url) = url("nul_characters_are_refused_as_input") else {
        return;
    };
    let store = TestStore::new(&url);
    let n = num("E1");
    store
        .create_enrollment(&new_enrollment("E1", "USD", "One"))
        .unwrap();
    let invalid =
        |r: StoreResult<()>| matches!(r, Err(StoreError::Invalid(m)) if m.contains("NUL"));
    assert!(invalid(
        store
            .create_user("a@example.com", "A\0", None, 1)
            .map(|_| ())
    ));
    assert!(store.user_by_email("a@example.com").unwrap().is_none());
    assert!(invalid(
        store
            .upsert_hierarchy(
                &n,
                &[row(2, "D", "a", G1, "x"), row(3, "D", "b\0", G2, "x")]
            )
            .map(|_| ())
    ));
    assert!(store.hierarchy(&n).unwrap().accounts.is_empty());
    assert!(invalid(
        store
            .import_prices(&n, period("202501"), &[meter("m\0", 0, &[(0, 1)])])
            .map(|_| ())
    ));
    assert_eq!(store.enrollment(&n).unwrap().data_version, 0);
}

/// A sheet of realistic size (thousands of meters, several tiers each)
/// stored and read back as SQLite stores it, keys included, through an
/// import that adds meters among known ones.
#[test]
fn large_sheets_answer_as_sqlite_does() {
    let Some(url) = url("large_sheets_answer_as_sqlite_does") else {
        return;
    };
    let b = Both::new(&url);
    let n = num("E1");
    b.check("create", |s| {
        s.create_enrollment(&new_enrollment("E1", "EUR", "One"))
    });
    let sheet = |from: usize, to: usize| -> Vec<MeterPrice> {
        (from..to)
            .map(|i| {
                let tiers: Vec<(i64, i128)> = (0..(i % 4) as i64 + 1)
                    .map(|t| {
                        (
                            t * 1_000_000_000,
                            10_i128.pow(20) / (i as i128 + t as i128 + 1),
                        )
                    })
                    .collect();
                meter(
                    &format!(
                        "meter-{:05}{}",
                        (i * 7919) % 100_000,
                        if i % 5 == 0 { "s" } else { "" }
                    ),
                    i as i64,
                    &tiers,
                )
            })
            .collect()
    };
    let first = sheet(0, 2500);
    let t = std::time::Instant::now();
    b.check("import", |s| s.import_prices(&n, period("202503"), &first));
    eprintln!("2500 meters on both stores: {:?}", t.elapsed());
    b.check("read", |s| s.price_sheet(&n, period("202503")));
    let second = sheet(1200, 4000);
    b.check("import mixed", |s| {
        s.import_prices(&n, period("202504"), &second)
    });
    b.check("read mixed", |s| s.price_sheet(&n, period("202504")));
    b.check("replace", |s| {
        s.import_prices(&n, period("202503"), &second[..10])
    });
    b.check("read replaced", |s| s.price_sheet(&n, period("202503")));
    b.check("empty", |s| s.import_prices(&n, period("202505"), &[]));
    b.check("periods", |s| s.periods(&n));
}

/// Hierarchy files of some size, with departments, accounts and
/// subscriptions repeated and changed within a file and between files.
#[test]
fn large_hierarchies_answer_as_sqlite_does() {
    let Some(url) = url("large_hierarchies_answer_as_sqlite_does") else {
        return;
    };
    let b = Both::new(&url);
    let n = num("E1");
    b.check("create", |s| {
        s.create_enrollment(&new_enrollment("E1", "EUR", "One"))
    });
    let file = |rows: usize, salt: usize| -> Vec<HierarchyRow> {
        (0..rows)
            .map(|i| {
                let dept = if i % 7 == 0 {
                    String::new()
                } else {
                    format!("D{}", i % 13)
                };
                let acct = format!("acct{}", (i * 31) % 97);
                // Accounts keep their department within a file unless salted.
                let mut r = row(
                    i as u64 + 2,
                    &dept,
                    &acct,
                    &format!("g-{:04}", i % 400),
                    &format!("{}", (i + salt) % 3),
                );
                r.department_cost_center = format!("cc{}", (i / 50 + salt) % 4);
                r
            })
            .collect()
    };
    // A subscription in a file twice stays with its first account only if
    // the account is the same; the generator keeps the account per guid.
    let keep_owner = |rows: Vec<HierarchyRow>| -> Vec<HierarchyRow> {
        let mut owner = std::collections::HashMap::new();
        rows.into_iter()
            .map(|mut r| {
                let a = owner
                    .entry(r.subscription_guid.clone())
                    .or_insert_with(|| r.account_name.clone())
                    .clone();
                r.account_name = a;
                r
            })
            .collect()
    };
    let first = keep_owner(file(600, 0));
    b.check("upload", |s| s.upsert_hierarchy(&n, &first));
    b.check_hierarchy(&n);
    b.check("same again", |s| s.upsert_hierarchy(&n, &first));
    let mut second = keep_owner(file(600, 1));
    for r in &mut second {
        r.subscription_name.push_str(" v2");
    }
    b.check("changed", |s| s.upsert_hierarchy(&n, &second));
    b.check_hierarchy(&n);
    // A file that moves one subscription is refused whole.
    let mut third = second.clone();
    third[450].account_name = "someone else".into();
    third.push(row(999, "Dnew", "anew", "g-new", "x"));
    b.check("refused", |s| s.upsert_hierarchy(&n, &third));
    b.check_hierarchy(&n);
    b.check("moved", |s| {
        s.move_subscription(&n, "g-0001", "acct5", day("2025-06-01"))
    });
    b.check("after move, old owner", |s| {
        s.upsert_hierarchy(&n, &[row(2, "D1", "acct31", "g-0001", "q")])
    });
    b.check("after move, new owner", |s| {
        s.upsert_hierarchy(&n, &[row(2, "D1", "acct5", "g-0001", "q")])
    });
    b.check_hierarchy(&n);
}
