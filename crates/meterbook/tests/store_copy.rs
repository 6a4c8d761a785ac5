//! `meterbook store copy`: a demo deployment copied from the embedded file to
//! another file and to PostgreSQL + ClickHouse, then every report compared
//! byte for byte, keys and operator tokens made before the copy used on it,
//! and a change made to the copy afterwards found by `--verify-only`.

use meterbook_app::App;
use meterbook_core::hierarchy::HierarchyRow;
use meterbook_core::jobs::JobStore;
use meterbook_core::store::{MetadataStore, Store};
use meterbook_core::users::UserStore;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_meterbook");
const ENROLLMENT: &str = "8608480";

/// Runs the binary with `store` (global options) before `args`, never with
/// the caller's MB_* settings.
fn run(store: &[String], args: &[&str]) -> Output {
    Command::new(BIN)
        .args(store)
        .args(args)
        .env_remove("MB_DB")
        .env_remove("MB_STORE")
        .env_remove("MB_USAGE_STORE")
        .output()
        .expect("running meterbook")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A demo deployment with an API key and an operator token: returns the
/// source's options and the two secrets.
fn seed(dir: &Path, rows: u32) -> (Vec<String>, String, String) {
    let src = vec!["--db".to_string(), dir.join("src.db").display().to_string()];
    ok(run(
        &src,
        &["demo", "--no-serve", "--rows", &rows.to_string()],
    ));
    let key = ok(run(&src, &["keys", "create", "--enrollment", ENROLLMENT]));
    let token = ok(run(&src, &["operator-token", "create", "--name", "feed"]));
    // A second enrollment, so ids across enrollments matter too.
    ok(run(
        &src,
        &[
            "enrollment",
            "create",
            "--number",
            "7000001",
            "--name",
            "Second",
            "--currency",
            "EUR",
            "--start",
            "2026-01-01",
            "--end",
            "2026-12-31",
        ],
    ));
    // Through the store: a hierarchy in the second enrollment made between
    // two changes of the first (ids interleave), a subscription move, a
    // disabled user and the link-signing secret.
    let store = meterbook_sqlite::SqliteStore::open(dir.join("src.db")).unwrap();
    let n = meterbook_core::EnrollmentNumber::parse(ENROLLMENT).unwrap();
    let second = meterbook_core::EnrollmentNumber::parse("7000001").unwrap();
    let row = |dept: &str, acct: &str, guid: &str| HierarchyRow {
        line: 1,
        department_name: dept.into(),
        department_cost_center: "CC-1".into(),
        account_name: acct.into(),
        account_owner_email: "owner@example.com".into(),
        account_cost_center: "AC-1".into(),
        subscription_guid: guid.into(),
        subscription_name: format!("sub {guid}"),
    };
    store
        .upsert_hierarchy(
            &second,
            &[row(
                "Finance",
                "fin-1",
                "00000000-0000-4000-8000-000000000001",
            )],
        )
        .unwrap();
    store
        .upsert_hierarchy(
            &n,
            &[row(
                "Late Dept",
                "late-acct",
                "00000000-0000-4000-8000-000000000002",
            )],
        )
        .unwrap();
    store
        .upsert_hierarchy(
            &second,
            &[row("", "no-dept", "00000000-0000-4000-8000-000000000003")],
        )
        .unwrap();
    let h = store.hierarchy(&n).unwrap();
    let mut subs: Vec<_> = h.subscriptions.values().collect();
    subs.sort_by_key(|s| s.key);
    let moved = subs[0];
    let to = h
        .accounts
        .values()
        .filter(|a| a.id != moved.owners[0].1)
        .map(|a| a.name.clone())
        .min()
        .unwrap();
    let open = store
        .periods(&n)
        .unwrap()
        .into_iter()
        .find(|p| !p.closed)
        .unwrap()
        .period;
    store
        .move_subscription(&n, &moved.guid, &to, open.first_day().add_days(5))
        .unwrap();
    let users = store.users().unwrap();
    store
        .set_user_disabled(users[users.len() - 1].id, true)
        .unwrap();
    store
        .secret("download-link-hmac", b"the source's secret")
        .unwrap();
    (src, key.trim().to_string(), token.trim().to_string())
}

fn app_over(store: Arc<dyn Store>, dir: &Path) -> App {
    App::new(
        store,
        Arc::new(meterbook_jobs::DirReportFiles::new(dir.join("reports")).unwrap()),
        meterbook_jobs::JobSettings::default(),
        meterbook_core::clock::system(),
    )
}

/// Every monthly report of every period of the term, byte for byte.
fn reports_agree(src: &[String], dst: &[String], store: &dyn Store) {
    let n = meterbook_core::EnrollmentNumber::parse(ENROLLMENT).unwrap();
    let e = store.enrollment(&n).unwrap();
    let mut compared = 0;
    for p in e.first_period().through(e.last_period()) {
        let p = p.to_string();
        for kind in ["usage", "balance", "prices", "marketplace"] {
            let args = ["report", kind, "--enrollment", ENROLLMENT, "--period", &p];
            let (a, b) = (run(src, &args), run(dst, &args));
            assert_eq!(a.status.code(), b.status.code(), "{kind} {p}");
            assert!(a.stdout == b.stdout, "{kind} report of {p} differs");
            compared += a.stdout.len();
        }
    }
    assert!(
        compared > 100_000,
        "reports were compared ({compared} bytes)"
    );
}

/// Same departments, accounts and subscriptions, with the same ids and keys.
fn same_hierarchies(src: &Path, target: &dyn Store) {
    let source = meterbook_sqlite::SqliteStore::open(src).unwrap();
    for number in [ENROLLMENT, "7000001"] {
        let n = meterbook_core::EnrollmentNumber::parse(number).unwrap();
        let (a, b) = (source.hierarchy(&n).unwrap(), target.hierarchy(&n).unwrap());
        assert_eq!(a.departments, b.departments, "{number}");
        assert_eq!(a.accounts, b.accounts, "{number}");
        assert_eq!(a.subscriptions, b.subscriptions, "{number}");
        assert!(a.subscriptions.values().any(|s| s.owners.len() == 2) || number != ENROLLMENT);
    }
}

fn copied_credentials_work(target: Arc<dyn Store>, dir: &Path, key: &str, token: &str) {
    // The link-signing secret (and, where the source has one, the webhook
    // signing secret) as the source's.
    let secrets = target.secrets().unwrap();
    assert!(
        secrets.contains(&(
            "download-link-hmac".to_string(),
            b"the source's secret".to_vec()
        )),
        "{secrets:?}"
    );
    let users = target.users().unwrap();
    assert!(users.len() >= 2 && users[users.len() - 1].disabled);
    assert!(
        users.iter().any(|u| u.password_hash.is_some()),
        "hashes are copied"
    );
    let app = app_over(target, dir);
    let access = app
        .key(key)
        .expect("a key made before the copy works on it");
    assert_eq!(access.enrollment().number.as_str(), ENROLLMENT);
    assert!(
        app.key(&format!("{key}0")).is_err(),
        "a wrong secret is refused"
    );
    app.operator(token)
        .expect("an operator token made before the copy works on it");
}

#[test]
fn sqlite_to_sqlite_copies_everything_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (src, key, token) = seed(dir.path(), 3000);
    ok(run(
        &src,
        &[
            "exports",
            "add",
            "--enrollment",
            ENROLLMENT,
            "--name",
            "Finance",
            "--folder",
            "finance",
            "--schedule",
            "daily",
            "--format",
            "csv.gz",
        ],
    ));
    // A webhook channel beside the demo's e-mail one: its signing secret,
    // shown once, must still sign on the copy.
    let shown = {
        let source: Arc<dyn Store> =
            Arc::new(meterbook_sqlite::SqliteStore::open(dir.path().join("src.db")).unwrap());
        let app = app_over(source, dir.path());
        let a = app
            .local_operator()
            .enrollment(&meterbook_core::EnrollmentNumber::parse(ENROLLMENT).unwrap())
            .unwrap();
        a.admin()
            .unwrap()
            .add_channel(&meterbook_app::notifications::ChannelInput {
                kind: "webhook".into(),
                address: "https://hooks.example.com/meterbook".into(),
                events: vec!["alert".into()],
            })
            .unwrap()
            .secret
            .expect("shown once")
    };
    let dst_db = dir.path().join("dst.db");
    let dst = vec!["--db".to_string(), dst_db.display().to_string()];
    let from = format!("sqlite:{}", dir.path().join("src.db").display());
    let to = format!("sqlite:{}", dst_db.display());
    let out = ok(run(&[], &["store", "copy", "--from", &from, "--to", &to]));
    // Export schedules are copied (their runs are not).
    let list = |args: &[String]| {
        let out = ok(run(args, &["exports", "list", "--enrollment", ENROLLMENT]));
        out.lines()
            .map(|l| l.split("  last:").next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&dst), list(&src));
    // The demo's two and the one added here.
    assert_eq!(list(&dst).len(), 3);
    assert!(out.contains("verified:"), "{out}");
    assert!(out.contains("not copied: report jobs"), "{out}");
    let target = Arc::new(meterbook_sqlite::SqliteStore::open(&dst_db).unwrap());
    reports_agree(&src, &dst, &*target);
    same_hierarchies(&dir.path().join("src.db"), &*target);
    copied_credentials_work(target.clone(), dir.path(), &key, &token);
    // Budgets, channels and the alerts already fired are copied: the same
    // lists, the same webhook secret, and nothing fires again on the copy.
    for what in [&["budgets", "list"][..], &["notifications", "channels"][..]] {
        let mut args = what.to_vec();
        args.extend(["--enrollment", ENROLLMENT]);
        assert_eq!(ok(run(&dst, &args)), ok(run(&src, &args)), "{what:?}");
    }
    let again = run(
        &dst,
        &["notifications", "evaluate", "--enrollment", ENROLLMENT],
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("0 new event(s)"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    {
        use meterbook_core::notify::NotifyStore;
        let n = meterbook_core::EnrollmentNumber::parse(ENROLLMENT).unwrap();
        let hook = target
            .channels(&n)
            .unwrap()
            .into_iter()
            .find(|c| c.target.kind() == "webhook")
            .expect("the webhook channel is copied");
        let app = app_over(target.clone(), dir.path());
        assert_eq!(app.webhook_secret(&hook).unwrap(), shown);
    }

    // A second copy into the same target is refused and writes nothing.
    let again = run(&[], &["store", "copy", "--from", &from, "--to", &to]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds enrollment"));

    // A change to the copy is found, named by enrollment, period and figure.
    ok(run(
        &dst,
        &[
            "purchase",
            "add",
            "--enrollment",
            ENROLLMENT,
            "--date",
            "2026-11-15",
            "--amount",
            "1000",
            "--description",
            "after the copy",
        ],
    ));
    let v = run(
        &[],
        &[
            "store",
            "copy",
            "--verify-only",
            "--from",
            &from,
            "--to",
            &to,
        ],
    );
    assert_eq!(v.status.code(), Some(1), "a difference exits 1");
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(
        out.contains(&format!(
            "DIFF enrollment {ENROLLMENT} period 202611 new purchases"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "DIFF enrollment {ENROLLMENT} period 202611 balance"
        )),
        "{out}"
    );
    // Periods before the change still agree.
    assert!(!out.contains("period 202610 new purchases"), "{out}");
}

#[test]
fn sqlite_to_cluster_copies_everything_and_verifies() {
    let Some(urls) = meterbook_testkit::cluster::fresh("copy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (src, key, token) = seed(dir.path(), 3000);
    let from = format!("sqlite:{}", dir.path().join("src.db").display());
    let out = ok(run(
        &[],
        &[
            "store",
            "copy",
            "--from",
            &from,
            "--to",
            &urls.store,
            "--to-usage-store",
            &urls.usage_store,
        ],
    ));
    assert!(out.contains("verified:"), "{out}");
    let dst = vec![
        "--store".to_string(),
        urls.store.clone(),
        "--usage-store".to_string(),
        urls.usage_store.clone(),
    ];
    let facts = Arc::new(meterbook_clickhouse::ChFacts::open(&urls.usage_store).unwrap());
    let target = Arc::new(meterbook_postgres::PgStore::open(&urls.store, facts).unwrap());
    reports_agree(&src, &dst, &*target);
    same_hierarchies(&dir.path().join("src.db"), &*target);
    copied_credentials_work(target, dir.path(), &key, &token);
}
