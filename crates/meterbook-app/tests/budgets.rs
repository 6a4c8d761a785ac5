//! Budgets and notifications through the use-case layer over a real SQLite
//! file: hand-computed budget figures, each threshold firing once per
//! period across repeated evaluations and a restart, who sees which budget,
//! and who receives which alert.
//!
//! The fixture (figures in USD, one meter at 1.00 a unit): enrollment E100
//! with departments A (account a1) and B (account b1), and account c1 with no
//! department; a purchase of 2,000.00 on 2025-01-01; usage a1 200 on
//! 2025-02-10, then in March a1 300, b1 500, c1 100. Today is 2025-03-15.
//!
//! | figure | value |
//! |---|---|
//! | enrollment, March | 900.00 |
//! | department A, term through March | 500.00 |
//! | account b1, March | 500.00 |
//! | account c1, March | 100.00 |
//! | commitment left after March | 2,000.00 − 200.00 − 900.00 = 900.00 (45 %) |

mod common;

use meterbook_app::budgets::BudgetInput;
use meterbook_app::notifications::ChannelInput;
use meterbook_app::{Access, App, AppError};
use meterbook_conformance::fixture::{self, day, ingest_ok, meter, n, prices, row};
use meterbook_core::access::{Scope, Slot};
use meterbook_core::clock::ManualClock;
use meterbook_core::notify::{
    Basis, DeliveryStatus, DeliveryTarget, EventKind, NotifyStore, Threshold,
};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, MetadataStore};
use meterbook_core::users::Role;
use meterbook_core::Money;
use meterbook_sqlite::SqliteStore;
use std::path::Path;
use std::sync::Arc;

fn app_on(path: &Path, clock: &ManualClock) -> (App, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::open(path).unwrap());
    let app = common::layer(store.clone(), path.with_extension("reports"), clock.clone());
    (app, store)
}

struct Fixture {
    dir: tempfile::TempDir,
    clock: ManualClock,
    app: App,
    store: Arc<SqliteStore>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_millis(common::noon("2025-03-15"));
        let (app, store) = app_on(&dir.path().join("t.db"), &clock);
        let s = &*store;
        fixture::enrollment(s, "USD");
        for p in ["202502", "202503", "202504"] {
            prices(s, p, &[meter("c", "0", &[("0", "1")])]);
        }
        s.add_entry(
            &n(),
            EntryKind::Purchase,
            &CommitmentEntry {
                date: day("2025-01-01"),
                amount: Money(200_000),
                description: "prepaid".into(),
            },
        )
        .unwrap();
        ingest_ok(
            s,
            &[
                row("f1", fixture::G1, "2025-02-10", "c", "200"),
                row("m1", fixture::G1, "2025-03-01", "c", "300"),
                row("m2", fixture::G3, "2025-03-02", "c", "500"),
                row("m3", fixture::G4, "2025-03-03", "c", "100"),
            ],
        );
        let op = app.local_operator();
        op.set_visibility(&n(), Some(true), Some(false)).unwrap();
        let h = op.enrollment(&n()).unwrap().hierarchy().unwrap();
        let dept_a = h.department_by_name("A").unwrap().id;
        let b1 = h.account_by_name("b1").unwrap().id;
        for (email, scope, ro) in [
            ("admin@example.com", Scope::Enrollment, false),
            ("reader@example.com", Scope::Enrollment, true),
            ("dept-a@example.com", Scope::Department(dept_a), false),
            ("b1-owner@example.com", Scope::Account(b1), false),
        ] {
            op.ensure_user(
                email,
                email,
                None,
                &Role {
                    enrollment: n(),
                    scope,
                    read_only: ro,
                },
            )
            .unwrap();
        }
        Fixture {
            dir,
            clock,
            app,
            store,
        }
    }

    fn admin(&self) -> Access {
        self.app.local_operator().enrollment(&n()).unwrap()
    }

    /// The access of an API key of `scope` (read-only or not).
    fn role(&self, scope: Scope, read_only: bool) -> Access {
        let (key, _) = self
            .app
            .local_operator()
            .scope_key(&n(), scope, Slot::Primary, 30, read_only)
            .unwrap();
        self.app.key(&key.token).unwrap()
    }

    fn dept(&self, name: &str) -> Scope {
        Scope::Department(
            self.admin()
                .hierarchy()
                .unwrap()
                .department_by_name(name)
                .unwrap()
                .id,
        )
    }

    fn account(&self, name: &str) -> Scope {
        Scope::Account(
            self.admin()
                .hierarchy()
                .unwrap()
                .account_by_name(name)
                .unwrap()
                .id,
        )
    }
}

fn input(
    name: &str,
    scope: &str,
    scope_name: Option<&str>,
    cadence: &str,
    amount: &str,
    t: &[(&str, i64)],
) -> BudgetInput {
    BudgetInput {
        name: name.into(),
        scope: scope.into(),
        scope_name: scope_name.map(Into::into),
        cadence: cadence.into(),
        amount: amount.into(),
        thresholds: t.iter().map(|(b, p)| (b.to_string(), *p)).collect(),
    }
}

fn th(basis: Basis, percent: u32) -> Threshold {
    Threshold { basis, percent }
}

/// The four budgets of the tests: ids in this order.
fn budgets(f: &Fixture) -> [i64; 4] {
    let a = f.admin();
    let admin = a.admin().unwrap();
    let b = [
        input(
            "All",
            "enrollment",
            None,
            "monthly",
            "1000.00",
            &[
                ("actual", 50),
                ("actual", 80),
                ("actual", 100),
                ("balance", 50),
            ],
        ),
        input(
            "Dept A",
            "department",
            Some("A"),
            "term",
            "400",
            &[("actual", 100)],
        ),
        input(
            "b1",
            "account",
            Some("b1"),
            "monthly",
            "1000",
            &[("actual", 50)],
        ),
        input(
            "c1",
            "account",
            Some("c1"),
            "monthly",
            "1000",
            &[("actual", 50), ("forecast", 100)],
        ),
    ];
    b.map(|i| admin.create_budget(&i).unwrap().budget.id)
}

#[test]
fn budget_figures_are_the_hand_computed_ones() {
    let f = Fixture::new();
    let [all, dept_a, b1, c1] = budgets(&f);
    let list = f.admin().budgets().unwrap();
    assert_eq!(list.len(), 4);
    let st = &list[0];
    assert_eq!(st.budget.id, all);
    assert_eq!(st.actual, Money(90_000));
    assert_eq!(st.used_tenths_percent, 900);
    assert_eq!((st.from, st.to), (day("2025-03-01"), day("2025-03-31")));
    let bal = st.balance.unwrap();
    assert_eq!((bal.left, bal.total), (Money(90_000), Money(200_000)));
    assert_eq!(
        st.crossed,
        vec![
            th(Basis::Actual, 50),
            th(Basis::Actual, 80),
            th(Basis::Balance, 50)
        ]
    );
    let st = &list[1];
    assert_eq!(st.budget.id, dept_a);
    assert_eq!(st.scope_name.as_deref(), Some("A"));
    assert_eq!(st.actual, Money(50_000));
    assert_eq!(st.used_tenths_percent, 1250);
    assert_eq!((st.from, st.to), (day("2025-01-01"), day("2027-12-31")));
    assert_eq!(st.balance, None);
    assert_eq!(st.crossed, vec![th(Basis::Actual, 100)]);
    let st = &list[2];
    assert_eq!(
        (st.budget.id, st.actual, st.used_tenths_percent),
        (b1, Money(50_000), 500)
    );
    assert_eq!(
        st.crossed,
        vec![th(Basis::Actual, 50)],
        "50% exactly is crossed"
    );
    let st = &list[3];
    assert_eq!((st.budget.id, st.actual), (c1, Money(10_000)));
    assert!(st.crossed.is_empty());
    // The enterprise figure is the statement's.
    let stmt = f
        .admin()
        .enterprise()
        .unwrap()
        .statement("202503".parse().unwrap())
        .unwrap();
    assert_eq!(
        list[0].actual,
        stmt.total_usage
            .checked_add(stmt.marketplace_charges)
            .unwrap()
    );
}

#[test]
fn each_threshold_fires_once_per_period_across_evaluations_and_a_restart() {
    let f = Fixture::new();
    let [all, dept_a, b1, _] = budgets(&f);
    let fired = f.app.evaluate_notifications(&n()).unwrap();
    let mut keys: Vec<String> = fired.iter().map(|e| e.key.clone()).collect();
    keys.sort();
    let mut want = vec![
        format!("budget:{all}:actual:50:202503"),
        format!("budget:{all}:actual:80:202503"),
        format!("budget:{all}:balance:50:term"),
        format!("budget:{dept_a}:actual:100:term"),
        format!("budget:{b1}:actual:50:202503"),
    ];
    want.sort();
    assert_eq!(keys, want);
    assert!(fired.iter().all(|e| e.kind == EventKind::Alert));
    let payload: serde_json::Value = serde_json::from_str(
        &fired
            .iter()
            .find(|e| e.key.ends_with(":actual:80:202503"))
            .unwrap()
            .payload,
    )
    .unwrap();
    assert_eq!(payload["actual"], "900.00");
    assert_eq!(payload["budget"]["amount"], "1000.00");
    assert_eq!(payload["threshold"]["percent"], 80);
    assert_eq!(payload["period"], "202503");
    assert_eq!(payload["currency"], "USD");
    assert_eq!(payload["balance"]["left"], "900.00");
    let deliveries = f.store.deliveries(&n(), 1000).unwrap().len();

    // Again: nothing new.
    assert!(f.app.evaluate_notifications(&n()).unwrap().is_empty());
    // A restart: the same file opened again by a new process's layer.
    let path = f.dir.path().join("t.db");
    let (again, store) = app_on(&path, &f.clock);
    assert!(again.evaluate_notifications(&n()).unwrap().is_empty());
    assert_eq!(store.deliveries(&n(), 1000).unwrap().len(), deliveries);
    assert_eq!(store.events(&n(), 1000).unwrap().len(), 5);

    // April: the monthly thresholds start over; b1 crosses 50% again.
    f.clock.set_millis(common::noon("2025-04-10"));
    assert!(again.evaluate_notifications(&n()).unwrap().is_empty());
    ingest_ok(&*store, &[row("a1", fixture::G3, "2025-04-02", "c", "600")]);
    let fired = again.evaluate_notifications(&n()).unwrap();
    let keys: Vec<&str> = fired.iter().map(|e| e.key.as_str()).collect();
    // The enrollment's April is 600.00 of 1,000.00 too; the balance (300.00
    // left of 2,000.00) fired for the term already.
    assert_eq!(
        keys,
        vec![
            format!("budget:{all}:actual:50:202504"),
            format!("budget:{b1}:actual:50:202504"),
        ]
    );
    assert!(again.evaluate_notifications(&n()).unwrap().is_empty());
}

#[test]
fn alerts_reach_channels_and_the_people_who_may_see_them() {
    let f = Fixture::new();
    let a = f.admin();
    let admin = a.admin().unwrap();
    let hook = admin
        .add_channel(&ChannelInput {
            kind: "webhook".into(),
            address: "https://hooks.example.com/mb?x=1".into(),
            events: vec!["alert".into()],
        })
        .unwrap();
    let secret = hook
        .secret
        .clone()
        .expect("a webhook's secret is shown once");
    assert!(secret.starts_with("whsec_") && secret.len() == 6 + 64);
    // Derived, not stored: the same every time for the channel.
    let derived = f.app.webhook_secret(&hook.channel).unwrap();
    assert_eq!(secret, derived);
    let mail = admin
        .add_channel(&ChannelInput {
            kind: "email".into(),
            address: "Finance@Example.com".into(),
            events: vec!["alert".into(), "watermark".into()],
        })
        .unwrap();
    assert!(mail.secret.is_none());
    assert_ne!(f.app.webhook_secret(&mail.channel).unwrap(), derived);
    let [all, dept_a, b1, _] = budgets(&f);
    f.app.evaluate_notifications(&n()).unwrap();
    let events = f.store.events(&n(), 100).unwrap();
    let ds = f.store.deliveries(&n(), 1000).unwrap();
    let to = |budget: i64| -> Vec<String> {
        let mut v: Vec<String> = ds
            .iter()
            .filter(|d| {
                events
                    .iter()
                    .any(|e| e.id == d.event_id && e.budget == Some(budget))
            })
            .map(|d| match &d.target {
                DeliveryTarget::Email(a) => a.clone(),
                DeliveryTarget::Webhook { channel } => format!("webhook {channel}"),
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let hook_id = format!("webhook {}", hook.channel.id);
    let everyone_ent = [
        "admin@example.com",
        "finance@example.com",
        "reader@example.com",
    ];
    let mut want: Vec<String> = everyone_ent.iter().map(|s| s.to_string()).collect();
    want.push(hook_id.clone());
    want.sort();
    assert_eq!(to(all), want);
    assert_eq!(to(b1), want, "the account owner may not see charges");
    let mut want_a = want.clone();
    want_a.push("dept-a@example.com".into());
    want_a.sort();
    assert_eq!(to(dept_a), want_a);
    // One delivery per recipient and event, pending, with readable text.
    let d = ds
        .iter()
        .find(|d| d.event_key == format!("budget:{all}:actual:80:202503"))
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Pending);
    assert!(
        d.subject.contains("All") && d.subject.contains("80%"),
        "{}",
        d.subject
    );
    assert!(d.text.contains("900.00 USD of 1000.00 USD"), "{}", d.text);
    let per_event = ds.iter().filter(|x| x.event_id == d.event_id).count();
    assert_eq!(per_event, 4);

    // Account owners see charges now: the next alert reaches b1's owner.
    f.app
        .local_operator()
        .set_visibility(&n(), None, Some(true))
        .unwrap();
    f.clock.set_millis(common::noon("2025-04-10"));
    ingest_ok(
        &*f.store,
        &[row("a1", fixture::G3, "2025-04-02", "c", "600")],
    );
    f.app.evaluate_notifications(&n()).unwrap();
    let ds = f.store.deliveries(&n(), 1000).unwrap();
    assert!(ds
        .iter()
        .any(|d| d.event_key == format!("budget:{b1}:actual:50:202504")
            && d.target == DeliveryTarget::Email("b1-owner@example.com".into())));
    assert!(!ds
        .iter()
        .any(|d| d.event_key == format!("budget:{all}:actual:50:202504")
            && d.target == DeliveryTarget::Email("b1-owner@example.com".into())));
}

#[test]
fn data_events_reach_only_channels_that_existed_before_the_change() {
    let f = Fixture::new();
    let op = f.app.local_operator();
    op.set_watermark(&n(), day("2025-03-03")).unwrap();
    op.close_period(&n(), "202501".parse().unwrap()).unwrap();
    let a = f.admin();
    let admin = a.admin().unwrap();
    let c = admin
        .add_channel(&ChannelInput {
            kind: "webhook".into(),
            address: "http://127.0.0.1:9/hook".into(),
            events: vec!["watermark".into(), "period-closed".into()],
        })
        .unwrap()
        .channel;
    assert_eq!(
        c.events,
        vec![EventKind::PeriodClosed, EventKind::Watermark]
    );
    // History was recorded when the channel was added, for nobody.
    assert!(f.app.evaluate_notifications(&n()).unwrap().is_empty());
    assert!(f.store.deliveries(&n(), 100).unwrap().is_empty());
    // New changes reach it, once.
    op.set_watermark(&n(), day("2025-03-04")).unwrap();
    op.close_period(&n(), "202502".parse().unwrap()).unwrap();
    let fired = f.app.evaluate_notifications(&n()).unwrap();
    let keys: Vec<&str> = fired.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, vec!["closed:202502", "watermark:2025-03-04"]);
    assert!(f.app.evaluate_notifications(&n()).unwrap().is_empty());
    let ds = f.store.deliveries(&n(), 100).unwrap();
    assert_eq!(ds.len(), 2);
    assert!(ds
        .iter()
        .all(|d| d.target == DeliveryTarget::Webhook { channel: c.id }));
}

#[test]
fn roles_see_only_their_budgets_and_never_hidden_figures() {
    let f = Fixture::new();
    let [all, dept_a, b1, c1] = budgets(&f);
    let ids =
        |a: &Access| -> Vec<i64> { a.budgets().unwrap().iter().map(|s| s.budget.id).collect() };
    // Read-only enterprise administrators see all, change nothing.
    let reader = f.role(Scope::Enrollment, true);
    assert_eq!(ids(&reader), vec![all, dept_a, b1, c1]);
    assert!(matches!(reader.admin(), Err(AppError::Forbidden(_))));
    assert!(reader.enterprise().unwrap().channels().is_ok());
    // A department administrator: its department's budgets (and its accounts').
    let da = f.role(f.dept("A"), false);
    assert_eq!(ids(&da), vec![dept_a]);
    assert!(matches!(da.budget(all), Err(AppError::NotFound(_))));
    assert_eq!(da.budget(dept_a).unwrap().actual, Money(50_000));
    assert!(da.admin().is_err());
    assert!(da.enterprise().is_err(), "no channels or delivery log");
    let db = f.role(f.dept("B"), false);
    assert_eq!(ids(&db), vec![b1]);
    // An account owner whose charges are hidden sees no budget at all.
    let owner = f.role(f.account("b1"), false);
    assert!(matches!(owner.budgets(), Err(AppError::Forbidden(_))));
    assert!(matches!(owner.budget(b1), Err(AppError::Forbidden(_))));
    f.app.evaluate_notifications(&n()).unwrap();
    assert!(owner.events(100).unwrap().is_empty(), "no alert figures");
    // Events: the department admin sees its budget's alert only.
    let evs = da.events(100).unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].budget, Some(dept_a));
    assert_eq!(f.admin().events(100).unwrap().len(), 5);
    f.app
        .local_operator()
        .set_visibility(&n(), None, Some(true))
        .unwrap();
    let owner = f.role(f.account("b1"), false);
    assert_eq!(ids(&owner), vec![b1]);
    let c1_owner = f.role(f.account("c1"), false);
    assert_eq!(ids(&c1_owner), vec![c1]);
}

#[test]
fn bad_requests_are_refused_with_reasons() {
    let f = Fixture::new();
    let a = f.admin();
    let admin = a.admin().unwrap();
    let refused = |i: BudgetInput, says: &str| match admin.create_budget(&i) {
        Err(AppError::Invalid(m)) => assert!(m.contains(says), "{m:?} lacks {says:?}"),
        Err(AppError::NotFound(m)) => assert!(m.contains(says), "{m:?} lacks {says:?}"),
        other => panic!("{says}: {other:?}"),
    };
    let ok = input("x", "enrollment", None, "monthly", "10", &[("actual", 80)]);
    refused(
        BudgetInput {
            name: " ".into(),
            ..ok.clone()
        },
        "name",
    );
    refused(
        BudgetInput {
            name: "n".repeat(101),
            ..ok.clone()
        },
        "longer",
    );
    refused(
        BudgetInput {
            amount: "0".into(),
            ..ok.clone()
        },
        "more than 0",
    );
    refused(
        BudgetInput {
            amount: "-5".into(),
            ..ok.clone()
        },
        "more than 0",
    );
    refused(
        BudgetInput {
            amount: "1.005".into(),
            ..ok.clone()
        },
        "2 decimal places",
    );
    refused(
        BudgetInput {
            amount: "1000000000000.01".into(),
            ..ok.clone()
        },
        "at most",
    );
    refused(
        BudgetInput {
            cadence: "weekly".into(),
            ..ok.clone()
        },
        "cadence",
    );
    refused(
        BudgetInput {
            thresholds: vec![],
            ..ok.clone()
        },
        "1 to 10",
    );
    refused(
        BudgetInput {
            thresholds: (1..=11).map(|p| ("actual".to_string(), p)).collect(),
            ..ok.clone()
        },
        "1 to 10",
    );
    refused(
        BudgetInput {
            thresholds: vec![("actual".into(), 0)],
            ..ok.clone()
        },
        "1 to 1000",
    );
    refused(
        BudgetInput {
            thresholds: vec![("actual".into(), 1001)],
            ..ok.clone()
        },
        "1 to 1000",
    );
    refused(
        BudgetInput {
            thresholds: vec![("spend".into(), 10)],
            ..ok.clone()
        },
        "basis",
    );
    refused(
        BudgetInput {
            thresholds: vec![("actual".into(), 10), ("actual".into(), 10)],
            ..ok.clone()
        },
        "twice",
    );
    refused(
        input(
            "x",
            "department",
            Some("A"),
            "monthly",
            "10",
            &[("balance", 10)],
        ),
        "whole enrollment",
    );
    refused(
        input(
            "x",
            "department",
            Some("Z"),
            "monthly",
            "10",
            &[("actual", 10)],
        ),
        "no department",
    );
    refused(
        input("x", "galaxy", None, "monthly", "10", &[("actual", 10)]),
        "scope",
    );
    let bad_channel = |kind: &str, address: &str, events: &[&str], says: &str| match admin
        .add_channel(&ChannelInput {
            kind: kind.into(),
            address: address.into(),
            events: events.iter().map(|s| s.to_string()).collect(),
        }) {
        Err(AppError::Invalid(m)) => assert!(m.contains(says), "{m:?} lacks {says:?}"),
        other => panic!("{says}: {other:?}"),
    };
    bad_channel("webhook", "ftp://example.com/x", &["alert"], "https://");
    bad_channel(
        "webhook",
        "https://user:pw@example.com/x",
        &["alert"],
        "password",
    );
    bad_channel("webhook", "not a url", &["alert"], "not a URL");
    bad_channel(
        "webhook",
        &format!("https://example.com/{}", "a".repeat(2048)),
        &["alert"],
        "longer",
    );
    bad_channel("email", "nobody", &["alert"], "e-mail");
    bad_channel("sms", "+15550100", &["alert"], "email or webhook");
    bad_channel("email", "a@example.com", &[], "1 to 3");
    bad_channel("email", "a@example.com", &["alert", "alert"], "twice");
    bad_channel(
        "email",
        "a@example.com",
        &["payday"],
        "alert, period-closed",
    );
    // Limits per enrollment.
    for i in 0..20 {
        admin
            .add_channel(&ChannelInput {
                kind: "email".into(),
                address: format!("c{i}@example.com"),
                events: vec!["alert".into()],
            })
            .unwrap();
    }
    assert!(matches!(
        admin.add_channel(&ChannelInput {
            kind: "email".into(),
            address: "one-more@example.com".into(),
            events: vec!["alert".into()],
        }),
        Err(AppError::Conflict(_))
    ));
    for _ in 0..100 {
        admin.create_budget(&ok).unwrap();
    }
    assert!(matches!(
        admin.create_budget(&ok),
        Err(AppError::Conflict(_))
    ));
    // Unknown ids.
    assert!(matches!(
        admin.delete_budget(9_999),
        Err(AppError::NotFound(_))
    ));
    assert!(matches!(
        admin.remove_channel(9_999),
        Err(AppError::NotFound(_))
    ));
    assert_eq!(f.app.clock().today(), day("2025-03-15"));
}

#[test]
fn every_enrollment_is_evaluated_once() {
    let f = Fixture::new();
    budgets(&f);
    assert_eq!(f.app.evaluate_all_notifications().unwrap().len(), 5);
    assert!(f.app.evaluate_all_notifications().unwrap().is_empty());
    assert!(f.app.evaluate_notifications(&n()).unwrap().is_empty());
}

/// Forecast thresholds, by hand: account c1 used 100.00 on 2025-03-03, the
/// last day of usage (no watermark), and nothing in the 29 days before. The
/// burn is 100.00 / 30 = 3.33 a day (half-even), 28 days of March are left:
/// 100.00 + 28 × 3.33 = 193.24 expected.
#[test]
fn forecast_thresholds_fire_on_the_projection() {
    let f = Fixture::new();
    let a = f.admin();
    let admin = a.admin().unwrap();
    let st = admin
        .create_budget(&input(
            "c1 forecast",
            "account",
            Some("c1"),
            "monthly",
            "190.00",
            &[("forecast", 100), ("forecast", 102), ("actual", 100)],
        ))
        .unwrap();
    assert_eq!(st.actual, Money(10_000));
    assert_eq!(st.forecast, Some(Money(19_324)));
    assert_eq!(st.as_of, Some(day("2025-03-03")));
    assert_eq!(st.crossed, vec![th(Basis::Forecast, 100)]);
    let fired = f.app.evaluate_notifications(&n()).unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(
        fired[0].key,
        format!("budget:{}:forecast:100:202503", st.budget.id)
    );
    let payload: serde_json::Value = serde_json::from_str(&fired[0].payload).unwrap();
    assert_eq!(payload["forecast"], "193.24");
    assert_eq!(payload["actual"], "100.00");
    assert_eq!(payload["asOf"], "2025-03-03");
    let text = &f.store.deliveries(&n(), 10).unwrap()[0].text;
    assert!(
        text.contains("193.24 USD expected, budget 190.00 USD"),
        "{text}"
    );
}
