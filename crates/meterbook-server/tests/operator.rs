//! The operator API through the real server on a random port: an enrollment
//! set up, fed and closed entirely over HTTP, then read with a customer key.

use meterbook_core::access::{OperatorStore, OperatorToken};
use meterbook_server::{keys, ServerSettings};

/// The shared harness, with an operator token.
struct TestApp {
    app: meterbook_testkit::TestApp,
    token: String,
}

impl std::ops::Deref for TestApp {
    type Target = meterbook_testkit::TestApp;
    fn deref(&self) -> &Self::Target {
        &self.app
    }
}

impl std::ops::DerefMut for TestApp {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.app
    }
}

async fn spawn_app() -> TestApp {
    spawn_app_with(ServerSettings::default()).await
}

async fn spawn_app_with(settings: ServerSettings) -> TestApp {
    let (app, token) = meterbook_testkit::spawn()
        .settings(settings)
        .seed(|store, _| {
            let k = keys::generate_with(keys::OPERATOR_PREFIX).unwrap();
            store
                .put_operator_token(&OperatorToken {
                    id: k.id.clone(),
                    name: "test".into(),
                    secret_hash: k.secret_hash,
                    created_at: 0,
                    disabled: false,
                })
                .unwrap();
            k.token
        })
        .await;
    TestApp { app, token }
}

impl TestApp {
    fn op(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/operator/enrollments{path}", self.base))
            .bearer_auth(&self.token)
    }
}

const HIERARCHY: &str = "DepartmentName,DepartmentCostCenter,AccountName,AccountOwnerEmail,AccountCostCenter,SubscriptionGuid,SubscriptionName\n\
Research,RD,lab,dana@x.example,RD-1,aaaaaaaa-0000-4000-8000-000000000001,prod\n";
const PRICES: &str = "MeterId,MeterName,MeterCategory,MeterSubCategory,MeterRegion,UnitOfMeasure,PartNumber,UnitPrice,IncludedQuantity,TierMinimumUnits,ChargesBilledSeparately,PublisherName,OfferName,PlanName\n\
vm,VM,Virtual Machines,D,EU,1 Hour,P1,0.5,0,0,false,,,\n";

fn usage_csv(n: usize, prefix: &str) -> String {
    let mut s =
        String::from("RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity,InstanceId\n");
    for i in 0..n {
        s.push_str(&format!(
            "{prefix}{i:07},aaaaaaaa-0000-4000-8000-000000000001,2025-01-{:02},vm,1.5,/subscriptions/aaaaaaaa-0000-4000-8000-000000000001/resourceGroups/rg/providers/Compute/virtualMachines/vm-{}\n",
            1 + i % 31,
            i % 100
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_tokens_are_required_and_separate_from_customer_keys() {
    let app = spawn_app().await;
    let url = format!("{}/operator/enrollments", app.base);
    let r = app
        .client
        .post(&url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MissingToken");
    let customer = keys::generate().unwrap();
    let r = app
        .client
        .post(&url)
        .bearer_auth(&customer.token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "MalformedToken"
    );
    let forged = format!("{}{}", &app.token[..app.token.len() - 4], "0000");
    let r = app
        .client
        .post(&url)
        .bearer_auth(&forged)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "UnknownToken"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enrollment_set_up_fed_and_closed_over_http() {
    let app = spawn_app().await;
    use reqwest::Method;
    let r = app
        .op(Method::POST, "")
        .json(
            &serde_json::json!({"number": "700", "name": "Http Co", "currency": "USD",
                                  "start": "2025-01-01", "end": "2026-12-31"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The same number again is a conflict.
    let r = app
        .op(Method::POST, "")
        .json(
            &serde_json::json!({"number": "700", "name": "Again", "currency": "USD",
                                  "start": "2025-01-01", "end": "2026-12-31"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = app
        .op(Method::PUT, "/700/settings")
        .json(&serde_json::json!({"departmentAdminsViewCharges": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .op(Method::POST, "/700/hierarchy")
        .body(HIERARCHY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["subscriptionsCreated"],
        1
    );
    for p in ["202501", "202502"] {
        let r = app
            .op(Method::PUT, &format!("/700/prices/{p}"))
            .body(PRICES)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    // A bad price sheet names its line.
    let r = app
        .op(Method::PUT, "/700/prices/202503")
        .body(PRICES.replace("0.5", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("body:2"));

    // A body well above the 2 MB default request limit streams into the ingest.
    let big = usage_csv(40_000, "r");
    assert!(big.len() > 4_000_000);
    let r = app
        .op(Method::POST, "/700/usage")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sum: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (sum["read"].as_u64(), sum["stored"].as_u64()),
        (Some(40_000), Some(40_000))
    );
    // Idempotent by RecordId.
    let r = app
        .op(Method::POST, "/700/usage")
        .body(big)
        .send()
        .await
        .unwrap();
    let sum: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (sum["stored"].as_u64(), sum["duplicates"].as_u64()),
        (Some(0), Some(40_000))
    );
    // A file with a bad row is refused whole, with per-line errors.
    let bad = format!(
        "{}x1,aaaaaaaa-0000-4000-8000-000000000001,2025-01-02,vm,-1,\n",
        usage_csv(3, "b")
    );
    let r = app
        .op(Method::POST, "/700/usage")
        .body(bad.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["line"], 5);
    assert_eq!(body["errors"][0]["column"], "ConsumedQuantity");
    // ... or partly stored with skipInvalid.
    let r = app
        .op(Method::POST, "/700/usage?skipInvalid=true")
        .body(bad)
        .send()
        .await
        .unwrap();
    let sum: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (sum["stored"].as_u64(), sum["rejected"].as_u64()),
        (Some(3), Some(1))
    );
    // NDJSON, detected from the content.
    let nd = "{\"RecordId\":\"nd1\",\"SubscriptionGuid\":\"aaaaaaaa-0000-4000-8000-000000000001\",\"Date\":\"2025-02-01\",\"MeterId\":\"vm\",\"ConsumedQuantity\":2}\n";
    let r = app
        .op(Method::POST, "/700/usage")
        .body(nd)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["stored"], 1);

    let r = app.op(Method::POST, "/700/purchases").json(&serde_json::json!({"date": "2025-01-01", "amount": "100000.00", "description": "commitment"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"enrollmentNumber": "700", "kind": "purchase", "date": "2025-01-01",
                           "amount": "100000.00", "currencyCode": "USD", "description": "commitment"}),
        "the answer says what was recorded"
    );
    let r = app
        .op(Method::POST, "/700/adjustments")
        .json(&serde_json::json!({"date": "2025-01-10", "amount": "-0.001", "description": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "sub-cent amounts are refused");
    let r = app
        .op(Method::PUT, "/700/watermark")
        .json(&serde_json::json!({"date": "2025-02-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .op(Method::POST, "/700/periods/202501/close")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = app
        .op(Method::POST, "/700/periods/202501/close")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // A customer key made by the operator reads what was fed.
    let r = app
        .op(Method::POST, "/700/keys")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let key = r.json::<serde_json::Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .client
        .get(format!(
            "{}/v3/enrollments/700/billingPeriods/202501/balancesummary",
            app.base
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-usage-complete-through"], "2025-02-01");
    let text = r.text().await.unwrap();
    // 40,003 rows x 1.5 h x 0.50 = 30,002.25 drawn from the 100,000.00 commitment.
    assert!(text.contains("\"utilized\":30002.25"), "{text}");
    assert!(text.contains("\"endingBalance\":69997.75"), "{text}");
    assert!(
        text.contains("\"usageCompleteThrough\":\"2025-02-01\""),
        "{text}"
    );
    // The operator token is not a customer key.
    let r = app
        .client
        .get(format!("{}/v3/enrollments/700/balancesummary", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Every path of the OpenAPI description is routed (none answers the
/// fallback's "no such endpoint"), and /docs lists them.
#[tokio::test(flavor = "multi_thread")]
async fn openapi_matches_the_routes() {
    let app = spawn_app().await;
    let spec: serde_json::Value = app
        .client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.0.3");
    let paths = spec["paths"].as_object().unwrap();
    assert_eq!(
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>(),
        meterbook_server::openapi::ENDPOINTS.len()
    );
    let docs = app
        .client
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (path, ops) in paths {
        assert!(docs.contains(path.as_str()), "{path} missing from /docs");
        for method in ops.as_object().unwrap().keys() {
            let url = format!(
                "{}{}",
                app.base,
                path.replace("{enrollmentNumber}", "700")
                    .replace("{billingPeriod}", "202501")
            );
            let r = app
                .client
                .request(method.to_uppercase().parse().unwrap(), &url)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body = r.text().await.unwrap();
            assert!(
                !body.contains("no such endpoint"),
                "{method} {path} is not routed ({status})"
            );
        }
    }
    // And an unknown path is a JSON 404.
    let r = app
        .client
        .get(format!("{}/v3/nothing", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "NotFound"
    );
}

/// SIGTERM/SIGINT end `serve` through its shutdown future: a download already
/// streaming finishes whole, and the server then stops.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_a_download_in_flight_finish() {
    let mut app = spawn_app().await;
    use reqwest::Method;
    app.op(Method::POST, "")
        .json(
            &serde_json::json!({"number": "701", "name": "Co", "currency": "USD",
                                  "start": "2025-01-01", "end": "2026-12-31"}),
        )
        .send()
        .await
        .unwrap();
    app.op(Method::POST, "/701/hierarchy")
        .body(HIERARCHY)
        .send()
        .await
        .unwrap();
    app.op(Method::PUT, "/701/prices/202501")
        .body(PRICES)
        .send()
        .await
        .unwrap();
    let r = app
        .op(Method::POST, "/701/usage")
        .body(usage_csv(60_000, "s"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["stored"],
        60_000
    );
    let r = app
        .op(Method::POST, "/701/keys")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let key = r.json::<serde_json::Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut res = app
        .client
        .get(format!(
            "{}/v3/enrollments/701/usagedetails/download?billingPeriod=202501",
            app.base
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The first bytes are here: the download is in flight. Now shut down.
    let first = res.chunk().await.unwrap().expect("a first chunk");
    app.begin_shutdown();
    let mut body = first.to_vec();
    while let Some(c) = res.chunk().await.unwrap() {
        body.extend_from_slice(&c);
    }
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(lines, 60_001, "header and every row");
    app.stopped(std::time::Duration::from_secs(10))
        .await
        .expect("the server stops after the download");
    // And it no longer accepts connections.
    assert!(app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .is_err());
}

// ---------------------------------------------------------------------------
// Hardening: uploads, bounds, metrics, readiness
// ---------------------------------------------------------------------------

use std::time::{Duration, Instant};

/// Enrollment `n` with its hierarchy and January prices, and an enterprise
/// administrator's key.
async fn set_up(app: &TestApp, n: &str) -> String {
    use reqwest::Method;
    let r = app
        .op(Method::POST, "")
        .json(
            &serde_json::json!({"number": n, "name": "Co", "currency": "USD",
                                  "start": "2025-01-01", "end": "2026-12-31"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for (m, path, body) in [
        (Method::POST, format!("/{n}/hierarchy"), HIERARCHY),
        (Method::PUT, format!("/{n}/prices/202501"), PRICES),
    ] {
        let r = app.op(m, &path).body(body).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = app
        .op(Method::POST, &format!("/{n}/keys"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    r.json::<serde_json::Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An upload whose body the test feeds by hand: each `send` is a chunk;
/// dropping the sender ends the body.
fn manual_body() -> (
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    reqwest::Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    (tx, reqwest::Body::wrap_stream(stream))
}

async fn stored_rows(app: &TestApp, key: &str, n: &str) -> usize {
    let r = app
        .client
        .get(format!(
            "{}/v3/enrollments/{n}/usagedetails/download?billingPeriod=202501",
            app.base
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap().lines().count() - 1
}

/// A client that pauses in the middle of a usage upload holds no lock: key
/// generation (a write) answers at once meanwhile, and the upload then
/// completes and stores every row.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_upload_does_not_block_other_writes() {
    let app = spawn_app().await;
    let key = set_up(&app, "710").await;
    let csv = usage_csv(2_000, "p");
    let (head, tail) = csv.split_at(csv.len() / 2);
    let (tx, body) = manual_body();
    let upload = tokio::spawn(
        app.op(reqwest::Method::POST, "/710/usage")
            .header("content-type", "text/csv")
            .body(body)
            .send(),
    );
    tx.send(Ok(head.as_bytes().to_vec())).await.unwrap();
    // Let the server start on the body, then write while the client pauses.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // (Not the primary enrollment slot: that is the key in use.) Outcomes are
    // checked once the upload is over, so a failure cannot leave it hanging.
    let mut outcomes = Vec::new();
    for req in [
        serde_json::json!({"scope": "enrollment", "slot": "secondary"}),
        serde_json::json!({"scope": "department", "name": "Research"}),
    ] {
        let started = Instant::now();
        let r = app
            .client
            .post(format!("{}/v3/enrollments/710/keys", app.base))
            .bearer_auth(&key)
            .json(&req)
            .timeout(Duration::from_secs(3))
            .send()
            .await;
        outcomes.push((
            r.map(|r| r.status().as_u16()).map_err(|e| e.to_string()),
            started.elapsed(),
        ));
    }
    tx.send(Ok(tail.as_bytes().to_vec())).await.unwrap();
    drop(tx);
    let r = upload.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let sum: serde_json::Value = r.json().await.unwrap();
    assert_eq!(sum["stored"], 2_000, "{sum}");
    for (status, took) in outcomes {
        assert_eq!(status, Ok(201), "key generation while an upload is paused");
        assert!(
            took < Duration::from_secs(1),
            "key generation took {took:?}"
        );
    }
}

/// An upload that stalls past the body idle timeout gets 408 with the JSON
/// error body, and nothing of it is stored; one over the size bound gets 413.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_or_oversized_upload_is_refused_and_stores_nothing() {
    let app = spawn_app_with(ServerSettings {
        limits: meterbook_server::Limits {
            body_idle_timeout: Duration::from_millis(700),
            max_upload_bytes: 100_000,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let key = set_up(&app, "711").await;
    let csv = usage_csv(500, "t");
    let (tx, body) = manual_body();
    let upload = tokio::spawn(
        app.op(reqwest::Method::POST, "/711/usage")
            .body(body)
            .send(),
    );
    tx.send(Ok(csv.as_bytes()[..csv.len() / 2].to_vec()))
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), upload)
        .await
        .expect("the server answers a stalled upload")
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 408);
    // The connection carries an unread body: the client must not reuse it.
    assert_eq!(
        r.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "RequestTimeout", "{v}");
    drop(tx);
    assert_eq!(stored_rows(&app, &key, "711").await, 0);

    let big = usage_csv(2_000, "b");
    assert!(big.len() > 100_000);
    let r = app
        .op(reqwest::Method::POST, "/711/usage")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "PayloadTooLarge", "{v}");
    assert_eq!(stored_rows(&app, &key, "711").await, 0);
    // The same bound holds for price sheets.
    let r = app
        .op(reqwest::Method::PUT, "/711/prices/202502")
        .body(PRICES.repeat(2_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

/// Every bound answers 4xx with the JSON error body.
#[tokio::test(flavor = "multi_thread")]
async fn request_bounds_answer_json_errors() {
    let app = spawn_app_with(ServerSettings {
        limits: meterbook_server::Limits {
            max_body_bytes: 4096,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let key = set_up(&app, "712").await;
    let get = |q: String| {
        app.client
            .get(format!("{}/v3/enrollments/712/billingperiods{q}", app.base))
            .bearer_auth(&key)
    };
    let code = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.expect("a JSON error body");
        (
            status,
            v["error"]["code"].as_str().unwrap_or("").to_string(),
        )
    };
    assert_eq!(get(String::new()).send().await.unwrap().status(), 200);
    let r = get(format!("?x={}", "a".repeat(5000)))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (414, "UriTooLong".into()));
    let many: Vec<String> = (0..40).map(|i| format!("p{i}=1")).collect();
    let r = get(format!("?{}", many.join("&"))).send().await.unwrap();
    assert_eq!(code(r).await, (400, "BadRequest".into()));
    let mut req = get(String::new());
    for i in 0..70 {
        req = req.header(format!("x-extra-{i}"), "1");
    }
    let r = req.send().await.unwrap();
    assert_eq!(code(r).await, (431, "RequestHeaderFieldsTooLarge".into()));
    let r = get(String::new())
        .header("x-big", "b".repeat(40_000))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (431, "RequestHeaderFieldsTooLarge".into()));
    // A JSON body over its bound.
    let r = app
        .op(reqwest::Method::POST, "/712/purchases")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"date":"2025-01-01","amount":"1","description":"{}"}}"#,
            "d".repeat(5000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (413, "PayloadTooLarge".into()));
    // A report request naming too many accounts.
    let accounts: Vec<String> = (0..201).map(|i| format!("a{i}")).collect();
    let r = app
        .client
        .post(format!("{}/v3/enrollments/712/reports", app.base))
        .bearer_auth(&key)
        .json(
            &serde_json::json!({"startDate": "2025-01-01", "endDate": "2025-01-31",
                                  "accounts": accounts}),
        )
        .send()
        .await
        .unwrap();
    let (status, c) = code(r).await;
    assert_eq!((status, c.as_str()), (400, "BadRequest"));
}

/// Prometheus text that a scraper would accept: every sample line is
/// `name{labels} value` with a declared TYPE and a numeric value.
fn parse_prometheus(text: &str) -> std::collections::HashMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let name = it.next().unwrap();
            let kind = it.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains(*b)))
            .unwrap_or(name);
        assert!(typed.contains(base), "no TYPE for {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                    assert!(v.starts_with('"'), "{line}");
                }
            }
        }
        samples.insert(series.to_string(), v);
    }
    samples
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_an_operator_token_and_count_what_happens() {
    let app = spawn_app().await;
    let key = set_up(&app, "713").await;
    let url = format!("{}/metrics", app.base);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 401);
    let r = app.client.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 401, "a customer key is not an operator token");
    let scrape = || async {
        let r = app
            .client
            .get(&url)
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        parse_prometheus(&r.text().await.unwrap())
    };
    let before = scrape().await;
    let route = "meterbook_http_requests_total{route=\"/v3/enrollments/{n}/billingperiods\",method=\"GET\",status=\"200\"}";
    assert_eq!(before.get(route), None);
    for _ in 0..3 {
        let r = app
            .client
            .get(format!("{}/v3/enrollments/713/billingPeriods", app.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = app
        .op(reqwest::Method::POST, "/713/usage")
        .body(usage_csv(25, "m"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.op(reqwest::Method::PUT, "/713/watermark")
        .json(&serde_json::json!({"date": "2025-01-31"}))
        .send()
        .await
        .unwrap();
    let after = scrape().await;
    assert_eq!(after[route], 3.0, "by template, not raw path");
    assert_eq!(
        after["meterbook_http_request_duration_seconds_count{route=\"/v3/enrollments/{n}/billingperiods\"}"],
        3.0
    );
    let stored = "meterbook_ingest_rows_total{outcome=\"stored\"}";
    assert_eq!(after[stored] - before[stored], 25.0);
    assert_eq!(after["meterbook_report_jobs{status=\"Queued\"}"], 0.0);
    let age = after["meterbook_watermark_age_seconds{enrollment=\"713\"}"];
    let expected = chrono::Utc::now().timestamp() as f64 - 1_738_368_000.0; // 2025-02-01T00:00Z
    assert!((age - expected).abs() < 60.0, "{age} vs {expected}");
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_is_not_liveness() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
    // The database file is replaced by one a newer build migrated further.
    let db = app.dir.path().join("meterbook.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "user_version", 999).unwrap();
    }
    let r = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "NotReady");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("schema"),
        "{v}"
    );
    // Liveness does not care.
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A file refused because it takes a total past the supported range says so
/// over HTTP as the CLI does: its line, column and meter, with or without
/// skipInvalid (the writer finds it, not the record check).
#[tokio::test(flavor = "multi_thread")]
async fn a_range_refusal_names_line_and_meter_over_http() {
    use reqwest::Method;
    let app = spawn_app().await;
    let key = set_up(&app, "710").await;
    let file = |id: &str| {
        format!(
            "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity\n\
             {id}-ok,aaaaaaaa-0000-4000-8000-000000000001,2025-01-02,vm,1\n\
             {id},aaaaaaaa-0000-4000-8000-000000000001,2025-01-03,vm,600000000000\n"
        )
    };
    let r = app
        .op(Method::POST, "/710/usage")
        .body(file("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for query in ["", "?skipInvalid=true"] {
        let r = app
            .op(Method::POST, &format!("/710/usage{query}"))
            .body(file("b"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{query}");
        let body: serde_json::Value = r.json().await.unwrap();
        let errors = body["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1, "{body}");
        assert_eq!(errors[0]["line"], 3, "{body}");
        assert_eq!(errors[0]["column"], "ConsumedQuantity", "{body}");
        let reason = errors[0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("meter vm") && reason.contains("supported range"),
            "{reason}"
        );
    }
    assert_eq!(
        stored_rows(&app, &key, "710").await,
        2,
        "nothing of the refused file"
    );
}

/// A price sheet that would take the period's charges past the supported
/// range is refused over HTTP as by the CLI: naming the meter's line in the
/// body, with the old prices kept.
#[tokio::test(flavor = "multi_thread")]
async fn a_price_sheet_past_the_range_names_line_and_meter_over_http() {
    use reqwest::Method;
    let app = spawn_app().await;
    set_up(&app, "720").await;
    let usage = "RecordId,SubscriptionGuid,Date,MeterId,ConsumedQuantity\n\
                 big,aaaaaaaa-0000-4000-8000-000000000001,2025-01-02,vm,100000000000\n";
    let r = app
        .op(Method::POST, "/720/usage")
        .body(usage)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // 1e11 units at 10000 is 1e15: past the enrollment's charges range.
    let r = app
        .op(Method::PUT, "/720/prices/202501")
        .body(PRICES.replace(",0.5,", ",10000,"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message
            .starts_with("body:2: meter vm: the enrollment's charges exceed the supported range"),
        "{body}"
    );
    // The old sheet still prices the period.
    let r = app
        .op(Method::PUT, "/720/prices/202501")
        .body(PRICES)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
