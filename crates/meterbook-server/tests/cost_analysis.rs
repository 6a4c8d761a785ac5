//! Cost analysis through the real server: the API's JSON and CSV (each role
//! sees its scope only, the CSV has the JSON's figures, a full period adds up
//! to the statement, bad parameters are 400 JSON errors) and the portal's
//! page and download.
//!
//! The seed: enrollment E100 (USD, 2025 to 2026), departments A (a1: G1, a2:
//! G2) and B (b1: G3), c1 (G4) without one; October 2025's price sheet with a
//! flat meter and a marketplace meter; 60 rows in October tagged env=prod,
//! env=dev or not at all; keys for the enterprise, department A and account
//! c1; people of the same three roles; every role sees charges (until a
//! test hides them from account owners).

use meterbook_core::access::Scope;
use meterbook_core::prices::{build_price_sheet, PriceRow};
use meterbook_core::store::MetadataStore;
use meterbook_sqlite::SqliteStore;
use meterbook_testkit::seed::{self, day, ingest_rows, num, period, KeySpec};
use meterbook_testkit::{Clock, ManualClock};
use std::collections::BTreeSet;

const N: &str = "E100";
const G: [&str; 4] = [
    "11111111-0000-4000-8000-000000000001",
    "11111111-0000-4000-8000-000000000002",
    "11111111-0000-4000-8000-000000000003",
    "11111111-0000-4000-8000-000000000004",
];
const PASSWORD: &str = "correct horse battery staple";

struct Keys {
    enterprise: String,
    dept_a: String,
    c1: String,
}

fn seed(store: &SqliteStore, clock: &ManualClock) -> Keys {
    seed::enrollment(store, N, "USD", day("2025-01-01"), day("2026-12-31"));
    let n = num(N);
    store
        .set_visibility(
            &n,
            meterbook_core::enrollment::ChargeVisibility {
                department_admins_view_charges: true,
                account_owners_view_charges: true,
            },
        )
        .unwrap();
    store
        .upsert_hierarchy(
            &n,
            &seed::hierarchy(&[
                ("A", "a1", G[0]),
                ("A", "a2", G[1]),
                ("B", "b1", G[2]),
                ("", "c1", G[3]),
            ]),
        )
        .unwrap();
    let sheet = build_price_sheet(&[
        seed::price_row(2, "FLAT01", "0", "0", "0.123456"),
        PriceRow {
            publisher_name: "Contoso".into(),
            offer_name: "Firewall".into(),
            plan_name: "Standard".into(),
            ..seed::price_row(3, "MKT01", "0", "0", "2.50")
        },
    ])
    .unwrap();
    store.import_prices(&n, period("202510"), &sheet).unwrap();
    store.import_prices(&n, period("202511"), &sheet).unwrap();
    const TAGS: [&str; 3] = [r#"{"env":"prod"}"#, r#"{"env":"dev"}"#, ""];
    let rows: Vec<(
        String,
        &'static str,
        String,
        &'static str,
        String,
        &'static str,
    )> = (0..60)
        .map(|i| {
            (
                format!("r{i:03}"),
                G[i % 4],
                day("2025-10-01").add_days((i % 31) as i32).to_string(),
                if i % 5 == 0 { "MKT01" } else { "FLAT01" },
                format!("{}.{:03}", 1 + i % 7, (i * 37) % 1000),
                TAGS[i % 3],
            )
        })
        .collect();
    ingest_rows(store, N, &rows);
    let now = clock.now_unix();
    let h = store.hierarchy(&n).unwrap();
    let dept_a = Scope::Department(h.department_by_name("A").unwrap().id);
    let c1 = Scope::Account(h.account_by_name("c1").unwrap().id);
    let hash = meterbook_server::portal::password::hash(PASSWORD).unwrap();
    for (email, scope) in [
        ("admin@example.com", Scope::Enrollment),
        ("dept-a@example.com", dept_a),
        ("owner-c1@example.com", c1),
    ] {
        seed::user(
            store,
            email,
            email,
            Some(&hash),
            0,
            &[seed::role(N, scope, false)],
        );
    }
    Keys {
        enterprise: seed::put_key(store, N, Scope::Enrollment, KeySpec::valid_at(now)),
        dept_a: seed::put_key(store, N, dept_a, KeySpec::valid_at(now)),
        c1: seed::put_key(store, N, c1, KeySpec::valid_at(now)),
    }
}

/// Mid-November 2025.
fn noon() -> i64 {
    day("2025-11-15")
        .naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

async fn spawn() -> (meterbook_testkit::TestApp, Keys) {
    meterbook_testkit::spawn()
        .clock_at(noon())
        .no_redirects()
        .seed(seed)
        .await
}

async fn get(app: &meterbook_testkit::TestApp, key: &str, q: &str) -> meterbook_testkit::Resp {
    app.send(
        app.client
            .get(app.url(&format!("/v3/enrollments/{N}/costanalysis{q}")))
            .bearer_auth(key),
    )
    .await
}

/// Cents of a JSON money figure (exact decimal text).
fn cents(v: &serde_json::Value) -> i64 {
    let s = v.to_string();
    meterbook_core::Money::parse(&s, 2)
        .unwrap_or_else(|e| panic!("{s}: {e:?}"))
        .0
}

const OCTOBER: &str = "startDate=2025-10-01&endDate=2025-10-31";

#[tokio::test]
async fn a_full_period_adds_up_to_the_statement_by_every_grouping() {
    let (app, keys) = spawn().await;
    let figure = app
        .blocking(|s| {
            meterbook_core::ledger::charges(s, &num(N), period("202510"))
                .unwrap()
                .billed(2)
                .unwrap()
        })
        .await;
    assert!(figure.0 > 0);
    for g in [
        "tag:env",
        "resourceGroup",
        "meter",
        "region",
        "subscription",
        "department",
        "account",
        "service",
        "chargeType",
    ] {
        for gran in ["daily", "monthly"] {
            let r = get(
                &app,
                &keys.enterprise,
                &format!("?groupBy={g}&granularity={gran}&{OCTOBER}"),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            let sum: i64 = v["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| cents(&r["cost"]))
                .sum();
            assert_eq!(sum, figure.0, "{g} {gran}");
            assert_eq!(cents(&v["totals"]["cost"]), figure.0);
        }
    }
    // Untagged rows are a group of their own; marketplace a charge type.
    let v = get(
        &app,
        &keys.enterprise,
        &format!("?groupBy=tag:env&{OCTOBER}"),
    )
    .await
    .json();
    let groups: BTreeSet<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, BTreeSet::from(["(untagged)", "dev", "prod"]));
    let v = get(
        &app,
        &keys.enterprise,
        &format!("?groupBy=chargeType&{OCTOBER}"),
    )
    .await
    .json();
    let groups: BTreeSet<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, BTreeSet::from(["commitment", "marketplace"]));
}

#[tokio::test]
async fn each_key_sees_its_scope_only() {
    let (app, keys) = spawn().await;
    let subs = |v: &serde_json::Value| -> BTreeSet<String> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["group"].as_str().unwrap().to_string())
            .collect()
    };
    let q = format!("?groupBy=subscription&{OCTOBER}");
    let ent = get(&app, &keys.enterprise, &q).await.json();
    assert_eq!(
        subs(&ent),
        BTreeSet::from(["sub-a1", "sub-a2", "sub-b1", "sub-c1"].map(String::from))
    );
    let a = get(&app, &keys.dept_a, &q).await.json();
    assert_eq!(
        subs(&a),
        BTreeSet::from(["sub-a1", "sub-a2"].map(String::from))
    );
    let c1 = get(&app, &keys.c1, &q).await.json();
    assert_eq!(subs(&c1), BTreeSet::from(["sub-c1".to_string()]));
    // A filter naming another scope's subscription matches nothing.
    let none = get(&app, &keys.c1, &format!("{q}&filter=subscription=sub-a1")).await;
    assert_eq!(none.status, 200);
    assert!(none.json()["rows"].as_array().unwrap().is_empty());
    // Department A's figure is its exact costs rounded once; the parts add up.
    let a_rows: i64 = a["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| cents(&r["cost"]))
        .sum();
    assert_eq!(a_rows, cents(&a["totals"]["cost"]));
    // Charges hidden from account owners: records only, costs null.
    app.blocking(|s| {
        s.set_visibility(
            &num(N),
            meterbook_core::enrollment::ChargeVisibility {
                department_admins_view_charges: true,
                account_owners_view_charges: false,
            },
        )
        .unwrap()
    })
    .await;
    let c1 = get(&app, &keys.c1, &q).await.json();
    assert_eq!(c1["costsShown"], false);
    assert!(c1["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["cost"].is_null() && r["records"].as_i64().unwrap() > 0));
    assert!(c1["totals"]["cost"].is_null());
}

#[tokio::test]
async fn the_csv_has_the_json_figures() {
    let (app, keys) = spawn().await;
    let q = format!("?groupBy=tag:env&{OCTOBER}&filter=region=westeurope");
    let v = get(&app, &keys.enterprise, &q).await.json();
    let json: Vec<(String, String, i64, i64, i64)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["date"].as_str().unwrap().to_string(),
                r["group"].as_str().unwrap().to_string(),
                r["records"].as_i64().unwrap(),
                cents(&r["cost"]),
                cents(&r["accumulated"]),
            )
        })
        .collect();
    assert!(!json.is_empty());
    for path in [format!("{q}&format=csv"), format!("/download{q}")] {
        let r = app
            .send_text(
                app.client
                    .get(app.url(&format!("/v3/enrollments/{N}/costanalysis{path}")))
                    .bearer_auth(&keys.enterprise),
            )
            .await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").unwrap().starts_with("text/csv"));
        let mut rdr = csv::Reader::from_reader(r.body.as_bytes());
        assert_eq!(
            rdr.headers().unwrap().iter().collect::<Vec<_>>(),
            [
                "Date",
                "tag:env",
                "Records",
                "Cost",
                "AccumulatedCost",
                "Currency"
            ]
        );
        let csv: Vec<(String, String, i64, i64, i64)> = rdr
            .records()
            .map(|r| {
                let r = r.unwrap();
                let m = |s: &str| meterbook_core::Money::parse(s, 2).unwrap().0;
                (
                    r[0].to_string(),
                    r[1].to_string(),
                    r[2].parse().unwrap(),
                    m(&r[3]),
                    m(&r[4]),
                )
            })
            .collect();
        assert_eq!(csv, json, "{path}");
    }
}

#[tokio::test]
async fn bad_parameters_are_400_json_errors() {
    let (app, keys) = spawn().await;
    for q in [
        "?groupBy=colour",
        "?groupBy=tag:",
        "?granularity=weekly",
        "?startDate=2025-13-01",
        "?startDate=yesterday",
        "?startDate=2025-10-31&endDate=2025-10-01",
        "?startDate=2025-01-01&endDate=2025-06-30",
        "?startDate=2024-12-01&endDate=2024-12-31",
        "?granularity=monthly&startDate=2025-01-01&endDate=2027-12-31",
        "?filter=nonsense",
        "?filter=colour=red",
        "?format=xml",
        "?filter=%ZZ",
    ] {
        let r = get(&app, &keys.enterprise, q).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "{q}"
        );
        assert_eq!(r.json()["error"]["code"], "BadRequest", "{q}");
    }
    // Defaults: grouped by subscription, this month to date.
    let r = get(&app, &keys.enterprise, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["groupBy"], "subscription");
    assert_eq!(v["startDate"], "2025-11-01");
    assert_eq!(v["endDate"], "2025-11-15");
    // Without a key: 401.
    let r = app
        .send(
            app.client
                .get(app.url(&format!("/v3/enrollments/{N}/costanalysis"))),
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn the_portal_page_and_its_download() {
    let (app, keys) = spawn().await;
    let b = app.sign_in("dept-a@example.com", PASSWORD).await;
    let q = format!("groupBy=tag&tagKey=env&{OCTOBER}&filters=region%3Dwesteurope");
    let page = b.get(&format!("/portal/e/{N}/analysis?{q}")).await;
    assert_eq!(page.status, 200);
    let html = page.body.clone();
    assert!(html.contains("Cost analysis"));
    assert!(html.contains("<svg"), "a chart");
    assert!(
        html.contains(&format!("/portal/e/{N}/analysis.csv?")),
        "a download link"
    );
    // The page's total is the API's for the same scope and query.
    let api = get(
        &app,
        &keys.dept_a,
        &format!("?groupBy=tag:env&{OCTOBER}&filter=region=westeurope"),
    )
    .await
    .json();
    let total = format!("Total: {} USD", api["totals"]["cost"]);
    assert!(html.contains(&total), "{total} in the page");
    // The download has the API's CSV.
    let csv = b.get(&format!("/portal/e/{N}/analysis.csv?{q}")).await;
    assert_eq!(csv.status, 200);
    let api_csv = app
        .send_text(
            app.client
                .get(app.url(&format!("/v3/enrollments/{N}/costanalysis/download?groupBy=tag:env&{OCTOBER}&filter=region=westeurope")))
                .bearer_auth(&keys.dept_a),
        )
        .await;
    assert_eq!(csv.body, api_csv.body);
    // A bad query shows the form with the reason, not an error page.
    let bad = b
        .get(&format!(
            "/portal/e/{N}/analysis?startDate=2025-01-01&endDate=2025-12-31"
        ))
        .await;
    assert_eq!(bad.status, 200);
    assert!(bad.body.contains("92 days"));
    // The nav links the page.
    assert!(bad.body.contains(&format!("/portal/e/{N}/analysis\"")));
    // Nothing kept: an empty chart, a zero total.
    let empty = b
        .get(&format!(
            "/portal/e/{N}/analysis?{OCTOBER}&filters=region%3Dnowhere"
        ))
        .await;
    assert_eq!(empty.status, 200);
    assert!(empty.body.contains("Total: 0.00 USD"), "{}", empty.body);
    // An account owner who may not see charges: records only.
    app.blocking(|s| {
        s.set_visibility(
            &num(N),
            meterbook_core::enrollment::ChargeVisibility {
                department_admins_view_charges: true,
                account_owners_view_charges: false,
            },
        )
        .unwrap()
    })
    .await;
    let owner = app.sign_in("owner-c1@example.com", PASSWORD).await;
    let page = owner
        .get(&format!(
            "/portal/e/{N}/analysis?groupBy=meter&granularity=monthly&{OCTOBER}"
        ))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("counts usage records"));
    assert!(page.body.contains("Total: 15 records"), "{}", page.body);
    assert!(!page.body.contains(" USD<"));
}
