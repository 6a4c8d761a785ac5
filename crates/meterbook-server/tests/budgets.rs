//! Budgets and notifications over the API, per role, through the real server
//! on a random port.
//!
//! The seed: enrollment E100 (USD, 2025) with departments A (account a1)
//! and B (account b1), one meter at 1.00 a unit, usage a1 300 and b1 500 in
//! March 2025; today is 2025-03-15. Enterprise March charges: 800.00.
//! E200 is another enrollment with its own administrator key.

use meterbook_app::App;
use meterbook_core::access::{Scope, Slot};
use meterbook_core::notify::NotifyStore;
use meterbook_core::store::MetadataStore;
use meterbook_testkit::seed::{self, day, num, period, KeySpec};
use meterbook_testkit::{spawn, Resp, TestApp};
use serde_json::{json, Value};
use std::sync::Arc;

const N: &str = "E100";
const G1: &str = "11111111-0000-4000-8000-000000000001";
const G2: &str = "11111111-0000-4000-8000-000000000002";

struct Keys {
    admin: String,
    reader: String,
    dept_a: String,
    owner_b1: String,
    other: String,
}

async fn start() -> (TestApp, Keys) {
    let noon = day("2025-03-15")
        .naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    spawn()
        .clock_at(noon)
        .seed(move |s, _| {
            let now = noon / 1000;
            seed::enrollment(s, N, "USD", day("2025-01-01"), day("2025-12-31"));
            seed::enrollment(s, "E200", "USD", day("2025-01-01"), day("2025-12-31"));
            s.upsert_hierarchy(
                &num(N),
                &seed::hierarchy(&[("A", "a1", G1), ("B", "b1", G2)]),
            )
            .unwrap();
            s.import_prices(
                &num(N),
                period("202503"),
                &seed::price_sheet(&[("VM01", "0", "0", "1")]),
            )
            .unwrap();
            seed::ingest_rows(
                s,
                N,
                &[
                    (
                        "r1".to_string(),
                        G1,
                        "2025-03-01".to_string(),
                        "VM01",
                        "300".to_string(),
                    ),
                    (
                        "r2".to_string(),
                        G2,
                        "2025-03-02".to_string(),
                        "VM01",
                        "500".to_string(),
                    ),
                ],
            );
            let h = s.hierarchy(&num(N)).unwrap();
            let a = h.department_by_name("A").unwrap().id;
            let b1 = h.account_by_name("b1").unwrap().id;
            // A read-only key in the secondary slot: the primary is the admin's.
            let key = |n: &str, scope, read_only| {
                seed::put_key(
                    s,
                    n,
                    scope,
                    KeySpec {
                        read_only,
                        slot: if read_only {
                            Slot::Secondary
                        } else {
                            Slot::Primary
                        },
                        ..KeySpec::valid_at(now)
                    },
                )
            };
            Keys {
                admin: key(N, Scope::Enrollment, false),
                reader: key(N, Scope::Enrollment, true),
                dept_a: key(N, Scope::Department(a), false),
                owner_b1: key(N, Scope::Account(b1), false),
                other: key("E200", Scope::Enrollment, false),
            }
        })
        .await
}

async fn get(app: &TestApp, key: &str, path: &str) -> Resp<String> {
    app.send_text(
        app.client
            .get(app.url(&format!("/v3/enrollments/{N}{path}")))
            .bearer_auth(key),
    )
    .await
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> Resp<String> {
    app.send_text(
        app.client
            .post(app.url(&format!("/v3/enrollments/{N}{path}")))
            .bearer_auth(key)
            .json(&body),
    )
    .await
}

async fn delete(app: &TestApp, key: &str, path: &str) -> Resp<String> {
    app.send_text(
        app.client
            .delete(app.url(&format!("/v3/enrollments/{N}{path}")))
            .bearer_auth(key),
    )
    .await
}

fn budget_body(name: &str, scope: &str, scope_name: Option<&str>) -> Value {
    let mut b = json!({
        "name": name,
        "scope": scope,
        "cadence": "monthly",
        "amount": "1000.00",
        "thresholds": [{"basis": "actual", "percent": 50}, {"basis": "forecast", "percent": 100}],
    });
    if let Some(n) = scope_name {
        b["scopeName"] = json!(n);
    }
    b
}

fn code(r: &Resp<String>) -> String {
    r.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn administrators_manage_budgets_and_roles_see_their_own() {
    let (app, k) = start().await;
    let r = post(
        &app,
        &k.admin,
        "/budgets",
        budget_body("All", "enrollment", None),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let all = r.json();
    assert_eq!(all["actual"], "800.00");
    assert_eq!(all["usedPercent"], "80.0");
    assert_eq!(all["amount"], "1000.00");
    assert_eq!(all["currency"], "USD");
    assert_eq!(all["billingPeriod"], "202503");
    // No purchases: nothing left, nothing bought (the overage is billed).
    assert_eq!(all["balance"], json!({"left": "0.00", "total": "0.00"}));
    assert_eq!(
        all["thresholds"][0],
        json!({"basis": "actual", "percent": 50, "crossed": true})
    );
    let r = post(
        &app,
        &k.admin,
        "/budgets",
        budget_body("Dept A", "department", Some("A")),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let dept = r.json();
    assert_eq!(dept["actual"], "300.00");
    assert_eq!(dept["scopeName"], "A");
    assert_eq!(dept["balance"], Value::Null);
    let r = post(
        &app,
        &k.admin,
        "/budgets",
        budget_body("b1", "account", Some("b1")),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let b1 = r.json();
    assert_eq!(b1["actual"], "500.00");

    let ids = |r: &Resp<String>| -> Vec<i64> {
        r.json()["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_i64().unwrap())
            .collect()
    };
    let (all_id, dept_id, b1_id) = (
        all["id"].as_i64().unwrap(),
        dept["id"].as_i64().unwrap(),
        b1["id"].as_i64().unwrap(),
    );
    let r = get(&app, &k.admin, "/budgets").await;
    assert_eq!(ids(&r), vec![all_id, dept_id, b1_id]);
    let r = get(&app, &k.reader, "/budgets").await;
    assert_eq!(ids(&r), vec![all_id, dept_id, b1_id]);
    let r = get(&app, &k.reader, &format!("/budgets/{dept_id}")).await;
    assert_eq!(
        (r.status, r.json()["actual"].clone()),
        (200, json!("300.00"))
    );
    // Read-only administrators and the others manage nothing.
    for key in [&k.reader, &k.dept_a, &k.owner_b1] {
        let r = post(&app, key, "/budgets", budget_body("x", "enrollment", None)).await;
        assert_eq!(r.status, 403, "{}", r.body);
        let r = delete(&app, key, &format!("/budgets/{all_id}")).await;
        assert_eq!(r.status, 403, "{}", r.body);
    }
    // Charges hidden from department admins and account owners: no budgets.
    for key in [&k.dept_a, &k.owner_b1] {
        let r = get(&app, key, "/budgets").await;
        assert_eq!(r.status, 403, "{}", r.body);
        let r = get(&app, key, &format!("/budgets/{dept_id}")).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(!r.body.contains("300.00"));
    }
    // Shown: each sees the budgets within reach only.
    app.blocking(|s| {
        s.set_visibility(
            &num(N),
            meterbook_core::enrollment::ChargeVisibility {
                department_admins_view_charges: true,
                account_owners_view_charges: true,
            },
        )
        .unwrap()
    })
    .await;
    assert_eq!(ids(&get(&app, &k.dept_a, "/budgets").await), vec![dept_id]);
    assert_eq!(ids(&get(&app, &k.owner_b1, "/budgets").await), vec![b1_id]);
    let r = get(&app, &k.dept_a, &format!("/budgets/{all_id}")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Another enrollment's key reaches nothing here.
    let r = get(&app, &k.other, "/budgets").await;
    assert!(matches!(r.status, 403 | 404), "{}", r.status);

    // Delete, then it is gone.
    let r = delete(&app, &k.admin, &format!("/budgets/{b1_id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = delete(&app, &k.admin, &format!("/budgets/{b1_id}")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        get(&app, &k.admin, &format!("/budgets/{b1_id}"))
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_400_or_404_never_500() {
    let (app, k) = start().await;
    let cases = [
        json!({"name": "x"}),
        json!({"name": "x", "scope": "enrollment", "cadence": "monthly", "amount": 5, "thresholds": [{"basis": "actual", "percent": 5}]}),
        json!({"name": "x", "scope": "enrollment", "cadence": "monthly", "amount": "5", "thresholds": [{"basis": "actual", "percent": 5}], "extra": 1}),
        json!({"name": "x", "scope": "enrollment", "cadence": "monthly", "amount": "5", "thresholds": []}),
        json!({"name": "x", "scope": "enrollment", "cadence": "monthly", "amount": "5.001", "thresholds": [{"basis": "actual", "percent": 5}]}),
        json!({"name": "x", "scope": "enrollment", "cadence": "yearly", "amount": "5", "thresholds": [{"basis": "actual", "percent": 5}]}),
        json!({"name": "x", "scope": "department", "scopeName": "A", "cadence": "monthly", "amount": "5", "thresholds": [{"basis": "balance", "percent": 5}]}),
        json!({"name": "x", "scope": "enrollment", "cadence": "monthly", "amount": "5", "thresholds": [{"basis": "actual", "percent": 99999999999i64}]}),
        json!({"name": "\u{0}", "scope": "enrollment", "cadence": "monthly", "amount": "5", "thresholds": [{"basis": "actual", "percent": 5}]}),
        json!([1, 2]),
    ];
    for body in cases {
        let r = post(&app, &k.admin, "/budgets", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(!code(&r).is_empty(), "{}", r.body);
    }
    let r = post(&app, &k.admin, "/budgets", json!({"name": "x", "scope": "department", "scopeName": "Z", "cadence": "monthly", "amount": "5", "thresholds": [{"basis": "actual", "percent": 5}]})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    for path in [
        "/budgets/abc",
        "/budgets/99999999999999999999999",
        "/notifications/channels/x",
    ] {
        let r = get(&app, &k.admin, path).await;
        assert!(
            matches!(r.status, 400 | 404 | 405),
            "{path}: {} {}",
            r.status,
            r.body
        );
    }
    for path in ["/budgets/0", "/budgets/-3", "/budgets/424242"] {
        let r = get(&app, &k.admin, path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    let r = delete(&app, &k.admin, "/notifications/channels/424242").await;
    assert_eq!(r.status, 404, "{}", r.body);
    for body in [
        json!({"kind": "webhook", "address": "ftp://x.example/", "events": ["alert"]}),
        json!({"kind": "webhook", "address": "https://u:p@x.example/", "events": ["alert"]}),
        json!({"kind": "email", "address": "nobody", "events": ["alert"]}),
        json!({"kind": "pager", "address": "x@example.com", "events": ["alert"]}),
        json!({"kind": "email", "address": "x@example.com", "events": []}),
        json!({"kind": "email", "address": "x@example.com", "events": ["alert", "alert"]}),
        json!({"kind": "email", "address": "x@example.com", "events": ["lunch"]}),
        json!({"kind": "email", "address": "x@example.com"}),
    ] {
        let r = post(&app, &k.admin, "/notifications/channels", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    for q in ["?limit=0", "?limit=501", "?limit=x"] {
        let r = get(&app, &k.admin, &format!("/notifications/events{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn channels_events_and_the_delivery_log() {
    let (app, k) = start().await;
    let r = post(
        &app,
        &k.admin,
        "/notifications/channels",
        json!({"kind": "webhook", "address": "https://hooks.example.com/mb", "events": ["alert", "watermark"]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let hook = r.json();
    let secret = hook["signingSecret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 70,
        "{secret}"
    );
    assert_eq!(hook["events"], json!(["alert", "watermark"]));
    let r = post(
        &app,
        &k.admin,
        "/notifications/channels",
        json!({"kind": "email", "address": "finance@example.com", "events": ["period-closed"]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["signingSecret"], Value::Null);
    // The list never shows the secret.
    let r = get(&app, &k.reader, "/notifications/channels").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 2);
    assert!(!r.body.contains(secret) && !r.body.contains("whsec_"));
    for key in [&k.dept_a, &k.owner_b1] {
        assert_eq!(get(&app, key, "/notifications/channels").await.status, 403);
        assert_eq!(
            get(&app, key, "/notifications/deliveries").await.status,
            403
        );
    }
    assert_eq!(
        post(
            &app,
            &k.reader,
            "/notifications/channels",
            json!({"kind": "email", "address": "x@example.com", "events": ["alert"]})
        )
        .await
        .status,
        403
    );

    let r = post(
        &app,
        &k.admin,
        "/budgets",
        budget_body("All", "enrollment", None),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let budget_id = r.json()["id"].as_i64().unwrap();
    // The evaluation (a background task of `serve`; here run directly on the same store).
    let (store, clock) = (app.store.clone(), app.clock.clone());
    let fired = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let eval = App::new(
            store,
            Arc::new(meterbook_jobs::DirReportFiles::new(dir.path().join("r")).unwrap()),
            meterbook_jobs::JobSettings::default(),
            Arc::new(clock),
        );
        let first = eval.evaluate_notifications(&num(N)).unwrap();
        let again = eval.evaluate_notifications(&num(N)).unwrap();
        (first.len(), again.len())
    })
    .await
    .unwrap();
    // Actual 800.00 is over 50% of 1,000.00; the forecast is over 100%:
    // 800.00 by 2025-03-02 at 800.00 / 30 = 26.67 a day (half-even) for the
    // 29 days left is 800.00 + 773.43 = 1,573.43. Each fires once.
    assert_eq!(fired, (2, 0));
    let r = get(&app, &k.admin, "/notifications/events").await;
    let events = r.json()["value"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2, "{}", r.body);
    assert_eq!(
        events[1]["key"],
        format!("budget:{budget_id}:actual:50:202503")
    );
    assert_eq!(
        events[0]["key"],
        format!("budget:{budget_id}:forecast:100:202503")
    );
    assert_eq!(events[0]["payload"]["actual"], "800.00");
    assert_eq!(events[0]["payload"]["forecast"], "1573.43");
    // Charges hidden: the department admin sees no alert.
    let r = get(&app, &k.dept_a, "/notifications/events").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["value"], json!([]));
    let r = get(&app, &k.admin, "/notifications/deliveries?limit=10").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ds = r.json()["value"].as_array().unwrap().clone();
    assert_eq!(ds.len(), 2, "the webhook; no portal users: {}", r.body);
    assert_eq!(ds[0]["target"]["kind"], "webhook");
    assert_eq!(ds[0]["target"]["channelId"], hook["id"]);
    assert_eq!(ds[0]["status"], "pending");
    // Removing the channel gives its pending delivery up.
    let r = delete(
        &app,
        &k.admin,
        &format!("/notifications/channels/{}", hook["id"]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = app.blocking(|s| s.deliveries(&num(N), 1).unwrap()).await;
    assert_eq!(d[0].last_error.as_deref(), Some("channel removed"));
}
