//! The audit log: the gateway records every call that changes something (by the services' declared verbs: all but
//! reads) with who made it, what it named, when, and how it ended, without slowing the call. Events go through a
//! bounded queue to a writer that appends them in batches.

mod api;
mod body;
pub mod store;

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use chrono::{DateTime, Utc};
use highwind_common::{
    access::{AccessRules, Verb},
    principal::PRINCIPAL_HEADER,
};
use http::{Request, Response};
use tokio::sync::mpsc;
use tower::{Layer, Service};
use uuid::Uuid;

pub use api::AuditApi;
use body::{RequestTap, ResponseTap};

/// Events waiting to be written before new ones are dropped (and the drop logged).
const QUEUE: usize = 10_000;
/// Most events appended in one transaction.
const BATCH: usize = 500;

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// UUIDv7.
    pub id: Uuid,
    /// When the call ended.
    pub time: DateTime<Utc>,
    /// Who called.
    pub principal: String,
    /// `/package.Service/Method`.
    pub method: String,
    /// The resource the request named, or empty.
    pub target: String,
    /// The gRPC code name it ended with.
    pub code: String,
    /// The call's W3C trace id, or empty.
    pub trace_id: String,
}

/// Hands events to the writer task.
#[derive(Debug, Clone)]
pub struct Recorder {
    queue: mpsc::Sender<AuditEvent>,
}

impl Recorder {
    /// A recorder whose writer appends to `store` until every recorder is dropped.
    pub fn start(store: Arc<dyn store::AuditStore>) -> Self {
        let (queue, mut events) = mpsc::channel::<AuditEvent>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while events.recv_many(&mut batch, BATCH).await > 0 {
                // A failed append is retried a few times; the events are only lost if the database stays down.
                let mut attempt = 0;
                while let Err(error) = store.append(&batch).await {
                    attempt += 1;
                    if attempt == 5 {
                        tracing::error!(%error, lost = batch.len(), "audit events could not be written");
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                batch.clear();
            }
        });
        Self { queue }
    }

    fn record(&self, event: AuditEvent) {
        if let Err(error) = self.queue.try_send(event) {
            tracing::error!(method = %error.into_inner().method, "audit queue full: event dropped");
        }
    }
}

/// The parts of an event known when the call starts. Dropped unfinished (the client went away, the upstream
/// failed), it records the call as CANCELLED: a change that may have happened is never left out.
#[derive(Debug)]
struct Pending {
    recorder: Recorder,
    principal: String,
    method: String,
    trace_id: String,
    target: Arc<Mutex<Option<String>>>,
    finished: bool,
}

impl Pending {
    fn finish(mut self, code: tonic::Code) {
        self.record(code);
    }

    fn record(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let target = self.target.lock().map(|t| t.clone().unwrap_or_default()).unwrap_or_default();
        self.recorder.record(AuditEvent {
            id: Uuid::now_v7(),
            time: Utc::now(),
            principal: std::mem::take(&mut self.principal),
            method: std::mem::take(&mut self.method),
            target,
            code: code_name(code).to_owned(),
            trace_id: std::mem::take(&mut self.trace_id),
        });
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.record(tonic::Code::Cancelled);
    }
}

/// Records the calls `rules` declare with a verb other than read. Sits behind authentication, so the principal
/// header it reads was set by the gateway itself.
#[derive(Debug, Clone)]
pub struct AuditLayer {
    rules: AccessRules,
    recorder: Recorder,
}

impl AuditLayer {
    /// Records through `recorder` the changing calls of `rules`.
    pub fn new(rules: AccessRules, recorder: Recorder) -> Self {
        Self { rules, recorder }
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Audit<S> {
        Audit { inner, rules: self.rules.clone(), recorder: self.recorder.clone() }
    }
}

/// The service [`AuditLayer`] makes.
#[derive(Debug, Clone)]
pub struct Audit<S> {
    inner: S,
    rules: AccessRules,
    recorder: Recorder,
}

impl<S> Service<Request<tonic::body::Body>> for Audit<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = request.uri().path().to_owned();
        let changes = self.rules.verb(&method).is_some_and(|verb| verb != Verb::Read);
        let principal = request.headers().get(PRINCIPAL_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (true, Some(principal)) = (changes, principal) else {
            return Box::pin(inner.call(request));
        };
        let trace_id = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.split('-').nth(1))
            .unwrap_or_default()
            .to_owned();
        let target = Arc::new(Mutex::new(None));
        let pending = Pending {
            recorder: self.recorder.clone(),
            principal,
            method,
            trace_id,
            target: Arc::clone(&target),
            finished: false,
        };
        let request = request.map(|body| tonic::body::Body::new(RequestTap::new(body, target)));
        Box::pin(async move {
            let response = inner.call(request).await?;
            // A status in the headers ends the call now (trailers-only); otherwise the trailers will tell.
            if let Some(code) = body::status_of(response.headers()) {
                pending.finish(code);
                return Ok(response);
            }
            Ok(response.map(|body| tonic::body::Body::new(ResponseTap::new(body, pending))))
        })
    }
}

/// The canonical name of `code`, as the gRPC spec spells it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
