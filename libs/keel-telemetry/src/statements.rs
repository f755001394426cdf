//! SQL statements counted by where they ran: the outermost span around each statement sqlx
//! executes (`worker` for the listener's workers, …; an HTTP request's span is named with its
//! method and route, `request GET /sources/{id}`). Off until [`start_counting`]: benchmarks
//! use it to print statements per unit of work.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id},
    subscriber::Interest,
};
use tracing_subscriber::{
    Layer,
    filter::{DynFilterFn, LevelFilter},
    layer::Context,
    registry::LookupSpan,
};

/// The target of the event sqlx emits for every statement it executes.
const SQLX_TARGET: &str = "sqlx::query";

static COUNTING: AtomicBool = AtomicBool::new(false);
static COUNTS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Counts statements from now on (sqlx then formats an event per statement, which costs a
/// little; nothing is logged by it).
pub fn start_counting() {
    COUNTING.store(true, Ordering::Relaxed);
}

/// Statements counted so far, by the name of their outermost span (`-` outside any span).
pub fn counted() -> BTreeMap<String, u64> {
    COUNTS.lock().map(|c| c.clone()).unwrap_or_default()
}

/// The layer [`crate::init`] installs, with its own filter: only sqlx's statement events,
/// only while counting.
pub(crate) fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // Spans too: a filtered layer only sees the spans its filter lets through.
    let wanted = |meta: &Metadata<'_>| {
        meta.target() == SQLX_TARGET || (meta.is_span() && *meta.level() <= Level::INFO)
    };
    let filter = DynFilterFn::new(move |meta, _| COUNTING.load(Ordering::Relaxed) && wanted(meta))
        .with_callsite_filter(move |meta| {
            if wanted(meta) {
                Interest::sometimes()
            } else {
                Interest::never()
            }
        })
        // sqlx logs statements at DEBUG.
        .with_max_level_hint(LevelFilter::DEBUG);
    Counter.with_filter(filter)
}

struct Counter;

impl<S> Layer<S> for Counter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = RequestFields::default();
        attrs.record(&mut fields);
        if let (Some(route), Some(span)) = (fields.route, ctx.span(id)) {
            let label = match fields.method {
                Some(method) => format!("{} {method} {route}", attrs.metadata().name()),
                None => format!("{} {route}", attrs.metadata().name()),
            };
            span.extensions_mut().insert(Label(label));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != SQLX_TARGET {
            return;
        }
        let root = ctx
            .event_scope(event)
            .and_then(|scope| scope.from_root().next());
        let key = match root {
            Some(span) => match span.extensions().get::<Label>() {
                Some(Label(label)) => label.clone(),
                None => span.name().to_owned(),
            },
            None => "-".to_owned(),
        };
        if let Ok(mut counts) = COUNTS.lock() {
            *counts.entry(key).or_default() += 1;
        }
    }
}

/// A span's name with its method and route, when it has a route.
struct Label(String);

#[derive(Default)]
struct RequestFields {
    method: Option<String>,
    route: Option<String>,
}

impl Visit for RequestFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "method" => self.method = Some(format!("{value:?}")),
            "route" => self.route = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "method" => self.method = Some(value.to_owned()),
            "route" => self.route = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn statements_are_counted_by_their_outermost_span_once_counting_starts() {
        let subscriber = tracing_subscriber::registry().with(layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "sqlx::query", "before counting");
            start_counting();
            let outer = tracing::info_span!("request", method = "GET", route = %"/sources/{id}");
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner");
            inner.in_scope(|| tracing::debug!(target: "sqlx::query", "SELECT 1"));
            tracing::debug!(target: "sqlx::query", "SELECT 2");
            tracing::debug!(target: "other", "not a statement");
        });
        assert_eq!(counted().get("request GET /sources/{id}"), Some(&2));
        assert_eq!(counted().get("inner"), None);
        assert_eq!(counted().values().sum::<u64>(), 2);
    }
}
