"""Fixtures for the Python client suite: stubs generated from `proto/`, and a real `highwind standalone`.

Nothing here links against the Rust code: the stubs come from the `.proto` contracts with grpcio-tools, and the
platform is the prebuilt binary, driven over its public gRPC port exactly as another-language client would.
"""

from __future__ import annotations

import importlib
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

import grpc
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "proto"
DEFAULT_BIN = Path.home() / ".cache" / "highwind-target" / "debug" / "highwind"
USERS = ("alice", "bob")
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
CALL_TIMEOUT_S = 30

READY_RE = re.compile(r"^highwind ready on (http://\S+)$")
TOKEN_RE = re.compile(r"^dev token \(([^)]+)\): (\S+)$")
# Lines whose values must not reach a test log: the tokens and the token endpoint's passwords.
SECRET_LINE_RE = re.compile(r"^dev (token|password) \(")


# --------------------------------------------------------------------------------------------------------------
# Generated stubs
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pb(tmp_path_factory: pytest.TempPathFactory) -> types.SimpleNamespace:
    """Python modules generated from every `.proto` under `proto/highwind`, imported.

    Attributes: `asset`, `asset_svc`, `asset_grpc`, `use_case`, `usecase_svc`, `usecase_grpc`, `market_svc`,
    `market_grpc`, `pipeline_svc`, `run`,
    `pipeline_grpc`, `upload_svc`, `upload_grpc`, `image_svc`, `image_grpc`.
    """
    out = tmp_path_factory.mktemp("stubs")
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "highwind").rglob("*.proto"))
    assert protos, f"no .proto files under {PROTO_ROOT}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={PROTO_ROOT}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *protos,
        ],
        cwd=PROTO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"protoc failed:\n{result.stdout}\n{result.stderr}"
    sys.path.insert(0, str(out))
    importlib.invalidate_caches()
    m = importlib.import_module
    return types.SimpleNamespace(
        asset=m("highwind.asset.v1.asset_pb2"),
        asset_svc=m("highwind.asset.v1.asset_service_pb2"),
        asset_grpc=m("highwind.asset.v1.asset_service_pb2_grpc"),
        upload_svc=m("highwind.asset.v1.upload_service_pb2"),
        upload_grpc=m("highwind.asset.v1.upload_service_pb2_grpc"),
        image_svc=m("highwind.asset.v1.image_service_pb2"),
        image_grpc=m("highwind.asset.v1.image_service_pb2_grpc"),
        use_case=m("highwind.usecase.v1.use_case_pb2"),
        usecase_svc=m("highwind.usecase.v1.use_case_service_pb2"),
        usecase_grpc=m("highwind.usecase.v1.use_case_service_pb2_grpc"),
        market_svc=m("highwind.usecase.v1.marketplace_service_pb2"),
        market_grpc=m("highwind.usecase.v1.marketplace_service_pb2_grpc"),
        pipeline_svc=m("highwind.pipeline.v1.pipeline_service_pb2"),
        run=m("highwind.pipeline.v1.run_pb2"),
        pipeline_grpc=m("highwind.pipeline.v1.pipeline_service_pb2_grpc"),
    )


# --------------------------------------------------------------------------------------------------------------
# The platform
# --------------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pump(stream, lines: "queue.Queue[str | None]") -> None:
    """Moves `stream`'s lines to `lines` until EOF (then None), so the child never blocks on a full pipe."""
    for line in iter(stream.readline, ""):
        lines.put(line.rstrip("\n"))
    lines.put(None)


@pytest.fixture(scope="session")
def platform():
    """A running `highwind standalone` with dev users alice and bob: yields (url, {user: token}).

    Stopped with SIGTERM at the end of the session; it must exit within 15 s with code 0.
    """
    binary = os.environ.get("HIGHWIND_BIN", str(DEFAULT_BIN))
    assert os.access(binary, os.X_OK), f"highwind binary not found or not executable: {binary} (set HIGHWIND_BIN)"
    data_dir = tempfile.mkdtemp(prefix="highwind-py-")
    stderr_path = Path(data_dir).with_name(Path(data_dir).name + ".stderr.log")
    port = _free_port()
    args = [binary, "standalone", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir]
    # Its own registry on a free port, when docker-registry is installed.
    args += ["--registry-listen", "127.0.0.1:0"]
    for user in USERS:
        args += ["--dev-user", user]
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True)
    lines: "queue.Queue[str | None]" = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()

    def log_tail() -> str:
        try:
            return f"({stderr_path}, data in {data_dir})\n" + stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no stderr)"

    url, tokens, seen = None, {}, []
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while url is None or set(tokens) != set(USERS):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"highwind not ready within {READY_TIMEOUT_S}s; stdout so far: {seen}\nstderr:\n{log_tail()}"
                )
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                proc.wait(timeout=5)
                raise AssertionError(
                    f"highwind exited with {proc.returncode} before it was ready; stdout: {seen}\n"
                    f"stderr:\n{log_tail()}"
                )
            seen.append(line if not SECRET_LINE_RE.match(line) else "dev token/password (…): <redacted>")
            if m := READY_RE.match(line):
                url = m.group(1)
            elif m := TOKEN_RE.match(line):
                tokens[m.group(1)] = m.group(2)
        assert url == f"http://127.0.0.1:{port}", f"ready on {url}, asked for port {port}"
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise

    yield url, tokens

    assert proc.poll() is None, f"highwind died during the tests with {proc.returncode}:\n{log_tail()}"
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"highwind did not exit within {STOP_TIMEOUT_S}s of SIGTERM:\n{log_tail()}")
    assert code == 0, f"highwind exited with {code} after SIGTERM:\n{log_tail()}"
    # Clean stop: the data directory and log are no longer needed (on failure they stay for a look).
    shutil.rmtree(data_dir, ignore_errors=True)
    stderr_path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------------------
# Channels and clients
# --------------------------------------------------------------------------------------------------------------


class _Metadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds fixed metadata (the bearer token) and a default deadline to every call."""

    def __init__(self, metadata):
        self._metadata = list(metadata)

    def _details(self, details):
        metadata = list(details.metadata or []) + self._metadata
        timeout = details.timeout if details.timeout is not None else CALL_TIMEOUT_S
        return _CallDetails(details.method, timeout, metadata, details.credentials, details.wait_for_ready,
                            details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


@pytest.fixture(scope="session")
def target(platform) -> str:
    """`host:port` of the gateway."""
    url, _ = platform
    return url.removeprefix("http://")


@pytest.fixture(scope="session")
def channel_for(platform, target):
    """`channel_for(user)`: a channel whose calls carry that user's bearer token; `channel_for(None)` sends none;
    `channel_for(None, raw_authorization=VALUE)` sends that exact `authorization` value."""
    _, tokens = platform
    channels = []

    def make(user: str | None, *, raw_authorization: str | None = None):
        base = grpc.insecure_channel(target)
        channels.append(base)
        metadata = []
        if raw_authorization is not None:
            metadata.append(("authorization", raw_authorization))
        elif user is not None:
            metadata.append(("authorization", f"Bearer {tokens[user]}"))
        return grpc.intercept_channel(base, _Metadata(metadata))

    yield make
    for c in channels:
        c.close()


@pytest.fixture(scope="session")
def alice(pb, channel_for):
    """AssetService stub calling as users/alice."""
    return pb.asset_grpc.AssetServiceStub(channel_for("alice"))


@pytest.fixture(scope="session")
def bob(pb, channel_for):
    """AssetService stub calling as users/bob."""
    return pb.asset_grpc.AssetServiceStub(channel_for("bob"))


@pytest.fixture(scope="session")
def anonymous_channel(channel_for):
    """A channel that sends no credentials."""
    return channel_for(None)
