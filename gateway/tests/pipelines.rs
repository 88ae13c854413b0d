//! Pipelines through the gateway: the IR the `kfp` compiler wrote validates and is described; findings come back
//! as issues; anonymous callers and empty requests are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use highwind_proto::pipeline::v1::{self as pb, pipeline_service_client::PipelineServiceClient};
use support::{Bearer, Platform};
use tonic::Code;

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../pipeline-svc/tests/samples/{name}", env!("CARGO_MANIFEST_DIR"))).expect("sample")
}

#[tokio::test]
async fn compiled_pipelines_validate_through_the_gateway() {
    let platform = Platform::start().await;
    let token = Some(platform.token("alice"));
    let mut pipelines = PipelineServiceClient::with_interceptor(platform.channel().await, Bearer(token));
    let valid = pipelines
        .validate_pipeline(pb::ValidatePipelineRequest { pipeline_spec: sample("c_importer_container.yaml").into() })
        .await
        .expect("validate")
        .into_inner();
    assert!(valid.valid, "{:?}", valid.issues);
    let description = valid.description.expect("described");
    assert_eq!(description.pipeline_name, "c-importer-container");
    assert_eq!(description.importers.len(), 1);

    let broken = String::from_utf8(sample("a_linear_noinstall.yaml"))
        .unwrap()
        .replace("producerTask: scale", "producerTask: scael");
    let findings = pipelines
        .validate_pipeline(pb::ValidatePipelineRequest { pipeline_spec: broken.into_bytes().into() })
        .await
        .expect("findings are an answer, not an error")
        .into_inner();
    assert!(!findings.valid && findings.description.is_none());
    assert!(findings.issues.iter().all(|i| i.reason == "DANGLING_PRODUCER_TASK"), "{:?}", findings.issues);
    assert!(
        findings
            .issues
            .iter()
            .any(|i| i.location == "root.dag.tasks.summarize.inputs.parameters.count.taskOutputParameter.producerTask")
    );

    let empty = pipelines.validate_pipeline(pb::ValidatePipelineRequest::default()).await.expect_err("empty");
    assert_eq!(empty.code(), Code::InvalidArgument);
    let mut anonymous = PipelineServiceClient::with_interceptor(platform.channel().await, Bearer(None));
    let request = pb::ValidatePipelineRequest { pipeline_spec: sample("a_linear.yaml").into() };
    assert_eq!(anonymous.validate_pipeline(request).await.expect_err("anonymous").code(), Code::Unauthenticated);
    platform.stop().await;
}
