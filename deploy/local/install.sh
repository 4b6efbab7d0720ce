#!/usr/bin/env bash
# Install everything the local (no-Docker) path needs, idempotently:
#   .venv          the app (faust-streaming, aiokafka, chDB, FastAPI, tritonclient ...)
#   .venv-triton   the Triton server's own venv (nvidia-pytriton, llama-cpp-python, SmolLM2)
#   .local/kafka   Apache Kafka's broker jars, resolved from Maven Central by Maven
# Needs: python3.11, java 17, mvn (all on this machine kind).
# A first install takes about 10 min on 2 cores (9 of them building llama.cpp); a
# second one takes seconds: each step checks what is already there, and the built
# llama-cpp-python wheel is kept in .local/wheels/. Logs: .local/logs/install-*.log.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
. deploy/local/progress.sh
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
logs=.local/logs
t0=$SECONDS

step() { printf '\n== %s\n' "$*"; }

step "app virtualenv (.venv)"
[ -x .venv/bin/python ] || { echo "creating .venv (seconds)"; "$py" -m venv .venv; }
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  long_step "installing the app and its test tools into .venv" \
    "downloads ~400 MB the first time, about 2-3 min; under a minute from pip's cache" \
    "$logs/install-app.log" -- \
    sh -c '.venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e ".[test]"'
  rm -f .venv/.installed-*; touch "$stamp"
else
  echo "up to date for this pyproject.toml: nothing to do"
fi

step "Triton virtualenv (.venv-triton)"
deploy/local/install-triton.sh

step "Kafka broker jars (Maven Central)"
if ! ls .local/kafka/libs/kafka_2.13-*.jar >/dev/null 2>&1; then
  mkdir -p .local/kafka/libs
  long_step "resolving Apache Kafka's jars with Maven" \
    "first time only, about 1 min; Maven's ~/.m2 cache makes it seconds after" \
    "$logs/install-kafka.log" -- \
    sh -c "cd deploy/kafka && mvn -B dependency:copy-dependencies -DoutputDirectory='$root/.local/kafka/libs'"
fi
echo "ok ($(ls .local/kafka/libs | wc -l) jars)"

printf '\ninstalled in %s\n' "$(fmt_elapsed $((SECONDS - t0)))"
