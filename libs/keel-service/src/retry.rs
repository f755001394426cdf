//! Retrying with exponential backoff and jitter ([`backon`]), so replicas that failed together
//! do not retry together.

use std::{fmt::Display, future::Future, time::Duration};

use backon::{ExponentialBuilder, Retryable as _};

use crate::Shutdown;

pub use backon::{Backoff, BackoffBuilder, ExponentialBackoff};

/// `base` doubling up to `max`, with jitter, without end.
pub fn backoff(base: Duration, max: Duration) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(base)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

/// Calls `attempt` until it succeeds, waiting by `policy` between failures and logging each;
/// `None` when shutdown starts first.
pub async fn until_ok<T, E, F, Fut>(
    what: &str,
    policy: ExponentialBuilder,
    shutdown: &Shutdown,
    attempt: F,
) -> Option<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let retried = attempt
        .retry(policy)
        .sleep(tokio::time::sleep)
        .notify(|e: &E, wait: Duration| {
            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what} failed; retrying");
        });
    tokio::select! {
        _ = shutdown.triggered() => None,
        done = retried => done.ok(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_below_twice_the_delay() {
        let delays: Vec<Duration> = backoff(Duration::from_millis(100), Duration::from_secs(1))
            .build()
            .take(8)
            .collect();
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] < Duration::from_millis(200));
        assert!(delays[2] >= Duration::from_millis(400));
        // Capped (jitter adds at most the delay again).
        assert!(delays[7] <= Duration::from_secs(2), "{delays:?}");
        assert_eq!(delays.len(), 8, "never gives up");
    }

    #[tokio::test]
    async fn until_ok_retries_then_answers_and_stops_at_shutdown() {
        let calls = AtomicU32::new(0);
        let shutdown = Shutdown::default();
        let policy = backoff(Duration::from_millis(1), Duration::from_millis(2));
        let got = until_ok("test", policy, &shutdown, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err("not yet"),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(got, Some(3));
        shutdown.trigger();
        let never: Option<()> = until_ok("test", policy, &shutdown, || async { Err("down") }).await;
        assert_eq!(never, None);
    }
}
