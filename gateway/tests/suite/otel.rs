//! Traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the platform exports its spans over OTLP, and one call's
//! gateway and service spans join the trace its client started.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Stdio, sync::Arc, time::Duration};

use highwind_proto::asset::v1 as pb;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::Mutex,
};
use tonic::{Request, Response, Status};

/// One received span: (trace id, span id, parent span id, name), ids in hex.
type Received = (String, String, String, String);

/// An OTLP collector that keeps every span it receives.
#[derive(Default, Clone)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().await;
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push((
                        hex::encode(&span.trace_id),
                        hex::encode(&span.span_id),
                        hex::encode(&span.parent_span_id),
                        span.name,
                    ));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test]
async fn a_call_is_one_trace_from_client_through_gateway_to_service() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(incoming),
    );

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_highwind"))
        .args(["standalone", "--no-registry", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector_addr}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut token = String::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap() {
        if let Some(rest) = line.strip_prefix("dev token (dev): ") {
            token = rest.to_owned();
            break;
        }
    }

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
    let mut assets = pb::asset_service_client::AssetServiceClient::new(channel);
    let mut request = Request::new(pb::ListAssetsRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
    assets.list_assets(request).await.expect("list");

    let mut joined = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        joined = collector.spans.lock().await.iter().filter(|s| s.0 == trace_id).cloned().collect();
        if joined.iter().any(|s| s.3 == "grpc") && joined.iter().any(|s| s.3 == "gateway") {
            break;
        }
    }
    let gateway = joined.iter().find(|s| s.3 == "gateway").expect("the gateway's span joined the client's trace");
    let service = joined.iter().find(|s| s.3 == "grpc").expect("the service's span joined the client's trace");
    assert_eq!(gateway.2, "00f067aa0ba902b7", "the gateway span is a child of the client's span");
    assert_eq!(service.2, gateway.1, "the service span is a child of the gateway span");
    let _ = child.start_kill();
}
