//! Pipelines through the gateway: the IR the `kfp` compiler wrote validates and is described; findings come back
//! as issues; anonymous callers, empty requests and IR too large, too deep or too wide to parse are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use highwind_proto::{
    asset::v1 as apb,
    pipeline::v1::{self as pb, pipeline_service_client::PipelineServiceClient},
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::runs::sample;
use crate::support::{Bearer, Platform, field_violations};

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

/// Uploads `files` into a new version of `asset` as alice and commits it.
async fn commit(
    platform: &Platform,
    asset: &str,
    files: &[(&str, Vec<u8>)],
) -> Result<apb::AssetVersion, tonic::Status> {
    platform.commit_files("alice", asset, files).await
}

#[tokio::test]
async fn pipeline_versions_are_committed_only_when_their_ir_validates() {
    let platform = Platform::start().await;
    let pipeline = platform.create_asset("alice", apb::AssetKind::Pipeline).await;
    let version = commit(
        &platform,
        &pipeline,
        &[("pipeline.yaml", sample("a_linear.yaml")), ("a_linear.py", sample("a_linear.py"))],
    )
    .await
    .expect("the compiled sample commits");
    assert_eq!(version.version_number, 1);

    let broken =
        String::from_utf8(sample("a_linear_noinstall.yaml")).unwrap().replace("name: comp-scale", "name: comp-scael");
    let refused = commit(&platform, &pipeline, &[("pipeline.yaml", broken.into_bytes())]).await.expect_err("broken IR");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<_> =
        refused.get_details_bad_request().expect("bad request").field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["root.dag.tasks.scale.componentRef.name"], "the same location ValidatePipeline reports");

    let two_files = [("a.yaml", sample("a_linear.yaml")), ("b.yml", sample("c_importer_container.yaml"))];
    let two = commit(&platform, &pipeline, &two_files).await.expect_err("two IR files");
    assert_eq!(two.get_details_bad_request().expect("bad request").field_violations[0].field, "files");

    let mut assets = platform.assets(Some("alice")).await;
    let listed = assets
        .list_asset_versions(apb::ListAssetVersionsRequest { parent: pipeline.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.asset_versions.len(), 1, "refused commits store nothing");

    let dataset = platform.create_asset("alice", apb::AssetKind::Dataset).await;
    commit(&platform, &dataset, &[("notes.yaml", b"not: [a pipeline".to_vec())])
        .await
        .expect("only pipelines are checked");

    // A committed version is described from its stored IR, as the caller may read it.
    let describe = |user: &str, version: String| {
        let token = Some(platform.token(user));
        let channel = platform.channel();
        async move {
            let mut client = PipelineServiceClient::with_interceptor(channel.await, Bearer(token));
            client.describe_pipeline(pb::DescribePipelineRequest { pipeline_version: version }).await
        }
    };
    let described = describe("alice", format!("{pipeline}/versions/latest")).await.expect("describe").into_inner();
    assert_eq!(described.pipeline_version, format!("{pipeline}/versions/1"), "the alias resolved to the exact version");
    let inputs: Vec<_> = described.input_parameters.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(inputs, ["factor", "n"]);
    assert_eq!(described.tasks.len(), 3);
    let stranger = describe("bob", format!("{pipeline}/versions/1")).await.expect_err("not bob's");
    assert_eq!(stranger.code(), Code::NotFound);
    let not_pipeline = describe("alice", format!("{dataset}/versions/1")).await.expect_err("a dataset");
    assert_eq!(not_pipeline.code(), Code::InvalidArgument);
    let malformed = describe("alice", "pipelines/x".into()).await.expect_err("malformed");
    assert_eq!(malformed.code(), Code::InvalidArgument);
    platform.stop().await;
}

#[tokio::test]
async fn a_hundred_thousand_nested_brackets_are_refused_naming_the_field_and_the_limit() {
    let platform = Platform::start().await;
    let mut pipelines =
        PipelineServiceClient::with_interceptor(platform.channel().await, Bearer(Some(platform.token("alice"))));
    let started = Instant::now();
    let bomb = pb::ValidatePipelineRequest { pipeline_spec: "[".repeat(100_000).into_bytes().into() };
    let refused = pipelines.validate_pipeline(bomb).await.expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let fields = field_violations(&refused);
    assert_eq!(fields[0].0, "pipeline_spec");
    assert!(fields[0].1.contains("deeper than 64 levels"), "{fields:?}");
    eprintln!("100,000 nested [ refused in {:?}", started.elapsed());

    let json = format!("{}1{}", "{\"a\": [".repeat(50_000), "]}".repeat(50_000));
    let refused = pipelines
        .validate_pipeline(pb::ValidatePipelineRequest { pipeline_spec: json.into_bytes().into() })
        .await
        .expect_err("deep JSON refused");
    assert_eq!(field_violations(&refused)[0].0, "pipeline_spec");

    let wide = format!("a: [{}]\n", "1,".repeat(300_000));
    let refused = pipelines
        .validate_pipeline(pb::ValidatePipelineRequest { pipeline_spec: wide.into_bytes().into() })
        .await
        .expect_err("too many nodes");
    assert!(field_violations(&refused)[0].1.contains("nodes"), "{refused:?}");
    platform.stop().await;
}

#[tokio::test]
async fn an_ir_one_byte_over_4_mib_is_invalid_argument_naming_the_field() {
    let platform = Platform::start().await;
    let mut pipelines =
        PipelineServiceClient::with_interceptor(platform.channel().await, Bearer(Some(platform.token("alice"))));
    let over = vec![b'#'; 4 * 1024 * 1024 + 1];
    let refused = pipelines
        .validate_pipeline(pb::ValidatePipelineRequest { pipeline_spec: over.into() })
        .await
        .expect_err("too large");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(field_violations(&refused)[0].0, "pipeline_spec");
    platform.stop().await;
}

#[tokio::test]
async fn a_run_parameter_nested_past_the_decoders_limit_is_invalid_argument_naming_the_field() {
    use prost_types::{ListValue, Value, value::Kind};
    let platform = Platform::start().await;
    let mut deep = Value { kind: Some(Kind::NumberValue(1.0)) };
    for _ in 0..200 {
        deep = Value { kind: Some(Kind::ListValue(ListValue { values: vec![deep] })) };
    }
    let run = pb::Run {
        pipeline_version: "assets/any/versions/1".into(),
        parameters: [("deep".to_owned(), deep)].into(),
        ..Default::default()
    };
    let request = pb::CreateRunRequest { run: Some(run), ..Default::default() };
    let refused = platform.pipelines(Some("alice")).await.create_run(request).await.expect_err("too deep to decode");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let fields = field_violations(&refused);
    assert_eq!(fields[0].0, "run.parameters", "{fields:?}");
    assert!(fields[0].1.contains("nested too deeply"), "{fields:?}");
    platform.stop().await;
}
