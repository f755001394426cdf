//! Keel telemetry: one `init` per process that installs the tracing subscriber (JSON or
//! pretty), exports spans over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and one global
//! Prometheus recorder that every service's `/metrics` renders.

use std::{io::IsTerminal as _, sync::OnceLock};

use anyhow::Context as _;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{
    EnvFilter, Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

pub mod statements;

/// Log output format, from `LOG_FORMAT` (`json` or `pretty`); JSON unless stdout is a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl LogFormat {
    pub fn from_env() -> Self {
        match std::env::var("LOG_FORMAT").as_deref() {
            Ok("json") => Self::Json,
            Ok("pretty") => Self::Pretty,
            _ if std::io::stdout().is_terminal() => Self::Pretty,
            _ => Self::Json,
        }
    }
}

/// Flushes exported spans and the log lines still queued when dropped at the end of `main`.
#[must_use = "spans and logs are flushed when the guard drops"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    _logs: tracing_appender::non_blocking::WorkerGuard,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("failed to flush OpenTelemetry spans: {e}");
        }
    }
}

/// The log filter: `RUST_LOG` when set, else the originals' `LOG_LEVEL` (`debug`, `info`,
/// `warn`/`warning`, `error`, any case), else `info`.
fn filter() -> EnvFilter {
    if let Ok(filter) = EnvFilter::try_from_default_env() {
        return filter;
    }
    let level = std::env::var("LOG_LEVEL").unwrap_or_default();
    EnvFilter::new(level_directive(&level))
}

fn level_directive(level: &str) -> &'static str {
    match level.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "warn" | "warning" => "warn",
        "error" | "fatal" | "critical" | "panic" => "error",
        _ => "info",
    }
}

/// Log lines a request thread may queue before it waits for the writer.
const QUEUED_LOG_LINES: usize = 128 * 1024;

/// Installs the global subscriber, filtered by [`filter`].
///
/// Lines are formatted where they are logged and written by a thread of their own, in as few
/// `write`s as the lines queued allow: two lines per request written one `write` each cost a
/// tenth of the API's write throughput. None is dropped: a full queue makes the logger wait.
pub fn init(service: &'static str) -> anyhow::Result<TelemetryGuard> {
    let filter = filter();
    let (out, logs) = log_writer(std::io::stdout(), QUEUED_LOG_LINES);
    let fmt = match LogFormat::from_env() {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(out)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_writer(out).boxed(),
    };

    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            // The exporter reads the endpoint and headers from the standard OTEL_* variables.
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .build()
                .context("building the OTLP span exporter")?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name(service).build())
                    .build(),
            )
        }
        _ => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));

    // The log filter is the logs' and spans' own, so the statement counter sees sqlx's
    // events whatever the log level.
    tracing_subscriber::registry()
        .with(fmt.and_then(otel).with_filter(filter))
        .with(statements::layer())
        .try_init()
        .context("a global tracing subscriber is already installed")?;
    Ok(TelemetryGuard {
        provider,
        _logs: logs,
    })
}

/// A writer whose lines `out` receives on a thread of its own, buffered while more are queued;
/// at most `queued` lines wait, then a logger waits too. The guard writes what is left.
fn log_writer<W: std::io::Write + Send + 'static>(
    out: W,
    queued: usize,
) -> (
    tracing_appender::non_blocking::NonBlocking,
    tracing_appender::non_blocking::WorkerGuard,
) {
    tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(queued)
        .lossy(false)
        .thread_name("keel-logs")
        .finish(std::io::BufWriter::new(out))
}

/// For tests: logs to the test output when `TEST_LOG` is set, otherwise stays silent.
/// Safe to call from every test.
pub fn init_for_tests() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter =
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("debug"));
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
    });
}

/// The process-wide Prometheus recorder; installed on first use.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Real histograms (not summaries) so latency can be aggregated across replicas.
            let builder = PrometheusBuilder::new();
            let builder = builder
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Only fails when another recorder was installed first; ours then renders nothing,
            // which /metrics makes visible rather than hiding.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_level_names_of_the_originals() {
        assert_eq!(level_directive("DEBUG"), "debug");
        assert_eq!(level_directive("warning"), "warn");
        assert_eq!(level_directive("fatal"), "error");
        assert_eq!(level_directive(""), "info");
    }
}

#[cfg(test)]
mod log_writer_tests {
    use std::{
        io::Write,
        sync::{Arc, Mutex},
    };

    use super::*;

    /// What the log thread wrote, and how many `write` calls it took.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut seen = self.0.lock().unwrap();
            seen.0.extend_from_slice(buf);
            seen.1 += 1;
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_in_fewer_writes_even_past_the_queue() {
        let recorder = Recorder::default();
        // A queue far shorter than the lines: a lossy writer would drop most of them.
        let (out, guard) = log_writer(recorder.clone(), 8);
        let lines = 20_000;
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let mut out = out.clone();
                std::thread::spawn(move || {
                    for n in 0..lines / 4 {
                        // As the fmt layer does: a whole line in one write.
                        out.write_all(format!("writer {w} line {n}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        drop(guard);

        let (bytes, writes) = recorder.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count(), lines, "no line lost");
        for w in 0..4 {
            let own: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("writer {w} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(
                own,
                (0..lines / 4).collect::<Vec<_>>(),
                "writer {w}'s lines in order"
            );
        }
        assert!(
            writes < lines,
            "{writes} writes for {lines} lines: they were not buffered"
        );
    }
}
