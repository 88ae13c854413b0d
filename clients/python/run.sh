#!/usr/bin/env bash
# Runs the Python client suite against a real `highwind standalone` (binary: $HIGHWIND_BIN, default
# ~/.cache/highwind-target/debug/highwind). The virtualenv lives at ${HIGHWIND_PY_VENV:-~/.cache/highwind-pyvenv}.
# Extra arguments go to pytest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${HIGHWIND_PY_VENV:-$HOME/.cache/highwind-pyvenv}"
requirements="$here/requirements.txt"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# Re-install only when requirements.txt changed since the last successful install.
stamp="$venv/.highwind-requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi

cd "$root"
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider clients/python "$@"
