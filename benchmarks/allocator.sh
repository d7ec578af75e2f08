#!/usr/bin/env bash
# Allocator check: turboasgi with the system allocator (glibc malloc, what Rust and CPython use by
# default) against jemalloc preloaded for the whole process, interleaved, server on core 0, wrk on core 1.
#   apt-get install -y libjemalloc2 && bash benchmarks/allocator.sh
set -u
cd "$(dirname "$0")/.."
JEMALLOC=${JEMALLOC:-/usr/lib/x86_64-linux-gnu/libjemalloc.so.2}
PORT=${PORT:-8501}
run() { # label preload app path
  if [ -n "$2" ]; then export LD_PRELOAD=$2; else unset LD_PRELOAD; fi
  taskset -c 0 python -m turboasgi --app-dir benchmarks/apps "$3" --port "$PORT" --no-access-log \
    --log-level warning >/dev/null 2>&1 &
  local pid=$!
  unset LD_PRELOAD
  for _ in $(seq 100); do curl -s -o /dev/null "localhost:$PORT$4" && break; sleep 0.1; done
  taskset -c 1 wrk -t1 -c64 -d2s "http://127.0.0.1:$PORT$4" >/dev/null
  echo "$1 $3 $(taskset -c 1 wrk -t1 -c64 -d5s "http://127.0.0.1:$PORT$4" | grep -E 'Requests/sec|Non-2xx' | tr '\n' ' ')"
  kill -INT "$pid"; wait "$pid"
}
for _ in 1 2 3; do
  run glibc "" hello:app /
  run jemalloc "$JEMALLOC" hello:app /
  run glibc "" fastapi_params:app "/items/42?q=hello"
  run jemalloc "$JEMALLOC" fastapi_params:app "/items/42?q=hello"
done
