//! The worker pool and the clean-up thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::run::*;

/// The worker pool and the clean-up thread. Dropping it (or `stop`) stops them.
pub struct Workers {
    runner: Arc<Runner>,
    wake: Arc<(Mutex<u64>, Condvar)>,
    stopping: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    pub fn start(runner: Arc<Runner>) -> Workers {
        let wake = Arc::new((Mutex::new(0u64), Condvar::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        if let Err(e) = runner.files.sweep_partial() {
            tracing::warn!(error = %e, "cannot sweep partial report files");
        }
        for i in 0..runner.settings.workers.max(1) {
            let (runner, wake, stopping) = (runner.clone(), wake.clone(), stopping.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("report-worker-{i}"))
                    .spawn(move || worker_loop(&runner, &wake, &stopping))
                    .expect("spawn a report worker"),
            );
        }
        {
            let (runner, wake, stopping) = (runner.clone(), wake.clone(), stopping.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("report-cleanup".into())
                    .spawn(move || cleanup_loop(&runner, &wake, &stopping))
                    .expect("spawn the report clean-up"),
            );
        }
        Workers {
            runner,
            wake,
            stopping,
            threads,
        }
    }

    pub fn runner(&self) -> &Arc<Runner> {
        &self.runner
    }

    /// Whether every worker and the clean-up thread are alive (a thread that
    /// panicked has ended), and the pool was not stopped.
    pub fn is_running(&self) -> bool {
        !self.stopping.load(Ordering::Relaxed)
            && !self.threads.is_empty()
            && self.threads.iter().all(|t| !t.is_finished())
    }

    /// Wakes an idle worker (a job was just submitted).
    pub fn notify(&self) {
        let (m, c) = &*self.wake;
        *m.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        c.notify_all();
    }

    /// Stops the workers: running jobs stop at their next progress point and
    /// stay claimed until their lease ends, then any process takes them up again.
    pub fn stop(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.runner.shut_down();
        self.notify();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn wait(wake: &(Mutex<u64>, Condvar), seen: &mut u64, timeout: Duration) {
    let (m, c) = wake;
    let g = m.lock().unwrap_or_else(|p| p.into_inner());
    if *g == *seen {
        let (g, _) = c
            .wait_timeout(g, timeout)
            .unwrap_or_else(|p| p.into_inner());
        *seen = *g;
    } else {
        *seen = *g;
    }
}

fn worker_loop(runner: &Runner, wake: &(Mutex<u64>, Condvar), stopping: &AtomicBool) {
    let mut seen = 0;
    while !stopping.load(Ordering::Relaxed) {
        match runner.run_next(None) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot claim a report job"),
        }
        wait(wake, &mut seen, runner.settings.poll);
    }
}

fn cleanup_loop(runner: &Runner, wake: &(Mutex<u64>, Condvar), stopping: &AtomicBool) {
    let every = Duration::from_secs(600)
        .min(runner.settings.retention / 4)
        .max(Duration::from_millis(200));
    let mut seen = 0;
    let mut last = std::time::Instant::now() - every;
    while !stopping.load(Ordering::Relaxed) {
        if last.elapsed() >= every {
            last = std::time::Instant::now();
            match runner.cleanup(runner.now_ms()) {
                Ok(0) => {}
                Ok(k) => tracing::info!(jobs = k, "removed report jobs past their retention"),
                Err(e) => tracing::warn!(error = %e, "report clean-up failed"),
            }
        }
        wait(wake, &mut seen, every.min(Duration::from_secs(5)));
    }
}
