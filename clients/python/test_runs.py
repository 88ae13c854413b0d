"""Pipeline runs from Python stubs: push a compiled pipeline, start a run, follow it with WatchRun to its end,
read a task's log, and get clear errors for bad requests."""

import hashlib
import pathlib

import grpc

from test_assets import bad_request_fields, expect_error, unique

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "pipeline-svc" / "tests" / "samples"


def push_pipeline(pb, channel, sample: str) -> str:
    assets = pb.asset_grpc.AssetServiceStub(channel)
    uploads = pb.upload_grpc.UploadServiceStub(channel)
    content = (SAMPLES / sample).read_bytes()
    asset = assets.CreateAsset(
        pb.asset_svc.CreateAssetRequest(
            asset=pb.asset.Asset(kind=pb.asset.ASSET_KIND_PIPELINE, display_name=unique("pipeline"))
        )
    )
    declared = pb.upload_svc.UploadFile(
        path="pipeline.yaml", size_bytes=len(content), sha256=hashlib.sha256(content).hexdigest()
    )
    upload = uploads.CreateUpload(pb.upload_svc.CreateUploadRequest(parent=asset.name, files=[declared]))
    if not upload.files[0].present:
        uploads.WriteUploadChunk(
            pb.upload_svc.WriteUploadChunkRequest(upload=upload.name, path="pipeline.yaml", offset=0, data=content)
        )
    version = uploads.CommitUpload(pb.upload_svc.CommitUploadRequest(name=upload.name))
    return version.name


def test_a_run_is_watched_to_its_end_and_its_outputs_and_logs_read(pb, channel_for):
    channel = channel_for("alice")
    runs = pb.pipeline_grpc.PipelineServiceStub(channel)
    version = push_pipeline(pb, channel, "d_shell.yaml")
    request = pb.pipeline_svc.CreateRunRequest()
    request.run.pipeline_version = version
    request.run.parameters["n"].number_value = 3
    created = runs.CreateRun(request)
    assert created.name.startswith("runs/")

    messages = list(runs.WatchRun(pb.pipeline_svc.WatchRunRequest(name=created.name), timeout=60))
    assert messages[0].WhichOneof("change") == "snapshot"
    sequences = [m.sequence for m in messages]
    assert sequences == sorted(set(sequences)), "sequences strictly increase"
    assert messages[-1].WhichOneof("change") == "run"
    assert messages[-1].run.state == pb.run.RUN_STATE_SUCCEEDED

    run = runs.GetRun(pb.pipeline_svc.GetRunRequest(name=created.name))
    assert run.outputs.parameters["Output"].string_value == "[1,4,9]"
    chunks = runs.StreamTaskLogs(pb.pipeline_svc.StreamTaskLogsRequest(name=f"{created.name}/tasks/show"))
    assert b"".join(c.data for c in chunks) == b"collected [1,4,9]\n"


def test_bad_run_requests_name_the_field(pb, channel_for):
    channel = channel_for("alice")
    runs = pb.pipeline_grpc.PipelineServiceStub(channel)
    version = push_pipeline(pb, channel, "d_shell.yaml")
    request = pb.pipeline_svc.CreateRunRequest()
    request.run.pipeline_version = version
    request.run.parameters["n"].number_value = 2.5
    err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, runs.CreateRun, request)
    assert list(bad_request_fields(err)) == ["run.parameters.n"]
    err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, runs.GetRun, pb.pipeline_svc.GetRunRequest(name="runs/x"))
    assert list(bad_request_fields(err)) == ["name"]
    bob = pb.pipeline_grpc.PipelineServiceStub(channel_for("bob"))
    ok = pb.pipeline_svc.CreateRunRequest()
    ok.run.pipeline_version = version
    created = runs.CreateRun(ok)
    expect_error(grpc.StatusCode.NOT_FOUND, bob.GetRun, pb.pipeline_svc.GetRunRequest(name=created.name))
