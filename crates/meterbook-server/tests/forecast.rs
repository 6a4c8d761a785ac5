//! The forecast through the real server: `GET /v3/enrollments/{n}/forecast`
//! for enterprise, department and account keys, refused where charges are
//! hidden or the key is another enrollment's, and the portal's Forecast tile.
//!
//! The seed (enrollment E100, USD, term 2025-01-01 to 2027-12-31; one meter
//! at 1.00 an hour; 1000.00 bought on 2025-01-01), served on 2025-02-10:
//!
//! | days | G1 (account a1, department A) | G3 (account b1, department B) | a day |
//! |---|---|---|---|
//! | 2025-01-01..19 | 10 h | – | 10.00 |
//! | 2025-01-20..31 | 10 h | 5 h | 15.00 |
//! | 2025-02-01..10 | 20 h | – | 20.00 |
//!
//! The figures below are worked by hand in meterbook-app's tests/forecast.rs
//! (the same data): here they are checked as the API writes them.

use meterbook_core::access::Scope;
use meterbook_core::enrollment::ChargeVisibility;
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, MetadataStore};
use meterbook_core::users::Role;
use meterbook_core::Money;
use meterbook_server::portal::password;
use meterbook_sqlite::SqliteStore;
use meterbook_testkit::seed::{self, day, num, period, KeySpec};
use meterbook_testkit::{Clock, ManualClock, Resp, TestApp};
use serde_json::Value;

const N: &str = "E100";
const OTHER: &str = "E200";
const G1: &str = "11111111-0000-4000-8000-000000000001";
const G3: &str = "11111111-0000-4000-8000-000000000003";
const G9: &str = "99999999-0000-4000-8000-000000000009";
const PW: &str = "correct horse battery staple";
const ADMIN: &str = "admin@example.com";
const DEPT: &str = "dept@example.com";
const OWNER: &str = "owner@example.com";

struct Keys {
    ent: String,
    dept_a: String,
    acct_b1: String,
    other: String,
}

fn rows() -> Vec<(String, &'static str, String, &'static str, String)> {
    let mut out = Vec::new();
    let mut add = |sub: &'static str, from: &str, to: &str, q: &str| {
        let (mut d, to) = (day(from), day(to));
        while d <= to {
            out.push((
                format!("r{}", out.len()),
                sub,
                d.to_string(),
                "VM",
                q.into(),
            ));
            d = d.succ();
        }
    };
    add(G1, "2025-01-01", "2025-01-31", "10");
    add(G3, "2025-01-20", "2025-01-31", "5");
    add(G1, "2025-02-01", "2025-02-10", "20");
    out
}

fn seed_store(store: &SqliteStore, clock: &ManualClock) -> Keys {
    let (start, end) = (day("2025-01-01"), day("2027-12-31"));
    seed::enrollment(store, N, "USD", start, end);
    seed::enrollment(store, OTHER, "USD", start, end);
    store
        .upsert_hierarchy(
            &num(N),
            &seed::hierarchy(&[("A", "a1", G1), ("B", "b1", G3)]),
        )
        .unwrap();
    store
        .upsert_hierarchy(&num(OTHER), &seed::hierarchy(&[("X", "x1", G9)]))
        .unwrap();
    let sheet = seed::price_sheet(&[("VM", "0", "0", "1")]);
    for n in [N, OTHER] {
        for p in ["202501", "202502"] {
            store.import_prices(&num(n), period(p), &sheet).unwrap();
        }
    }
    store
        .add_entry(
            &num(N),
            EntryKind::Purchase,
            &CommitmentEntry {
                date: day("2025-01-01"),
                amount: Money(100_000),
                description: "commitment".into(),
            },
        )
        .unwrap();
    seed::ingest_rows(store, N, &rows());
    // Department admins see charges, account owners do not.
    store
        .set_visibility(
            &num(N),
            ChargeVisibility {
                department_admins_view_charges: true,
                account_owners_view_charges: false,
            },
        )
        .unwrap();
    let h = store.hierarchy(&num(N)).unwrap();
    let dept_a = Scope::Department(h.department_by_name("A").unwrap().id);
    let b1 = Scope::Account(h.account_by_name("b1").unwrap().id);
    let now = clock.now_unix();
    let spec = KeySpec::valid_at(now);
    let hash = password::hash(PW).unwrap();
    for (email, scope) in [(ADMIN, Scope::Enrollment), (DEPT, dept_a), (OWNER, b1)] {
        let role = Role {
            enrollment: num(N),
            scope,
            read_only: false,
        };
        seed::user(store, email, "", Some(&hash), now, &[role]);
    }
    Keys {
        ent: seed::put_key(store, N, Scope::Enrollment, spec),
        dept_a: seed::put_key(store, N, dept_a, spec),
        acct_b1: seed::put_key(store, N, b1, spec),
        other: seed::put_key(store, OTHER, Scope::Enrollment, spec),
    }
}

async fn spawn_app() -> (TestApp, Keys) {
    let noon = day("2025-02-10")
        .naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    meterbook_testkit::spawn()
        .no_redirects()
        .clock_at(noon)
        .seed(seed_store)
        .await
}

async fn get(app: &TestApp, key: &str, path: &str) -> Resp {
    app.send(
        app.client
            .get(app.url(path))
            .header("authorization", format!("bearer {key}")),
    )
    .await
}

/// The value of `"name":` in a JSON text, as written (money must be exact
/// decimal text, which a parse to f64 would hide).
fn raw(text: &str, name: &str) -> String {
    let at = text
        .find(&format!("\"{name}\":"))
        .unwrap_or_else(|| panic!("{name} in {text}"));
    let rest = &text[at + name.len() + 3..];
    let end = rest.find([',', '}']).expect("end of the value");
    rest[..end].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_forecast_by_hand() {
    let (app, keys) = spawn_app().await;
    let r = get(&app, &keys.ent, &format!("/v3/enrollments/{N}/forecast")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert!(r.header("etag").is_some());
    let text = r.text();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["enrollmentNumber"], N);
    assert_eq!(v["scope"], "enrollment");
    assert_eq!(v["horizon"], "period");
    assert_eq!(v["billingPeriodId"], "202502");
    assert_eq!(v["currencyCode"], "USD");
    assert_eq!(
        (v["startDate"].as_str(), v["endDate"].as_str()),
        (Some("2025-02-01"), Some("2025-02-28"))
    );
    assert_eq!(v["asOf"], "2025-02-10");
    assert_eq!(
        (v["daysLeft"].as_u64(), v["basisDays"].as_u64()),
        (Some(18), Some(30))
    );
    for (name, want) in [
        ("actual", "200.00"),
        ("projected", "475.94"),
        ("projectedLow", "421.94"),
        ("projectedHigh", "529.94"),
        ("dailyBurn", "15.33"),
        ("dailyLow", "12.33"),
        ("dailyHigh", "18.33"),
        ("balance", "430.00"),
        ("total", "1000.00"),
    ] {
        assert_eq!(raw(&text, name), want, "{name}");
    }
    let c = &v["commitment"];
    assert_eq!(c["runsOutOn"], "2025-03-11");
    assert_eq!(c["earliest"], "2025-03-06");
    assert_eq!(c["latest"], "2025-03-17");
    assert_eq!(c["alreadyUsed"], false);
    assert!(v["method"].as_str().unwrap().contains("last 30 days"));
    assert_eq!(v["usageCompleteThrough"], Value::Null);

    // The actual figure is balancesummary's: total usage + marketplace.
    let b = get(
        &app,
        &keys.ent,
        &format!("/v3/enrollments/{N}/balancesummary"),
    )
    .await;
    let bt = b.text();
    assert_eq!(raw(&bt, "totalUsage"), "200.00");
    assert_eq!(raw(&bt, "endingBalance"), raw(&text, "balance"));

    // The term: 570.00 so far, 1054 days left at 15.33: 570.00 + 16157.82.
    let r = get(
        &app,
        &keys.ent,
        &format!("/v3/enrollments/{N}/Forecast?Horizon=term"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.text();
    assert_eq!(raw(&t, "horizon"), "\"term\"");
    assert_eq!(
        (raw(&t, "actual"), raw(&t, "projected")),
        ("570.00".into(), "16727.82".into())
    );
    assert_eq!(raw(&t, "daysLeft"), "1054");

    // A bad horizon is a 400 with the JSON error shape.
    let r = get(
        &app,
        &keys.ent,
        &format!("/v3/enrollments/{N}/forecast?horizon=month"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("horizon"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn department_and_account_keys() {
    let (app, keys) = spawn_app().await;
    let r = get(&app, &keys.dept_a, &format!("/v3/enrollments/{N}/forecast")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["scope"], "department");
    assert_eq!(v["commitment"], Value::Null);
    for (name, want) in [
        ("actual", "200.00"),
        ("projected", "439.94"),
        ("projectedLow", "380.00"),
        ("projectedHigh", "500.06"),
        ("dailyBurn", "13.33"),
    ] {
        assert_eq!(raw(&text, name), want, "{name}");
    }
    // Account owners may not see charges in this enrollment: 403, JSON.
    let r = get(
        &app,
        &keys.acct_b1,
        &format!("/v3/enrollments/{N}/forecast"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "Forbidden");
    // Once they may, b1's own figures: nothing in February, 2.00 a day.
    app.blocking(|s| {
        s.set_visibility(
            &num(N),
            ChargeVisibility {
                department_admins_view_charges: true,
                account_owners_view_charges: true,
            },
        )
        .unwrap()
    })
    .await;
    let r = get(
        &app,
        &keys.acct_b1,
        &format!("/v3/enrollments/{N}/forecast"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_eq!(raw(&text, "scope"), "\"account\"");
    assert_eq!(
        (
            raw(&text, "actual"),
            raw(&text, "projected"),
            raw(&text, "projectedHigh")
        ),
        ("0.00".into(), "36.00".into(), "72.00".into())
    );
    assert_eq!(raw(&text, "commitment"), "null");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_enrollments_and_no_key() {
    let (app, keys) = spawn_app().await;
    // A key of E200 asking for E100: 403, as every v3 endpoint answers.
    let r = get(&app, &keys.other, &format!("/v3/enrollments/{N}/forecast")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let b = get(
        &app,
        &keys.other,
        &format!("/v3/enrollments/{N}/balancesummary"),
    )
    .await;
    assert_eq!(b.status, r.status);
    // Its own enrollment has no usage: nothing so far, nothing projected.
    let r = get(
        &app,
        &keys.other,
        &format!("/v3/enrollments/{OTHER}/forecast"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_eq!(
        (raw(&text, "actual"), raw(&text, "projected")),
        ("0.00".into(), "0.00".into())
    );
    assert_eq!(raw(&text, "asOf"), "null");
    let r = app
        .send(
            app.client
                .get(app.url(&format!("/v3/enrollments/{N}/forecast"))),
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_the_endpoint() {
    let (app, _) = spawn_app().await;
    let r = app.send(app.client.get(app.url("/openapi.json"))).await;
    let v = r.json();
    let op = &v["paths"]["/v3/enrollments/{enrollmentNumber}/forecast"]["get"];
    assert!(op.is_object(), "{v}");
    let horizon = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "horizon")
        .expect("the horizon parameter");
    assert_eq!(
        horizon["schema"]["enum"],
        serde_json::json!(["period", "term"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_the_forecast_tile() {
    let (app, _) = spawn_app().await;
    let page = app
        .sign_in(ADMIN, PW)
        .await
        .get(&format!("/portal/e/{N}"))
        .await;
    assert_eq!(page.status, 200);
    let html = page.body;
    let tile = &html[html
        .find("aria-label=\"Forecast\"")
        .expect("the Forecast tile")..];
    let tile = &tile[..tile.find("</section>").unwrap()];
    for want in [
        "475.94 USD",
        "expected by 28 Feb 2025: between 421.94 USD and 529.94 USD",
        "200.00 USD so far through 10 Feb 2025; 15.33 USD a day (12.33 USD to 18.33 USD) over the last 30 days, 18 days left.",
        "The commitment runs out around 11 Mar 2025 (between 6 Mar 2025 and 17 Mar 2025).",
        "last 30 days",
    ] {
        assert!(tile.contains(want), "{want} in {tile}");
    }
    // A department admin: their figures, no commitment.
    let page = app
        .sign_in(DEPT, PW)
        .await
        .get(&format!("/portal/e/{N}"))
        .await;
    let html = page.body;
    let tile = &html[html
        .find("aria-label=\"Forecast\"")
        .expect("the Forecast tile")..];
    let tile = &tile[..tile.find("</section>").unwrap()];
    assert!(tile.contains("439.94 USD"), "{tile}");
    assert!(!tile.contains("commitment"), "{tile}");
    // An account owner who may not see charges: no tile at all.
    let page = app
        .sign_in(OWNER, PW)
        .await
        .get(&format!("/portal/e/{N}"))
        .await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("aria-label=\"Forecast\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etag_moves_with_the_day() {
    let (app, keys) = spawn_app().await;
    let path = format!("/v3/enrollments/{N}/forecast");
    let r = get(&app, &keys.ent, &path).await;
    let etag = r.header("etag").expect("an ETag");
    let again = app
        .send(
            app.client
                .get(app.url(&path))
                .header("authorization", format!("bearer {}", keys.ent))
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(again.status, 304);
    // A forecast can change with the calendar alone (the current period, an
    // as-of day capped to today), so a day later the ETag is another one.
    app.advance(std::time::Duration::from_secs(86_400));
    let later = app
        .send(
            app.client
                .get(app.url(&path))
                .header("authorization", format!("bearer {}", keys.ent))
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(later.status, 200);
    assert_ne!(later.header("etag"), Some(etag));
}
