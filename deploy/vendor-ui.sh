#!/usr/bin/env bash
# Re-fetch the web UI's vendored libraries from the npm registry at pinned versions
# (npm pack: the published tarball, checked against the registry's integrity hash),
# and copy the files the pages load, with each package's licence, into api/static/vendor/.
# axe-core (accessibility checks) goes to tests/e2e/vendor/: the tests load it, the UI
# never does. Nothing is loaded from a CDN at run time.
#   deploy/vendor-ui.sh            # needs node/npm and the registry (once; the files are committed)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

UPLOT=1.6.32      # charts: https://github.com/leeoniya/uPlot (MIT)
CYTOSCAPE=3.35.0  # the town graph: https://github.com/cytoscape/cytoscape.js (MIT)
AXE=4.14.1        # accessibility checks in tests: https://github.com/dequelabs/axe-core (MPL-2.0)

fetch() {  # fetch NAME VERSION -> unpacked into $work/NAME/package
  local name="$1" version="$2"
  mkdir -p "$work/$name"
  (cd "$work/$name" && npm pack --silent "$name@$version" >/dev/null && tar xzf ./*.tgz)
  echo "fetched $name@$version"
}

ui="$root/api/static/vendor"
tests="$root/tests/e2e/vendor"
rm -rf "$ui" "$tests"
mkdir -p "$ui/uplot" "$ui/cytoscape" "$tests/axe-core"

fetch uplot "$UPLOT"
cp "$work/uplot/package/dist/uPlot.iife.min.js" "$work/uplot/package/dist/uPlot.min.css" \
   "$work/uplot/package/LICENSE" "$ui/uplot/"

fetch cytoscape "$CYTOSCAPE"
cp "$work/cytoscape/package/dist/cytoscape.min.js" "$ui/cytoscape/"
cp "$work/cytoscape/package/LICENSE" "$ui/cytoscape/"

fetch axe-core "$AXE"
cp "$work/axe-core/package/axe.min.js" "$work/axe-core/package/LICENSE" "$tests/axe-core/"

cat >"$ui/README.md" <<TXT
Vendored by deploy/vendor-ui.sh from the npm registry; do not edit by hand.

| package | version | licence | file the pages load |
|---|---|---|---|
| uplot | $UPLOT | MIT (uplot/LICENSE) | uplot/uPlot.iife.min.js, uplot/uPlot.min.css |
| cytoscape | $CYTOSCAPE | MIT (cytoscape/LICENSE) | cytoscape/cytoscape.min.js |
TXT
cat >"$tests/README.md" <<TXT
Vendored by deploy/vendor-ui.sh from the npm registry for the browser tests only.

| package | version | licence |
|---|---|---|
| axe-core | $AXE | MPL-2.0 (axe-core/LICENSE) |
TXT
echo "vendored into ${ui#"$root"/} and ${tests#"$root"/}"
