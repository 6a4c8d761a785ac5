//! Budgets, channels, events and the delivery outbox.

use crate::fixture::*;
use meterbook_core::access::Scope;
use meterbook_core::notify::{
    Basis, Cadence, ChannelTarget, DeliveryOutcome, DeliveryStatus, DeliveryTarget, EventKind,
    NewBudget, NewChannel, NewDelivery, NewEvent, Threshold,
};
use meterbook_core::store::{Store, StoreError};
use meterbook_core::{EnrollmentNumber, Money};

fn other<S: Store>(s: &S) -> EnrollmentNumber {
    let other = EnrollmentNumber::parse("E200").unwrap();
    s.create_enrollment(&meterbook_core::enrollment::NewEnrollment {
        number: other.clone(),
        name: "Other".into(),
        currency: meterbook_core::Currency::parse("USD").unwrap(),
        start: day("2025-01-01"),
        end: day("2025-12-31"),
        visibility: Default::default(),
    })
    .unwrap();
    other
}

fn budget(name: &str, scope: Scope) -> NewBudget {
    NewBudget {
        name: name.into(),
        scope,
        cadence: Cadence::Monthly,
        amount: Money(100_000),
        thresholds: vec![
            Threshold {
                basis: Basis::Actual,
                percent: 80,
            },
            Threshold {
                basis: Basis::Forecast,
                percent: 100,
            },
        ],
    }
}

fn event(key: &str) -> NewEvent {
    NewEvent {
        kind: EventKind::Alert,
        key: key.into(),
        budget: Some(1),
        payload: format!("{{\"key\":\"{key}\"}}"),
    }
}

fn mail(to: &str) -> NewDelivery {
    NewDelivery {
        target: DeliveryTarget::Email(to.into()),
        subject: format!("to {to}"),
        text: "body".into(),
    }
}

/// Budgets and channels per enrollment: created, listed, read, deleted, never
/// seen from another enrollment; a deleted budget's id is not handed out again.
pub fn budgets_and_channels_per_enrollment<S: Store>(s: &S) {
    enrollment(s, "USD");
    let e2 = other(s);
    let b1 = s
        .create_budget(
            &n(),
            &budget("All", Scope::Enrollment),
            "ann@example.com",
            1_000,
        )
        .unwrap();
    assert_eq!(b1.name, "All");
    assert_eq!(b1.scope, Scope::Enrollment);
    assert_eq!(b1.cadence, Cadence::Monthly);
    assert_eq!(b1.amount, Money(100_000));
    assert_eq!(b1.thresholds, budget("x", Scope::Enrollment).thresholds);
    assert_eq!(
        (b1.created_at, b1.created_by.as_str()),
        (1_000, "ann@example.com")
    );
    assert_eq!(b1.enrollment, n());
    let mut term = budget("Dept", Scope::Department(7));
    term.cadence = Cadence::Term;
    term.thresholds = vec![];
    let b2 = s.create_budget(&n(), &term, "cli", 2_000).unwrap();
    assert_eq!(b2.cadence, Cadence::Term);
    assert!(b2.thresholds.is_empty());
    let b3 = s
        .create_budget(&e2, &budget("Theirs", Scope::Account(3)), "bob", 3_000)
        .unwrap();
    assert_eq!(
        s.budgets(&n())
            .unwrap()
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>(),
        vec![b1.id, b2.id]
    );
    assert_eq!(s.budget(&n(), b2.id).unwrap(), Some(b2.clone()));
    // Not through the other enrollment, not deletable from it.
    assert_eq!(s.budget(&n(), b3.id).unwrap(), None);
    assert!(!s.delete_budget(&n(), b3.id).unwrap());
    assert_eq!(s.budgets(&e2).unwrap(), vec![b3.clone()]);
    assert!(s.delete_budget(&n(), b2.id).unwrap());
    assert!(!s.delete_budget(&n(), b2.id).unwrap());
    assert_eq!(s.budget(&n(), b2.id).unwrap(), None);
    // The next budget gets a new id, even though the newest one was deleted.
    let b4 = s
        .create_budget(&n(), &budget("Next", Scope::Account(1)), "cli", 4_000)
        .unwrap();
    assert!(b4.id > b3.id && b4.id > b2.id);
    let unknown = EnrollmentNumber::parse("E999").unwrap();
    assert!(matches!(s.budgets(&unknown), Err(StoreError::NotFound(_))));

    let c1 = s
        .add_channel(
            &n(),
            &NewChannel {
                target: ChannelTarget::Webhook {
                    url: "https://hooks.example.com/x".into(),
                },
                events: vec![EventKind::Alert, EventKind::Watermark],
                salt: vec![1, 2, 3, 0, 255],
            },
            "ann@example.com",
            5_000,
        )
        .unwrap();
    assert_eq!(c1.target.kind(), "webhook");
    assert_eq!(c1.target.address(), "https://hooks.example.com/x");
    assert_eq!(c1.events, vec![EventKind::Alert, EventKind::Watermark]);
    assert_eq!(c1.salt, vec![1, 2, 3, 0, 255]);
    assert_eq!(c1.created_at, 5_000);
    let c2 = s
        .add_channel(
            &e2,
            &NewChannel {
                target: ChannelTarget::Email {
                    address: "ops@example.com".into(),
                },
                events: vec![EventKind::PeriodClosed],
                salt: vec![9; 16],
            },
            "bob",
            6_000,
        )
        .unwrap();
    assert_eq!(s.channels(&n()).unwrap(), vec![c1.clone()]);
    assert_eq!(s.channels(&e2).unwrap(), vec![c2.clone()]);
    assert_eq!(s.channel(&n(), c2.id).unwrap(), None);
    assert_eq!(s.channel(&e2, c2.id).unwrap(), Some(c2.clone()));
    assert!(!s.remove_channel(&n(), c2.id, 7_000).unwrap());
    assert!(s.remove_channel(&e2, c2.id, 7_000).unwrap());
    assert!(s.channels(&e2).unwrap().is_empty());
}

/// An event is recorded once per key, with its deliveries in the same
/// step: the second record of a key writes nothing and queues nothing; keys
/// are per enrollment. Then the outbox: claims take due deliveries under a
/// lease, one claimer each; a retry waits for its time; a stalled lease is
/// taken over; finished ones are not claimed again.
pub fn events_are_recorded_once_and_delivered_from_the_outbox<S: Store>(s: &S) {
    enrollment(s, "USD");
    let e2 = other(s);
    let hook = s
        .add_channel(
            &n(),
            &NewChannel {
                target: ChannelTarget::Webhook {
                    url: "https://hooks.example.com/x".into(),
                },
                events: vec![EventKind::Alert],
                salt: vec![7; 16],
            },
            "cli",
            1,
        )
        .unwrap();
    let key = "budget:1:actual:80:202511";
    let deliveries = [
        mail("ann@example.com"),
        NewDelivery {
            target: DeliveryTarget::Webhook { channel: hook.id },
            subject: "hook".into(),
            text: "hook body".into(),
        },
    ];
    let ev = s
        .record_event(&n(), &event(key), &deliveries, 10_000)
        .unwrap()
        .expect("first record");
    assert_eq!(ev.key, key);
    assert_eq!(ev.kind, EventKind::Alert);
    assert_eq!(ev.budget, Some(1));
    assert_eq!(ev.fired_at, 10_000);
    assert_eq!(ev.enrollment, n());
    // Again, with other deliveries: nothing.
    assert_eq!(
        s.record_event(&n(), &event(key), &[mail("eve@example.com")], 11_000)
            .unwrap(),
        None
    );
    // The same key in another enrollment is another event.
    let ev2 = s
        .record_event(&e2, &event(key), &[mail("bob@example.com")], 12_000)
        .unwrap()
        .expect("other enrollment");
    // An event nobody receives is still recorded once.
    let quiet = NewEvent {
        kind: EventKind::Watermark,
        key: "watermark:2025-11-29".into(),
        budget: None,
        payload: "{}".into(),
    };
    let ev3 = s.record_event(&n(), &quiet, &[], 13_000).unwrap().unwrap();
    assert_eq!(s.record_event(&n(), &quiet, &[], 14_000).unwrap(), None);
    let events = s.events(&n(), 10).unwrap();
    assert_eq!(events, vec![ev3.clone(), ev.clone()]);
    assert_eq!(s.events(&n(), 1).unwrap(), vec![ev3]);
    assert_eq!(s.events(&e2, 10).unwrap(), vec![ev2.clone()]);

    let ds = s.deliveries(&n(), 10).unwrap();
    assert_eq!(ds.len(), 2, "no delivery of the second record");
    // Newest first.
    assert_eq!(ds[0].target, DeliveryTarget::Webhook { channel: hook.id });
    assert_eq!(
        ds[1].target,
        DeliveryTarget::Email("ann@example.com".into())
    );
    for d in &ds {
        assert_eq!(d.event_id, ev.id);
        assert_eq!(d.event_kind, EventKind::Alert);
        assert_eq!(d.event_key, key);
        assert_eq!(d.payload, ev.payload);
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!((d.attempts, d.lease_until, d.delivered_at), (0, None, None));
        assert_eq!((d.next_attempt_at, d.created_at), (10_000, 10_000));
    }
    assert_eq!(ds[1].subject, "to ann@example.com");
    assert_eq!(ds[1].text, "body");
    assert_eq!(s.deliveries(&e2, 10).unwrap().len(), 1);

    // Nothing is due before it was queued.
    assert_eq!(s.claim_delivery(9_999, 1_000).unwrap(), None);
    // Oldest first, across enrollments; each claimed once while leased.
    let a = s.claim_delivery(20_000, 5_000).unwrap().unwrap();
    assert_eq!(a.id, ds[1].id);
    assert_eq!((a.attempts, a.lease_until), (1, Some(25_000)));
    let b = s.claim_delivery(20_000, 5_000).unwrap().unwrap();
    assert_eq!(b.id, ds[0].id);
    let c = s.claim_delivery(20_000, 5_000).unwrap().unwrap();
    assert_eq!(c.enrollment, e2);
    assert_eq!(s.claim_delivery(20_000, 5_000).unwrap(), None);

    // a: delivered. b: retry later. c: its worker stalls.
    s.finish_delivery(a.id, &DeliveryOutcome::Delivered, 21_000)
        .unwrap();
    s.finish_delivery(
        b.id,
        &DeliveryOutcome::Retry {
            at: 40_000,
            error: "HTTP 503".into(),
        },
        21_000,
    )
    .unwrap();
    assert_eq!(s.claim_delivery(24_000, 5_000).unwrap(), None);
    // c's lease ran out: taken over, as a second attempt.
    let c2 = s.claim_delivery(25_001, 5_000).unwrap().unwrap();
    assert_eq!((c2.id, c2.attempts), (c.id, 2));
    s.finish_delivery(
        c2.id,
        &DeliveryOutcome::Failed {
            error: "550 no such user".into(),
        },
        26_000,
    )
    .unwrap();
    assert_eq!(s.claim_delivery(39_999, 5_000).unwrap(), None);
    let b2 = s.claim_delivery(40_000, 5_000).unwrap().unwrap();
    assert_eq!((b2.id, b2.attempts), (b.id, 2));
    assert_eq!(b2.last_error.as_deref(), Some("HTTP 503"));
    s.finish_delivery(b2.id, &DeliveryOutcome::Delivered, 41_000)
        .unwrap();
    assert_eq!(s.claim_delivery(1_000_000, 5_000).unwrap(), None);

    let ds = s.deliveries(&n(), 10).unwrap();
    assert_eq!(ds[1].status, DeliveryStatus::Delivered);
    assert_eq!(ds[1].delivered_at, Some(21_000));
    assert_eq!(ds[0].status, DeliveryStatus::Delivered);
    assert_eq!(ds[0].delivered_at, Some(41_000));
    assert_eq!(ds[0].last_error, None);
    assert_eq!(ds[0].lease_until, None);
    let theirs = &s.deliveries(&e2, 10).unwrap()[0];
    assert_eq!(theirs.status, DeliveryStatus::Failed);
    assert_eq!(theirs.last_error.as_deref(), Some("550 no such user"));
    assert_eq!(theirs.attempts, 2);
    assert!(matches!(
        s.finish_delivery(i64::MAX, &DeliveryOutcome::Delivered, 1),
        Err(StoreError::NotFound(_))
    ));

    // Removing a webhook channel fails its pending deliveries.
    let ev4 = s
        .record_event(
            &n(),
            &event("budget:1:actual:80:202512"),
            &[NewDelivery {
                target: DeliveryTarget::Webhook { channel: hook.id },
                subject: "s".into(),
                text: "t".into(),
            }],
            50_000,
        )
        .unwrap()
        .unwrap();
    assert!(s.remove_channel(&n(), hook.id, 50_500).unwrap());
    let d = &s.deliveries(&n(), 1).unwrap()[0];
    assert_eq!(d.event_id, ev4.id);
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(d.last_error.as_deref(), Some("channel removed"));
    assert_eq!(s.claim_delivery(1_000_000, 5_000).unwrap(), None);
}
