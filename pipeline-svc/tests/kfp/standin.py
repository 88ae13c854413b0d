"""A stand-in for the Kubeflow Pipelines v2beta1 REST API, for testing Highwind's KFP backend.

Every request is checked against the `kfp-server-api` package's own description of the API: the query
parameters each route takes and the models its body must fit (unknown fields and wrong types are refused
with 400, as the real server's `DiscardUnknown: false` unmarshalling does). Every answer is built from those
models, so a field the client reads that KFP does not send would show up as missing here too.

Runs advance one step each time they are read (PENDING, RUNNING, then the configured outcome), which keeps
tests deterministic. Control routes under `/_standin/` inject faults (500, 404, 409, slow answers), set the
outcome of new runs and show what exists.

Usage: python standin.py [--bearer-file PATH | --userid USER]; prints `listening on http://127.0.0.1:PORT`.
"""

import argparse
import email.parser
import email.policy
import inspect
import itertools
import json
import re
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml
import kfp_server_api
from kfp_server_api import models
from kfp_server_api.api import pipeline_service_api, pipeline_upload_service_api, run_service_api, healthz_service_api

API = kfp_server_api.ApiClient()
BODY_TYPES = {"run": "V2beta1Run", "pipeline": "V2beta1Pipeline", "pipeline_version": "V2beta1PipelineVersion"}


class Refused(Exception):
    """An error answer: HTTP status, gRPC code and message."""

    def __init__(self, status, code, message, plain=False):
        super().__init__(message)
        self.status, self.code, self.message, self.plain = status, code, message, plain


def routes():
    """(method, path regex, name, query parameters, body parameter) of every call kfp-server-api knows."""
    found = []
    for module in (pipeline_service_api, pipeline_upload_service_api, run_service_api, healthz_service_api):
        source = inspect.getsource(module)
        for text in source.split("    def ")[1:]:
            name = text.split("(", 1)[0]
            if not name.endswith("_with_http_info"):
                continue
            call = re.search(r"call_api\(\s*'([^']+)', '(\w+)'", text)
            queries = re.findall(r"query_params\.append\(\('(\w+)'", text)
            body = re.search(r"body_params = local_var_params\['(\w+)'\]", text)
            path, method = call.group(1), call.group(2)
            pattern = re.escape(path)
            for placeholder in re.findall(r"\\\{([^}]+)\\\}", pattern):
                group = placeholder.replace("\\.", "_").replace(".", "_")
                pattern = pattern.replace("\\{" + placeholder + "\\}", f"(?P<{group}>[^/:]+)")
            found.append((method, re.compile(pattern + "$"), name[: -len("_with_http_info")], set(queries),
                          body.group(1) if body else None))
    return found


ROUTES = routes()


def camel_to_snake(key):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def check(value, typ, where):
    """Raises Refused when `value` (parsed JSON) does not fit the openapi type `typ`."""
    if value is None:
        return
    if typ == "object":
        return
    if typ == "str":
        if not isinstance(value, str):
            raise Refused(400, 3, f"{where}: expected a string, got {json.dumps(value)}")
        return
    if typ == "int":
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())):
            raise Refused(400, 3, f"{where}: expected an integer, got {json.dumps(value)}")
        return
    if typ == "bool":
        if not isinstance(value, bool):
            raise Refused(400, 3, f"{where}: expected a boolean, got {json.dumps(value)}")
        return
    if typ == "datetime":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise Refused(400, 3, f"{where}: expected an RFC 3339 time, got {json.dumps(value)}")
        return
    if typ.startswith("list["):
        if not isinstance(value, list):
            raise Refused(400, 3, f"{where}: expected a list")
        for i, item in enumerate(value):
            check(item, typ[5:-1], f"{where}[{i}]")
        return
    if typ.startswith("dict("):
        if not isinstance(value, dict):
            raise Refused(400, 3, f"{where}: expected an object")
        inner = typ[len("dict(str, "):-1]
        for key, item in value.items():
            check(item, inner, f"{where}.{key}")
        return
    model = getattr(models, typ)
    if hasattr(model, "allowable_values"):
        if value not in model.allowable_values and not isinstance(value, int):
            raise Refused(400, 3, f"{where}: {json.dumps(value)} is not a {typ} value")
        return
    if not isinstance(value, dict):
        raise Refused(400, 3, f"{where}: expected a {typ} object")
    by_json = {json_key: attr for attr, json_key in model.attribute_map.items()}
    for key, item in value.items():
        attr = by_json.get(key) or by_json.get(camel_to_snake(key))
        if attr is None:
            raise Refused(400, 3, f'{where}: unknown field "{key}" in {typ}')
        check(item, model.openapi_types[attr], f"{where}.{key}")


def now():
    return datetime.now(timezone.utc)


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.pipelines = {}
        self.runs = {}
        self.order = []
        self.faults = {}
        self.outcome = "SUCCEEDED"
        self.requests = []


STORE = Store()


def serialize(model):
    return API.sanitize_for_serialization(model)


def run_model(run):
    tasks = [models.V2beta1PipelineTaskDetail(
        run_id=run["run_id"], task_id=t["task_id"], display_name=t["name"], state=t["state"],
        create_time=run["created_at"], start_time=t.get("start"), end_time=t.get("end"),
        error=models.GoogleRpcStatus(code=2, message=t["error"]) if t.get("error") else None,
        pod_name=f'{run["display_name"][:20]}-{t["task_id"][:8]}') for t in run["tasks"]]
    return models.V2beta1Run(
        run_id=run["run_id"], experiment_id=run["experiment_id"], display_name=run["display_name"],
        description=run["description"], storage_state="AVAILABLE", service_account=run["service_account"],
        pipeline_version_reference=models.V2beta1PipelineVersionReference(
            pipeline_id=run["pipeline_id"], pipeline_version_id=run["pipeline_version_id"]),
        runtime_config=models.V2beta1RuntimeConfig(parameters=run["parameters"], pipeline_root=run["pipeline_root"]),
        created_at=run["created_at"], scheduled_at=run["created_at"], finished_at=run.get("finished_at"),
        state=run["state"],
        error=models.GoogleRpcStatus(code=2, message=run["error"]) if run.get("error") else None,
        run_details=models.V2beta1RunDetails(task_details=tasks) if tasks else None)


def advance(run):
    """One step of a run's life, taken each time it is read."""
    state = run["state"]
    if state == "PENDING":
        run["state"] = "RUNNING"
        for t in run["tasks"]:
            t["state"], t["start"] = "RUNNING", now()
    elif state == "RUNNING" and run["outcome"] in ("SUCCEEDED", "FAILED"):
        run["state"], run["finished_at"] = run["outcome"], now()
        for i, t in enumerate(run["tasks"]):
            failed = run["outcome"] == "FAILED" and i == len(run["tasks"]) - 1
            t["state"], t["end"] = ("FAILED" if failed else "SUCCEEDED"), now()
            if failed:
                t["error"] = "exit status 1"
                run["error"] = f'task {t["name"]} failed: exit status 1'
    elif state == "CANCELING":
        run["state"], run["finished_at"] = "CANCELED", now()
        for t in run["tasks"]:
            if t["state"] not in ("SUCCEEDED", "FAILED"):
                t["state"], t["end"] = "CANCELED", now()


def matches(run, predicates):
    for p in predicates:
        key = p.get("key")
        op = p.get("operation")
        value = p.get("string_value", p.get("stringValue"))
        actual = run.get(key)
        if op in ("EQUALS", 1) and actual != value:
            return False
        if op in ("IS_SUBSTRING", 9) and (value or "") not in (actual or ""):
            return False
        if op not in ("EQUALS", 1, "IS_SUBSTRING", 9):
            raise Refused(400, 3, f"operation {op} is not supported by this stand-in")
    return True


def parse_filter(query):
    text = query.get("filter", "")
    if not text:
        return []
    try:
        parsed = json.loads(text)
    except ValueError:
        raise Refused(400, 3, "filter: not JSON")
    check(parsed, "V2beta1Filter", "filter")
    return parsed.get("predicates", [])


def page(items, query, key):
    size = int(query.get("page_size") or 20)
    if size < 0 or size > 200:
        raise Refused(400, 3, "page_size: must be 0 to 200")
    size = size or 20
    start = int(query.get("page_token") or 0)
    chunk = items[start:start + size]
    token = str(start + size) if start + size < len(items) else None
    return chunk, token


def uploaded_spec(handler):
    ctype = handler.headers.get("Content-Type", "")
    if not ctype.startswith("multipart/form-data"):
        raise Refused(400, 3, "expected multipart/form-data", plain=True)
    body = handler.body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "uploadfile":
            content = part.get_payload(decode=True)
            try:
                docs = list(yaml.safe_load_all(content))
            except yaml.YAMLError as e:
                raise Refused(400, 3, f"the uploaded file is not YAML: {e}", plain=True)
            if not docs or not isinstance(docs[0], dict) or "pipelineInfo" not in docs[0]:
                raise Refused(400, 3, "the uploaded file is not a pipeline spec", plain=True)
            return docs[0]
    raise Refused(400, 3, "Failed to read pipeline from file: http: no such file", plain=True)


def task_names(spec):
    tasks = spec.get("root", {}).get("dag", {}).get("tasks", {})
    return [t.get("taskInfo", {}).get("name", key) for key, t in tasks.items()]


def handle(handler, method, route, params, query, body):
    name = route
    s = STORE
    if name == "healthz_service_get_healthz":
        return models.V2beta1GetHealthzResponse(multi_user=multi_user())
    if name == "upload_pipeline":
        spec = uploaded_spec(handler)
        pname = query.get("name") or query.get("display_name") or "pipeline"
        namespace = query.get("namespace", "")
        if any(p["name"] == pname and p["namespace"] == namespace for p in s.pipelines.values()):
            raise Refused(409, 6, f"AlreadyExists: a pipeline named {pname} exists", plain=True)
        pid = str(uuid.uuid4())
        first = {"id": str(uuid.uuid4()), "name": pname, "display_name": query.get("display_name") or pname,
                 "spec": spec, "created_at": now()}
        s.pipelines[pid] = {"id": pid, "name": pname, "display_name": query.get("display_name") or pname,
                            "description": query.get("description", ""), "namespace": namespace,
                            "created_at": now(), "versions": [first]}
        return pipeline_model(s.pipelines[pid])
    if name == "upload_pipeline_version":
        spec = uploaded_spec(handler)
        pipeline = s.pipelines.get(query.get("pipelineid", ""))
        if pipeline is None:
            raise Refused(404 if query.get("pipelineid") else 400, 5, "pipelineid: no such pipeline", plain=True)
        vname = query.get("name") or "version"
        if any(v["name"] == vname for v in pipeline["versions"]):
            raise Refused(409, 6, f"AlreadyExists: a version named {vname} exists", plain=True)
        version = {"id": str(uuid.uuid4()), "name": vname, "display_name": query.get("display_name") or vname,
                   "spec": spec, "created_at": now()}
        pipeline["versions"].append(version)
        return version_model(pipeline, version)
    if name == "pipeline_service_get_pipeline_by_name":
        namespace = query.get("namespace", "")
        for p in s.pipelines.values():
            if p["name"] == params["name"] and p["namespace"] == namespace:
                return pipeline_model(p)
        raise Refused(404, 5, f"Pipeline with name {params['name']} not found")
    if name == "pipeline_service_list_pipeline_versions":
        pipeline = s.pipelines.get(params["pipeline_id"])
        if pipeline is None:
            raise Refused(404, 5, "pipeline not found")
        predicates = parse_filter(query)
        found = [v for v in pipeline["versions"] if matches(v, predicates)]
        chunk, token = page(found, query, "versions")
        return models.V2beta1ListPipelineVersionsResponse(
            pipeline_versions=[version_model(pipeline, v) for v in chunk], total_size=len(found),
            next_page_token=token)
    if name == "run_service_create_run":
        check(body, "V2beta1Run", "run")
        if not body.get("display_name"):
            raise Refused(400, 3, "Invalid input error: run display_name is required")
        ref = body.get("pipeline_version_reference") or {}
        pipeline = s.pipelines.get(ref.get("pipeline_id", ""))
        versions = pipeline["versions"] if pipeline else []
        version = next((v for v in versions if v["id"] == ref.get("pipeline_version_id")), None)
        if version is None:
            raise Refused(404, 5, "Invalid input error: pipeline version not found")
        config = body.get("runtime_config") or {}
        run_id = str(uuid.uuid4())
        run = {"run_id": run_id, "display_name": body["display_name"], "description": body.get("description", ""),
               "experiment_id": body.get("experiment_id") or "default-experiment",
               "service_account": body.get("service_account", ""), "pipeline_id": pipeline["id"],
               "pipeline_version_id": version["id"], "parameters": config.get("parameters") or {},
               "pipeline_root": config.get("pipeline_root", ""), "created_at": now(), "state": "PENDING",
               "outcome": s.outcome,
               "tasks": [{"task_id": str(uuid.uuid4()), "name": n, "state": "PENDING"} for n in task_names(version["spec"])]}
        s.runs[run_id] = run
        s.order.append(run_id)
        return run_model(run)
    if name == "run_service_get_run":
        run = s.runs.get(params["run_id"])
        if run is None:
            raise Refused(404, 5, f"Run {params['run_id']} not found")
        advance(run)
        return run_model(run)
    if name == "run_service_list_runs":
        if multi_user() and not query.get("namespace") and not query.get("experiment_id"):
            raise Refused(400, 3, "Invalid input error: in multi-user mode, ListRuns needs a namespace or an experiment")
        predicates = parse_filter(query)
        found = [s.runs[i] for i in reversed(s.order) if matches(s.runs[i], predicates)]
        if query.get("experiment_id"):
            found = [r for r in found if r["experiment_id"] == query["experiment_id"]]
        chunk, token = page(found, query, "runs")
        return models.V2beta1ListRunsResponse(runs=[run_model(r) for r in chunk], total_size=len(found),
                                              next_page_token=token)
    if name == "run_service_terminate_run":
        run = s.runs.get(params["run_id"])
        if run is None:
            raise Refused(404, 5, f"Run {params['run_id']} not found")
        if run["state"] in ("PENDING", "RUNNING", "PAUSED", "RUNTIME_STATE_UNSPECIFIED"):
            run["state"] = "CANCELING"
        return {}
    if name == "run_service_retry_run":
        run = s.runs.get(params["run_id"])
        if run is None:
            raise Refused(404, 5, f"Run {params['run_id']} not found")
        if run["state"] not in ("FAILED", "CANCELED"):
            raise Refused(400, 9, "Failed to retry a run: workflow must be Failed/Error to retry")
        run["state"], run["outcome"], run["error"], run["finished_at"] = "RUNNING", "SUCCEEDED", None, None
        for t in run["tasks"]:
            if t["state"] != "SUCCEEDED":
                t["state"], t["error"], t["end"] = "RUNNING", None, None
        return {}
    raise Refused(501, 12, f"{name} is not implemented by this stand-in")


def multi_user():
    return ARGS.userid is not None or ARGS.bearer_file is not None


def pipeline_model(p):
    return models.V2beta1Pipeline(pipeline_id=p["id"], name=p["name"], display_name=p["display_name"],
                                  description=p["description"], namespace=p["namespace"] or None,
                                  created_at=p["created_at"])


def version_model(p, v):
    return models.V2beta1PipelineVersion(pipeline_id=p["id"], pipeline_version_id=v["id"], name=v["name"],
                                         display_name=v["display_name"], created_at=v["created_at"],
                                         pipeline_spec=v["spec"])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, payload, content_type="application/json"):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def control(self, method, path):
        with STORE.lock:
            if path == "/_standin/faults" and method == "POST":
                asked = json.loads(self.body)
                STORE.faults.setdefault(asked["route"], []).extend(asked["faults"])
                return self.answer(200, {})
            if path == "/_standin/outcome" and method == "POST":
                STORE.outcome = json.loads(self.body)["outcome"]
                return self.answer(200, {})
            if path == "/_standin/runs":
                return self.answer(200, [{"run_id": r["run_id"], "display_name": r["display_name"],
                                          "state": r["state"], "parameters": r["parameters"],
                                          "experiment_id": r["experiment_id"],
                                          "service_account": r["service_account"],
                                          "pipeline_version_id": r["pipeline_version_id"]}
                                         for r in (STORE.runs[i] for i in STORE.order)])
            if path == "/_standin/pipelines":
                return self.answer(200, [{"name": p["name"], "versions": [
                    {"name": v["name"], "caching": caching_of(v["spec"])} for v in p["versions"]]}
                    for p in STORE.pipelines.values()])
            if path == "/_standin/requests":
                return self.answer(200, STORE.requests)
        return self.answer(404, {"error": "no such control route"})

    def serve(self, method):
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        if split.path.startswith("/_standin/"):
            return self.control(method, split.path)
        raw_query = parse_qs(split.query, keep_blank_values=True)
        for route_method, pattern, name, queries, body_param in ROUTES:
            found = pattern.match(split.path)
            if found and route_method == method:
                break
        else:
            return self.answer(404, {"error": "Not Found", "code": 5, "message": "Not Found", "details": []})
        fault = None
        with STORE.lock:
            STORE.requests.append({"method": method, "path": split.path, "query": split.query,
                                   "authorization": self.headers.get("Authorization"),
                                   "userid": self.headers.get("kubeflow-userid")})
            pending = STORE.faults.get(name) or []
            if pending:
                fault = pending.pop(0)
        try:
            self.authenticate()
            unknown = set(raw_query) - queries
            if unknown:
                raise Refused(400, 3, f"unknown query parameter(s) {sorted(unknown)} for {name}")
            repeated = [k for k, v in raw_query.items() if len(v) > 1]
            if repeated:
                raise Refused(400, 3, f"query parameter(s) {repeated} given more than once")
            query = {k: v[0] for k, v in raw_query.items()}
            body = None
            if body_param:
                try:
                    body = json.loads(self.body or b"null")
                except ValueError:
                    raise Refused(400, 3, "the body is not JSON")
                if not isinstance(body, dict):
                    raise Refused(400, 3, f"the body must be a {BODY_TYPES.get(body_param, 'JSON object')}")
            elif method == "POST" and self.body and not name.startswith("upload_"):
                if json.loads(self.body) not in ({}, None):
                    raise Refused(400, 3, f"{name} takes no body")
            if fault in ("500", "503", "404", "409"):
                code = {"500": 13, "503": 14, "404": 5, "409": 6}[fault]
                raise Refused(int(fault), code, f"injected fault {fault}")
            with STORE.lock:
                result = handle(self, method, name, found.groupdict(), query, body)
            payload = result if isinstance(result, dict) else serialize(result)
            if fault and fault.startswith("slow:"):
                time.sleep(float(fault.split(":", 1)[1]))
            self.answer(200, payload)
        except Refused as e:
            if e.plain:
                self.answer(e.status, e.message.encode(), "text/plain")
            else:
                status = serialize(models.GoogleRpcStatus(code=e.code, message=e.message, details=[]))
                self.answer(e.status, {"error": e.message, **status})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def authenticate(self):
        if ARGS.bearer_file:
            with open(ARGS.bearer_file) as f:
                expected = f.read().strip()
            if self.headers.get("Authorization") != f"Bearer {expected}":
                raise Refused(401, 16, "Unauthenticated: failed to authenticate the request")
            if self.headers.get("kubeflow-userid") is not None:
                raise Refused(403, 7, "requests with a token must not carry kubeflow-userid")
        if ARGS.userid is not None and self.headers.get("kubeflow-userid") != ARGS.userid:
            raise Refused(401, 16, "Unauthenticated: kubeflow-userid header is missing or wrong")

    def do_GET(self):
        self.serve("GET")

    def do_POST(self):
        self.serve("POST")

    def do_DELETE(self):
        self.serve("DELETE")

    def do_PATCH(self):
        self.serve("PATCH")


def caching_of(spec):
    tasks = spec.get("root", {}).get("dag", {}).get("tasks", {})
    return sorted({bool((t.get("cachingOptions") or {}).get("enableCache", False)) for t in tasks.values()})


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--bearer-file")
    parser.add_argument("--userid")
    ARGS = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
