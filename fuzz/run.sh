#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 40), seeded from fuzz/corpus/<target> (and,
# for the IR, the compiled sample pipelines). A crash, a timeout (one input over 10 s) or an out-of-memory input
# fails the run and leaves its reproducer in fuzz/artifacts/<target>/; turn it into a regression test.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-40}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/highwind-fuzz-target}"
# cargo-fuzz passes unstable flags to rustc; the machine has one stable toolchain.
export RUSTC_BOOTSTRAP=1
targets=(ir cel filters page_tokens names_and_paths registry_scope jwt grpc_web)
cargo fuzz build --sanitizer none --release
for target in "${targets[@]}"; do
  work="$(mktemp -d)"
  seeds=(corpus/"$target")
  if [ "$target" = ir ]; then seeds+=(../pipeline-svc/tests/samples); fi
  echo "== fuzz $target (${seconds}s)"
  set +e
  cargo fuzz run --sanitizer none --release "$target" "$work" "${seeds[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1 >"$work.log" 2>&1
  status=$?
  set -e
  grep -E '^(#[0-9]+ *DONE|stat::number_of_executed_units|SUMMARY|ERROR|==[0-9]+== ERROR|Test unit written)' "$work.log" || true
  if [ "$status" != 0 ]; then tail -40 "$work.log"; fi
  rm -f "$work.log"
  rm -rf "$work"
  if [ "$status" != 0 ]; then
    echo "fuzz target $target failed; reproducer in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
