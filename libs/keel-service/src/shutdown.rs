//! Shutdown: one token every part of a process watches, cancelled by SIGTERM or SIGINT (or by
//! a part that ends), and the drain deadline the parts have to finish what they hold.
//!
//! In a container the binary is PID 1: the kernel delivers no default action for SIGTERM to
//! PID 1, so without a handler `docker stop` and a Kubernetes rollout would wait out their grace
//! period and SIGKILL. The handler installed here is what makes the drain run at all.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Default time the parts of a process get to drain after shutdown starts (sources-api-go
/// waits 20 s for its HTTP server).
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(20);

/// A shutdown signal shared by the parts of a process.
#[derive(Debug, Clone)]
pub struct Shutdown {
    token: CancellationToken,
    drain: Duration,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new(DEFAULT_DRAIN)
    }
}

impl Shutdown {
    /// A shutdown only triggered by [`Shutdown::trigger`] (tests, embedding).
    pub fn new(drain: Duration) -> Self {
        Self {
            token: CancellationToken::new(),
            drain,
        }
    }

    /// A shutdown triggered by SIGTERM or SIGINT as well.
    pub fn on_signals(drain: Duration) -> anyhow::Result<Self> {
        let shutdown = Self::new(drain);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let token = shutdown.token.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = token.cancelled() => return,
            };
            tracing::info!(
                signal = name,
                drain_seconds = drain.as_secs_f64(),
                "shutting down"
            );
            token.cancel();
        });
        Ok(shutdown)
    }

    /// Starts the shutdown.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the shutdown has started.
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }

    /// The token itself, for code that takes a [`CancellationToken`].
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// How long the parts have to finish once the shutdown started.
    pub fn drain(&self) -> Duration {
        self.drain
    }

    /// A shutdown that also starts on its own (a part stopped before the rest), with the same
    /// deadline.
    pub fn child(&self) -> Self {
        Self {
            token: self.token.child_token(),
            drain: self.drain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_follows_its_parent_but_not_the_other_way() {
        let parent = Shutdown::new(Duration::from_secs(1));
        let child = parent.child();
        child.trigger();
        assert!(!parent.is_triggered());
        let other = parent.child();
        parent.trigger();
        assert!(other.is_triggered());
        assert_eq!(other.drain(), Duration::from_secs(1));
    }
}
