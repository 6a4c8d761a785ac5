//! From a crossed threshold to a message read back at real receivers: a
//! budget alert fires once, its webhook (signed, retried after a 503) reaches
//! an HTTP receiver started here, and its e-mails reach the SMTP server that
//! scripts/test.sh starts (aiosmtpd, read back from its maildir).
//!
//! The fixture: enrollment E100 (USD, one meter at 1.00 a unit), a purchase
//! of 2,000.00, March usage of 900.00 (a1 300, b1 500, c1 100); a monthly
//! budget of 1,000.00 for the enrollment with a threshold at 80 % of actual
//! charges: 900.00 is 90 %, so it has crossed.

mod common;

use meterbook_app::budgets::BudgetInput;
use meterbook_app::deliver::Transport;
use meterbook_app::notifications::ChannelInput;
use meterbook_app::App;
use meterbook_conformance::fixture::{self, day, ingest_ok, meter, n, prices, row};
use meterbook_conformance::receivers::{read_back, receiver, smtp_server};
use meterbook_core::access::Scope;
use meterbook_core::clock::{Clock, ManualClock};
use meterbook_core::notify::{DeliveryStatus, DeliveryTarget, NotifyStore};
use meterbook_core::statement::CommitmentEntry;
use meterbook_core::store::{EntryKind, MetadataStore};
use meterbook_core::users::Role;
use meterbook_core::Money;
use meterbook_sqlite::SqliteStore;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn fixture(path: &Path, clock: &ManualClock) -> App {
    let store = Arc::new(SqliteStore::open(path).unwrap());
    let app = common::layer(store.clone(), path.with_extension("reports"), clock.clone());
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
            row("m1", fixture::G1, "2025-03-01", "c", "300"),
            row("m2", fixture::G3, "2025-03-02", "c", "500"),
            row("m3", fixture::G4, "2025-03-03", "c", "100"),
        ],
    );
    let op = app.local_operator();
    op.ensure_user(
        "admin@example.com",
        "Ada Admin",
        None,
        &Role {
            enrollment: n(),
            scope: Scope::Enrollment,
            read_only: false,
        },
    )
    .unwrap();
    app
}

#[test]
fn an_alert_reaches_a_webhook_and_a_mailbox_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_millis(common::noon("2025-03-15"));
    let app = fixture(&dir.path().join("t.db"), &clock);
    let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
    let admin = app.local_operator().enrollment(&n()).unwrap();
    let (url, seen) = receiver(vec![503]);
    let hook = admin
        .admin()
        .unwrap()
        .add_channel(&ChannelInput {
            kind: "webhook".into(),
            address: url,
            events: vec!["alert".into()],
        })
        .unwrap();
    let secret = hook.secret.clone().expect("shown once");
    admin
        .admin()
        .unwrap()
        .create_budget(&BudgetInput {
            name: "Cloud spend".into(),
            scope: "enrollment".into(),
            scope_name: None,
            cadence: "monthly".into(),
            amount: "1000.00".into(),
            thresholds: vec![("actual".into(), 80)],
        })
        .unwrap();

    let fired = app.evaluate_notifications(&n()).unwrap();
    assert_eq!(fired.len(), 1, "one threshold crossed: one event");
    // Evaluated again (another node, or after a restart): nothing new.
    assert!(app.evaluate_notifications(&n()).unwrap().is_empty());
    let event = &fired[0];
    let payload: serde_json::Value = serde_json::from_str(&event.payload).unwrap();
    assert_eq!(
        payload["actual"], "900.00",
        "the statement's figure: {payload}"
    );

    let smtp = smtp_server();
    // A host of this run's own: Message-IDs are unique in a shared maildir.
    let host = format!("run-{}.test", std::process::id());
    let t = Transport {
        smtp: smtp
            .as_ref()
            .map(|(h, p, _)| meterbook_notify::SmtpSettings {
                host: h.clone(),
                port: *p,
                from: "Meterbook <alerts@meterbook.test>".into(),
                timeout: Duration::from_secs(10),
                starttls: false,
                credentials: None,
            }),
        webhooks: meterbook_notify::WebhookClient::new(Duration::from_secs(5), true),
        backoff: meterbook_notify::Backoff {
            base_ms: 60_000,
            cap_ms: 600_000,
            max_attempts: 3,
        },
        message_host: host.clone(),
    };
    let attempted = app.deliver_due(&t, 100).unwrap();
    let ds = store.deliveries(&n(), 100).unwrap();
    assert_eq!(attempted, ds.len(), "every delivery was due");
    let hook_delivery = ds
        .iter()
        .find(|d| matches!(d.target, DeliveryTarget::Webhook { .. }))
        .expect("a webhook delivery")
        .clone();
    // The receiver answered 503: a retry, at least a minute later.
    assert_eq!(hook_delivery.status, DeliveryStatus::Pending);
    assert_eq!(hook_delivery.attempts, 1);
    assert!(hook_delivery.last_error.as_deref().unwrap().contains("503"));
    assert!(hook_delivery.next_attempt_at >= clock.now_millis() + 30_000);
    assert_eq!(app.deliver_due(&t, 100).unwrap(), 0, "nothing due yet");
    clock.advance(Duration::from_secs(600));
    // The webhook again; without a relay, the e-mails are retried too.
    let retried = if smtp.is_some() { 1 } else { ds.len() };
    assert_eq!(app.deliver_due(&t, 100).unwrap(), retried);
    let again = store
        .deliveries(&n(), 100)
        .unwrap()
        .into_iter()
        .find(|d| d.id == hook_delivery.id)
        .unwrap();
    assert_eq!(again.status, DeliveryStatus::Delivered);
    assert_eq!(again.attempts, 2);

    // What the receiver got, twice: the event as JSON, signed with the
    // secret shown at creation, the same delivery id both times.
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    for r in &got {
        assert_eq!(r.body, event.payload.as_bytes());
        let sig = r.header("meterbook-signature").expect("signed");
        assert!(meterbook_notify::verify(
            secret.as_bytes(),
            sig,
            &r.body,
            clock.now_unix(),
            3600
        ));
        assert!(!meterbook_notify::verify(
            b"whsec_other",
            sig,
            &r.body,
            clock.now_unix(),
            3600
        ));
        assert_eq!(
            r.header("meterbook-delivery"),
            Some(format!("delivery-{}", hook_delivery.id).as_str())
        );
        assert_eq!(r.header("meterbook-event"), Some(event.kind.name()));
    }

    // The administrator's e-mail, read back from the SMTP server's maildir.
    let mail = ds
        .iter()
        .find(|d| d.target == DeliveryTarget::Email("admin@example.com".into()))
        .expect("the enterprise administrator receives the enrollment's alert");
    match &smtp {
        Some((_, _, maildir)) => {
            assert_eq!(
                store
                    .deliveries(&n(), 100)
                    .unwrap()
                    .into_iter()
                    .find(|d| d.id == mail.id)
                    .unwrap()
                    .status,
                DeliveryStatus::Delivered
            );
            let text = read_back(maildir, &format!("<delivery-{}@{host}>", mail.id));
            assert!(text.contains("To: admin@example.com"), "{text}");
            assert!(text.contains(&mail.subject), "{text}");
            assert!(
                text.contains("900.00"),
                "the figure is in the message: {text}"
            );
        }
        None => {
            let d = store
                .deliveries(&n(), 100)
                .unwrap()
                .into_iter()
                .find(|d| d.id == mail.id)
                .unwrap();
            assert!(d.last_error.unwrap().contains("no SMTP relay"));
        }
    }
}

/// Data events reach a webhook subscribed to them, signed, once: the usage
/// watermark moving and periods closing (on 2025-03-15, January and
/// February have ended).
#[test]
fn data_events_reach_a_webhook_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_millis(common::noon("2025-03-15"));
    let app = fixture(&dir.path().join("t.db"), &clock);
    let admin = app.local_operator().enrollment(&n()).unwrap();
    let (url, seen) = receiver(Vec::new());
    let hook = admin
        .admin()
        .unwrap()
        .add_channel(&ChannelInput {
            kind: "webhook".into(),
            address: url,
            events: vec!["watermark".into(), "period-closed".into()],
        })
        .unwrap();
    let secret = hook.secret.clone().expect("shown once");
    let op = app.local_operator();
    op.set_watermark(&n(), day("2025-03-14")).unwrap();
    op.close_periods_through(&n(), meterbook_conformance::fixture::period("202502"))
        .unwrap();
    let fired = app.evaluate_notifications(&n()).unwrap();
    let mut keys: Vec<&str> = fired.iter().map(|e| e.key.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["closed:202501", "closed:202502", "watermark:2025-03-14"]
    );
    assert!(app.evaluate_notifications(&n()).unwrap().is_empty());
    let t = Transport {
        smtp: None,
        webhooks: meterbook_notify::WebhookClient::new(Duration::from_secs(5), true),
        backoff: meterbook_notify::Backoff::DEFAULT,
        message_host: "data-events.test".into(),
    };
    assert_eq!(app.deliver_due(&t, 100).unwrap(), 3);
    assert_eq!(app.deliver_due(&t, 100).unwrap(), 0, "each sent once");
    let got = seen.lock().unwrap().clone();
    let mut kinds = Vec::new();
    for r in &got {
        let sig = r.header("meterbook-signature").expect("signed");
        assert!(meterbook_notify::verify(
            secret.as_bytes(),
            sig,
            &r.body,
            clock.now_unix(),
            300
        ));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["enrollment"], n().as_str());
        assert_eq!(r.header("meterbook-event"), v["event"].as_str());
        kinds.push(v["event"].as_str().unwrap().to_string());
        match v["event"].as_str() {
            Some("watermark") => assert_eq!(v["watermark"], "2025-03-14"),
            Some("period-closed") => {
                let to = match v["period"].as_str() {
                    Some("202501") => "2025-01-31",
                    Some("202502") => "2025-02-28",
                    p => panic!("period {p:?}"),
                };
                assert_eq!(v["to"], to);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["period-closed", "period-closed", "watermark"]);
}
