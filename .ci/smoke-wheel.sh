#!/usr/bin/env bash
# Install a built wheel the way a user without Rust would, and check it serves.
#   .ci/smoke-wheel.sh PYTHON WHEEL [extra pip arguments]
# A fresh venv, a PATH without cargo or rustc, and a working directory outside the checkout (so
# nothing is imported from the source tree); then .ci/smoke_wheel.py (the FastAPI example over HTTP
# and a WebSocket echo) and the conformance suite's quick group (`python -m asgi_tests --quick`).
set -euo pipefail
# resolved before PATH loses the Rust directories (python may live in one of them)
python=$(command -v "$1") wheel=$(realpath "$2"); shift 2
root=$(cd "$(dirname "$0")/.." && pwd)

no_rust_path=""
IFS=: read -ra entries <<<"$PATH"
for dir in "${entries[@]}"; do
  [ -x "$dir/cargo" ] || [ -x "$dir/rustc" ] || no_rust_path="${no_rust_path:+$no_rust_path:}$dir"
done
export PATH=$no_rust_path
unset CARGO_HOME RUSTUP_HOME
if command -v cargo >/dev/null || command -v rustc >/dev/null; then
  echo "cargo/rustc still on PATH" >&2
  exit 1
fi

work=$(mktemp -d /tmp/turboasgi-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q -U pip
"$work/venv/bin/python" -m pip install -q "$@" "$wheel[conformance]" fastapi
cp "$root/examples/fastapi_app.py" "$root/examples/fastapi_ws.py" "$root/.ci/smoke_wheel.py" "$work/"
cp -r "$root/examples/static" "$work/"  # the FastAPI example mounts it
cd "$work"
./venv/bin/python smoke_wheel.py
./venv/bin/python -m asgi_tests --quick -q -p no:cacheprovider
