// Charts with uPlot (vendored, api/static/vendor/uplot): line charts over simulated time.
"use strict";

const COLORS = { events: "#4b5563", feed: "#2563eb", chat: "#059669", news: "#d97706",
  calls: "#7c3aed", hits: "#0891b2", fallbacks: "#dc2626", tokens_in: "#64748b", tokens_out: "#db2777" };
const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
const charts = [];

function hourLabel(hour) {
  const day = Math.floor(hour / 24) + 1;
  return `D${day} ${String(hour % 24).padStart(2, "0")}h`;
}

function tickLabel(tick, stepMinutes = 15) {
  const m = tick * stepMinutes;
  return `D${Math.floor(m / 1440) + 1} ${String(Math.floor((m % 1440) / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
}

// a figure with a heading, a uPlot chart of `series` over `xs`, and a text summary for
// screen readers (the canvas itself says nothing)
async function lineChart(parent, { id, title, xs, series, xLabel = hourLabel, height = 220, summary }) {
  await loadScript("/static/vendor/uplot/uPlot.iife.min.js");
  const figure = el("figure", { class: "chart", id });
  const plot = el("div", { class: "plot", role: "img", "aria-label": summary || title });
  figure.append(el("figcaption", { text: title }), plot);
  parent.append(figure);
  const width = Math.max(260, Math.min(plot.clientWidth || parent.clientWidth || 600, 1100));
  const opts = {
    width,
    height,
    scales: { x: { time: false } },
    axes: [
      { values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? xLabel(v) : "")), size: 40 },
      { size: 50 },
    ],
    series: [{ label: "time", value: (u, v) => (v === null ? "–" : xLabel(v)) },
      ...series.map((s, i) => ({
        label: s.label, stroke: s.color || PALETTE[i % PALETTE.length], width: 2,
        points: { show: xs.length < 60 }, spanGaps: true,
        value: (u, v) => (v === null || v === undefined ? "–" : fmt(v, s.digits || 0)),
      }))],
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
  };
  const chart = new uPlot(opts, [xs, ...series.map((s) => s.values)], plot);
  charts.push({ chart, plot });
  return figure;
}

window.addEventListener("resize", () => {
  for (const { chart, plot } of charts) {
    const width = plot.parentElement ? plot.parentElement.clientWidth : 0;
    if (width > 0) chart.setSize({ width: Math.min(width, 1100), height: chart.height });
  }
});

// the NPC page: reputation, goal progress, affinity and trust toward the closest
async function npcCharts(box, npcId) {
  const h = await api(`/views/runs/${encodeURIComponent(state.run)}/npcs/${encodeURIComponent(npcId)}/history`, { top: 5 });
  if (!h.reputation.length && !h.relationships.length) {
    box.append(el("p", { class: "muted", text: "No snapshots of this NPC in this run yet (it has not changed)." }));
    return;
  }
  const ticks = [...new Set([
    ...h.reputation.map((p) => p[0]),
    ...h.relationships.flatMap((r) => r.affinity.map((p) => p[0])),
  ])].sort((a, b) => a - b);
  const at = (points) => { const m = new Map(points.map(([t, v]) => [t, v])); return ticks.map((t) => (m.has(t) ? m.get(t) : null)); };
  const grid = el("div", { class: "chart-grid" });
  box.append(grid);
  if (h.relationships.length) {
    await lineChart(grid, { id: "chart-affinity", title: "Affinity toward the closest (−100..100)", xs: ticks, xLabel: tickLabel,
      series: h.relationships.map((r) => ({ label: r.handle, values: at(r.affinity) })),
      summary: h.relationships.map((r) => `${r.handle}: ${fmt(r.affinity[0][1])} to ${fmt(r.affinity[r.affinity.length - 1][1])}`).join("; ") });
    await lineChart(grid, { id: "chart-trust", title: "Trust toward the closest (0..100)", xs: ticks, xLabel: tickLabel,
      series: h.relationships.map((r) => ({ label: r.handle, values: at(r.trust) })) });
  }
  const goalSeries = Object.entries(h.goals).map(([kind, pts]) => ({ label: `${kind} %`, values: at(pts.map(([t, v]) => [t, v * 100])) }));
  await lineChart(grid, { id: "chart-reputation", title: "Reputation and goal progress", xs: ticks, xLabel: tickLabel,
    series: [{ label: "reputation", values: at(h.reputation), color: "#111827", digits: 1 }, ...goalSeries] });
}
