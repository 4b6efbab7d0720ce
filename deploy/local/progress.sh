#!/usr/bin/env bash
# Helpers the install scripts source: a long step says what it does and how long it
# usually takes, shows a line every WORLDFEED_PROGRESS_S seconds (default 10) with the
# elapsed time while it runs, keeps its output in a log, and shows the log's tail if it
# fails. Sourced, not run:   . "$root/deploy/local/progress.sh"
#
#   long_step LABEL ESTIMATE LOG -- COMMAND...
#     long_step "building llama.cpp from source" "first time only, about 9 min on 2 cores" \
#       .local/logs/install-llama.log -- pip wheel ...
#
# Exits the calling script with the command's status if it fails.

progress_every_s="${WORLDFEED_PROGRESS_S:-10}"

# "1m05s" / "42s"
fmt_elapsed() {
  local s="$1"
  if [ "$s" -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

long_step() {
  local label="$1" estimate="$2" log="$3"
  shift 3
  [ "${1:-}" = "--" ] && shift
  mkdir -p "$(dirname "$log")"
  printf '%s (%s) ...\n' "$label" "$estimate"
  printf '  output: %s\n' "$log"
  local start=$SECONDS
  "$@" >"$log" 2>&1 &
  local pid=$!
  # the ticker: a line every progress_every_s seconds with the elapsed time and the
  # command's latest output line (what pip or the compiler is doing now)
  (
    nap=
    trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    while true; do
      sleep "$progress_every_s" &
      nap=$!
      wait "$nap"
      kill -0 "$pid" 2>/dev/null || exit 0
      # the newest line of output, printable ASCII only (pip's bar is box characters and \r)
      last="$(tail -n 1 "$log" 2>/dev/null | tr '\r' '\n' | tail -n 1 | tr -cd '\11\40-\176' | cut -c1-90)"
      printf '  ... %s elapsed  %s\n' "$(fmt_elapsed $((SECONDS - start)))" "$last"
    done
  ) &
  local ticker=$!
  local rc=0
  wait "$pid" || rc=$?
  kill -TERM "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    printf '  FAILED after %s (exit %d); last lines of %s:\n' \
      "$(fmt_elapsed $((SECONDS - start)))" "$rc" "$log" >&2
    tail -n 30 "$log" >&2
    exit "$rc"
  fi
  printf '  done in %s\n' "$(fmt_elapsed $((SECONDS - start)))"
}
