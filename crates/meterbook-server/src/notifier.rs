//! The notifier: one background thread per node that, every interval, checks
//! each enrollment's budgets and data events (firing what is new) and sends
//! the deliveries that are due.
//!
//! Firing is exactly once per event key whatever the number of nodes (the
//! store's unique key decides, in the transaction that queues the
//! deliveries), so every node may run the same round; sending is claimed
//! under a lease, one node per delivery. A round that fails (the store is
//! down) is logged and tried again at the next interval.

use meterbook_app::deliver::Transport;
use meterbook_app::App;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How the notifier runs.
#[derive(Clone, Debug)]
pub struct NotifySettings {
    /// Off: no thread (tests and one-shot commands that do not want one).
    pub enabled: bool,
    /// Between rounds.
    pub interval: Duration,
    pub transport: Transport,
    /// Deliveries sent per round at most (the rest wait for the next).
    pub per_round: usize,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            enabled: false,
            interval: Duration::from_secs(60),
            transport: Transport {
                smtp: None,
                webhooks: meterbook_notify::WebhookClient::new(Duration::from_secs(10), false),
                backoff: meterbook_notify::Backoff::DEFAULT,
                message_host: "meterbook.invalid".into(),
            },
            per_round: 500,
        }
    }
}

/// The running thread; dropping it stops it (after the round in progress).
pub(crate) struct Notifier {
    wake: Arc<(Mutex<bool>, Condvar)>,
    stopping: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Notifier {
    pub(crate) fn start(app: App, s: NotifySettings) -> Notifier {
        let wake = Arc::new((Mutex::new(false), Condvar::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let (w, st) = (wake.clone(), stopping.clone());
        let thread = std::thread::Builder::new()
            .name("notifier".into())
            .spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    round(&app, &s, &st);
                    let (m, c) = &*w;
                    let mut woken = m.lock().unwrap_or_else(|p| p.into_inner());
                    if !*woken {
                        woken = c
                            .wait_timeout(woken, s.interval)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    *woken = false;
                }
            })
            .expect("spawn the notifier");
        Notifier {
            wake,
            stopping,
            thread: Some(thread),
        }
    }

    /// Runs a round now (new usage arrived, a period closed).
    pub(crate) fn wake(&self) {
        let (m, c) = &*self.wake;
        *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
        c.notify_all();
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One round: fire what is new in every enrollment, then send what is due,
/// a few at a time, stopping early when the node shuts down (what it has
/// claimed and not sent is sent again once its lease ends).
fn round(app: &App, s: &NotifySettings, stopping: &AtomicBool) {
    // An enrollment that fails is logged inside and skipped.
    if let Err(err) = app.evaluate_all_notifications() {
        tracing::warn!(error = %err, "listing enrollments for notifications failed");
    }
    const BATCH: usize = 10;
    let mut sent = 0;
    while sent < s.per_round && !stopping.load(Ordering::Relaxed) {
        match app.deliver_due(&s.transport, BATCH.min(s.per_round - sent)) {
            Ok(n) => {
                sent += n;
                if n < BATCH {
                    break;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "sending notifications failed");
                break;
            }
        }
    }
}
