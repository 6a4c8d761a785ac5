//! Events and deliveries across nodes: two stores on one database (two
//! nodes, each with its own pool) record the same events at once, and claim
//! deliveries at once. Each event must be stored once with one set of
//! deliveries, and no delivery may be claimed by both.
//!
//! Needs `MB_TEST_STORE` (see `common`); skipped with a note without it
//! unless `MB_REQUIRE_CLUSTER=1`.

mod common;

use common::{url, TestStore};
use meterbook_conformance::fixture::{enrollment, n};
use meterbook_core::notify::{
    DeliveryOutcome, DeliveryTarget, EventKind, NewDelivery, NewEvent, NotifyStore,
};
use std::collections::HashSet;
use std::sync::Barrier;

const KEYS: usize = 60;

fn event(i: usize) -> NewEvent {
    NewEvent {
        kind: EventKind::Alert,
        key: format!("budget:1:actual:{i}:202511"),
        budget: Some(1),
        payload: format!("{{\"i\":{i}}}"),
    }
}

fn deliveries(node: usize) -> Vec<NewDelivery> {
    ["ann@example.com", "bob@example.com"]
        .iter()
        .map(|to| NewDelivery {
            target: DeliveryTarget::Email(to.to_string()),
            subject: format!("from node {node}"),
            text: "t".into(),
        })
        .collect()
}

#[test]
fn two_nodes_record_each_event_once() {
    let Some(url) = url("two_nodes_record_each_event_once") else {
        return;
    };
    let t = TestStore::new(&url);
    enrollment(&*t, "USD");
    let other = t.another();
    let nodes: [&(dyn NotifyStore + Sync); 2] = [&*t, &other];
    let barrier = Barrier::new(2);
    // Both nodes record every key, in the same order, released together at
    // each key so the inserts overlap.
    let won: Vec<Vec<usize>> = std::thread::scope(|sc| {
        let hs: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(node, s)| {
                let barrier = &barrier;
                sc.spawn(move || {
                    let mut won = Vec::new();
                    for i in 0..KEYS {
                        barrier.wait();
                        if s.record_event(&n(), &event(i), &deliveries(node), 1_000 + i as i64)
                            .unwrap()
                            .is_some()
                        {
                            won.push(i);
                        }
                    }
                    won
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Each key was won by exactly one node.
    let mut all: Vec<usize> = won.concat();
    all.sort();
    assert_eq!(all, (0..KEYS).collect::<Vec<_>>(), "won: {won:?}");
    let events = t.events(&n(), 1_000).unwrap();
    assert_eq!(events.len(), KEYS);
    let ds = t.deliveries(&n(), 1_000).unwrap();
    assert_eq!(ds.len(), 2 * KEYS);
    // Each event's two deliveries come from the node that recorded it.
    for e in &events {
        let mine: Vec<_> = ds.iter().filter(|d| d.event_id == e.id).collect();
        assert_eq!(mine.len(), 2);
        assert_eq!(mine[0].subject, mine[1].subject);
    }
}

#[test]
fn two_workers_never_claim_the_same_delivery() {
    let Some(url) = url("two_workers_never_claim_the_same_delivery") else {
        return;
    };
    let t = TestStore::new(&url);
    enrollment(&*t, "USD");
    for i in 0..KEYS {
        t.record_event(&n(), &event(i), &deliveries(0), 1_000)
            .unwrap()
            .unwrap();
    }
    let other = t.another();
    let nodes: [&(dyn NotifyStore + Sync); 2] = [&*t, &other];
    // Each worker claims until the outbox is empty and finishes what it got:
    // with a lease far longer than the test, a delivery claimed twice could
    // only be a double claim.
    let claimed: Vec<Vec<i64>> = std::thread::scope(|sc| {
        let hs: Vec<_> = nodes
            .iter()
            .map(|s| {
                sc.spawn(move || {
                    let mut got = Vec::new();
                    while let Some(d) = s.claim_delivery(5_000, 3_600_000).unwrap() {
                        assert_eq!(d.attempts, 1);
                        got.push(d.id);
                        s.finish_delivery(d.id, &DeliveryOutcome::Delivered, 5_001)
                            .unwrap();
                    }
                    got
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<i64> = claimed.concat();
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 2 * KEYS, "claimed: {:?}", claimed.map_len());
    assert_eq!(unique.len(), all.len(), "a delivery was claimed twice");
    assert!(t
        .deliveries(&n(), 1_000)
        .unwrap()
        .iter()
        .all(|d| d.delivered_at == Some(5_001)));
}

trait Lens {
    fn map_len(&self) -> Vec<usize>;
}

impl Lens for Vec<Vec<i64>> {
    fn map_len(&self) -> Vec<usize> {
        self.iter().map(Vec::len).collect()
    }
}
