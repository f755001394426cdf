//! Periodic tasks: one helper for every "every N seconds until shutdown" loop.

use std::{future::Future, time::Duration};

use tokio::time::MissedTickBehavior;
use tracing::Instrument as _;

use crate::Shutdown;

/// Runs `task` at once, then every `interval`, until shutdown. A failed run is logged and the
/// next tick comes anyway; a run in progress when shutdown starts finishes first. Each run has
/// a span named after the task.
pub async fn every<F, Fut>(name: &'static str, interval: Duration, shutdown: Shutdown, mut task: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.triggered() => return,
            _ = tick.tick() => {}
        }
        let run = task().instrument(tracing::info_span!("periodic", task = name));
        if let Err(e) = run.await {
            tracing::warn!(
                task = name,
                error = format!("{e:#}"),
                "periodic task failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use super::*;

    #[tokio::test]
    async fn runs_until_shutdown_and_survives_failures() {
        let runs = Arc::new(AtomicU32::new(0));
        let shutdown = Shutdown::default();
        let task = tokio::spawn(every(
            "count",
            Duration::from_millis(5),
            shutdown.clone(),
            {
                let runs = runs.clone();
                move || {
                    let runs = runs.clone();
                    async move {
                        if runs.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                            anyhow::bail!("every other run fails");
                        }
                        Ok(())
                    }
                }
            },
        ));
        while runs.load(Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        shutdown.trigger();
        task.await.unwrap();
        let after = runs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(runs.load(Ordering::SeqCst), after, "no run after shutdown");
    }
}
