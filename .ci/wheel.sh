#!/usr/bin/env bash
# Build turboasgi's release wheel for one interpreter with maturin and print its path (last line).
#   .ci/wheel.sh PYTHON OUT_DIR            ($MATURIN, or maturin on PATH)
# The test venvs and the no-Rust smoke test (.ci/smoke-wheel.sh) install this same file.
set -euo pipefail
python=$1 out=$2
cd "$(dirname "$0")/.."
mkdir -p "$out"
tag=$("$python" -c 'import sys, sysconfig; print(f"cp{sys.version_info[0]}{sys.version_info[1]}" + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""))')
dir="$out/$tag"
rm -rf "$dir"
"${MATURIN:-maturin}" build --release --locked --quiet --interpreter "$python" --out "$dir" >&2
wheel=$(ls "$dir"/turboasgi-*.whl)
[ "$(echo "$wheel" | wc -l)" = 1 ] || { echo "expected one wheel in $dir, got: $wheel" >&2; exit 1; }
echo "$wheel"
