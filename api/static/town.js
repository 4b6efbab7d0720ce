// The town view: NPCs as a graph (cytoscape.js, vendored) as of a snapshot tick: nodes sized
// by reputation and coloured by where they are, edges coloured by affinity; a scrubber over
// the snapshots, the biggest changes since another tick, and who is where.
"use strict";

const MAX_NODES = 300;  // a generated world of thousands: the most reputable 300

function affinityColor(a) {
  if (a <= -30) return "#dc2626";
  if (a < 0) return "#f59e0b";
  if (a < 30) return "#9ca3af";
  return "#059669";
}

function placeColor(place, places) {
  if (!place) return "#d1d5db";
  const i = places.indexOf(place);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

function changeText(e) {
  return `${who(e.source).handle} → ${who(e.target).handle}: affinity ${fmt(e.affinity_before)} → ${fmt(e.affinity)}`;
}

// where a node starts: around its place's point on a big circle (clustered by place)
function clusterPosition(node, i, placeIds) {
  const p = node.place ? placeIds.indexOf(node.place) : -1;
  const k = Math.max(1, placeIds.length);
  const angle = (2 * Math.PI * (p < 0 ? k : p)) / (k + 1);
  const jitter = (2 * Math.PI * ((i * 7) % 13)) / 13;
  return { x: 600 * Math.cos(angle) + 60 * Math.cos(jitter), y: 600 * Math.sin(angle) + 60 * Math.sin(jitter) };
}

async function drawTown(page, tick, fromTick) {
  const data = await api(`/views/runs/${encodeURIComponent(state.run)}/town`, { tick, from_tick: fromTick });
  await loadScript("/static/vendor/cytoscape/cytoscape.min.js");
  // cytoscape adds a <style> element (refused by the CSP) unless one with this id exists;
  // its one rule (position: relative on the container) is in style.css
  if (!document.getElementById("__________cytoscape_stylesheet")) {
    document.head.append(el("template", { id: "__________cytoscape_stylesheet" }));
  }
  const placeIds = data.places.map((p) => p.place_id);
  let nodes = data.nodes;
  if (nodes.length > MAX_NODES) nodes = [...nodes].sort((a, b) => b.reputation - a.reputation).slice(0, MAX_NODES);
  const kept = new Set(nodes.map((n) => n.npc_id));
  const edges = data.edges.filter((e) => kept.has(e.source) && kept.has(e.target));
  // tick 0: the world as the catalog starts it (no snapshot yet)
  const ticks = [...new Set([0, ...data.ticks, data.tick])].sort((a, b) => a - b);
  const idx = Math.max(0, ticks.indexOf(data.tick));
  const fromIdx = Math.max(0, ticks.indexOf(Number(fromTick || 0)));
  const label = (t) => (t === 0 ? "the start" : `${tickLabel(t)} (tick ${t})`);

  const at = el("output", { id: "town-at", for: "town-tick", text: label(data.tick) });
  const scrub = el("input", { type: "range", id: "town-tick", min: 0, max: ticks.length - 1, step: 1, value: idx });
  const fromAt = el("output", { id: "town-from-at", for: "town-from", text: label(ticks[fromIdx]) });
  const fromScrub = el("input", { type: "range", id: "town-from", min: 0, max: ticks.length - 1, step: 1, value: fromIdx });
  const controls = el("div", { class: "card scrubbers" },
    el("label", { class: "field wide", for: "town-tick" }, "town as of ", at), scrub,
    el("label", { class: "field wide", for: "town-from" }, "changes since ", fromAt), fromScrub);
  const graph = el("div", { id: "town-graph", class: "graph", role: "img",
    "aria-label": `graph of ${nodes.length} NPCs and ${edges.length} relationships at tick ${data.tick}` });
  const legend = el("p", { class: "muted legend" },
    el("span", { class: "swatch neg" }), "affinity ≤ −30 ", el("span", { class: "swatch warn" }), "−30..0 ",
    el("span", { class: "swatch neutral" }), "0..30 ", el("span", { class: "swatch pos" }), "≥ 30 · node size: reputation · colour: where they are");
  const changed = edges.filter((e) => e.affinity_before !== null && e.affinity_before !== undefined && e.affinity !== e.affinity_before)
    .sort((a, b) => Math.abs(b.affinity - b.affinity_before) - Math.abs(a.affinity - a.affinity_before)).slice(0, 12);
  const changes = el("div", { class: "card", id: "town-changes" },
    el("h2", { class: "h4", text: `Biggest changes, ${label(ticks[fromIdx])} → ${label(data.tick)}` }),
    changed.length ? el("ul", { class: "plain" }, ...changed.map((e) => el("li", { class: e.affinity < e.affinity_before ? "down" : "up", text: changeText(e) })))
      : el("p", { class: "muted", text: "No relationship changed between these ticks." }));
  const where = el("div", { class: "card", id: "town-places" },
    el("h2", { class: "h4", text: `Who is where at ${data.sim_minute !== null ? simTime(data.sim_minute) : "tick " + data.tick}` }),
    el("ul", { class: "plain" }, ...data.places.filter((p) => p.present.length).map((p) =>
      el("li", {}, el("strong", { text: p.name }), ": ", ...p.present.flatMap((n, i) => [i ? ", " : "", npcLink(n)])))));
  page.replaceChildren(el("h1", { class: "h2", text: "Town" }), controls, graph, legend, changes, where);

  const reps = nodes.map((n) => n.reputation);
  const lo = Math.min(...reps), hi = Math.max(...reps);
  const size = (r) => 18 + (hi > lo ? (r - lo) / (hi - lo) : 0.5) * 34;
  const cy = cytoscape({
    container: graph,
    elements: [
      ...nodes.map((n, i) => ({ data: { id: n.npc_id, label: n.handle, size: size(n.reputation), color: placeColor(n.place, placeIds) },
        position: clusterPosition(n, i, placeIds) })),
      ...edges.map((e, i) => ({ data: { id: `e${i}`, source: e.source, target: e.target,
        color: affinityColor(e.affinity), width: 1 + Math.abs(e.affinity) / 25 } })),
    ],
    style: [
      { selector: "node", style: { width: "data(size)", height: "data(size)", "background-color": "data(color)",
        label: "data(label)", "font-size": 9, color: "#111827", "text-valign": "bottom", "text-margin-y": 2 } },
      { selector: "edge", style: { width: "data(width)", "line-color": "data(color)", "curve-style": "bezier",
        "target-arrow-shape": "triangle", "target-arrow-color": "data(color)", "arrow-scale": 0.6, opacity: 0.75 } },
    ],
    // start from the place clusters, then let the relationships pull (force-directed)
    layout: { name: "cose", animate: false, randomize: false, fit: true, padding: 24,
      nodeRepulsion: () => 200000, idealEdgeLength: () => 70, edgeElasticity: (edge) => 20 + edge.data("width") * 20,
      gravity: 40, numIter: 1500, componentSpacing: 80 },
    wheelSensitivity: 0.3,
  });
  cy.on("tap", "node", (ev) => { location.href = `/ui/npcs/${encodeURIComponent(ev.target.id())}${runQuery()}`; });
  graph.dataset.nodes = String(cy.nodes().length);
  graph.dataset.edges = String(cy.edges().length);

  const go = () => {
    const url = new URL(location.href);
    url.searchParams.set("tick", ticks[Number(scrub.value)]);
    url.searchParams.set("from_tick", ticks[Number(fromScrub.value)]);
    history.replaceState(null, "", url);
    drawTown(page, ticks[Number(scrub.value)], ticks[Number(fromScrub.value)]);
  };
  scrub.addEventListener("change", go);
  fromScrub.addEventListener("change", go);
  scrub.addEventListener("input", () => { at.textContent = label(ticks[Number(scrub.value)]); });
  fromScrub.addEventListener("input", () => { fromAt.textContent = label(ticks[Number(fromScrub.value)]); });
}

PAGES.town = async (page) => {
  document.title = "Town · worldfeed";
  if (!state.run) {
    page.append(el("p", { class: "empty", text: "No run yet." }));
    return;
  }
  const params = new URLSearchParams(location.search);
  await drawTown(page, params.get("tick"), params.get("from_tick") || 0);
};
