//! The operator API through the real server on a random port: an enrollment
//! set up, fed and closed entirely over HTTP, then read with a customer key.

use meterbook_core::access::{OperatorStore, OperatorToken};
use meterbook_server::{keys, AppState, ServerSettings};
use meterbook_sqlite::SqliteStore;
use std::sync::Arc;

struct TestApp {
    base: String,
    token: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("t.db")).unwrap());
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
    let state = AppState::new(store, ServerSettings::default()).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(meterbook_server::serve(listener, state, async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        token: k.token,
        client: reqwest::Client::new(),
        _dir: dir,
        stop: Some(stop),
        server: Some(server),
    }
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
    let _ = app.stop.take().unwrap().send(());
    let mut body = first.to_vec();
    while let Some(c) = res.chunk().await.unwrap() {
        body.extend_from_slice(&c);
    }
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(lines, 60_001, "header and every row");
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        app.server.take().unwrap(),
    )
    .await
    .expect("the server stops after the download");
    done.unwrap().unwrap();
    // And it no longer accepts connections.
    assert!(app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .is_err());
}
