//! A request the codec cannot decode is the caller's bytes, not a fault of the server: tonic answers it INTERNAL
//! (`failed to decode Protobuf message: …`, e.g. a `Value` parameter nested past prost's recursion limit) before
//! any handler runs, so this wrapper turns that answer into INVALID_ARGUMENT naming the field the decoder gave
//! up in.

use std::task::{Context, Poll};

use highwind_common::validation::Violations;
use tonic::{
    Code, Status,
    body::Body,
    codegen::{BoxFuture, Service, http},
    server::NamedService,
};

use crate::error::Error;

/// What tonic's codec puts before the decoder's own account.
const DECODE_FAILED: &str = "failed to decode Protobuf message: ";

/// Messages the decoder names inside a field's value (`google.protobuf.Value` and its parts); the field is the
/// last one named outside them.
const INSIDE_A_VALUE: [&str; 3] = ["Value", "ListValue", "Struct"];

/// `S` with undecodable requests answered INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct UndecodableIsInvalid<S>(pub S);

impl<S: NamedService> NamedService for UndecodableIsInvalid<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for UndecodableIsInvalid<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.0.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let refused = Status::from_header_map(response.headers())
                .filter(|s| s.code() == Code::Internal)
                .and_then(|s| s.message().strip_prefix(DECODE_FAILED).map(invalid));
            Ok(refused.map_or(response, Status::into_http))
        })
    }
}

/// INVALID_ARGUMENT for the decoder's account `what` (`Msg.field: …: description`, innermost message first).
fn invalid(what: &str) -> Status {
    let mut parts: Vec<&str> = what.split(": ").collect();
    let description = parts.pop().unwrap_or_default();
    let field: Vec<&str> = parts
        .iter()
        .rev()
        .filter_map(|part| part.split_once('.'))
        .take_while(|(message, _)| !INSIDE_A_VALUE.contains(message))
        .map(|(_, field)| field)
        .collect();
    let field = if field.is_empty() { "request".to_owned() } else { field.join(".") };
    let description = if description == "recursion limit reached" {
        "nested too deeply to decode (at most 100 levels of messages)".to_owned()
    } else {
        format!("cannot be decoded: {description}")
    };
    Error::Invalid(Violations::one(field, description)).into()
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    #[test]
    fn the_field_is_the_outermost_path_before_the_value() {
        let status = invalid(
            "Value.kind: ListValue.values: Value.kind: Run.parameters: CreateRunRequest.run: recursion limit reached",
        );
        assert_eq!(status.code(), Code::InvalidArgument);
        let violation = &status.get_details_bad_request().expect("bad request").field_violations[0];
        assert_eq!(violation.field, "run.parameters");
        assert!(violation.description.contains("nested too deeply"));
        let other = invalid("invalid wire type value: 7");
        assert_eq!(other.get_details_bad_request().expect("bad request").field_violations[0].field, "request");
    }
}
