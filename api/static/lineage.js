// Runs as a log: a run's lineage (parent and branches) on the run page, and the
// comparison of two runs (/ui/compare/A/B): where they part, events and posts per
// simulated hour for both, and their feeds side by side from the branch point.
"use strict";

const runLink = (id) => el("a", { href: `/ui/run?run_id=${encodeURIComponent(id)}`, text: id });
const compareLink = (a, b, text) =>
  el("a", { class: "compare", href: `/ui/compare/${encodeURIComponent(a)}/${encodeURIComponent(b)}${LIVE ? "" : "?live=0"}`, text });

// the lineage card of a run: its parent (and branch tick), its branches, links to compare
async function lineageCard(runId) {
  const run = await api(`/runs/${encodeURIComponent(runId)}`);
  const card = el("div", { class: "card", id: "lineage" }, el("h2", { class: "h4", text: "Lineage" }));
  if (run.parent_run) {
    card.append(el("p", {}, "Branched from ", runLink(run.parent_run), ` after tick ${run.branch_tick} · `,
      compareLink(run.parent_run, run.run_id, "compare with its parent")));
  } else {
    card.append(el("p", { class: "muted", text: "An original run (not a branch)." }));
  }
  const branches = run.branches || [];
  if (branches.length) {
    card.append(el("p", { text: "Branches:" }), el("ul", { class: "branches" },
      ...branches.map((b) => el("li", {}, runLink(b), " · ", compareLink(run.run_id, b, "compare")))));
  }
  if (run.catalog_digest) card.append(el("p", { class: "muted", text: `catalog ${run.catalog_digest.slice(0, 12)}…` }));
  return card;
}

function feedColumn(runId, posts, heading) {
  const list = el("ol", { class: "posts", "data-run": runId });
  for (const p of posts) list.append(postNode(p));
  if (!posts.length) list.append(el("li", { class: "empty", text: "No posts from the branch point." }));
  return el("div", { class: "column" }, el("h3", { class: "h4" }, heading), list);
}

async function postsFrom(runId, tickFrom) {
  const page = await api("/feed", { run_id: runId, tick_from: tickFrom, limit: 50 });
  return page.items;
}

PAGES.compare = async (page, m) => {
  const a = decodeURIComponent(m[1]);
  const b = decodeURIComponent(m[2]);
  document.title = `Compare ${a} and ${b} · worldfeed`;
  const [runA, runB] = await Promise.all([a, b].map((id) => api(`/runs/${encodeURIComponent(id)}`)));
  const branchTick = runB.parent_run === a ? runB.branch_tick : runA.parent_run === b ? runA.branch_tick : null;
  const diff = await api(`/runs/${encodeURIComponent(a)}/diff/${encodeURIComponent(b)}`);
  const parted = diff.first_divergent_tick === null
    ? `identical over their ${diff.common_ticks} common ticks`
    : `first divergent tick ${diff.first_divergent_tick} (${simTime((runA.start_minute || 0) + diff.first_divergent_tick * (runA.step_minutes || 15))})`;
  page.append(el("div", { class: "card", id: "compare-summary" },
    el("h1", { class: "h2" }, "Compare ", runLink(a), " and ", runLink(b)),
    el("p", { id: "divergence", text: parted }),
    branchTick !== null ? el("p", { class: "muted", text: `branch point: after tick ${branchTick}` }) : null,
    el("p", { text: `events only in ${a}: ${diff.events_only_in_a} · only in ${b}: ${diff.events_only_in_b}` }),
    el("p", { text: `posts per channel from there: ${a} ${JSON.stringify(diff.posts_a)} · ${b} ${JSON.stringify(diff.posts_b)}` })));
  if (diff.relationships_moved.length) {
    page.append(el("div", { class: "card" }, el("h2", { class: "h4", text: "Relationships that differ most" }),
      el("div", { class: "scroll", tabindex: "0" }, el("table", { class: "rels", id: "moved" },
        el("thead", {}, el("tr", {}, ...["NPC", "toward", a, b].map((t) => el("th", { scope: "col", text: t })))),
        el("tbody", {}, ...diff.relationships_moved.map((r) => el("tr", {},
          el("td", {}, npcLink(r.npc)), el("td", {}, npcLink(r.other)),
          el("td", { text: r.a.map((v) => fmt(v)).join(" / ") }),
          el("td", { text: r.b.map((v) => fmt(v)).join(" / ") }))))))));
  }
  const [ha, hb] = await Promise.all([a, b].map((id) => api(`/views/runs/${encodeURIComponent(id)}/hourly`)));
  const hours = [...new Set([...ha.hours, ...hb.hours].map((h) => h.hour))].sort((x, y) => x - y);
  const at = (data, key) => { const m2 = new Map(data.hours.map((h) => [h.hour, h[key]])); return hours.map((h) => (m2.has(h) ? m2.get(h) : null)); };
  const posts = (h) => (h.posts_feed || 0) + (h.posts_chat || 0) + (h.posts_news || 0);
  const totals = (data) => { const m2 = new Map(data.hours.map((h) => [h.hour, posts(h)])); return hours.map((h) => (m2.has(h) ? m2.get(h) : null)); };
  const grid = el("div", { class: "chart-grid" });
  page.append(grid);
  if (hours.length) {
    await lineChart(grid, { id: "chart-compare", title: "Events and posts per simulated hour, both runs", xs: hours,
      summary: `${a}: ${ha.hours.reduce((s, h) => s + h.events, 0)} events; ${b}: ${hb.hours.reduce((s, h) => s + h.events, 0)} events`,
      series: [
        { label: `${a} events`, values: at(ha, "events"), color: "#4b5563" },
        { label: `${b} events`, values: at(hb, "events"), color: "#dc2626" },
        { label: `${a} posts`, values: totals(ha), color: "#2563eb" },
        { label: `${b} posts`, values: totals(hb), color: "#d97706" },
      ] });
  }
  const from = branchTick === null ? 0 : branchTick + 1;
  const [pa, pb] = await Promise.all([postsFrom(a, from), postsFrom(b, from)]);
  page.append(el("div", { class: "card" }, el("h2", { class: "h4", text: `The two feeds from tick ${from}` }),
    el("div", { class: "side-by-side", id: "feeds" }, feedColumn(a, pa, runLink(a)), feedColumn(b, pb, runLink(b)))));
};
