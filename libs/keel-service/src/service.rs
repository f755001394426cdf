//! The interface every service exposes, and running services together.
//!
//! A service is built from its configuration (`App::build(&Config)`, which prepares the
//! database and binds its ports), tells where it listens, and runs until shutdown. `keel up`,
//! the benchmarks, the test stacks and each standalone binary run services through
//! [`run_all`]: one service ending (failed, or stopped by itself) stops the others, and the
//! drain deadline bounds how long they get once shutdown starts.

use std::{future::Future, net::SocketAddr, pin::Pin, time::Duration};

use anyhow::Context as _;
use tokio::task::JoinSet;

use crate::Shutdown;

/// What a service's `run` returns.
pub type Running = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A built service, ready to run.
pub trait Service: Send + 'static {
    /// Its name in logs and errors (`sources-api`).
    fn name(&self) -> &'static str;
    /// Where its API listens.
    fn local_addr(&self) -> SocketAddr;
    /// Serves and works until `shutdown` starts, then finishes what it holds (in-flight
    /// requests answered, consumer positions committed, leases released) and returns.
    fn run(self: Box<Self>, shutdown: Shutdown) -> Running;
}

/// Runs `services` until `shutdown` starts or one of them ends; then waits for the others,
/// at most the drain deadline. The first failure is returned, named after its service; a
/// service that stops before shutdown counts as failed.
pub async fn run_all(services: Vec<Box<dyn Service>>, shutdown: Shutdown) -> anyhow::Result<()> {
    let mut running = JoinSet::new();
    for service in services {
        let name = service.name();
        let stop = shutdown.clone();
        running.spawn(async move {
            let outcome = service.run(stop.clone()).await;
            let outcome = match outcome {
                Ok(()) if !stop.is_triggered() => Err(anyhow::anyhow!("stopped by itself")),
                other => other,
            };
            (name, outcome)
        });
    }
    let mut first_error: Option<anyhow::Error> = None;
    // Until the shutdown starts, or a service ends (which starts it).
    tokio::select! {
        _ = shutdown.triggered() => {}
        Some(done) = running.join_next() => {
            let (name, outcome) = done.context("a service task panicked")?;
            settle(&mut first_error, name, outcome, &shutdown);
        }
    }
    let deadline = tokio::time::Instant::now() + shutdown.drain();
    loop {
        match tokio::time::timeout_at(deadline, running.join_next()).await {
            Ok(None) => break,
            Ok(Some(Ok((name, outcome)))) => settle(&mut first_error, name, outcome, &shutdown),
            Ok(Some(Err(e))) => {
                first_error.get_or_insert(anyhow::anyhow!("a service task panicked: {e}"));
            }
            Err(_) => {
                running.abort_all();
                let late = anyhow::anyhow!(
                    "{} service(s) did not drain within {}s",
                    running.len(),
                    shutdown.drain().as_secs_f64()
                );
                return Err(first_error.map_or(late, |e| e.context("and draining timed out")));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// Keeps the first failure and starts the shutdown: one service ending stops the others.
fn settle(
    first_error: &mut Option<anyhow::Error>,
    name: &str,
    outcome: anyhow::Result<()>,
    shutdown: &Shutdown,
) {
    if let Err(e) = outcome {
        tracing::error!(service = name, error = format!("{e:#}"), "service failed");
        first_error.get_or_insert(e.context(format!("{name} failed")));
    }
    shutdown.trigger();
}

/// What a standalone binary's `main` does after parsing its configuration: handle SIGTERM and
/// SIGINT, build the service (a signal during the build stops it cleanly), run it until a
/// signal, drain within `drain`.
pub async fn run_binary<S, F>(drain: Duration, build: F) -> anyhow::Result<()>
where
    S: Service,
    F: Future<Output = anyhow::Result<S>>,
{
    crate::tls::install_crypto_provider();
    let shutdown = Shutdown::on_signals(drain)?;
    let service = tokio::select! {
        built = build => built?,
        _ = shutdown.triggered() => return Ok(()),
    };
    tracing::info!(service = service.name(), address = %service.local_addr(), "listening");
    run_all(vec![Box::new(service)], shutdown).await
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use super::*;

    struct Fake {
        name: &'static str,
        /// Fails this long after starting; `None` runs until shutdown.
        fails_after: Option<Duration>,
        /// Takes this long to finish after shutdown.
        drains_in: Duration,
        drained: Arc<AtomicBool>,
    }

    impl Service for Fake {
        fn name(&self) -> &'static str {
            self.name
        }

        fn local_addr(&self) -> SocketAddr {
            "127.0.0.1:0".parse().unwrap()
        }

        fn run(self: Box<Self>, shutdown: Shutdown) -> Running {
            Box::pin(async move {
                if let Some(after) = self.fails_after {
                    tokio::time::sleep(after).await;
                    anyhow::bail!("broke");
                }
                shutdown.triggered().await;
                tokio::time::sleep(self.drains_in).await;
                self.drained.store(true, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    fn fake(
        name: &'static str,
        fails_after: Option<Duration>,
        drains_in: Duration,
    ) -> (Box<dyn Service>, Arc<AtomicBool>) {
        let drained = Arc::new(AtomicBool::new(false));
        let service = Fake {
            name,
            fails_after,
            drains_in,
            drained: drained.clone(),
        };
        (Box::new(service), drained)
    }

    #[tokio::test]
    async fn one_failing_service_stops_the_others_and_names_itself() {
        let (a, a_drained) = fake("a", None, Duration::from_millis(10));
        let (b, _) = fake("b", Some(Duration::from_millis(10)), Duration::ZERO);
        let err = run_all(vec![a, b], Shutdown::new(Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert_eq!(format!("{err:#}"), "b failed: broke");
        assert!(
            a_drained.load(Ordering::SeqCst),
            "the other drained before returning"
        );
    }

    #[tokio::test]
    async fn shutdown_drains_everything_or_fails_at_the_deadline() {
        let (a, a_drained) = fake("a", None, Duration::from_millis(10));
        let shutdown = Shutdown::new(Duration::from_secs(5));
        shutdown.trigger();
        run_all(vec![a], shutdown).await.unwrap();
        assert!(a_drained.load(Ordering::SeqCst));

        let (slow, _) = fake("slow", None, Duration::from_secs(60));
        let shutdown = Shutdown::new(Duration::from_millis(50));
        shutdown.trigger();
        let err = run_all(vec![slow], shutdown).await.unwrap_err();
        assert!(err.to_string().contains("did not drain within"), "{err}");
    }
}
