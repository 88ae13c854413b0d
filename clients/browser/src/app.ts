// The page under test: it calls a running Highwind gateway over gRPC-Web (binary protobuf, from another origin, so
// every call goes through CORS) with clients generated from proto/, and reports each scenario into
// `window.__results`. `window.__done` becomes true once every scenario has finished, passed or not.
//
// Query string: `gateway` (e.g. http://127.0.0.1:8080), `alice` and `bob` (their dev tokens).

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb";
import { AssetKind, VersionState, type Asset } from "../gen/highwind/asset/v1/asset_pb";
import { AssetService } from "../gen/highwind/asset/v1/asset_service_pb";
import { UploadService, UploadState } from "../gen/highwind/asset/v1/upload_service_pb";

interface Result {
  name: string;
  ok: boolean;
  detail: string;
}

declare global {
  interface Window {
    __planned: string[];
    __results: Result[];
    __done: boolean;
  }
}

window.__planned = [];
window.__results = [];
window.__done = false;

// ---------------------------------------------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------------------------------------------

const params = new URLSearchParams(location.search);
const gateway = params.get("gateway") ?? "";
const tokens = { alice: params.get("alice") ?? "", bob: params.get("bob") ?? "" };

/** Every call gets a deadline (sent as `grpc-timeout`, which the CORS preflight must allow). */
const CALL_TIMEOUT_MS = 15_000;

function bearer(token: string | undefined): Interceptor {
  return (next) => async (req) => {
    if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

function transportFor(token: string | undefined, useBinaryFormat = true) {
  return createGrpcWebTransport({
    baseUrl: gateway,
    useBinaryFormat,
    defaultTimeoutMs: CALL_TIMEOUT_MS,
    interceptors: [bearer(token)],
  });
}

function clientsFor(token: string | undefined, useBinaryFormat = true) {
  const transport = transportFor(token, useBinaryFormat);
  return { assets: createClient(AssetService, transport), uploads: createClient(UploadService, transport) };
}

type Assets = Client<typeof AssetService>;

const alice = clientsFor(tokens.alice);
const bob = clientsFor(tokens.bob);
const anonymous = clientsFor(undefined);

/** Lowercase and short, so it is valid as a label value: tells this run's resources from any other's. */
const runTag = `r${Math.random().toString(36).slice(2, 10)}`;
let serial = 0;

// ---------------------------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------------------------

class AssertionFailed extends Error {}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailed(message);
}

function eq<T>(actual: T, expected: T, what: string): void {
  check(actual === expected, `${what}: expected ${show(expected)}, got ${show(actual)}`);
}

function show(v: unknown): string {
  return typeof v === "bigint" ? `${v}n` : JSON.stringify(v);
}

/** Awaits a call that must fail with `code`, and returns its error. */
async function expectCode(what: string, call: Promise<unknown>, code: Code): Promise<ConnectError> {
  let result: unknown;
  try {
    result = await call;
  } catch (e) {
    const err = ConnectError.from(e);
    check(
      err.code === code,
      `${what}: expected code ${Code[code]}, got ${Code[err.code]} (${JSON.stringify(err.rawMessage)})`,
    );
    return err;
  }
  throw new AssertionFailed(`${what}: expected code ${Code[code]}, but the call succeeded: ${show(result)}`);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function firstDifference(a: Uint8Array, b: Uint8Array): string {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `byte ${i}: ${a[i]} vs ${b[i]}`;
  return `lengths ${a.length} vs ${b.length}`;
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

/** Creates a DATASET asset as `client`'s user, labelled with this run and its own serial number. */
async function newDataset(client: Assets, displayName: string): Promise<{ asset: Asset; serialLabel: string }> {
  const serialLabel = `${runTag}-${++serial}`;
  const asset = await client.createAsset({
    asset: {
      kind: AssetKind.DATASET,
      displayName,
      description: "created by the browser test suite",
      labels: { origin: "browser", run: runTag, serial: serialLabel },
    },
  });
  return { asset, serialLabel };
}

/** Assets of the caller carrying `serial = <label>`. */
async function listBySerial(client: Assets, serialLabel: string): Promise<Asset[]> {
  const page = await client.listAssets({ pageSize: 100, filter: `labels.serial = "${serialLabel}"` });
  return page.assets;
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------------------------

type Scenario = { name: string; run: () => Promise<string> };
const scenarios: Scenario[] = [];
function scenario(name: string, run: () => Promise<string>): void {
  scenarios.push({ name, run });
}

scenario("setup: page and gateway are on different origins (CORS is in play)", async () => {
  check(gateway !== "", "no ?gateway= in the page URL");
  check(tokens.alice !== "" && tokens.bob !== "", "no ?alice= and ?bob= tokens in the page URL");
  const gatewayOrigin = new URL(gateway).origin;
  check(location.origin !== gatewayOrigin, `page origin ${location.origin} equals the gateway's`);
  check(window.isSecureContext && crypto.subtle !== undefined, "crypto.subtle is unavailable (not a secure context)");
  return `page ${location.origin} -> gateway ${gatewayOrigin}`;
});

scenario("create a DATASET asset, then get and list it", async () => {
  const displayName = `Browser dataset ${runTag}`;
  const { asset, serialLabel } = await newDataset(alice.assets, displayName);
  check(/^assets\/[0-9a-f-]{36}$/.test(asset.name), `name ${show(asset.name)} is not assets/{uuid}`);
  eq(asset.name, `assets/${asset.uid}`, "name vs uid");
  eq(asset.owner, "users/alice", "owner");
  eq(asset.kind, AssetKind.DATASET, "kind");
  eq(asset.displayName, displayName, "display_name");
  eq(asset.labels["run"], runTag, "labels.run");
  check(asset.etag !== "", "etag is empty");
  check(asset.createTime !== undefined, "create_time is unset");
  eq(asset.archived, false, "archived");
  eq(asset.latestVersion, "", "latest_version of a new asset");

  const got = await alice.assets.getAsset({ name: asset.name });
  eq(got.name, asset.name, "GetAsset name");
  eq(got.displayName, displayName, "GetAsset display_name");
  eq(got.owner, "users/alice", "GetAsset owner");
  eq(got.etag, asset.etag, "GetAsset etag");

  const listed = await listBySerial(alice.assets, serialLabel);
  eq(listed.length, 1, "ListAssets (filter labels.serial) count");
  eq(listed[0].name, asset.name, "ListAssets name");
  eq(listed[0].owner, "users/alice", "ListAssets owner");

  const datasets = await alice.assets.listAssets({ pageSize: 1000, filter: "kind = DATASET" });
  check(
    datasets.assets.some((a) => a.name === asset.name),
    `ListAssets(kind = DATASET) does not include ${asset.name}`,
  );
  return `${asset.name} owned by ${asset.owner}; listed`;
});

scenario("update display_name with a FieldMask: the etag changes, unmasked fields stay", async () => {
  const { asset } = await newDataset(alice.assets, `To rename ${runTag}`);
  const renamed = `Renamed in the browser ${runTag}`;
  const updated = await alice.assets.updateAsset({
    asset: { name: asset.name, displayName: renamed, description: "must not be applied: not in the mask" },
    updateMask: { paths: ["display_name"] },
  });
  eq(updated.displayName, renamed, "display_name after update");
  eq(updated.description, asset.description, "description (not in the mask)");
  check(updated.etag !== "" && updated.etag !== asset.etag, `etag did not change (${show(asset.etag)})`);
  const got = await alice.assets.getAsset({ name: asset.name });
  eq(got.displayName, renamed, "GetAsset display_name after update");
  eq(got.etag, updated.etag, "GetAsset etag after update");
  return `etag ${asset.etag} -> ${updated.etag}`;
});

scenario("update with a stale etag fails with FailedPrecondition and changes nothing", async () => {
  const { asset } = await newDataset(alice.assets, `Etag check ${runTag}`);
  const first = await alice.assets.updateAsset({
    asset: { name: asset.name, displayName: `First writer ${runTag}`, etag: asset.etag },
    updateMask: { paths: ["display_name"] },
  });
  await expectCode(
    "UpdateAsset with the pre-update etag",
    alice.assets.updateAsset({
      asset: { name: asset.name, displayName: `Second writer ${runTag}`, etag: asset.etag },
      updateMask: { paths: ["display_name"] },
    }),
    Code.FailedPrecondition,
  );
  const got = await alice.assets.getAsset({ name: asset.name });
  eq(got.displayName, first.displayName, "display_name after the rejected update");
  eq(got.etag, first.etag, "etag after the rejected update");
  return "stale etag rejected";
});

scenario("invalid create (empty display_name): InvalidArgument naming asset.display_name", async () => {
  const serialLabel = `${runTag}-invalid`;
  const err = await expectCode(
    "CreateAsset with an empty display_name",
    alice.assets.createAsset({
      asset: { kind: AssetKind.DATASET, displayName: "", labels: { serial: serialLabel } },
    }),
    Code.InvalidArgument,
  );
  check(
    err.rawMessage.includes("asset.display_name"),
    `message does not name asset.display_name: ${show(err.rawMessage)}`,
  );
  // google.rpc.BadRequest from grpc-status-details-bin (readable only because the gateway exposes that header).
  const badRequests = err.findDetails(BadRequestSchema);
  const detailTypes = err.details.map((d) => ("type" in d ? d.type : d.desc.typeName));
  check(badRequests.length > 0, `no google.rpc.BadRequest among the error details ${show(detailTypes)}`);
  const violations = badRequests.flatMap((b) => b.fieldViolations);
  const v = violations.find((f) => f.field === "asset.display_name");
  check(v !== undefined, `no field violation for asset.display_name: ${show(violations.map((f) => f.field))}`);
  check(v.description !== "", "the field violation has no description");
  eq((await listBySerial(alice.assets, serialLabel)).length, 0, "assets created by the rejected call");
  return `${show(err.rawMessage)}; BadRequest ${v.field}: ${show(v.description)}`;
});

scenario("a call without a token fails with Unauthenticated", async () => {
  const { asset } = await newDataset(alice.assets, `Private ${runTag}`);
  await expectCode("ListAssets without a token", anonymous.assets.listAssets({}), Code.Unauthenticated);
  await expectCode(
    "GetAsset of an existing asset without a token",
    anonymous.assets.getAsset({ name: asset.name }),
    Code.Unauthenticated,
  );
  const forged = clientsFor("hwdev_not-a-real-token");
  await expectCode("ListAssets with an unknown token", forged.assets.listAssets({}), Code.Unauthenticated);
  return "no token and an unknown token both rejected";
});

scenario("bob cannot see alice's asset (NotFound), alice still can", async () => {
  const { asset, serialLabel } = await newDataset(alice.assets, `Alice only ${runTag}`);
  await expectCode("bob GetAsset", bob.assets.getAsset({ name: asset.name }), Code.NotFound);
  await expectCode(
    "bob UpdateAsset",
    bob.assets.updateAsset({ asset: { name: asset.name, displayName: "bob was here" }, updateMask: { paths: ["display_name"] } }),
    Code.NotFound,
  );
  eq((await listBySerial(bob.assets, serialLabel)).length, 0, "bob's ListAssets matches of alice's asset");
  const got = await alice.assets.getAsset({ name: asset.name });
  eq(got.displayName, `Alice only ${runTag}`, "display_name after bob's attempt");
  return `bob gets NotFound for ${asset.name}`;
});

// The upload scenarios share one asset and version: the later ones need the first.
interface Uploaded {
  asset: Asset;
  version: string;
  files: Map<string, Uint8Array>;
}
let uploaded: Uploaded | undefined;

function needUpload(): Uploaded {
  check(uploaded !== undefined, "needs the upload scenario, which failed");
  return uploaded;
}

function csvContent(): Uint8Array {
  let text = "sqft,bedrooms,price\n";
  for (let i = 0; i < 120; i++) text += `${800 + i * 13},${1 + (i % 5)},${100000 + i * 1731}\n`;
  return new TextEncoder().encode(text);
}

scenario("upload a 3-file version via unary WriteUploadChunk (SHA-256 from crypto.subtle) and commit it", async () => {
  const { asset } = await newDataset(alice.assets, `Uploaded from the browser ${runTag}`);
  const binary = new Uint8Array(1024 + 7);
  for (let i = 0; i < binary.length; i++) binary[i] = (i * 7 + 3) % 256;
  const files = new Map<string, Uint8Array>([
    ["README.md", new TextEncoder().encode(`# Browser upload\n\nRun ${runTag}: ünïcödé ✓\n`)],
    ["data/train.csv", csvContent()],
    ["data/blob.bin", binary],
  ]);
  const declared = await Promise.all(
    [...files].map(async ([path, data]) => ({ path, sizeBytes: BigInt(data.length), sha256: await sha256Hex(data) })),
  );

  const upload = await alice.uploads.createUpload({
    parent: asset.name,
    files: declared,
    description: "uploaded from a browser",
    labels: { origin: "browser" },
  });
  check(upload.name.startsWith(`${asset.name}/uploads/`), `upload name ${show(upload.name)}`);
  eq(upload.state, UploadState.OPEN, "upload state");
  eq(upload.files.length, 3, "declared files in the upload");

  // Chunks of at most 500 bytes, so the larger files take several calls at increasing offsets.
  const CHUNK = 500;
  let calls = 0;
  for (const f of upload.files) {
    if (f.present) continue; // the store already holds this content
    const data = files.get(f.path);
    check(data !== undefined, `server lists undeclared path ${show(f.path)}`);
    for (let offset = Number(f.acknowledgedOffset); offset < data.length; offset += CHUNK) {
      const chunk = data.subarray(offset, Math.min(offset + CHUNK, data.length));
      const res = await alice.uploads.writeUploadChunk({ upload: upload.name, path: f.path, offset: BigInt(offset), data: chunk });
      calls++;
      const ack = res.files.find((x) => x.path === f.path);
      check(ack !== undefined, `WriteUploadChunk response lacks ${f.path}`);
      eq(ack.acknowledgedOffset, BigInt(offset + chunk.length), `acknowledged offset of ${f.path}`);
    }
  }
  check(calls >= 4, `expected several WriteUploadChunk calls, made ${calls}`);

  const version = await alice.uploads.commitUpload({ name: upload.name });
  eq(version.name, `${asset.name}/versions/1`, "committed version name");
  eq(version.versionNumber, 1n, "version_number");
  eq(version.state, VersionState.READY, "version state");
  eq(version.creator, "users/alice", "creator");
  eq(version.description, "uploaded from a browser", "version description");
  check(/^sha256:[0-9a-f]{64}$/.test(version.manifestDigest), `manifest_digest ${show(version.manifestDigest)}`);
  const expectedPaths = [...files.keys()].sort();
  eq(version.files.map((f) => f.path).join(","), expectedPaths.join(","), "manifest paths (sorted)");
  for (const f of version.files) {
    const d = declared.find((x) => x.path === f.path)!;
    eq(f.sizeBytes, d.sizeBytes, `size of ${f.path}`);
    eq(f.sha256, d.sha256, `sha256 of ${f.path}`);
  }
  const total = [...files.values()].reduce((n, d) => n + d.length, 0);
  eq(version.totalSizeBytes, BigInt(total), "total_size_bytes");
  eq(version.lineage?.source.case, "upload", "lineage source");
  eq(version.lineage?.source.case === "upload" ? version.lineage.source.value.upload : "", upload.name, "lineage upload");

  const after = await alice.uploads.getUpload({ name: upload.name });
  eq(after.state, UploadState.COMMITTED, "upload state after commit");
  eq(after.version, version.name, "upload's committed version");

  uploaded = { asset, version: version.name, files };
  return `${version.name}: ${version.files.length} files, ${total} bytes in ${calls} chunk calls`;
});

/** Reads a file with the server-streaming ReadFile and checks each frame's offset. */
async function readFile(version: string, path: string, offset = 0n, length = 0n) {
  const parts: Uint8Array[] = [];
  let next = offset;
  let frames = 0;
  for await (const frame of alice.uploads.readFile({ version, path, offset, length })) {
    eq(frame.offset, next, `offset of frame ${frames} of ${path}`);
    parts.push(frame.data);
    next += BigInt(frame.data.length);
    frames++;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return { data: out, frames };
}

scenario("read files back with server-streaming ReadFile: bytes match, ranges too", async () => {
  const u = needUpload();
  let bytes = 0;
  for (const [path, expected] of u.files) {
    const { data } = await readFile(u.version, path);
    check(bytesEqual(data, expected), `${path} read back differs: ${firstDifference(data, expected)}`);
    bytes += data.length;
  }
  const csv = u.files.get("data/train.csv")!;
  const ranged = await readFile(`${u.asset.name}/versions/latest`, "data/train.csv", 100n, 300n);
  check(
    bytesEqual(ranged.data, csv.subarray(100, 400)),
    `range [100, 400) via versions/latest differs: ${firstDifference(ranged.data, csv.subarray(100, 400))}`,
  );
  await expectCode(
    "ReadFile of a path not in the manifest",
    readFile(u.version, "no/such/file.txt"),
    Code.NotFound,
  );
  await expectCode("bob ReadFile of alice's version", (async () => {
    for await (const _ of bob.uploads.readFile({ version: u.version, path: "README.md" })) {
      /* drain */
    }
  })(), Code.NotFound);
  return `${u.files.size} files (${bytes} bytes) and a 300-byte range matched`;
});

scenario("list versions: version 1, READY, and the asset's latest_version points at it", async () => {
  const u = needUpload();
  const res = await alice.assets.listAssetVersions({ parent: u.asset.name });
  eq(res.assetVersions.length, 1, "versions listed");
  const v = res.assetVersions[0];
  eq(v.name, u.version, "listed version name");
  eq(v.versionNumber, 1n, "listed version_number");
  eq(v.state, VersionState.READY, "listed version state");
  eq(v.files.length, u.files.size, "listed version files");
  const latest = await alice.assets.getAssetVersion({ name: `${u.asset.name}/versions/latest` });
  eq(latest.name, u.version, "versions/latest resolves to");
  const asset = await alice.assets.getAsset({ name: u.asset.name });
  eq(asset.latestVersion, u.version, "asset latest_version");
  return `${v.name} (version_number ${v.versionNumber}, READY)`;
});

// README: gRPC-Web payloads are protobuf (binary or base64 text); a client that asks for JSON gets a gRPC error
// saying what to send, not a bare HTTP failure.
scenario("gRPC-Web with JSON payloads is refused with a gRPC status that says what to send", async () => {
  const { asset } = await newDataset(alice.assets, `JSON ${runTag}`);
  const jsonAlice = clientsFor(tokens.alice, false);
  const err = await expectCode("GetAsset over grpc-web+json", jsonAlice.assets.getAsset({ name: asset.name }), Code.InvalidArgument);
  if (!err.rawMessage.includes("application/grpc-web+proto")) {
    throw new AssertionFailed(`the error should name the supported content type, got ${JSON.stringify(err.rawMessage)}`);
  }
  return `refused: ${err.rawMessage}`;
});

// ---------------------------------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------------------------------

function render(r: Result): void {
  const li = document.createElement("li");
  li.className = r.ok ? "pass" : "fail";
  li.textContent = `${r.ok ? "PASS" : "FAIL"} ${r.name} — ${r.detail}`;
  document.getElementById("results")?.appendChild(li);
}

function describe(e: unknown): string {
  if (e instanceof AssertionFailed) return e.message;
  if (e instanceof ConnectError) return `unexpected ${Code[e.code]}: ${e.rawMessage}`;
  return `unexpected ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
}

async function main(): Promise<void> {
  window.__planned = scenarios.map((s) => s.name);
  for (const s of scenarios) {
    let r: Result;
    try {
      r = { name: s.name, ok: true, detail: await s.run() };
    } catch (e) {
      r = { name: s.name, ok: false, detail: describe(e) };
    }
    window.__results.push(r);
    render(r);
  }
  const failed = window.__results.filter((r) => !r.ok).length;
  const status = document.getElementById("status");
  if (status) status.textContent = `${window.__results.length - failed} passed, ${failed} failed`;
  window.__done = true;
}

void main();
