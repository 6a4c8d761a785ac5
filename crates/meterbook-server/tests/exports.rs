//! Scheduled exports over the API: enterprise administrators create, list,
//! run and delete; read-only ones only read; department and account keys
//! and other enrollments' keys are refused; bad bodies are 400 JSON errors;
//! a run now writes its files under the export root with a manifest whose
//! figures match them.

use meterbook_core::access::Scope;
use meterbook_core::store::MetadataStore;
use meterbook_testkit::seed::{self, day, ingest_rows, num, period, KeySpec};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const N: &str = "E100";
const OTHER: &str = "E200";
const G1: &str = "11111111-0000-4000-8000-000000000001";

struct Keys {
    ent: String,
    read_only: String,
    dept: String,
    acct: String,
    other: String,
}

fn seed(store: &meterbook_sqlite::SqliteStore, clock: &meterbook_testkit::ManualClock) -> Keys {
    use meterbook_testkit::Clock;
    for n in [N, OTHER] {
        seed::enrollment(store, n, "USD", day("2025-01-01"), day("2025-12-31"));
        store
            .upsert_hierarchy(&num(n), &seed::hierarchy(&[("A", "a1", G1)]))
            .unwrap();
    }
    store
        .import_prices(
            &num(N),
            period("202501"),
            &seed::price_sheet(&[("M1", "0", "0", "2")]),
        )
        .unwrap();
    let rows: Vec<(String, &str, String, &str, String, &str)> = (1..=9)
        .map(|d| {
            (
                format!("r{d}"),
                G1,
                format!("2025-01-0{d}"),
                "M1",
                "1.5".to_string(),
                "",
            )
        })
        .collect();
    ingest_rows(store, N, &rows);
    let h = store.hierarchy(&num(N)).unwrap();
    let now = clock.now_unix();
    let key = |n: &str, scope, read_only| {
        seed::put_key(
            store,
            n,
            scope,
            KeySpec {
                read_only,
                // Each scope has two slots: the read-only key takes the second.
                slot: if read_only {
                    meterbook_core::access::Slot::Secondary
                } else {
                    meterbook_core::access::Slot::Primary
                },
                ..KeySpec::valid_at(now)
            },
        )
    };
    Keys {
        ent: key(N, Scope::Enrollment, false),
        read_only: key(N, Scope::Enrollment, true),
        dept: key(
            N,
            Scope::Department(h.department_by_name("A").unwrap().id),
            false,
        ),
        acct: key(
            N,
            Scope::Account(h.account_by_name("a1").unwrap().id),
            false,
        ),
        other: key(OTHER, Scope::Enrollment, false),
    }
}

#[tokio::test]
async fn exports_over_the_api() {
    let noon = day("2025-01-20")
        .naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    let (app, keys) = meterbook_testkit::spawn().clock_at(noon).seed(seed).await;
    let base = format!("/v3/enrollments/{N}/exports");
    let req = |method: reqwest::Method, path: &str, key: &str| {
        app.client.request(method, app.url(path)).bearer_auth(key)
    };
    use reqwest::Method;

    // Bad bodies: 400 with a JSON error, nothing stored.
    for bad in [
        json!({"name": "x", "folder": "../up", "schedule": "daily"}),
        json!({"name": "x", "folder": "ok", "schedule": "hourly"}),
        json!({"name": "x", "folder": "ok", "schedule": "once"}),
        json!({"name": "x", "folder": "ok", "schedule": "daily", "startDate": "2025-01-01", "endDate": "2025-01-02"}),
        json!({"name": "x", "folder": "ok", "schedule": "once", "startDate": "2025-01-09", "endDate": "2025-01-02"}),
        json!({"name": "x", "folder": "ok", "schedule": "once", "startDate": "2025-13-01", "endDate": "2025-01-02"}),
        json!({"name": "x", "folder": "ok", "schedule": "daily", "format": "xlsx"}),
        json!({"name": "", "folder": "ok", "schedule": "daily"}),
        json!({"name": "x", "folder": "ok", "schedule": "daily", "path": "/etc"}),
        json!({"folder": "ok", "schedule": "daily"}),
        json!([1, 2]),
    ] {
        let r = app
            .send(req(Method::POST, &base, &keys.ent).json(&bad))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.json()["error"]["message"].is_string(), "{bad}");
    }

    // Create a once export and a daily one.
    let r = app
        .send(req(Method::POST, &base, &keys.ent).json(&json!({
            "name": "Early January", "folder": "jan", "schedule": "once",
            "startDate": "2025-01-01", "endDate": "2025-01-05", "format": "csv"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let once: Value = r.json();
    assert_eq!(
        (once["schedule"].as_str(), once["folder"].as_str()),
        (Some("once"), Some("jan"))
    );
    let id = once["id"].as_str().unwrap().to_string();
    let r = app
        .send(req(Method::POST, &base, &keys.ent).json(&json!({
            "name": "Daily", "folder": "daily", "schedule": "daily", "format": "csv.gz"})))
        .await;
    assert_eq!(r.status, 201);
    // The same folder again: 409.
    let r = app
        .send(req(Method::POST, &base, &keys.ent).json(&json!({
            "name": "Other", "folder": "daily", "schedule": "monthly"})))
        .await;
    assert_eq!(r.status, 409, "{}", r.text());

    // Run now: the manifest matches the file written under the export root.
    let r = app
        .send(req(Method::POST, &format!("{base}/{id}/run"), &keys.ent))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let run = r.json();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["runKey"], "once");
    let m = &run["manifest"];
    assert_eq!(m["rows"], 5);
    let folder = app
        .dir
        .path()
        .join("exports")
        .join(N)
        .join("jan")
        .join("once");
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(&on_disk, m);
    let file = std::fs::read(folder.join(m["files"][0]["name"].as_str().unwrap())).unwrap();
    assert_eq!(m["files"][0]["bytes"].as_u64(), Some(file.len() as u64));
    let sha: String = Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(m["files"][0]["sha256"].as_str(), Some(sha.as_str()));

    // Lists: schedules and runs.
    let r = app.send(req(Method::GET, &base, &keys.read_only)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 2);
    let r = app
        .send(req(
            Method::GET,
            &format!("{base}/{id}/runs"),
            &keys.read_only,
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"][0]["status"], "succeeded");

    // Read-only: no changes. Department, account: nothing. Another
    // enrollment's key: not this enrollment.
    for (key, reads) in [(&keys.read_only, 200), (&keys.dept, 403), (&keys.acct, 403)] {
        assert_eq!(app.send(req(Method::GET, &base, key)).await.status, reads);
        let create = json!({"name": "y", "folder": "y", "schedule": "daily"});
        let r = app.send(req(Method::POST, &base, key).json(&create)).await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(
            app.send(req(Method::POST, &format!("{base}/{id}/run"), key))
                .await
                .status,
            403
        );
        assert_eq!(
            app.send(req(Method::DELETE, &format!("{base}/{id}"), key))
                .await
                .status,
            403
        );
    }
    assert_eq!(
        app.send(req(Method::GET, &format!("{base}/{id}/runs"), &keys.dept))
            .await
            .status,
        403
    );
    let r = app.send(req(Method::GET, &base, &keys.other)).await;
    assert!(matches!(r.status, 401 | 403 | 404), "{}", r.text());
    // Another enrollment cannot reach this schedule through its own path.
    let r = app
        .send(req(
            Method::GET,
            &format!("/v3/enrollments/{OTHER}/exports/{id}/runs"),
            &keys.other,
        ))
        .await;
    assert_eq!(r.status, 404, "{}", r.text());

    // Delete: 204, then 404.
    let r = app
        .send(req(Method::DELETE, &format!("{base}/{id}"), &keys.ent))
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = app
        .send(req(Method::DELETE, &format!("{base}/{id}"), &keys.ent))
        .await;
    assert_eq!(r.status, 404);
    // Files written stay.
    assert!(folder.join("manifest.json").exists());
}
