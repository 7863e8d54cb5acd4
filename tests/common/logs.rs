//! Captures tracing events of the current thread (a `#[tokio::test]` runs every task there),
//! each with the fields of the spans it happened in (the request's id, method and route, the
//! attempt), as a log line shows them.
//!
//! One global subscriber per test binary forwards each event to the capture of the thread it
//! happens on. (Scoped `set_default` subscribers in parallel tests race on tracing's global
//! callsite-interest cache and lose events.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Clone, Debug)]
pub struct Event {
    pub target: String,
    pub level: tracing::Level,
    pub fields: BTreeMap<String, String>,
}

impl Event {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<Event>>>);

impl Captured {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
    pub fn with_target(&self, target: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.target == target)
            .collect()
    }
    /// Everything logged, as one text (for "does this secret appear anywhere" checks).
    pub fn all_text(&self) -> String {
        self.events()
            .iter()
            .map(|e| format!("{} {:?}\n", e.target, e.fields))
            .collect()
    }
}

struct Visitor<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

struct ToThreadCapture;

/// A span's fields so far (kept in the span's extensions).
struct SpanFields(BTreeMap<String, String>);

impl<S> Layer<S> for ToThreadCapture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Visitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
                values.record(&mut Visitor(&mut fields.0));
            }
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let Some(captured) = CURRENT.with(|c| c.borrow().clone()) else {
            return;
        };
        let mut fields = BTreeMap::new();
        for span in ctx
            .event_scope(event)
            .into_iter()
            .flat_map(|s| s.from_root())
        {
            if let Some(own) = span.extensions().get::<SpanFields>() {
                fields.extend(own.0.clone());
            }
        }
        event.record(&mut Visitor(&mut fields));
        let meta = event.metadata();
        captured.0.lock().unwrap().push(Event {
            target: meta.target().to_owned(),
            level: *meta.level(),
            fields,
        });
    }
}

/// Stops capturing on drop.
pub struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

/// Installs the forwarding subscriber. Every test calls this (through the harness) before
/// anything logs: a callsite first hit before the install, racing with it, could otherwise keep
/// a cached "never" interest for the whole test binary.
pub fn install() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(ToThreadCapture);
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in tests");
        tracing::callsite::rebuild_interest_cache();
    });
}

/// Starts capturing this thread's events (every level) until the guard drops.
pub fn capture() -> (Captured, CaptureGuard) {
    install();
    let captured = Captured::default();
    CURRENT.with(|c| *c.borrow_mut() = Some(captured.clone()));
    (captured, CaptureGuard)
}
