//! Two `meterbook serve` processes on one cluster (PostgreSQL + the two
//! ClickHouse shards scripts/cluster.sh starts) and one shared report
//! directory, with requests alternating between them, as behind a load
//! balancer: keys and sessions made on one node work on the other, report
//! jobs run once and download from either node, and a job whose node is
//! killed mid-run finishes on the other.
//!
//! Skipped without the cluster unless `MB_REQUIRE_CLUSTER=1`.

use meterbook_testkit::cluster::{fresh, ClusterUrls};
use meterbook_testkit::Browser;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meterbook");
/// The demo's enrollment, users and password.
const N: &str = "8608480";
const ADMIN: &str = "admin@northwind.example";
const PASSWORD: &str = "meterbook-demo";

/// A JSON answer without the time it was made.
fn figures(body: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(body).expect("json");
    v.as_object_mut().map(|o| o.remove("generatedAt"));
    v
}

/// Tests that stop a server of the shared cluster run alone: they take this
/// exclusively, the others share it.
static ALONE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn cli(urls: &ClusterUrls) -> Command {
    let mut c = Command::new(BIN);
    c.env("MB_STORE", &urls.store)
        .env("MB_USAGE_STORE", &urls.usage_store);
    c
}

/// Seeds the demo on the cluster; its enterprise administrator's API key.
fn demo(urls: &ClusterUrls, rows: u32) -> String {
    let out = cli(urls)
        .args(["demo", "--no-serve", "--rows", &rows.to_string()])
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "demo: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.contains("API key (primary):"))
        .unwrap_or_else(|| panic!("no key in {text}"));
    line.rsplit(' ').next().expect("key").to_string()
}

/// With the `s3` feature and `MB_TEST_S3_URL` set (scripts/test.sh's S3
/// stage), the nodes keep report files in the bucket, under a prefix of the
/// test's own, instead of the shared directory.
fn report_store(reports: &Path) -> Option<String> {
    if !cfg!(feature = "s3") {
        return None;
    }
    let url = std::env::var("MB_TEST_S3_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let prefix = reports.file_name()?.to_string_lossy().replace('.', "-");
    Some(match url.split_once('?') {
        Some((path, query)) => format!("{}/{prefix}?{query}", path.trim_end_matches('/')),
        None => format!("{}/{prefix}", url.trim_end_matches('/')),
    })
}

/// A `serve` process; killed (SIGKILL) when dropped.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    fn start(urls: &ClusterUrls, reports: &Path, workers: u32) -> Node {
        Node::start_limited(urls, reports, workers, "10000")
    }

    /// A node whose API keys may make `burst` requests at once (and one
    /// more every 100 s).
    fn start_limited(urls: &ClusterUrls, reports: &Path, workers: u32, burst: &str) -> Node {
        Node::start_with(urls, reports, workers, burst, &[])
    }

    /// A node with more options (`extra`).
    fn start_with(
        urls: &ClusterUrls,
        reports: &Path,
        workers: u32,
        burst: &str,
        extra: &[&str],
    ) -> Node {
        let rate = if burst == "10000" { "10000" } else { "0.01" };
        let mut command = cli(urls);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--report-dir"])
            .arg(reports);
        if let Some(store) = report_store(reports) {
            command.args(["--report-store", &store]);
        }
        let mut child = command
            .args([
                "--report-lease-seconds",
                "2",
                "--report-workers",
                &workers.to_string(),
                "--rate-limit",
                rate,
                "--rate-burst",
                burst,
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("serve printed where it listens")
                .expect("read");
            if let Some(at) = line.find("serving http://") {
                let url = &line[at + "serving ".len()..];
                break url.split_whitespace().next().expect("url").to_string();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Node { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client")
}

async fn get(c: &reqwest::Client, url: &str, key: &str) -> (u16, String) {
    let r = c
        .get(url)
        .header("authorization", format!("bearer {key}"))
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn post_json(
    c: &reqwest::Client,
    url: &str,
    key: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = c
        .post(url)
        .header("authorization", format!("bearer {key}"))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// Fresh databases on the cluster (made with a blocking client, off the runtime).
async fn cluster(tag: &'static str) -> Option<ClusterUrls> {
    tokio::task::spawn_blocking(move || fresh(tag))
        .await
        .expect("fresh databases")
}

/// Fresh databases with the demo seeded (`rows` usage rows); its
/// enterprise administrator's API key.
async fn seeded(tag: &'static str, rows: u32) -> Option<(ClusterUrls, String)> {
    let urls = cluster(tag).await?;
    let key = tokio::task::spawn_blocking({
        let urls = urls.clone();
        move || demo(&urls, rows)
    })
    .await
    .expect("demo");
    Some((urls, key))
}

/// The last closed month of the demo (it has usage and a statement).
fn last_month() -> String {
    let today = meterbook_core::Day::today();
    today.period().prev().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_sessions_work_on_every_node() {
    let _shared = ALONE.read().await;
    let Some((urls, key)) = seeded("nodes_keys", 3000).await else {
        return;
    };
    let reports = tempfile::tempdir().expect("dir");
    let (a, b) = (
        Node::start(&urls, reports.path(), 1),
        Node::start(&urls, reports.path(), 1),
    );
    let c = client();
    let path = format!(
        "/v3/enrollments/{N}/billingPeriods/{}/balancesummary",
        last_month()
    );
    let (sa, body_a) = get(&c, &a.url(&path), &key).await;
    let (sb, body_b) = get(&c, &b.url(&path), &key).await;
    assert_eq!((sa, sb), (200, 200), "{body_a} {body_b}");
    assert_eq!(body_a, body_b, "the nodes answer the same");

    // A key generated through node A works on node B, at once.
    let (st, made) = post_json(
        &c,
        &a.url(&format!("/v3/enrollments/{N}/keys")),
        &key,
        serde_json::json!({"scope": "enrollment", "slot": "secondary"}),
    )
    .await;
    assert!(st == 200 || st == 201, "{st} {made}");
    let second = made["key"].as_str().expect("the new key").to_string();
    assert_eq!(get(&c, &b.url(&path), &second).await.0, 200);

    // A portal session opened on node A is signed in on node B; signing out
    // on B ends it on A.
    let mut browser = Browser::at(&a.base);
    browser.sign_in(ADMIN, PASSWORD).await;
    let on_b = browser.on(&b.base);
    let landing = on_b.get("/portal").await;
    assert_eq!(landing.status, 303, "{}", landing.describe());
    assert!(
        landing.location().starts_with("/portal/e/"),
        "signed in on B: {}",
        landing.location()
    );
    let home = on_b.get(&landing.location()).await;
    assert_eq!(home.status, 200, "{}", home.describe());
    let csrf = meterbook_testkit::csrf_of(&home.body).expect("form token");
    let mut on_b = on_b;
    on_b.csrf = csrf.clone();
    // A key generated in the portal on node A is shown once, on node B
    // (the load balancer sent the redirect there), and works on the API.
    let mut on_a = browser.clone();
    on_a.csrf = csrf;
    let r = on_a
        .submit(
            &format!("/portal/e/{N}/keys/generate"),
            &[
                ("scope", "enrollment"),
                ("slot", "secondary"),
                ("days", "20"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.describe());
    let shown = on_b.get(&r.location()).await;
    assert_eq!(
        shown.status,
        200,
        "the new key is shown on B: {}",
        shown.describe()
    );
    let at = shown.body.find("mbk_").expect("the key on the page");
    let token: String = shown.body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert_eq!(get(&c, &a.url(&path), &token).await.0, 200);
    let again = on_a.get(&r.location()).await;
    assert_eq!(
        again.status,
        303,
        "shown once, on whichever node: {}",
        again.describe()
    );
    let out = on_b.submit("/portal/sign-out", &[]).await;
    assert!(out.status == 303 || out.status == 200, "{}", out.describe());
    let after = browser.get("/portal").await;
    assert_eq!(after.status, 303, "{}", after.describe());
    assert!(
        after.location().contains("sign-in"),
        "the session ended on A too: {}",
        after.location()
    );
}

/// Waits for a report job to reach a final state, asking node `at` each time.
async fn finished(c: &reqwest::Client, nodes: &[&str], id: &str, key: &str) -> serde_json::Value {
    let start = Instant::now();
    for i in 0.. {
        let base = nodes[i % nodes.len()];
        let (st, body) = get(c, &format!("{base}/v3/enrollments/{N}/reports/{id}"), key).await;
        assert_eq!(st, 200, "{body}");
        let job: serde_json::Value = serde_json::from_str(&body).expect("json");
        let name = job["statusName"].as_str().unwrap_or("").to_string();
        if !matches!(name.as_str(), "Queued" | "InProgress") {
            return job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "job {id} stuck: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

fn csv_rows(text: &str) -> usize {
    text.lines().count().saturating_sub(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_jobs_run_once_and_download_from_either_node() {
    let _shared = ALONE.read().await;
    let Some((urls, key)) = seeded("nodes_jobs", 3000).await else {
        return;
    };
    let reports = tempfile::tempdir().expect("dir");
    let (a, b) = (
        Node::start(&urls, reports.path(), 2),
        Node::start(&urls, reports.path(), 2),
    );
    let nodes = [a.base.as_str(), b.base.as_str()];
    let c = client();
    let period = last_month();
    let (_, want) = get(
        &c,
        &a.url(&format!(
            "/v3/enrollments/{N}/usagedetails/download?billingPeriod={period}"
        )),
        &key,
    )
    .await;
    assert!(csv_rows(&want) > 10);
    // Four requests (a requester's most at once, counted across the nodes),
    // alternating nodes; each a different filter so none is folded into
    // another.
    let mut ids = Vec::new();
    for i in 0..4 {
        let (st, job) = post_json(
            &c,
            &format!("{}/v3/enrollments/{N}/reports", nodes[i % 2]),
            &key,
            if i == 0 {
                serde_json::json!({"billingPeriod": period})
            } else {
                let format = if i % 2 == 0 { "csv" } else { "csv.gz" };
                let dept = ["Research", "Finance", "Marketing"][i - 1];
                serde_json::json!({"billingPeriod": period, "format": format, "departments": [dept]})
            },
        )
        .await;
        assert!(st == 200 || st == 202, "{st} {job}");
        ids.push(job["id"].as_str().expect("id").to_string());
    }
    for id in &ids {
        let job = finished(&c, &nodes, id, &key).await;
        let name = job["statusName"].as_str().unwrap_or("");
        assert!(
            name == "Completed" || name == "ReadyToDownload" || name == "NoDataFound",
            "{job}"
        );
    }
    // The first job's file, from each node: the period's usage details.
    for base in nodes {
        let (st, got) = get(
            &c,
            &format!("{base}/v3/enrollments/{N}/reports/{}/download", ids[0]),
            &key,
        )
        .await;
        assert_eq!(st, 200, "{got}");
        assert_eq!(
            csv_rows(&got),
            csv_rows(&want),
            "rows of the job's file from {base}"
        );
    }
    // A signed link made on one node opens on the other (no key needed).
    let (st, link) = post_json(
        &c,
        &a.url(&format!("/v3/enrollments/{N}/reports/{}/link", ids[0])),
        &key,
        serde_json::json!({}),
    )
    .await;
    assert!(st == 200 || st == 201, "{st} {link}");
    let url = link["blobPath"].as_str().expect("a link").to_string();
    let path = &url[url.find("/downloads/").expect("a download path")..];
    let r = c.get(b.url(path)).send().await.expect("request");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(csv_rows(&r.text().await.expect("body")), csv_rows(&want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_node_is_killed_finishes_on_the_other() {
    let _shared = ALONE.read().await;
    let Some((urls, key)) = seeded("nodes_kill", 60_000).await else {
        return;
    };
    let reports = tempfile::tempdir().expect("dir");
    let c = client();
    let mut a = Node::start(&urls, reports.path(), 1);
    // The whole term in Parquet: long enough to be killed in the middle.
    let today = meterbook_core::Day::today();
    let (st, job) = post_json(
        &c,
        &a.url(&format!("/v3/enrollments/{N}/reports")),
        &key,
        serde_json::json!({
            "startDate": today.period().prev().prev().prev().prev().prev().prev().first_day().to_string(),
            "endDate": today.period().prev().last_day().to_string(),
            "format": "parquet"
        }),
    )
    .await;
    assert!(st == 200 || st == 202, "{st} {job}");
    let id = job["id"].as_str().expect("id").to_string();
    // Kill A once it has started the job.
    let start = Instant::now();
    loop {
        let (_, body) = get(
            &c,
            &a.url(&format!("/v3/enrollments/{N}/reports/{id}")),
            &key,
        )
        .await;
        let job: serde_json::Value = serde_json::from_str(&body).expect("json");
        match job["statusName"].as_str() {
            Some("InProgress") => break,
            Some("Queued") => {}
            other => panic!("the job ended before its node could be killed: {other:?} (a larger demo is needed here)"),
        }
        assert!(start.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill();
    let b = Node::start(&urls, reports.path(), 1);
    let done = finished(&c, &[b.base.as_str()], &id, &key).await;
    let name = done["statusName"].as_str().unwrap_or("");
    assert!(name == "Completed" || name == "ReadyToDownload", "{done}");
    let r = c
        .get(b.url(&format!("/v3/enrollments/{N}/reports/{id}/download")))
        .header("authorization", format!("bearer {key}"))
        .send()
        .await
        .expect("download");
    assert_eq!(r.status().as_u16(), 200);
    let bytes = r.bytes().await.expect("body");
    assert!(
        bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"),
        "a whole Parquet file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_and_rate_limits_count_across_nodes() {
    let _shared = ALONE.read().await;
    let Some((urls, key)) = seeded("nodes_limits", 2000).await else {
        return;
    };
    let reports = tempfile::tempdir().expect("dir");
    let (a, b) = (
        Node::start_limited(&urls, reports.path(), 1, "6"),
        Node::start_limited(&urls, reports.path(), 1, "6"),
    );
    let nodes = [&a, &b];
    // Six requests of one key, alternating nodes, use up its burst of six:
    // the seventh is refused on either node (per process, each would allow six).
    let c = client();
    let path = format!("/v3/enrollments/{N}/billingPeriods");
    for i in 0..6 {
        let (st, body) = get(&c, &nodes[i % 2].url(&path), &key).await;
        assert_eq!(st, 200, "request {i}: {body}");
    }
    for node in nodes {
        let (st, _) = get(&c, &node.url(&path), &key).await;
        assert_eq!(st, 429, "the key's burst is spent on every node");
    }
    // Five failed sign-ins (one address, one account), alternating nodes,
    // reach the limit: the sixth attempt is refused on either node, even
    // with the right password.
    for i in 0..5 {
        let r = Browser::at(&nodes[i % 2].base)
            .sign_in_raw(ADMIN, "not the password", &[])
            .await;
        assert_eq!(
            r.status,
            401,
            "failure {i} is answered with the form: {}",
            r.describe()
        );
    }
    for node in nodes {
        let r = Browser::at(&node.base)
            .sign_in_raw(ADMIN, PASSWORD, &[])
            .await;
        assert_eq!(r.status, 429, "throttled on every node: {}", r.describe());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_recovers_when_postgresql_restarts_under_load() {
    let _alone = ALONE.write().await;
    let Some((urls, key)) = seeded("nodes_pg_restart", 2000).await else {
        return;
    };
    let reports = tempfile::tempdir().expect("dir");
    let a = Node::start(&urls, reports.path(), 1);
    let c = client();
    let path = format!(
        "/v3/enrollments/{N}/billingPeriods/{}/balancesummary",
        last_month()
    );
    let (_, want) = get(&c, &a.url(&path), &key).await;
    let restart = tokio::task::spawn_blocking(|| {
        std::thread::sleep(Duration::from_millis(500));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cluster.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg("restart-pg")
            .output()
            .expect("restart");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    // Requests all through the restart: each is answered (an error while
    // PostgreSQL is down is a JSON 5xx, never a dropped connection), and
    // once it is back every answer is the same as before.
    let started = Instant::now();
    let mut errors = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let r = c
            .get(a.url(&path))
            .header("authorization", format!("bearer {key}"))
            .send()
            .await
            .expect("every request is answered");
        let st = r.status().as_u16();
        let body = r.text().await.expect("body");
        if st == 200 {
            assert_eq!(figures(&body), figures(&want));
        } else {
            assert!(st >= 500 && body.starts_with('{'), "{st} {body}");
            assert!(
                !body.contains("SELECT") && !body.contains("postgres"),
                "{body}"
            );
            errors += 1;
        }
    }
    restart.await.expect("restart");
    for _ in 0..20 {
        let (st, body) = get(&c, &a.url(&path), &key).await;
        assert_eq!(st, 200, "after the restart: {body}");
        assert_eq!(figures(&body), figures(&want), "after the restart");
    }
    println!("{errors} answers were errors during the restart");
}

/// A node that runs its notifier every second, lets webhooks reach this
/// machine, mails through the test SMTP server (when there is one) and names
/// itself `host` in Message-IDs.
fn notifying(urls: &ClusterUrls, reports: &Path, host: &str, smtp: Option<&str>) -> Node {
    let public = format!("http://{host}");
    let mut extra = vec![
        "--notify-interval-secs",
        "1",
        "--webhook-allow-private",
        "--public-url",
        &public,
    ];
    if let Some(relay) = smtp {
        extra.extend(["--smtp-relay", relay]);
    }
    Node::start_with(urls, reports, 1, "10000", &extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_once_across_nodes_and_restarts() {
    let _shared = ALONE.read().await;
    let Some((urls, key)) = seeded("nodes_alerts", 2000).await else {
        return;
    };
    let smtp = meterbook_conformance::receivers::smtp_server();
    let relay = smtp.as_ref().map(|(h, p, _)| format!("{h}:{p}"));
    let host = format!("nodes-{}.test", std::process::id());
    let reports = tempfile::tempdir().expect("dir");
    let (hook_url, seen) = meterbook_conformance::receivers::receiver(Vec::new());
    let c = client();
    let start = || {
        (
            notifying(&urls, reports.path(), &host, relay.as_deref()),
            notifying(&urls, reports.path(), &host, relay.as_deref()),
        )
    };
    let (a, b) = start();
    // The channel on one node, the budget on the other. A budget of 0.01
    // for the term (whose charges are never zero, even on the first day of
    // a month): all three thresholds have crossed at once.
    let (st, ch) = post_json(
        &c,
        &b.url(&format!("/v3/enrollments/{N}/notifications/channels")),
        &key,
        serde_json::json!({"kind": "webhook", "address": hook_url, "events": ["alert"]}),
    )
    .await;
    assert_eq!(st, 201, "{ch}");
    let (st, budget) = post_json(
        &c,
        &a.url(&format!("/v3/enrollments/{N}/budgets")),
        &key,
        serde_json::json!({
            "name": "Two nodes", "scope": "enrollment", "cadence": "term", "amount": "0.01",
            "thresholds": [{"basis": "actual", "percent": 50}, {"basis": "actual", "percent": 80},
                           {"basis": "actual", "percent": 100}],
        }),
    )
    .await;
    assert_eq!(st, 201, "{budget}");
    let budget_id = budget["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("a budget id in {budget}"));
    let ours = |events: &serde_json::Value| -> Vec<String> {
        events["value"]
            .as_array()
            .unwrap_or_else(|| panic!("events: {events}"))
            .iter()
            .filter(|e| e["budgetId"].as_i64() == Some(budget_id))
            .map(|e| e["key"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    // Both nodes run their notifier every second: three webhooks arrive,
    // one per threshold, each sent once.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let delivered = |seen: &std::sync::Mutex<Vec<meterbook_conformance::receivers::Received>>| {
        let got = seen.lock().unwrap();
        let mut ids: Vec<String> = got
            .iter()
            .map(|r| {
                r.header("meterbook-delivery")
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        ids.sort();
        ids
    };
    let ids = delivered(&seen);
    assert_eq!(ids.len(), 3, "one webhook per threshold: {ids:?}");
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique, ids, "no delivery sent twice");
    let events_path = format!("/v3/enrollments/{N}/notifications/events?limit=200");
    let (st, body) = get(&c, &a.url(&events_path), &key).await;
    assert_eq!(st, 200, "{body}");
    let keys = ours(&serde_json::from_str(&body).expect("json"));
    assert_eq!(keys.len(), 3, "one event per threshold: {keys:?}");
    // The enterprise administrators' e-mails: each message once in the mailbox.
    if let Some((_, _, maildir)) = &smtp {
        let (st, body) = get(
            &c,
            &b.url(&format!(
                "/v3/enrollments/{N}/notifications/deliveries?limit=500"
            )),
            &key,
        )
        .await;
        assert_eq!(st, 200, "{body}");
        let log: serde_json::Value = serde_json::from_str(&body).expect("json");
        let mails: Vec<i64> = log["value"]
            .as_array()
            .expect("deliveries")
            .iter()
            .filter(|d| d["target"]["kind"] == "email")
            .filter_map(|d| d["id"].as_i64())
            .collect();
        assert!(!mails.is_empty(), "the administrators are mailed: {log}");
        for id in mails {
            let mid = format!("<delivery-{id}@{host}>");
            let _ = meterbook_conformance::receivers::read_back(maildir, &mid);
            assert_eq!(
                meterbook_conformance::receivers::count_in_maildir(maildir, &mid),
                1,
                "{mid} sent once"
            );
        }
    }
    // Both nodes restart: nothing fires or goes out again.
    drop((a, b));
    let (a, _b) = start();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(delivered(&seen), ids, "nothing sent again after a restart");
    let (st, body) = get(&c, &a.url(&events_path), &key).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(ours(&serde_json::from_str(&body).expect("json")), keys);
}
