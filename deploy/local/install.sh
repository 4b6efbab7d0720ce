#!/usr/bin/env bash
# Install everything the local (no-Docker) path needs, idempotently:
#   .venv          the app (faust-streaming, aiokafka, chDB, FastAPI, tritonclient ...)
#   .venv-triton   the Triton server's own venv (nvidia-pytriton, llama-cpp-python, SmolLM2)
#   .local/kafka   Apache Kafka's broker jars, resolved from Maven Central by Maven
# Needs: python3.11, java 17, mvn (all on this machine kind).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"

step() { printf '\n== %s\n' "$*"; }

step "app virtualenv (.venv)"
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  rm -f .venv/.installed-*; touch "$stamp"
fi
echo "ok"

step "Triton virtualenv (.venv-triton)"
deploy/local/install-triton.sh

step "Kafka broker jars (Maven Central)"
if ! ls .local/kafka/libs/kafka_2.13-*.jar >/dev/null 2>&1; then
  mkdir -p .local/kafka/libs
  (cd deploy/kafka && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$root/.local/kafka/libs")
fi
echo "ok ($(ls .local/kafka/libs | wc -l) jars)"
