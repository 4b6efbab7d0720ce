#!/usr/bin/env bash
# Start / stop the Triton Inference Server that the nvidia-pytriton wheel ships, serving
# the model repository triton_models/ (model "llm") on 127.0.0.1. No Docker needed.
#   deploy/local/triton.sh start [HTTP_PORT] [GRPC_PORT] [METRICS_PORT]   # 8010 8011 8012
#   deploy/local/triton.sh stop  [HTTP_PORT] [GRPC_PORT]
# State (pid file, log) lives under .local/triton-<GRPC_PORT>/. `start` returns once the
# server and model "llm" are ready, or exits non-zero with the log tail.
# Env: WORLDFEED_TRITON_VENV (default .venv-triton), WORLDFEED_TRITON_MODELS
# (default triton_models/), WORLDFEED_TRITON_START_TIMEOUT_S (default 180),
# WORLDFEED_LLM_MODEL_PATH (a GGUF file instead of the bundled SmolLM2).
#
# Three things the bundled binary needs (see DESIGN.md "Verified on this machine kind"):
#  1. LD_LIBRARY_PATH = the venv interpreter's LIBDIR, or the python stub loads the
#     system libpython and crashes ('_thread.RLock' ... '_recursion_count');
#  2. the venv's bin/ first on PATH: the stub takes sys.prefix from the python3 on PATH,
#     and the global one brings a numpy 2.x the stub's ABI does not match;
#  3. --backend-directory with the stub for this Python copied into backends/python/
#     (done in a copy under .local/, the venv stays untouched).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cmd="${1:-start}"
http_port="${2:-8010}"
grpc_port="${3:-8011}"
metrics_port="${4:-8012}"
venv="${WORLDFEED_TRITON_VENV:-$root/.venv-triton}"
models="${WORLDFEED_TRITON_MODELS:-$root/triton_models}"
start_timeout="${WORLDFEED_TRITON_START_TIMEOUT_S:-180}"
state="$root/.local/triton-$grpc_port"
pidfile="$state/tritonserver.pid"
log="$state/tritonserver.log"

fail() { echo "triton: $*" >&2; [ -f "$log" ] && { echo "--- last lines of $log:" >&2; tail -40 "$log" >&2; }; exit 1; }
http_ok() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$http_port$1" 2>/dev/null; }

stop_server() {
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "triton: pid $pid ignored SIGTERM for 30 s, killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

case "$cmd" in
  start)
    [ -x "$venv/bin/python" ] || fail "no virtualenv at $venv: run deploy/local/install-triton.sh"
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    pyver="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    libdir="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
    dist="$site/pytriton/tritonserver"
    server="$dist/bin/tritonserver"
    stub="$dist/python_backend_stubs/$pyver/triton_python_backend_stub"
    [ -x "$server" ] || fail "tritonserver not found at $server (nvidia-pytriton missing?)"
    [ -f "$stub" ] || fail "no python backend stub for Python $pyver in $dist/python_backend_stubs"
    mkdir -p "$state"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      if http_ok /v2/health/ready; then
        echo "triton already running: grpc 127.0.0.1:$grpc_port (pid $(cat "$pidfile"))"; exit 0
      fi
      stop_server
    fi
    # A private, writable backends dir: the wheel's python backend + this Python's stub.
    # Under a lock: servers started side by side (several instances) share this copy.
    backends="$root/.local/triton-backends-py$pyver"
    exec 9>"$backends.lock"
    flock 9
    if [ ! -x "$backends/python/triton_python_backend_stub" ] \
       || [ "$stub" -nt "$backends/python/triton_python_backend_stub" ]; then
      rm -rf "$backends.tmp" && mkdir -p "$backends.tmp"
      cp -r "$dist/backends/." "$backends.tmp/"
      cp "$stub" "$backends.tmp/python/triton_python_backend_stub"
      chmod +x "$backends.tmp/python/triton_python_backend_stub"
      rm -rf "$backends" && mv "$backends.tmp" "$backends"
    fi
    flock -u 9
    exec 9>&-
    t0=$(date +%s.%N)
    # setsid: the server gets its own session, so the caller's Ctrl-C / exit does not
    # reach it; `stop` (or the pytest fixture) ends it through the pid file.
    # + nvidia_pytriton.libs: the copied stub's $ORIGIN rpath no longer reaches libcudart.
    LD_LIBRARY_PATH="$libdir:$site/nvidia_pytriton.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    PATH="$venv/bin:$PATH" \
    VIRTUAL_ENV="$venv" \
    PYTHONNOUSERSITE=1 \
      setsid "$server" \
        --model-repository="$models" \
        --backend-directory="$backends" \
        --http-address=127.0.0.1 --http-port="$http_port" \
        --grpc-address=127.0.0.1 --grpc-port="$grpc_port" \
        --metrics-address=127.0.0.1 --metrics-port="$metrics_port" \
        --allow-metrics=true --allow-gpu-metrics=false \
        --strict-readiness=true --exit-on-error=true \
        --exit-timeout-secs=5 --log-verbose=0 >"$log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    deadline=$(( $(date +%s) + start_timeout ))
    while :; do
      kill -0 "$(cat "$pidfile")" 2>/dev/null || { rm -f "$pidfile"; fail "tritonserver exited during start-up"; }
      # Fail fast: a stub that cannot start leaves the model loading until the timeout.
      if grep -q -E "error while loading shared libraries|failed to load|Stub process .* is not healthy" "$log"; then
        stop_server
        fail "model failed to load"
      fi
      if http_ok /v2/health/ready && http_ok /v2/models/llm/ready; then
        secs=$(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo "?")
        echo "triton ready in ${secs}s: grpc 127.0.0.1:$grpc_port http 127.0.0.1:$http_port metrics 127.0.0.1:$metrics_port (pid $(cat "$pidfile"), log $log)"
        exit 0
      fi
      if [ "$(date +%s)" -ge "$deadline" ]; then
        stop_server
        fail "not ready within ${start_timeout}s"
      fi
      sleep 0.25
    done
    ;;
  stop)
    stop_server
    echo "triton stopped (grpc port $grpc_port)"
    ;;
  *) echo "usage: $0 start|stop [HTTP_PORT] [GRPC_PORT] [METRICS_PORT]" >&2; exit 2 ;;
esac
