//! A pipeline version is committed only when pipeline-svc finds its IR runnable: asset-svc asks it, on the
//! committer's behalf, over the public `ValidatePipeline` and refuses the commit with the issues it reports.

use std::time::SystemTime;

use async_trait::async_trait;
use highwind_common::{
    principal::{CALLER_HEADER, PRINCIPAL_HEADER, Principal, PrincipalSigner, SIGNATURE_HEADER},
    validation::Violations,
};
use highwind_proto::pipeline::v1::{self as pb, pipeline_service_client::PipelineServiceClient};
use tonic::{Request, transport::Channel};

/// How this service names itself to the services it calls.
const THIS_SERVICE: &str = "asset-svc";
/// Most issues a refused commit lists.
const MAX_LISTED: usize = 20;

/// pipeline-svc could not answer.
#[derive(Debug, thiserror::Error)]
#[error("the pipeline service cannot answer: {0}")]
pub struct ValidatorError(String);

/// Decides whether IR may be stored.
#[async_trait]
pub trait PipelineValidator: Send + Sync + std::fmt::Debug {
    /// The errors in `ir` (field = location in the document, `files` for the document as a whole); empty when it is
    /// runnable.
    async fn errors(&self, principal: &Principal, ir: bytes::Bytes) -> Result<Violations, ValidatorError>;
}

/// The validator over pipeline-svc's gRPC API.
#[derive(Debug, Clone)]
pub struct GrpcPipelines {
    client: PipelineServiceClient<Channel>,
    signer: PrincipalSigner,
}

impl GrpcPipelines {
    /// Talks to pipeline-svc at `url` (connected lazily).
    pub fn new(url: &str, signer: PrincipalSigner) -> Result<Self, ValidatorError> {
        let endpoint =
            tonic::transport::Endpoint::from_shared(url.to_owned()).map_err(|e| ValidatorError(e.to_string()))?;
        Ok(Self { client: PipelineServiceClient::new(endpoint.tcp_nodelay(true).connect_lazy()), signer })
    }
}

#[async_trait]
impl PipelineValidator for GrpcPipelines {
    async fn errors(&self, principal: &Principal, ir: bytes::Bytes) -> Result<Violations, ValidatorError> {
        let mut request = Request::new(pb::ValidatePipelineRequest { pipeline_spec: ir });
        let bad = |e: tonic::metadata::errors::InvalidMetadataValue| ValidatorError(e.to_string());
        let signature = self.signer.sign_on_behalf(principal, THIS_SERVICE, SystemTime::now());
        request.metadata_mut().insert(PRINCIPAL_HEADER, principal.as_str().parse().map_err(bad)?);
        request.metadata_mut().insert(SIGNATURE_HEADER, signature.parse().map_err(bad)?);
        request.metadata_mut().insert(CALLER_HEADER, tonic::metadata::MetadataValue::from_static(THIS_SERVICE));
        let answer = match self.client.clone().validate_pipeline(request).await {
            Ok(answer) => answer.into_inner(),
            // An empty or oversized document is the content's fault, not the service's.
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                return Ok(Violations::one("files", status.message().to_owned()));
            }
            Err(status) => return Err(ValidatorError(format!("{:?}: {}", status.code(), status.message()))),
        };
        let mut violations = Violations::new();
        for issue in answer.issues.iter().filter(|i| i.severity == pb::IssueSeverity::Error as i32).take(MAX_LISTED) {
            let field = if issue.location.is_empty() { "files".to_owned() } else { issue.location.clone() };
            let place =
                if issue.line > 0 { format!(" (line {}, column {})", issue.line, issue.column) } else { String::new() };
            violations.add(field, format!("{}: {}{place}", issue.reason, issue.message));
        }
        Ok(violations)
    }
}
