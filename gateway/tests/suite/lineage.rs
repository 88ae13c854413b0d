//! Run outputs become asset versions that record the run, and ListLineage walks from a version to the runs that
//! produced and read it, transitively.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use highwind_proto::{asset::v1 as apb, pipeline::v1 as pb};
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::Platform;
use crate::support::runs::sample;

fn importer(version: &str) -> pb::InputBinding {
    pb::InputBinding {
        target: Some(pb::input_binding::Target::ImporterTask("importer".into())),
        asset_version: version.into(),
        alias: String::new(),
    }
}

fn destination(task: &str, key: &str, target: pb::output_destination::Destination) -> pb::OutputDestination {
    pb::OutputDestination { task: task.into(), output_key: key.into(), destination: Some(target) }
}

/// Runs `run` as alice to its end.
async fn finish(platform: &Platform, run: pb::Run) -> Result<pb::Run, tonic::Status> {
    let mut client = platform.pipelines(Some("alice")).await;
    let created = client.create_run(pb::CreateRunRequest { run: Some(run), ..Default::default() }).await?.into_inner();
    let mut stream = client.watch_run(pb::WatchRunRequest { name: created.name.clone() }).await?.into_inner();
    while tokio::time::timeout(Duration::from_secs(60), stream.message()).await.expect("in time")?.is_some() {}
    Ok(client.get_run(pb::GetRunRequest { name: created.name, view: 0 }).await?.into_inner())
}

fn output<'a>(run: &'a pb::Run, producer: &str, key: &str) -> &'a pb::Artifact {
    let producer = format!("{}/tasks/{producer}", run.name);
    let outputs = run.outputs.as_ref().unwrap();
    outputs
        .artifacts
        .iter()
        .find(|a| a.producer_task == producer && a.key == key)
        .unwrap_or_else(|| panic!("{producer} {key}: {outputs:?}"))
}

async fn lineage(
    platform: &Platform,
    user: &str,
    version: &str,
    direction: pb::LineageDirection,
    depth: i32,
) -> Result<pb::ListLineageResponse, tonic::Status> {
    let request = pb::ListLineageRequest { asset_version: version.into(), direction: direction as i32, depth };
    platform.pipelines(Some(user)).await.list_lineage(request).await.map(tonic::Response::into_inner)
}

#[tokio::test]
async fn outputs_become_versions_that_record_their_run_and_lineage_walks_both_ways() {
    let platform = Platform::start().await;
    let data = platform.create_asset("alice", apb::AssetKind::Dataset).await;
    platform.commit_files("alice", &data, &[("rows.csv", b"b\na\nc\n".to_vec())]).await.unwrap();
    let data_v1 = format!("{data}/versions/1");
    let pipeline = platform.create_asset("alice", apb::AssetKind::Pipeline).await;
    platform.commit_files("alice", &pipeline, &[("pipeline.yaml", sample("g_lineage.yaml"))]).await.unwrap();
    let pipeline_v1 = format!("{pipeline}/versions/1");

    // Run 1: the model goes into a new asset named by the caller; the sorted rows, unnamed, into a new asset too.
    let new_model = pb::output_destination::Destination::NewAsset(pb::NewAssetSpec {
        display_name: "Row counter".into(),
        ..Default::default()
    });
    let run = pb::Run {
        pipeline_version: pipeline_v1.clone(),
        input_bindings: vec![importer(&data_v1)],
        output_destinations: vec![destination("", "Output", new_model)],
        ..Default::default()
    };
    let first = finish(&platform, run).await.unwrap();
    assert_eq!(first.state, pb::RunState::Succeeded as i32, "{:?}", first.error);
    let model_v1 = output(&first, "fit", "model").asset_version.clone();
    let sorted_v1 = output(&first, "sort-rows", "out_ds").asset_version.clone();
    assert!(model_v1.ends_with("/versions/1") && sorted_v1.ends_with("/versions/1"), "{model_v1} {sorted_v1}");

    let mut assets = platform.assets(Some("alice")).await;
    let model =
        assets.get_asset_version(apb::GetAssetVersionRequest { name: model_v1.clone() }).await.unwrap().into_inner();
    let files: Vec<_> = model.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(files, ["format.txt", "weights.txt"], "a directory artifact keeps its files");
    let Some(apb::lineage::Source::PipelineRun(source)) = model.lineage.and_then(|l| l.source) else {
        panic!("the version records its run")
    };
    assert_eq!(source.run, first.name);
    assert_eq!(source.pipeline_version, pipeline_v1);
    assert_eq!(source.input_versions, std::slice::from_ref(&data_v1));
    assert_eq!((source.task.as_str(), source.output_key.as_str()), ("fit", "model"));
    let model_asset = model_v1.split("/versions/").next().unwrap().to_owned();
    let named = assets.get_asset(apb::GetAssetRequest { name: model_asset.clone() }).await.unwrap().into_inner();
    assert_eq!((named.display_name.as_str(), named.kind), ("Row counter", apb::AssetKind::Model as i32));
    assert_eq!(platform.read_file("alice", &model_v1, "weights.txt").await.unwrap(), b"3\n");

    // Run 2 reads run 1's sorted rows and adds a version to the model asset.
    let run = pb::Run {
        pipeline_version: pipeline_v1.clone(),
        input_bindings: vec![importer(&sorted_v1)],
        output_destinations: vec![destination(
            "fit",
            "model",
            pb::output_destination::Destination::Asset(model_asset.clone()),
        )],
        unbound_output_policy: pb::UnboundOutputPolicy::KeepInRun as i32,
        ..Default::default()
    };
    let second = finish(&platform, run).await.unwrap();
    assert_eq!(second.state, pb::RunState::Succeeded as i32, "{:?}", second.error);
    assert_eq!(output(&second, "fit", "model").asset_version, format!("{model_asset}/versions/2"));
    let sort_task = format!("{}/tasks/sort-rows", second.name);
    assert!(
        second.outputs.as_ref().unwrap().artifacts.iter().all(|a| a.producer_task != sort_task),
        "KEEP_IN_RUN leaves unnamed outputs in the run"
    );

    let down = lineage(&platform, "alice", &data_v1, pb::LineageDirection::Downstream, 2).await.unwrap();
    let found: Vec<(&str, i32)> = down.runs.iter().map(|r| (r.run.as_str(), r.depth)).collect();
    assert_eq!(found, [(first.name.as_str(), 1), (second.name.as_str(), 2)]);
    assert_eq!(down.runs[0].inputs[0].asset_version, data_v1);
    assert_eq!(down.runs[0].inputs[0].port, "importer");
    let outputs: Vec<&str> = down.runs[0].outputs.iter().map(|a| a.port.as_str()).collect();
    assert_eq!(outputs, ["fit/model", "sort-rows/out_ds"]);
    let near = lineage(&platform, "alice", &data_v1, pb::LineageDirection::Unspecified, 0).await.unwrap();
    assert_eq!(near.runs.len(), 1, "depth 1 by default");

    let up = lineage(&platform, "alice", &format!("{model_asset}/versions/latest"), pb::LineageDirection::Upstream, 3)
        .await
        .unwrap();
    assert_eq!(up.asset_version, format!("{model_asset}/versions/2"), "the alias resolved");
    let found: Vec<(&str, i32)> = up.runs.iter().map(|r| (r.run.as_str(), r.depth)).collect();
    assert_eq!(found, [(second.name.as_str(), -1), (first.name.as_str(), -2)]);

    // An archived version keeps its history.
    assets.delete_asset_version(apb::DeleteAssetVersionRequest { name: data_v1.clone() }).await.unwrap();
    let archived = lineage(&platform, "alice", &data_v1, pb::LineageDirection::Downstream, 1).await.unwrap();
    assert_eq!(archived.runs.len(), 1);

    // Others see none of it; bad requests name the field.
    assert_eq!(
        lineage(&platform, "bob", &data_v1, pb::LineageDirection::Both, 1).await.unwrap_err().code(),
        Code::NotFound
    );
    let deep = lineage(&platform, "alice", &data_v1, pb::LineageDirection::Both, 11).await.unwrap_err();
    assert_eq!(deep.get_details_bad_request().unwrap().field_violations[0].field, "depth");
    platform.stop().await;
}

#[tokio::test]
async fn output_destinations_are_checked_before_the_run_starts() {
    let platform = Platform::start().await;
    let data = platform.create_asset("alice", apb::AssetKind::Dataset).await;
    platform.commit_files("alice", &data, &[("rows.csv", b"a\n".to_vec())]).await.unwrap();
    let pipeline = platform.create_asset("alice", apb::AssetKind::Pipeline).await;
    platform.commit_files("alice", &pipeline, &[("pipeline.yaml", sample("g_lineage.yaml"))]).await.unwrap();
    let bobs = platform.create_asset("bob", apb::AssetKind::Model).await;
    let attempt = |destinations: Vec<pb::OutputDestination>| {
        let run = pb::Run {
            pipeline_version: format!("{pipeline}/versions/1"),
            input_bindings: vec![importer(&format!("{data}/versions/1"))],
            output_destinations: destinations,
            ..Default::default()
        };
        let platform = &platform;
        async move {
            let mut client = platform.pipelines(Some("alice")).await;
            client.create_run(pb::CreateRunRequest { run: Some(run), ..Default::default() }).await
        }
    };
    use pb::output_destination::Destination::{Asset, NewAsset};
    let field = |status: tonic::Status| status.get_details_bad_request().unwrap().field_violations[0].field.clone();
    let wrong_kind = attempt(vec![destination("fit", "model", Asset(data.clone()))]).await.unwrap_err();
    assert_eq!(field(wrong_kind), "run.output_destinations[0].asset");
    let unknown_key = attempt(vec![destination("fit", "weights", Asset(data.clone()))]).await.unwrap_err();
    assert_eq!(field(unknown_key), "run.output_destinations[0].output_key");
    let unknown_task = attempt(vec![destination("train", "model", Asset(data.clone()))]).await.unwrap_err();
    assert_eq!(field(unknown_task), "run.output_destinations[0].task");
    let unnamed = attempt(vec![destination("fit", "model", NewAsset(pb::NewAssetSpec::default()))]).await.unwrap_err();
    assert_eq!(field(unnamed), "run.output_destinations[0].new_asset.display_name");
    let foreign = attempt(vec![destination("fit", "model", Asset(bobs))]).await.unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound, "bob's asset is not alice's to see");
    let listed = platform.pipelines(Some("alice")).await.list_runs(pb::ListRunsRequest::default()).await.unwrap();
    assert!(listed.into_inner().runs.is_empty());
    platform.stop().await;
}
