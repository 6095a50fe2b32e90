//! Distributed traces: the `tracing` spans exported over OTLP (HTTP, protobuf) when
//! `otlp_endpoint` is set, and W3C `traceparent` carried wherever work crosses a process — taken
//! from incoming requests, sent on SII calls and webhooks, kept in batch queue messages and with
//! each document for the instance that uploads it — so one trace spans every instance that
//! touched a document.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Flushes and stops the exporter when dropped (at the end of `serve`).
pub struct Exporting(SdkTracerProvider);

impl Drop for Exporting {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

/// The OTLP exporter and the `tracing` layer that feeds it. `instance` names this process in
/// the traces (`service.instance.id`).
pub fn layer<S>(endpoint: &str, instance: &str) -> Result<(impl tracing_subscriber::Layer<S>, Exporting), String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let url = if endpoint.ends_with("/v1/traces") {
        endpoint.to_string()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()
        .map_err(|e| format!("OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("dte-gateway")
        .with_attribute(KeyValue::new("service.instance.id", instance.to_string()))
        .build();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    let tracer = provider.tracer("dte-gateway");
    Ok((tracing_opentelemetry::layer().with_tracer(tracer), Exporting(provider)))
}

fn propagator() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

/// The current span's context as a W3C `traceparent`, when it is being traced.
pub fn traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    propagator().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

struct One<'a>(&'a str);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// Makes `span` a child of the remote context in `traceparent` (ignored when malformed) and
/// records its trace id in the span's `trace_id` field, for the log lines inside it.
pub fn adopt(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(tp) = traceparent {
        let cx = propagator().extract(&One(tp));
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
    let id = span.context().span().span_context().trace_id();
    if id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(id));
    }
}

/// Outgoing requests carry the current span's `traceparent` (SII calls, webhooks).
pub trait Traced {
    fn traced(self) -> Self;
}

impl Traced for reqwest::RequestBuilder {
    fn traced(self) -> Self {
        match traceparent() {
            Some(tp) => self.header("traceparent", tp),
            None => self,
        }
    }
}
