//! The portal's front door through the real server on a random port: sign-in
//! and its cookie, no user enumeration, throttling per account and per
//! address, idle and absolute session timeouts, sign-out (here and
//! everywhere), CSRF on every form, one-time set-password links, disabled
//! users and users without roles, isolation between enrollments, and which
//! pages, figures and changes each role gets.
//!
//! Every test seeds a fresh SQLite store: enrollment 100100 (a term of twelve
//! months that began three months ago, so the overview's current month has
//! data) with departments Research (accounts r1, r2) and Operations (o1), an
//! account s1 without a department, a commitment and 240 usage rows;
//! enrollment 200200 with one department. The client keeps no cookie jar and
//! follows no redirect: each test carries `mb_session` itself and sees the 303s.
//!
//! Pages that other parts of the portal add (usage, reports, keys, manage,
//! downloads) are checked when they exist; a page whose route is missing (the
//! API's JSON 404) is reported as `SKIPPED: page missing` on stderr.
//!
//! (Tests once named `bug_*` pinned bugs found here; all are fixed.)

use meterbook_core::access::Scope;
use meterbook_core::enrollment::ChargeVisibility;
use meterbook_core::prices::MeterPrice;
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, MetadataStore};
use meterbook_core::users::{Role, UserStore};
use meterbook_core::{Day, Money, Period};
use meterbook_server::portal::{password, session, PortalSettings};
use meterbook_server::ServerSettings;
use meterbook_sqlite::SqliteStore;
use meterbook_testkit::seed::num;
use meterbook_testkit::seed::{self, ingest_rows};
use meterbook_testkit::{csrf_of, Browser, Clock, ManualClock};
use std::collections::HashMap;
use std::time::Duration;

// ---------------------------------------------------------------------------
// The seed
// ---------------------------------------------------------------------------

const N: &str = "100100";
const OTHER: &str = "200200";
const G1: &str = "22222222-0000-4000-8000-000000000001";
const G2: &str = "22222222-0000-4000-8000-000000000002";
const G3: &str = "22222222-0000-4000-8000-000000000003";
const G4: &str = "22222222-0000-4000-8000-000000000004";
const G9: &str = "99999999-0000-4000-8000-000000000009";
/// The password of every seeded user that has one.
const PW: &str = "correct horse battery";

const ADMIN: &str = "admin@example.com";
const AUDITOR: &str = "auditor@example.com";
const DANA: &str = "dana@example.com";
const ERIK: &str = "erik@example.com";
/// Enterprise administrator of the other enrollment only.
const OUTSIDER: &str = "outsider@example.com";
/// Has a password and no role anywhere.
const NOROLE: &str = "norole@example.com";
/// Has a role and a password, and is disabled.
const DISABLED: &str = "disabled@example.com";
/// Invited: a role, no password yet.
const INVITED: &str = "invited@example.com";

/// The first period of the seeded term: three months before this one.
fn first_period() -> Period {
    Day::today().period().prev().prev().prev()
}

/// A full past month with usage (the monthly downloads' period).
fn last_period() -> Period {
    Day::today().period().prev()
}

fn price_sheet() -> Vec<MeterPrice> {
    seed::price_sheet(&[
        ("TIER01", "0", "0", "1.00"),
        ("TIER01", "0", "100", "0.50"),
        ("FLAT01", "0", "0", "0.25"),
    ])
}

/// (record id, subscription, date, meter, quantity)
type SeedRow = (String, &'static str, String, &'static str, String);

fn create_enrollment(store: &SqliteStore, n: &str, rows: &[(&str, &str, &str)]) {
    let first = first_period();
    let mut end = first;
    for _ in 0..12 {
        end = end.next();
    }
    seed::enrollment(
        store,
        n,
        "USD",
        first.first_day(),
        end.first_day().add_days(-1),
    );
    store
        .upsert_hierarchy(&num(n), &seed::hierarchy(rows))
        .expect("hierarchy");
    for p in first.through(Day::today().period()) {
        store
            .import_prices(&num(n), p, &price_sheet())
            .expect("prices");
    }
}

/// Users by e-mail: their ids.
type Users = HashMap<&'static str, i64>;

fn seed(store: &SqliteStore, clock: &ManualClock) -> Users {
    create_enrollment(
        store,
        N,
        &[
            ("Research", "r1", G1),
            ("Research", "r2", G2),
            ("Operations", "o1", G3),
            ("", "s1", G4),
        ],
    );
    // Usage from the term's first day through yesterday, on every subscription.
    let start = first_period().first_day();
    let span = (Day::today().raw() - start.raw()).max(1) as usize;
    let rows: Vec<SeedRow> = (0..240)
        .map(|i| {
            (
                format!("u{i:04}"),
                [G1, G2, G3, G4][i % 4],
                start.add_days(((i * 7) % span) as i32).to_string(),
                if i % 3 == 0 { "TIER01" } else { "FLAT01" },
                format!("{}.5", 1 + i % 7),
            )
        })
        .collect();
    ingest_rows(store, N, &rows);
    store
        .add_entry(
            &num(N),
            EntryKind::Purchase,
            &CommitmentEntry {
                date: start,
                amount: Money(1_000_000),
                description: "Monetary commitment".into(),
            },
        )
        .expect("commitment");
    store
        .set_watermark(&num(N), Day::today().add_days(-1))
        .expect("watermark");
    create_enrollment(store, OTHER, &[("Elsewhere", "x1", G9)]);
    ingest_rows(
        store,
        OTHER,
        &[(
            "z1".into(),
            G9,
            first_period().first_day().to_string(),
            "TIER01",
            "5".into(),
        )],
    );

    let h = store.hierarchy(&num(N)).expect("hierarchy");
    let research = h.department_by_name("Research").expect("Research").id;
    let o1 = h.account_by_name("o1").expect("account o1").id;
    let hash = password::hash(PW).expect("hash");
    let now = clock.now_unix();
    let role = |n: &str, scope: Scope, read_only: bool| Role {
        enrollment: num(n),
        scope,
        read_only,
    };
    let mut users = Users::new();
    let specs: [(&'static str, bool, Option<Role>); 8] = [
        (ADMIN, true, Some(role(N, Scope::Enrollment, false))),
        (AUDITOR, true, Some(role(N, Scope::Enrollment, true))),
        (
            DANA,
            true,
            Some(role(N, Scope::Department(research), false)),
        ),
        (ERIK, true, Some(role(N, Scope::Account(o1), false))),
        (OUTSIDER, true, Some(role(OTHER, Scope::Enrollment, false))),
        (NOROLE, true, None),
        (DISABLED, true, Some(role(N, Scope::Enrollment, false))),
        (
            INVITED,
            false,
            Some(role(N, Scope::Department(research), true)),
        ),
    ];
    for (email, with_password, r) in specs {
        let pw = with_password.then_some(hash.as_str());
        let id = seed::user(store, email, "", pw, now, r.as_slice());
        users.insert(email, id);
    }
    store
        .set_user_disabled(users[DISABLED], true)
        .expect("disable");
    users
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

/// The shared harness, with this file's users.
struct TestApp {
    app: meterbook_testkit::TestApp,
    users: Users,
}

impl std::ops::Deref for TestApp {
    type Target = meterbook_testkit::TestApp;
    fn deref(&self) -> &Self::Target {
        &self.app
    }
}

fn settings(portal: PortalSettings) -> ServerSettings {
    ServerSettings {
        portal,
        ..meterbook_testkit::roomy()
    }
}

/// Throttling out of reach of the tests that do not test it.
fn roomy() -> PortalSettings {
    meterbook_testkit::roomy().portal
}

async fn spawn_app() -> TestApp {
    spawn_app_with(roomy()).await
}

async fn spawn_app_with(portal: PortalSettings) -> TestApp {
    spawn_app_with_settings(settings(portal)).await
}

async fn spawn_app_with_settings(settings: ServerSettings) -> TestApp {
    let (app, users) = meterbook_testkit::spawn()
        .settings(settings)
        .no_redirects()
        .seed(seed)
        .await;
    TestApp { app, users }
}

type Resp = meterbook_testkit::Resp<String>;

impl TestApp {
    async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        self.app.send_text(req).await
    }

    /// A browser without a session when `b` is `None`.
    fn as_browser(&self, b: Option<&Browser>) -> Browser {
        b.cloned().unwrap_or_else(|| self.browser())
    }

    async fn get(&self, path: &str, b: Option<&Browser>) -> Resp {
        self.as_browser(b).get(path).await
    }

    async fn post(&self, path: &str, b: Option<&Browser>, form: &[(&str, &str)]) -> Resp {
        self.as_browser(b).post(path, form).await
    }

    /// The sign-in form's token and its cookie, as a browser gets them.
    async fn sign_in_form(&self) -> (String, String) {
        self.browser().sign_in_form().await
    }

    async fn sign_in_raw(&self, email: &str, pw: &str, headers: &[(&str, &str)]) -> Resp {
        self.browser().sign_in_raw(email, pw, headers).await
    }

    /// Signs in (asserting it works) and reads the session's form token from
    /// the first page the user reaches (none for a user without roles).
    async fn sign_in(&self, email: &str) -> Browser {
        self.app.sign_in(email, PW).await
    }

    async fn sign_in_with(&self, email: &str, pw: &str) -> Browser {
        self.app.sign_in(email, pw).await
    }

    /// Whether the session is still in the store.
    async fn session_exists(&self, b: &Browser) -> bool {
        let h = b.hash();
        self.blocking(move |s| s.session(&h).expect("session lookup").is_some())
            .await
    }

    /// Whether the browser is still signed in (an enrollment page answers 200).
    async fn signed_in(&self, b: &Browser, n: &str) -> bool {
        let r = self.get(&format!("/portal/e/{n}"), Some(b)).await;
        match r.status {
            200 => true,
            303 => {
                assert_eq!(r.location(), "/portal/sign-in");
                false
            }
            _ => panic!("unexpected {}", r.describe()),
        }
    }
}

// ---------------------------------------------------------------------------
// Sign-in and the cookie
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sign_in_sets_an_http_only_same_site_cookie_and_lands_on_the_enrollment() {
    let app = spawn_app().await;
    let page = app.get("/portal/sign-in", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("action=\"/portal/sign-in\""));
    assert!(page
        .header("content-security-policy")
        .is_some_and(|c| c.contains("default-src 'self'")));

    let r = app.sign_in_raw(ADMIN, PW, &[]).await;
    assert_eq!(r.status, 303, "{}", r.describe());
    assert_eq!(r.location(), "/portal");
    let line = r.session_cookie_line().expect("Set-Cookie mb_session");
    let attrs: Vec<&str> = line.split(';').map(str::trim).collect();
    assert!(attrs.contains(&"HttpOnly"), "{line}");
    assert!(attrs.contains(&"SameSite=Lax"), "{line}");
    assert!(attrs.contains(&"Path=/"), "{line}");
    assert!(
        attrs.contains(&"Max-Age=43200"),
        "the absolute timeout: {line}"
    );
    assert!(!attrs.contains(&"Secure"), "plain HTTP: {line}");

    // The e-mail is matched without regard to case or surrounding spaces.
    let r = app.sign_in_raw(" Admin@Example.COM ", PW, &[]).await;
    assert_eq!(r.status, 303, "{}", r.describe());

    let b = app.sign_in(ADMIN).await;
    let home = app.get("/portal", Some(&b)).await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location(), format!("/portal/e/{N}"));
    let page = app.get(&format!("/portal/e/{N}"), Some(&b)).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(ADMIN),
        "the layout names who is signed in"
    );
    assert!(page.body.contains("Enterprise administrator"));
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(csrf_of(&page.body).as_deref(), Some(b.csrf.as_str()));
    assert_eq!(b.csrf.len(), 64);
}

#[tokio::test]
async fn the_cookie_is_secure_behind_tls_or_when_configured() {
    let app = spawn_app().await;
    let r = app
        .sign_in_raw(ADMIN, PW, &[("x-forwarded-proto", "https")])
        .await;
    assert_eq!(r.status, 303);
    let line = r.session_cookie_line().expect("cookie");
    assert!(line.split(';').any(|a| a.trim() == "Secure"), "{line}");
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Lax"));

    let app = spawn_app_with(PortalSettings {
        secure_cookies: true,
        ..roomy()
    })
    .await;
    let r = app.sign_in_raw(ADMIN, PW, &[]).await;
    assert_eq!(r.status, 303);
    let line = r.session_cookie_line().expect("cookie");
    assert!(line.split(';').any(|a| a.trim() == "Secure"), "{line}");
    // Signing out clears it with the same attributes.
    let b = app.sign_in(ADMIN).await;
    let out = app
        .post("/portal/sign-out", Some(&b), &[("csrf", &b.csrf)])
        .await;
    let line = out.session_cookie_line().expect("a clearing cookie");
    assert!(line.starts_with("mb_session=;"), "{line}");
    assert!(
        line.contains("Max-Age=0") && line.contains("Secure"),
        "{line}"
    );
}

#[tokio::test]
async fn signed_out_requests_are_sent_to_sign_in() {
    let app = spawn_app().await;
    for path in [
        "/portal".to_string(),
        format!("/portal/e/{N}"),
        format!("/portal/e/{OTHER}"),
        "/portal/e/999999".to_string(),
    ] {
        let r = app.get(&path, None).await;
        assert_eq!(r.status, 303, "{path}: {}", r.describe());
        assert_eq!(r.location(), "/portal/sign-in", "{path}");
        assert!(r.session_cookie_line().is_none());
    }
    // A made-up cookie is no better than none.
    let fake = app.browser().with_token(&"0".repeat(64));
    let r = app.get(&format!("/portal/e/{N}"), Some(&fake)).await;
    assert_eq!(r.status, 303);
    let r = app
        .post("/portal/sign-out", Some(&fake), &[("csrf", "")])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), "/portal/sign-in");
}

/// `/` sends a browser to the portal and an API client to `/docs`; a tab
/// without an enrollment goes to the viewer's first one; an unknown portal
/// path is the portal's 404 page, not the API's JSON.
#[tokio::test]
async fn the_root_and_unknown_portal_paths_lead_somewhere_useful() {
    let app = spawn_app().await;
    let browser = app
        .send(
            app.client
                .get(format!("{}/", app.base))
                .header("accept", "text/html,application/xhtml+xml"),
        )
        .await;
    assert_eq!(
        (browser.status, browser.location().as_str()),
        (303, "/portal"),
        "{}",
        browser.describe()
    );
    let api = app.get("/", None).await;
    assert_eq!(
        (api.status, api.location().as_str()),
        (303, "/docs"),
        "{}",
        api.describe()
    );

    let r = app.get("/portal/usage", None).await;
    assert_eq!((r.status, r.location().as_str()), (303, "/portal/sign-in"));
    let b = app.sign_in(ADMIN).await;
    for tab in ["usage", "reports", "keys", "manage"] {
        let r = app.get(&format!("/portal/{tab}"), Some(&b)).await;
        assert_eq!(r.status, 303, "{tab}: {}", r.describe());
        assert_eq!(r.location(), format!("/portal/e/{N}/{tab}"));
    }
    for path in [
        "/portal/nonsense",
        "/portal/e/100100/nonsense",
        "/portal/a/b/c",
    ] {
        let r = app.get(path, Some(&b)).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.is_html(), "{path}: {}", r.describe());
    }
    // The API keeps its JSON errors.
    let r = app.get("/v3/nonsense", None).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("\"error\""), "{}", r.describe());
}

// ---------------------------------------------------------------------------
// No user enumeration
// ---------------------------------------------------------------------------

#[tokio::test]
async fn wrong_password_unknown_email_disabled_and_invited_users_read_the_same() {
    let app = spawn_app().await;
    let cases = [
        (ADMIN, "wrong password here"),
        ("nobody@example.com", PW),
        ("nobody@example.com", "wrong password here"),
        (DISABLED, PW),
        (INVITED, PW),
        (INVITED, ""),
    ];
    let mut seen: Vec<(u16, String)> = Vec::new();
    for (email, pw) in cases {
        let r = app.sign_in_raw(email, pw, &[]).await;
        assert_eq!(r.status, 401, "{email}: {}", r.describe());
        assert!(r.session_cookie_line().is_none(), "{email}");
        assert!(r.header("retry-after").is_none());
        assert!(r.body.contains("The e-mail or password is not right."));
        // The page echoes the e-mail typed and has a fresh form token;
        // otherwise it is the same page.
        let token = csrf_of(&r.body).expect("a form token");
        seen.push((
            r.status,
            r.body.replace(email, "EMAIL").replace(&token, "TOKEN"),
        ));
    }
    for (i, s) in seen.iter().enumerate().skip(1) {
        assert_eq!(s, &seen[0], "case {i} differs from a wrong password");
    }
}

// ---------------------------------------------------------------------------
// Throttling
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_account_is_locked_after_its_failures_even_with_the_right_password() {
    let app = spawn_app_with(PortalSettings {
        max_failures_per_account: 3,
        max_failures_per_address: 1000,
        throttle_window: Duration::from_secs(600),
        ..Default::default()
    })
    .await;
    let before = app.sign_in(ADMIN).await;
    for i in 0..3 {
        let r = app.sign_in_raw(ADMIN, "not the password", &[]).await;
        assert_eq!(r.status, 401, "failure {i}: {}", r.describe());
    }
    for (email, pw) in [
        (ADMIN, PW),
        (ADMIN, "not the password"),
        ("ADMIN@example.com", PW),
    ] {
        let r = app.sign_in_raw(email, pw, &[]).await;
        assert_eq!(r.status, 429, "{email} locked: {}", r.describe());
        assert!(r.session_cookie_line().is_none());
        let after: i64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert!((1..=600).contains(&after), "Retry-After {after}");
        assert!(r.body.contains("Too many failed sign-ins"), "{}", r.body);
        assert!(r.is_html());
    }
    // Other accounts from the same address are not affected.
    let b = app.sign_in(AUDITOR).await;
    assert!(app.signed_in(&b, N).await);
    // A session opened before the lock goes on.
    assert!(app.signed_in(&before, N).await);
}

#[tokio::test]
async fn an_account_that_signs_in_before_its_limit_starts_counting_again() {
    let app = spawn_app_with(PortalSettings {
        max_failures_per_account: 3,
        max_failures_per_address: 1000,
        ..Default::default()
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            app.sign_in_raw(DANA, "nope nope nope", &[]).await.status,
            401
        );
    }
    app.sign_in(DANA).await;
    for _ in 0..2 {
        assert_eq!(
            app.sign_in_raw(DANA, "nope nope nope", &[]).await.status,
            401
        );
    }
    app.sign_in(DANA).await;
}

#[tokio::test]
async fn an_address_is_locked_after_its_failures_across_accounts() {
    let app = spawn_app_with(PortalSettings {
        max_failures_per_account: 1000,
        max_failures_per_address: 4,
        throttle_window: Duration::from_secs(300),
        ..Default::default()
    })
    .await;
    // Four failures on four different (mostly unknown) accounts: all from 127.0.0.1.
    for (i, email) in ["a@example.com", "b@example.com", DANA, "c@example.com"]
        .into_iter()
        .enumerate()
    {
        let r = app.sign_in_raw(email, "guess guess guess", &[]).await;
        assert_eq!(r.status, 401, "failure {i}");
    }
    // Now every account is refused from this address, right password or not.
    for email in [ADMIN, AUDITOR, ERIK] {
        let r = app.sign_in_raw(email, PW, &[]).await;
        assert_eq!(r.status, 429, "{email}: {}", r.describe());
        let after: i64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert!((1..=300).contains(&after), "Retry-After {after}");
    }
    // A forwarding header does not buy a new address.
    let r = app
        .sign_in_raw(ADMIN, PW, &[("x-forwarded-for", "203.0.113.9")])
        .await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn the_lock_ends_with_the_throttle_window() {
    let app = spawn_app_with(PortalSettings {
        max_failures_per_account: 2,
        max_failures_per_address: 1000,
        throttle_window: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            app.sign_in_raw(ERIK, "nope nope nope", &[]).await.status,
            401
        );
    }
    assert_eq!(app.sign_in_raw(ERIK, PW, &[]).await.status, 429);
    app.advance(Duration::from_millis(3100));
    app.sign_in(ERIK).await;
}

/// The server behind a reverse proxy on 127.0.0.1 (the test client's address),
/// with the default throttle and a short delay step.
async fn spawn_behind_proxy(trusted: &str) -> TestApp {
    spawn_app_with_settings(ServerSettings {
        trusted_proxies: meterbook_server::TrustedProxies::parse(trusted).unwrap(),
        ..settings(PortalSettings {
            failure_delay_step: Duration::from_millis(10),
            ..Default::default()
        })
    })
    .await
}

/// Behind a proxy every user shares the socket's address: failures from
/// other clients (told apart by X-Forwarded-For) must not lock the
/// administrator out, while each guessing address is stopped for the account.
#[tokio::test]
async fn behind_a_trusted_proxy_strangers_cannot_lock_an_owner_out() {
    let app = spawn_behind_proxy("127.0.0.1").await;
    let limit = PortalSettings::default().max_failures_per_account;
    for guesser in 1..=5 {
        let xff = format!("203.0.113.{guesser}");
        for i in 0..limit {
            let r = app
                .sign_in_raw(ADMIN, "guess guess guess", &[("x-forwarded-for", &xff)])
                .await;
            assert_eq!(
                r.status,
                401,
                "guesser {guesser}, try {i}: {}",
                r.describe()
            );
        }
        // That address is done with this account, right password or not...
        let r = app
            .sign_in_raw(ADMIN, PW, &[("x-forwarded-for", &xff)])
            .await;
        assert_eq!(r.status, 429, "{}", r.describe());
        assert!(r.header("retry-after").is_some());
        // ...but not with other accounts.
        let r = app
            .sign_in_raw(AUDITOR, PW, &[("x-forwarded-for", &xff)])
            .await;
        assert_eq!(r.status, 303, "{}", r.describe());
    }
    // 25 failures later, the owner signs in from their own address (behind
    // a second proxy hop that is also trusted).
    let r = app
        .sign_in_raw(
            ADMIN,
            PW,
            &[("x-forwarded-for", "198.51.100.20, 127.0.0.1")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.describe());
}

/// A client that is not a trusted proxy cannot choose its address with
/// X-Forwarded-For: its failures all count against the socket's address.
#[tokio::test]
async fn an_untrusted_peer_cannot_spoof_its_address() {
    let app = spawn_behind_proxy("10.0.0.0/8").await;
    let limit = PortalSettings::default().max_failures_per_account;
    for i in 0..limit {
        let xff = format!("203.0.113.{i}");
        let r = app
            .sign_in_raw(ADMIN, "guess guess guess", &[("x-forwarded-for", &xff)])
            .await;
        assert_eq!(r.status, 401);
    }
    let r = app
        .sign_in_raw(ADMIN, PW, &[("x-forwarded-for", "198.51.100.99")])
        .await;
    assert_eq!(r.status, 429, "{}", r.describe());
}

/// A portal form over the body bound, or a query string over its bound, gets
/// the portal's error page, not a bare status or the API's JSON.
#[tokio::test]
async fn oversized_portal_requests_get_the_error_page() {
    let app = spawn_app_with_settings(ServerSettings {
        limits: meterbook_server::Limits {
            max_body_bytes: 2048,
            ..Default::default()
        },
        ..settings(roomy())
    })
    .await;
    let (cookie, csrf) = app.sign_in_form().await;
    let padding = "p".repeat(4096);
    let r = app
        .client
        .post(format!("{}/portal/sign-in", app.base))
        .header("cookie", cookie)
        .form(&[
            ("email", ADMIN),
            ("password", padding.as_str()),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("larger than this server accepts"));
    let r = app
        .get(&format!("/portal/sign-in?x={}", "q".repeat(5000)), None)
        .await;
    assert_eq!(r.status, 414, "{}", r.describe());
    assert!(r.is_html());
}

// ---------------------------------------------------------------------------
// Session timeouts
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_idle_session_ends_and_is_deleted() {
    let app = spawn_app_with(PortalSettings {
        idle_timeout: Duration::from_secs(1),
        ..roomy()
    })
    .await;
    let b = app.sign_in(ADMIN).await;
    assert!(app.session_exists(&b).await);
    app.advance(Duration::from_millis(2600));
    let r = app.get(&format!("/portal/e/{N}"), Some(&b)).await;
    assert_eq!(r.status, 303, "{}", r.describe());
    assert_eq!(r.location(), "/portal/sign-in");
    assert!(
        !app.session_exists(&b).await,
        "the expired session is deleted"
    );
    // Signing in again works.
    let b2 = app.sign_in(ADMIN).await;
    assert!(app.signed_in(&b2, N).await);
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_timeout_even_when_used() {
    let app = spawn_app_with(PortalSettings {
        idle_timeout: Duration::from_secs(600),
        absolute_timeout: Duration::from_secs(2),
        ..roomy()
    })
    .await;
    let b = app.sign_in(ADMIN).await;
    app.advance(Duration::from_millis(900));
    assert!(app.signed_in(&b, N).await, "still within the limit");
    app.advance(Duration::from_millis(2300));
    assert!(!app.signed_in(&b, N).await, "past the absolute timeout");
    assert!(
        !app.session_exists(&b).await,
        "the expired session is deleted"
    );
}

/// Bug: `last_seen_at` is written at most once a minute, and the idle check
/// reads it as if it were exact, so a session in use can end after much less
/// idle time than the setting (up to a minute less; with an idle timeout of
/// under a minute, a used session always ends `idle_timeout` after sign-in).
/// The minute-granularity write should be shortened for short timeouts, or
/// the check should allow for it.
#[tokio::test]
async fn a_session_in_use_is_not_idle() {
    let app = spawn_app_with(PortalSettings {
        idle_timeout: Duration::from_secs(3),
        ..roomy()
    })
    .await;
    let b = app.sign_in(ADMIN).await;
    app.advance(Duration::from_millis(2000));
    assert!(app.signed_in(&b, N).await);
    app.advance(Duration::from_millis(2000));
    assert!(
        app.signed_in(&b, N).await,
        "used 2 s ago, idle timeout 3 s: the session should still be there"
    );
}

// ---------------------------------------------------------------------------
// Signing out
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sign_out_ends_the_session_and_the_old_cookie_no_longer_works() {
    let app = spawn_app().await;
    let b = app.sign_in(ADMIN).await;
    let other = app.sign_in(ADMIN).await;
    assert_ne!(b.token, other.token);
    assert_ne!(b.csrf, other.csrf, "a form token per session");
    let r = app
        .post("/portal/sign-out", Some(&b), &[("csrf", &b.csrf)])
        .await;
    assert_eq!(r.status, 303, "{}", r.describe());
    assert_eq!(r.location(), "/portal/sign-in");
    let line = r.session_cookie_line().expect("a clearing cookie");
    assert!(line.starts_with("mb_session=;") && line.contains("Max-Age=0"));
    assert!(!app.session_exists(&b).await);
    assert!(!app.signed_in(&b, N).await, "the old cookie is dead");
    let r = app.get("/portal", Some(&b)).await;
    assert_eq!(r.location(), "/portal/sign-in");
    // The same user's other session is not affected.
    assert!(app.signed_in(&other, N).await);
    // Another session's form token does not sign this one out.
    let r = app
        .post("/portal/sign-out", Some(&other), &[("csrf", &b.csrf)])
        .await;
    assert_eq!(r.status, 403);
    assert!(app.signed_in(&other, N).await);
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_of_the_user_only() {
    let app = spawn_app().await;
    let (a1, a2, a3) = (
        app.sign_in(ADMIN).await,
        app.sign_in(ADMIN).await,
        app.sign_in(ADMIN).await,
    );
    let auditor = app.sign_in(AUDITOR).await;
    let r = app
        .post(
            "/portal/sign-out-everywhere",
            Some(&a2),
            &[("csrf", &a2.csrf)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.describe());
    assert_eq!(r.location(), "/portal/sign-in");
    assert!(r
        .session_cookie_line()
        .is_some_and(|l| l.contains("Max-Age=0")));
    for b in [&a1, &a2, &a3] {
        assert!(!app.session_exists(b).await);
        assert!(!app.signed_in(b, N).await);
    }
    assert!(
        app.signed_in(&auditor, N).await,
        "other users stay signed in"
    );
}

// ---------------------------------------------------------------------------
// CSRF
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sign_out_with_a_wrong_or_empty_form_token_is_refused_and_the_session_survives() {
    let app = spawn_app().await;
    let b = app.sign_in(ADMIN).await;
    let wrong = format!("{}0", &b.csrf[..63]);
    let wrong = if wrong == b.csrf {
        format!("{}1", &b.csrf[..63])
    } else {
        wrong
    };
    for path in ["/portal/sign-out", "/portal/sign-out-everywhere"] {
        for sent in [wrong.as_str(), "", &b.csrf[..32], &b.csrf.to_uppercase()] {
            let r = app.post(path, Some(&b), &[("csrf", sent)]).await;
            assert_eq!(r.status, 403, "{path} with {sent:?}: {}", r.describe());
            assert!(r.is_html(), "an error page");
            assert!(r.session_cookie_line().is_none(), "the cookie is kept");
            assert!(app.session_exists(&b).await);
            assert!(app.signed_in(&b, N).await);
        }
        // No form token at all: refused too (see bug_a_missing_form_token_is_a_403_page
        // for the status), and the session survives.
        let r = app.post(path, Some(&b), &[("other", "x")]).await;
        assert!(
            (400..500).contains(&r.status),
            "{path} without a token: {}",
            r.describe()
        );
        let r = app
            .send(
                app.client
                    .post(format!("{}{path}", app.base))
                    .header("cookie", b.cookie()),
            )
            .await;
        assert!((400..500).contains(&r.status), "{path} without a body");
        assert!(app.signed_in(&b, N).await);
    }
    // A GET never signs out.
    let r = app.get("/portal/sign-out", Some(&b)).await;
    assert_eq!(r.status, 405);
    assert!(app.signed_in(&b, N).await);
}

/// Bug: a form without its `csrf` field is answered by axum's form rejection
/// (422, plain text "Failed to deserialize form body: missing field `csrf`")
/// instead of the portal's 403 "form has expired" page that a wrong token
/// gets, on sign-out and sign-out-everywhere (`auth::CsrfForm` has
/// `csrf: String` without `#[serde(default)]`; the other forms answer 403).
/// The session survives either way.
#[tokio::test]
async fn a_missing_form_token_is_a_403_page() {
    let app = spawn_app().await;
    let b = app.sign_in(ADMIN).await;
    let uid = app.users[DANA].to_string();
    let mut paths: Vec<String> = forms().into_iter().map(|(_, p)| p).collect();
    paths.push("/portal/sign-out".into());
    paths.push("/portal/sign-out-everywhere".into());
    let mut wrong = Vec::new();
    for path in paths {
        let mut f = form_fields("", &uid);
        f.retain(|(k, _)| *k != "csrf");
        let r = app.post(&path, Some(&b), &f).await;
        if r.status != 403 || !r.is_html() {
            wrong.push(format!("{path}: {} {}", r.status, r.body));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------
// Set-password links
// ---------------------------------------------------------------------------

async fn password_token(app: &TestApp, email: &'static str, valid_secs: i64) -> String {
    let token = session::random_token();
    let (h, uid) = (session::token_hash(&token), app.users[email]);
    let expires = app.now_unix() + valid_secs;
    app.blocking(move |s| {
        s.put_password_token(&h, uid, expires)
            .expect("password token")
    })
    .await;
    token
}

#[tokio::test]
async fn a_set_password_link_works_once_and_refuses_short_passwords() {
    let app = spawn_app().await;
    let new_pw = "a brand new passphrase";
    let token = password_token(&app, INVITED, 3600).await;
    assert_eq!(app.sign_in_raw(INVITED, new_pw, &[]).await.status, 401);

    let page = app
        .get(&format!("/portal/set-password?token={token}"), None)
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("value=\"{token}\"")));

    let set = |pw: &'static str, confirm: &'static str| {
        let token = token.clone();
        let app = &app;
        async move {
            app.post(
                "/portal/set-password",
                None,
                &[("token", &token), ("password", pw), ("confirm", confirm)],
            )
            .await
        }
    };
    // Too short: refused, and the link is not used up.
    let r = set("short pw", "short pw").await;
    assert_eq!(r.status, 400, "{}", r.describe());
    assert!(r.body.contains("at least 12 characters"), "{}", r.body);
    // Two different passwords: refused, not used up.
    let r = set(new_pw, "another passphrase!").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("differ"));
    assert_eq!(app.sign_in_raw(INVITED, new_pw, &[]).await.status, 401);

    let r = set(new_pw, new_pw).await;
    assert_eq!(r.status, 303, "{}", r.describe());
    assert_eq!(r.location(), "/portal/sign-in");
    // Used up.
    let r = set("yet another passphrase", "yet another passphrase").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("expired or was already used"), "{}", r.body);

    let b = app.sign_in_with(INVITED, new_pw).await;
    assert!(app.signed_in(&b, N).await);
    assert_eq!(
        app.sign_in_raw(INVITED, "yet another passphrase", &[])
            .await
            .status,
        401
    );

    // Unknown and expired tokens read the same.
    let expired = password_token(&app, ADMIN, -1).await;
    for t in [expired.as_str(), "0123", ""] {
        let r = app
            .post(
                "/portal/set-password",
                None,
                &[("token", t), ("password", new_pw), ("confirm", new_pw)],
            )
            .await;
        assert_eq!(r.status, 400, "token {t:?}");
        assert!(r.body.contains("expired or was already used"));
    }
    // The admin's password did not change.
    app.sign_in(ADMIN).await;
}

/// A set-password link expires by the server's clock.
#[tokio::test]
async fn a_set_password_link_expires_by_the_servers_clock() {
    let app = spawn_app().await;
    let new_pw = "a brand new passphrase";
    let token = password_token(&app, INVITED, 3600).await;
    let page = app
        .get(&format!("/portal/set-password?token={token}"), None)
        .await;
    assert_eq!(page.status, 200);
    app.advance(Duration::from_secs(3601));
    let r = app
        .post(
            "/portal/set-password",
            None,
            &[("token", &token), ("password", new_pw), ("confirm", new_pw)],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.describe());
    assert!(r.body.contains("expired or was already used"), "{}", r.body);
    assert_eq!(app.sign_in_raw(INVITED, new_pw, &[]).await.status, 401);
}

#[tokio::test]
async fn a_new_password_ends_the_users_sessions() {
    let app = spawn_app().await;
    let old = app.sign_in(ADMIN).await;
    let auditor = app.sign_in(AUDITOR).await;
    let token = password_token(&app, ADMIN, 3600).await;
    let new_pw = "admin's new passphrase";
    let r = app
        .post(
            "/portal/set-password",
            None,
            &[("token", &token), ("password", new_pw), ("confirm", new_pw)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.describe());
    assert!(!app.signed_in(&old, N).await);
    assert!(app.signed_in(&auditor, N).await);
    assert_eq!(app.sign_in_raw(ADMIN, PW, &[]).await.status, 401);
    app.sign_in_with(ADMIN, new_pw).await;
}

// ---------------------------------------------------------------------------
// Disabled users, users without roles
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_disabled_user_cannot_sign_in_and_loses_open_sessions() {
    let app = spawn_app().await;
    assert_eq!(app.sign_in_raw(DISABLED, PW, &[]).await.status, 401);

    let b = app.sign_in(ERIK).await;
    let uid = app.users[ERIK];
    app.blocking(move |s| s.set_user_disabled(uid, true).expect("disable"))
        .await;
    assert!(!app.signed_in(&b, N).await);
    assert!(!app.session_exists(&b).await);
    assert_eq!(app.sign_in_raw(ERIK, PW, &[]).await.status, 401);
    app.blocking(move |s| s.set_user_disabled(uid, false).expect("enable"))
        .await;
    app.sign_in(ERIK).await;
}

#[tokio::test]
async fn a_user_without_roles_gets_a_clear_page() {
    let app = spawn_app().await;
    let b = app.sign_in(NOROLE).await;
    assert!(b.csrf.is_empty(), "no enrollment page to reach");
    let r = app.get("/portal", Some(&b)).await;
    assert_eq!(r.status, 403, "{}", r.describe());
    assert!(r.is_html());
    assert!(
        r.body.contains("no role in any enrollment"),
        "says why: {}",
        r.body
    );
    let r = app.get(&format!("/portal/e/{N}"), Some(&b)).await;
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------------------
// Pages by role
// ---------------------------------------------------------------------------

/// The enrollment's pages and downloads (`{n}` for the enrollment number,
/// `{p}` for a closed-or-past period).
fn pages() -> Vec<(&'static str, String)> {
    let p = last_period();
    let mut v = vec![
        ("overview", String::new()),
        ("overview by service", "?by=service".to_string()),
        ("usage", "/usage".to_string()),
        ("reports", "/reports".to_string()),
        ("keys", "/keys".to_string()),
        ("manage", "/manage".to_string()),
    ];
    for kind in ["balance", "usage", "prices", "marketplace"] {
        for format in ["csv", "json"] {
            v.push((kind, format!("/download/{kind}?period={p}&format={format}")));
        }
    }
    v
}

/// What a role gets for a page: `Some(status)`, or `None` where the design
/// leaves it open (the read-only administrator's keys page: shown without
/// forms, or refused).
fn expected(role: &str, page: &str) -> Option<u16> {
    let enterprise = role == ADMIN || role == AUDITOR;
    Some(match page {
        "overview" | "overview by service" | "usage" | "reports" => 200,
        "usage_download" | "marketplace" => 200,
        "balance" | "prices" if enterprise => 200,
        "balance" | "prices" => 403,
        "keys" if role == AUDITOR => return None,
        "keys" => 200,
        // Read-only for the auditor (no forms: see portal_manage.rs).
        "manage" if enterprise => 200,
        "manage" => 403,
        other => panic!("no expectation for {other}"),
    })
}

/// Whether `path` is served at all (the admin gets anything but the API's
/// JSON "no such endpoint" 404).
async fn exists(app: &TestApp, admin: &Browser, path: &str) -> bool {
    let r = app.get(path, Some(admin)).await;
    r.status != 404 || r.is_html()
}

#[tokio::test]
async fn each_role_gets_the_pages_it_may_and_no_others() {
    let app = spawn_app().await;
    let mut browsers = Vec::new();
    for email in [ADMIN, AUDITOR, DANA, ERIK] {
        browsers.push((email, app.sign_in(email).await));
    }
    let admin = browsers[0].1.clone();
    let mut skipped = Vec::new();
    let mut checked = 0;
    for (name, suffix) in pages() {
        let path = format!("/portal/e/{N}{suffix}");
        if !exists(&app, &admin, &path).await {
            eprintln!("SKIPPED: page missing: {path}");
            skipped.push(path);
            continue;
        }
        let key = if name == "usage" && suffix.starts_with("/download") {
            "usage_download"
        } else {
            name
        };
        for (email, b) in &browsers {
            let r = app.get(&path, Some(b)).await;
            checked += 1;
            match expected(email, key) {
                Some(want) => assert_eq!(r.status, want, "{email} {path}: {}", r.describe()),
                None => assert!(
                    r.status == 200 || r.status == 403,
                    "{email} {path}: {}",
                    r.describe()
                ),
            }
            if r.status == 403 {
                assert!(r.is_html(), "{email} {path}: a 403 page");
            }
            if !suffix.starts_with("/download") && r.status == 200 {
                assert!(r.is_html());
                // The Manage tab is offered exactly to who may see it.
                assert_eq!(
                    r.body.contains(&format!("href=\"/portal/e/{N}/manage\"")),
                    *email == ADMIN || *email == AUDITOR,
                    "{email} {path}: the Manage tab"
                );
                // No page links a download the role may not have.
                if *email == DANA || *email == ERIK {
                    for kind in ["balance", "prices"] {
                        assert!(
                            !r.body.contains(&format!("/download/{kind}")),
                            "{email} {path} links the {kind} download"
                        );
                    }
                }
            }
        }
    }
    eprintln!(
        "permission matrix: {checked} requests checked, {} pages skipped",
        skipped.len()
    );
}

#[tokio::test]
async fn the_overview_shows_balance_and_prices_to_enterprise_administrators_only() {
    let app = spawn_app().await;
    let path = format!("/portal/e/{N}");
    for email in [ADMIN, AUDITOR] {
        let b = app.sign_in(email).await;
        let r = app.get(&path, Some(&b)).await;
        assert_eq!(r.status, 200);
        for s in [
            "Remaining commitment",
            "Commitment balance trend",
            "Charges this month",
            "Overage this month",
            "Amounts in USD",
            "Research",
            "Operations",
            "(no department)",
        ] {
            assert!(r.body.contains(s), "{email} sees {s:?}");
        }
    }
    let dana = app.sign_in(DANA).await;
    let erik = app.sign_in(ERIK).await;
    let check = |email: &str, body: &str, costs: bool| {
        for s in [
            "Remaining commitment",
            "Commitment balance trend",
            "Overage this month",
            "Marketplace this month",
            "/download/balance",
            "/download/prices",
            "pricesheet",
            "price sheet",
        ] {
            assert!(!body.contains(s), "{email} must not see {s:?}");
        }
        assert_eq!(
            body.contains("Charges this month"),
            costs,
            "{email}: charges shown only when the setting allows"
        );
        assert_eq!(body.contains("Amounts in USD"), costs, "{email}: chart");
        assert_eq!(
            body.contains("does not show charges"),
            !costs,
            "{email}: says why"
        );
        assert!(body.contains("Usage records this month"));
    };
    let vis = |d: bool, a: bool| {
        let n = num(N);
        move |s: &SqliteStore| {
            s.set_visibility(
                &n,
                ChargeVisibility {
                    department_admins_view_charges: d,
                    account_owners_view_charges: a,
                },
            )
            .expect("visibility")
        }
    };
    for (d, a) in [(false, false), (true, false), (false, true), (true, true)] {
        app.blocking(vis(d, a)).await;
        let r = app.get(&path, Some(&dana)).await;
        assert_eq!(r.status, 200);
        check(DANA, &r.body, d);
        // Only the department's own usage.
        assert!(r.body.contains("Research"));
        assert!(!r.body.contains("Operations") && !r.body.contains("(no department)"));
        let r = app.get(&path, Some(&erik)).await;
        assert_eq!(r.status, 200);
        check(ERIK, &r.body, a);
        assert!(r.body.contains("Operations"));
        assert!(!r.body.contains("Research") && !r.body.contains("(no department)"));
    }
}

// ---------------------------------------------------------------------------
// Forms that change things
// ---------------------------------------------------------------------------

/// Every state-changing form of the portal, with the fields a browser would send
/// (a superset: each form reads its own).
fn forms() -> Vec<(&'static str, String)> {
    [
        "/manage/settings",
        "/manage/hierarchy/subscription",
        "/manage/hierarchy/department",
        "/manage/hierarchy/account",
        "/manage/hierarchy/rename",
        "/manage/hierarchy/move",
        "/manage/users/invite",
        "/manage/users/role",
        "/manage/users/remove",
        "/keys/generate",
        "/keys/disable",
        "/reports/request",
        "/reports/jobs/0123456789abcdef/cancel",
    ]
    .into_iter()
    .map(|p| (p, format!("/portal/e/{N}{p}")))
    .collect()
}

fn form_fields<'a>(csrf: &'a str, uid: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("department_admins_view_charges", "on"),
        ("account_owners_view_charges", "on"),
        ("guid", G1),
        ("name", "renamed"),
        ("account", "r1"),
        ("new_account", "new-account"),
        ("owner_email", "owner@example.com"),
        ("account_cost_center", "CC-9"),
        ("department", "Operations"),
        ("department_cost_center", "CC-8"),
        ("id", "1"),
        ("cost_center", "CC-7"),
        ("effective", "2020-01-01"),
        ("email", "new.person@example.com"),
        ("role", "enterprise-admin"),
        ("user_id", uid),
        ("scope", "enrollment"),
        ("slot", "primary"),
        ("days", "30"),
        ("start", "2020-01-01"),
        ("end", "2020-01-31"),
        ("format", "csv"),
    ]
}

/// What the forms could change, to compare before and after.
async fn snapshot(app: &TestApp) -> String {
    app.blocking(|s| {
        use meterbook_core::access::KeyStore;
        use meterbook_core::jobs::JobStore;
        let n = num(N);
        let e = s.enrollment(&n).expect("enrollment");
        let h = s.hierarchy(&n).expect("hierarchy");
        let mut users: Vec<String> = s
            .enrollment_users(&n)
            .expect("users")
            .into_iter()
            .map(|(u, r)| format!("{} {:?} {}", u.email, r.scope, r.read_only))
            .collect();
        users.sort();
        // The hierarchy's maps, in a stable order.
        let sorted = |v: Vec<String>| {
            let mut v = v;
            v.sort();
            v
        };
        format!(
            "{:?}|{:?}|{:?}|{:?}|keys {}|jobs {}|{users:?}|new user {}",
            e.visibility,
            sorted(h.departments.values().map(|d| format!("{d:?}")).collect()),
            sorted(h.accounts.values().map(|a| format!("{a:?}")).collect()),
            sorted(h.subscriptions.values().map(|x| format!("{x:?}")).collect()),
            s.keys(&n).expect("keys").len(),
            s.jobs(&n).expect("jobs").len(),
            s.user_by_email("new.person@example.com")
                .expect("user")
                .is_some()
        )
    })
    .await
}

#[tokio::test]
async fn every_form_refuses_a_wrong_form_token_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.sign_in(ADMIN).await;
    let other = app.sign_in(ADMIN).await;
    let before = snapshot(&app).await;
    let uid = app.users[DANA].to_string();
    for (name, path) in forms() {
        if !exists(&app, &admin, &path).await {
            eprintln!("SKIPPED: page missing: POST {path}");
            continue;
        }
        for sent in ["", "nonsense", other.csrf.as_str()] {
            let r = app
                .post(&path, Some(&admin), &form_fields(sent, &uid))
                .await;
            assert_eq!(
                r.status,
                403,
                "{name} with token {sent:?}: {}",
                r.describe()
            );
            assert!(r.is_html(), "{name}: a 403 page");
        }
        // Signed out, the form goes to sign-in.
        let r = app.post(&path, None, &form_fields("", &uid)).await;
        assert_eq!(r.status, 303, "{name} signed out");
        assert_eq!(r.location(), "/portal/sign-in");
    }
    assert_eq!(snapshot(&app).await, before, "nothing changed");
}

#[tokio::test]
async fn roles_that_may_not_change_things_are_refused() {
    let app = spawn_app().await;
    let h = app
        .blocking(|s| s.hierarchy(&num(N)).expect("hierarchy"))
        .await;
    let research = format!(
        "department:{}",
        h.department_by_name("Research").expect("Research").id
    );
    let operations = format!(
        "department:{}",
        h.department_by_name("Operations").expect("Operations").id
    );
    let o1 = format!("account:{}", h.account_by_name("o1").expect("o1").id);
    let r1 = format!("account:{}", h.account_by_name("r1").expect("r1").id);
    let admin = app.sign_in(ADMIN).await;
    let manage_exists = exists(&app, &admin, &format!("/portal/e/{N}/manage")).await;
    let keys_exist = exists(&app, &admin, &format!("/portal/e/{N}/keys")).await;
    let before = snapshot(&app).await;
    let uid = app.users[ERIK].to_string();
    for email in [AUDITOR, DANA, ERIK] {
        let b = app.sign_in(email).await;
        if manage_exists {
            for (name, path) in forms()
                .into_iter()
                .filter(|(n, _)| n.starts_with("/manage"))
            {
                let r = app.post(&path, Some(&b), &form_fields(&b.csrf, &uid)).await;
                assert_eq!(r.status, 403, "{email} {name}: {}", r.describe());
            }
        } else {
            eprintln!("SKIPPED: page missing: /manage");
        }
        if keys_exist {
            let mine: &[&str] = match email {
                AUDITOR => &[],
                DANA => &[research.as_str(), r1.as_str()],
                _ => &[o1.as_str()],
            };
            for scope in ["enrollment", &research, &operations, &o1, &r1] {
                if mine.contains(&scope) {
                    continue;
                }
                let mut f = form_fields(&b.csrf, &uid);
                f.retain(|(k, _)| *k != "scope");
                f.push(("scope", scope));
                let r = app
                    .post(&format!("/portal/e/{N}/keys/generate"), Some(&b), &f)
                    .await;
                assert_eq!(
                    r.status,
                    403,
                    "{email} generates a {scope} key: {}",
                    r.describe()
                );
            }
        } else {
            eprintln!("SKIPPED: page missing: /keys");
        }
    }
    assert_eq!(snapshot(&app).await, before, "nothing changed");
    if keys_exist {
        // What they may do, they can: dana makes a key for her department.
        let dana = app.sign_in(DANA).await;
        let mut f = form_fields(&dana.csrf, &uid);
        f.retain(|(k, _)| *k != "scope");
        f.push(("scope", &research));
        let r = app
            .post(&format!("/portal/e/{N}/keys/generate"), Some(&dana), &f)
            .await;
        assert_eq!(r.status, 303, "{}", r.describe());
        let shown = r.header("location").expect("location");
        let r = app.get(&shown, Some(&dana)).await;
        assert!(r.body.contains("mbk_"), "the new key is shown");
    }
    // Someone with a role elsewhere gets 404s, whatever their token.
    let outsider = app.sign_in(OUTSIDER).await;
    for (name, path) in forms() {
        let r = app
            .post(&path, Some(&outsider), &form_fields(&outsider.csrf, &uid))
            .await;
        assert_eq!(r.status, 404, "outsider {name}: {}", r.describe());
    }
}

// ---------------------------------------------------------------------------
// Isolation between enrollments
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_role_in_one_enrollment_opens_no_page_of_another() {
    let app = spawn_app().await;
    let outsider = app.sign_in(OUTSIDER).await;
    assert!(app.signed_in(&outsider, OTHER).await);
    let admin = app.sign_in(ADMIN).await;
    let not_found = |r: &Resp, who: &str, path: &str| {
        assert_eq!(r.status, 404, "{who} {path}: {}", r.describe());
        assert!(!r.body.contains("Enrollment 100100") && !r.body.contains("Enrollment 200200"));
    };
    for (name, suffix) in pages() {
        for (who, b, n) in [
            (OUTSIDER, &outsider, N),
            (ADMIN, &admin, OTHER),
            (ADMIN, &admin, "999999"),
        ] {
            let path = format!("/portal/e/{n}{suffix}");
            let r = app.get(&path, Some(b)).await;
            not_found(&r, who, &path);
            if name == "overview" {
                assert!(r.is_html(), "a 404 page");
            }
        }
    }
    // The 404 for another enrollment is the 404 for none.
    let a = app.get(&format!("/portal/e/{OTHER}"), Some(&admin)).await;
    let b = app.get("/portal/e/999999", Some(&admin)).await;
    assert_eq!(
        a.body.replace(OTHER, "N"),
        b.body.replace("999999", "N"),
        "no hint that the enrollment exists"
    );
    // A role taken away mid-session closes the enrollment at once.
    let dana = app.sign_in(DANA).await;
    assert!(app.signed_in(&dana, N).await);
    let uid = app.users[DANA];
    app.blocking(move |s| s.revoke_role(uid, &num(N)).expect("revoke"))
        .await;
    let r = app.get(&format!("/portal/e/{N}"), Some(&dana)).await;
    assert_eq!(r.status, 404);
}

/// Bug: the path normaliser (`params::normalize_path`, which makes API paths
/// case-insensitive) lower-cases every segment but the one after
/// `enrollments`, so `/portal/e/E300` reaches the portal as `/portal/e/e300`
/// and the role check (`Page::load`, an exact comparison) finds no role: every
/// portal page of an enrollment whose number has letters is a 404, and
/// `/portal` redirects there after sign-in. (The demo's number is all digits.)
#[tokio::test]
async fn an_enrollment_number_with_letters_opens_in_the_portal() {
    let app = spawn_app().await;
    let uid = app.users[ADMIN];
    app.blocking(move |s| {
        create_enrollment(
            s,
            "E300",
            &[("Dept", "e1", "33333333-0000-4000-8000-000000000003")],
        );
        s.revoke_role(uid, &num(N)).expect("revoke");
        s.grant_role(
            uid,
            &Role {
                enrollment: num("E300"),
                scope: Scope::Enrollment,
                read_only: false,
            },
        )
        .expect("grant");
    })
    .await;
    let b = app.sign_in(ADMIN).await;
    let r = app.get("/portal/e/E300", Some(&b)).await;
    assert_eq!(r.status, 200, "{}", r.describe());
}

#[tokio::test]
async fn a_sign_in_without_its_form_token_is_refused() {
    let app = spawn_app().await;
    // No form cookie and no token: another site's form, or a stale page.
    let r = app
        .send(
            app.client
                .post(format!("{}/portal/sign-in", app.base))
                .form(&[("email", ADMIN), ("password", PW)]),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.describe());
    assert!(r.session_cookie_line().is_none());
    // The form's cookie with another token: refused too.
    let (cookie, _) = app.sign_in_form().await;
    let r = app
        .send(
            app.client
                .post(format!("{}/portal/sign-in", app.base))
                .header("cookie", cookie)
                .form(&[("email", ADMIN), ("password", PW), ("csrf", "0123")]),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.describe());
    assert!(r.session_cookie_line().is_none());
}

/// A user with roles in two enrollments sees each with its own role, and the
/// layout offers the other one.
#[tokio::test]
async fn a_user_with_roles_in_two_enrollments_switches_between_them() {
    let app = spawn_app().await;
    let uid = app.users[DANA];
    app.blocking(move |s| {
        s.grant_role(
            uid,
            &Role {
                enrollment: num(OTHER),
                scope: Scope::Enrollment,
                read_only: true,
            },
        )
        .expect("grant");
    })
    .await;
    let b = app.sign_in(DANA).await;
    let here = app.get(&format!("/portal/e/{N}"), Some(&b)).await;
    assert_eq!(here.status, 200, "{}", here.describe());
    assert!(here.body.contains("Department administrator"));
    assert!(
        here.body.contains(&format!("href=\"/portal/e/{OTHER}\"")),
        "a link to the other enrollment"
    );
    let there = app.get(&format!("/portal/e/{OTHER}"), Some(&b)).await;
    assert_eq!(there.status, 200, "{}", there.describe());
    assert!(there.body.contains("Enterprise administrator (read-only)"));
    assert!(there.body.contains(&format!("href=\"/portal/e/{N}\"")));
    // Each enrollment with its own role: the balance shows only where she is an administrator.
    assert!(there.body.contains("Remaining commitment"));
    assert!(!here.body.contains("Remaining commitment"));
}

/// Attempts are counted before the password is checked, so a burst of
/// parallel guesses gets no more tries than the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_get_no_more_tries_than_the_limit() {
    let app = spawn_app_with(PortalSettings {
        max_failures_per_account: 3,
        max_failures_per_address: 1000,
        throttle_window: Duration::from_secs(600),
        ..Default::default()
    })
    .await;
    let tries = (0..10).map(|_| app.sign_in_raw(ADMIN, "a wrong guess here", &[]));
    let results = futures_util::future::join_all(tries).await;
    let checked = results.iter().filter(|r| r.status == 401).count();
    let locked = results.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        (checked, locked),
        (3, 7),
        "statuses: {:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
}

/// Setting a password is throttled per address too (each try costs an argon2 hash).
#[tokio::test]
async fn set_password_attempts_are_throttled_per_address() {
    let app = spawn_app_with(PortalSettings {
        max_failures_per_address: 2,
        throttle_window: Duration::from_secs(600),
        ..roomy()
    })
    .await;
    let form = [
        ("token", "no such token"),
        ("password", "long enough password"),
        ("confirm", "long enough password"),
    ];
    for _ in 0..2 {
        let r = app.post("/portal/set-password", None, &form).await;
        assert_eq!(r.status, 400, "{}", r.describe());
    }
    let r = app.post("/portal/set-password", None, &form).await;
    assert_eq!(r.status, 429, "{}", r.describe());
    assert!(r.header("retry-after").is_some());
}
