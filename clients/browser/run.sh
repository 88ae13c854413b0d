#!/usr/bin/env bash
# Runs the browser suite: a web page, served from its own origin, calls a real `highwind standalone` over gRPC-Web
# (binary protobuf, through CORS) with clients generated from proto/, inside headless Chromium.
#
#   bash clients/browser/run.sh          (from any directory)
#
# Env: HIGHWIND_BIN (default ~/.cache/highwind-target/debug/highwind), CHROMIUM (default /usr/bin/chromium),
# BUF (default: CI's ~/.cache/highwind-tools/node_modules/.bin/buf, else `buf` on the PATH),
# SCREENSHOT (a .png path: a picture of the page after the run), KEEP_DATA=1 (keep the platform's temp dir).
# The last line printed is `N passed, M failed`; the exit code is non-zero when anything failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

bin="${HIGHWIND_BIN:-$HOME/.cache/highwind-target/debug/highwind}"
chromium="${CHROMIUM:-/usr/bin/chromium}"
ready_timeout=60

step() { printf '== %s (%ss)\n' "$1" "$SECONDS"; }
die() { printf 'run.sh: %s\n' "$1" >&2; exit 1; }

# --- dependencies ----------------------------------------------------------------------------------------------
# Reinstall only when package-lock.json changed since the last successful install.
stamp="node_modules/.highwind-lock.sha256"
if [ -f package-lock.json ]; then
  want="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    step "npm ci"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    echo "$want" > "$stamp"
  fi
else
  step "npm install (no package-lock.json yet)"
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi

buf="${BUF:-}"
if [ -z "$buf" ]; then
  if [ -x "$HOME/.cache/highwind-tools/node_modules/.bin/buf" ]; then
    buf="$HOME/.cache/highwind-tools/node_modules/.bin/buf"
  elif command -v buf >/dev/null 2>&1; then
    buf="$(command -v buf)"
  else
    die "buf not found: set BUF, or install it (npm install --prefix ~/.cache/highwind-tools @bufbuild/buf@1.75.0)"
  fi
fi

step "buf generate, typecheck, bundle"
"$buf" generate
node_modules/.bin/tsc -p tsconfig.json
node_modules/.bin/esbuild src/app.ts --bundle --format=esm --target=es2022 --sourcemap \
  --outfile=dist/app.js --log-level=warning

if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" -eq 0 ] && [ "$chromium" = /usr/bin/chromium ]; then
    step "installing chromium (Debian package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  [ -x "$chromium" ] || die "$chromium is missing: install Debian's chromium (apt-get install chromium) as root"
fi

[ -x "$bin" ] || die "highwind binary not found or not executable: $bin (build it, or set HIGHWIND_BIN)"

# --- processes -------------------------------------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/highwind-browser.XXXXXX")"
hw_pid=""
srv_pid=""
cleanup() {
  local rc=$? stop_failed=""
  if [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; then
    kill -TERM "$srv_pid" 2>/dev/null || true
    wait "$srv_pid" 2>/dev/null || true
  fi
  if [ -n "$hw_pid" ] && kill -0 "$hw_pid" 2>/dev/null; then
    kill -TERM "$hw_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$hw_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$hw_pid" 2>/dev/null; then
      stop_failed="highwind did not exit within 15 s of SIGTERM; killed it"
      kill -KILL "$hw_pid" 2>/dev/null || true
    fi
    local code=0
    wait "$hw_pid" 2>/dev/null || code=$?
    if [ -z "$stop_failed" ] && [ "$code" -ne 0 ]; then stop_failed="highwind exited with $code after SIGTERM"; fi
  fi
  if [ -n "$stop_failed" ]; then
    printf 'run.sh: %s; its stderr: %s/highwind.err\n' "$stop_failed" "$work" >&2
    [ "$rc" -ne 0 ] || rc=1
  fi
  # Kept when anything failed (the path was printed before the tests, so `N passed, M failed` stays last).
  if [ "$rc" -eq 0 ] && [ -z "${KEEP_DATA:-}" ]; then
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Starts highwind on a free port, letting the page's origin call it (CORS); sets gateway, token_alice, token_bob.
# Retries if the port was taken meanwhile.
start_platform() {
  local attempt port line deadline
  for attempt in 1 2 3; do
    port="$(free_port)"
    rm -rf "$work/data"
    "$bin" standalone --listen "127.0.0.1:$port" --data-dir "$work/data" --dev-user alice --dev-user bob --no-registry \
      --cors-origin "$page_origin" \
      >"$work/highwind.out" 2>"$work/highwind.err" </dev/null &
    hw_pid=$!
    deadline=$((SECONDS + ready_timeout))
    while [ "$SECONDS" -lt "$deadline" ]; do
      if grep -q '^dev token (bob): ' "$work/highwind.out" 2>/dev/null \
        && grep -q '^dev token (alice): ' "$work/highwind.out"; then
        line="$(grep -m1 '^highwind ready on ' "$work/highwind.out" || true)"
        gateway="${line#highwind ready on }"
        token_alice="$(sed -n 's/^dev token (alice): //p' "$work/highwind.out")"
        token_bob="$(sed -n 's/^dev token (bob): //p' "$work/highwind.out")"
        [ "$gateway" = "http://127.0.0.1:$port" ] || die "highwind says it is ready on '$gateway', asked for port $port"
        return 0
      fi
      kill -0 "$hw_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$hw_pid" 2>/dev/null; then
      tail -20 "$work/highwind.err" >&2
      die "highwind not ready within ${ready_timeout}s"
    fi
    wait "$hw_pid" 2>/dev/null || true
    hw_pid=""
    printf 'run.sh: highwind exited before it was ready (attempt %s); stderr tail:\n' "$attempt" >&2
    tail -5 "$work/highwind.err" >&2
  done
  die "highwind could not be started"
}

step "starting the static page server"
node serve.mjs 0 >"$work/serve.out" 2>"$work/serve.err" </dev/null &
srv_pid=$!
page_origin=""
for _ in $(seq 1 100); do
  page_origin="$(sed -n 's/^serving //p' "$work/serve.out" 2>/dev/null)"
  [ -n "$page_origin" ] && break
  kill -0 "$srv_pid" 2>/dev/null || { cat "$work/serve.err" >&2; die "the static server exited"; }
  sleep 0.1
done
[ -n "$page_origin" ] || die "the static server did not start"

step "starting highwind standalone"
start_platform

uri() { node -e 'console.log(encodeURIComponent(process.argv[1]))' "$1"; }
page_url="$page_origin/index.html?gateway=$(uri "$gateway")&alice=$(uri "$token_alice")&bob=$(uri "$token_bob")"

step "chromium: page on $page_origin, gateway on $gateway (logs in $work, kept if anything fails)"
node test.mjs "$page_url"
