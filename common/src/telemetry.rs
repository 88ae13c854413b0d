//! Logs and traces: JSON logs through `tracing` (filtered by `RUST_LOG`, default `info`), and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans exported over OTLP/gRPC with W3C trace context carried across
//! services in `traceparent`/`tracestate`.

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Keeps the trace exporter alive; dropping it flushes the spans still buffered.
#[derive(Debug)]
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber once (later calls only return an inert guard), naming exported spans after
/// `service`.
pub fn init(service: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider =
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|endpoint| !endpoint.is_empty()).and_then(|_| {
            match opentelemetry_otlp::SpanExporter::builder().with_tonic().build() {
                Ok(exporter) => Some(
                    SdkTracerProvider::builder()
                        .with_batch_exporter(exporter)
                        .with_resource(
                            opentelemetry_sdk::Resource::builder().with_service_name(service.to_owned()).build(),
                        )
                        .build(),
                ),
                Err(error) => {
                    eprintln!("{service}: trace export disabled: {error}");
                    None
                }
            }
        });
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service.to_owned())));
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().json().flatten_event(true).with_current_span(false).with_writer(std::io::stderr))
        .with(otel)
        .try_init()
        .is_ok();
    if !installed {
        return Telemetry { provider: None };
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Telemetry { provider }
}

/// The span for one incoming call, a child of the caller's trace context when its headers carry one.
pub fn request_span(kind: &'static str, request: &http::Request<()>) -> tracing::Span {
    let headers = request.headers();
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("");
    let span = match kind {
        "gateway" => tracing::info_span!("gateway", path = %request.uri().path(), traceparent),
        _ => tracing::info_span!("grpc", path = %request.uri().path(), traceparent),
    };
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);
    span
}

/// Writes the current span's trace context into outgoing `headers`, so the next hop continues the trace. Without
/// an exporter the context is empty and the headers are left as they came.
pub fn inject_current(headers: &mut http::HeaderMap) {
    let context: Context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut HeaderInjector(headers)));
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(key), http::HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}
