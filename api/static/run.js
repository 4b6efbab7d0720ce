// The run dashboard: the run hour by hour, live while it plays (polls every 5 s).
"use strict";

function tile(label, value, id) {
  return el("div", { class: "tile", id }, el("div", { class: "tile-value", text: value }), el("div", { class: "tile-label", text: label }));
}

async function drawRun(page, data) {
  const { run, hours, stats, dead_letters: dead } = data;
  const calls = stats.llm_calls;
  const posts = Object.values(stats.posts_per_channel).reduce((a, m) => a + Object.entries(m).filter(([k]) => k !== "blocked").reduce((b, [, n]) => b + n, 0), 0);
  const status = run.finished ? "finished" : "playing";
  const head = el("div", { class: "card" },
    el("h1", { class: "h2", text: `Run ${run.run_id}` }),
    el("p", { class: "muted", id: "run-status", text:
      `${status} · world ${run.world || "?"} · seed ${run.seed ?? "?"} · ${fmt(run.ticks)} ticks` +
      (run.last_sim_minute !== null && run.last_sim_minute !== undefined ? ` · up to ${simTime(run.last_sim_minute)}` : "") }));
  const tiles = el("div", { class: "tiles", id: "run-tiles" },
    tile("events", fmt(stats.tables.events), "tile-events"),
    tile("posts", fmt(posts), "tile-posts"),
    tile("LLM calls", fmt(calls.calls), "tile-calls"),
    tile("tokens in / out", `${fmt(calls.tokens_in)} / ${fmt(calls.tokens_out)}`, "tile-tokens"),
    tile("cache hits", fmt(calls.cache_hits), "tile-hits"),
    tile("fallbacks (template)", fmt(stats.post_tokens.template_posts), "tile-fallbacks"),
    tile("dead letters (all runs)", fmt(Object.values(dead).reduce((a, b) => a + b, 0)), "tile-dead"),
    tile("ticks / s", fmt(stats.rates.ticks_per_wall_s, 1), "tile-rate"));
  const grid = el("div", { class: "chart-grid" });
  page.replaceChildren(head, tiles, await lineageCard(run.run_id), grid);
  if (!hours.length) {
    grid.append(el("p", { class: "empty", text: "Nothing stored for this run yet." }));
    return;
  }
  const xs = hours.map((h) => h.hour);
  const col = (k) => hours.map((h) => h[k]);
  const busiest = hours.reduce((a, h) => (h.events > a.events ? h : a), hours[0]);
  await lineChart(grid, { id: "chart-activity", title: "Events and posts per simulated hour", xs,
    summary: `busiest hour ${hourLabel(busiest.hour)} with ${busiest.events} events`,
    series: [
      { label: "events", values: col("events"), color: COLORS.events },
      { label: "feed", values: col("posts_feed"), color: COLORS.feed },
      { label: "chat", values: col("posts_chat"), color: COLORS.chat },
      { label: "news", values: col("posts_news"), color: COLORS.news },
    ] });
  await lineChart(grid, { id: "chart-llm", title: "LLM calls, cache hits and fallbacks per hour", xs,
    series: [
      { label: "calls", values: col("llm_calls"), color: COLORS.calls },
      { label: "cache hits", values: col("cache_hits"), color: COLORS.hits },
      { label: "fallbacks", values: col("fallbacks"), color: COLORS.fallbacks },
    ] });
  await lineChart(grid, { id: "chart-tokens", title: "LLM tokens per hour", xs,
    series: [
      { label: "tokens in", values: col("tokens_in"), color: COLORS.tokens_in },
      { label: "tokens out", values: col("tokens_out"), color: COLORS.tokens_out },
    ] });
  await lineChart(grid, { id: "chart-rate", title: "Ticks per wall second", xs,
    series: [{ label: "ticks/s", values: col("ticks_per_s"), color: COLORS.events, digits: 1 }] });
  const per = Math.max(1, Math.round(60 / (run.step_minutes || 15)));  // ticks per hour
  const rows = hours.map((h) => el("tr", {},
    el("th", { scope: "row" }, el("a", { href: `/ui/events${runQuery({ tick_from: h.hour * per, tick_to: h.hour * per + per - 1 })}`, text: hourLabel(h.hour) })),
    ...["events", "posts_feed", "posts_chat", "posts_news", "llm_calls", "tokens_out"].map((k) => el("td", { text: fmt(h[k]) }))));
  page.append(el("div", { class: "card" },
    el("h2", { class: "h4", text: "Hour by hour" }),
    el("div", { class: "scroll", tabindex: "0" }, el("table", { class: "rels", id: "hours-table" },
      el("thead", {}, el("tr", {}, ...["hour", "events", "feed", "chat", "news", "LLM calls", "tokens out"].map((t) => el("th", { scope: "col", text: t })))),
      el("tbody", {}, ...rows)))));
}

PAGES.run = async (page) => {
  document.title = "Run · worldfeed";
  if (!state.run) {
    page.append(el("p", { class: "empty", text: "No run yet." }));
    return;
  }
  const load = () => api(`/views/runs/${encodeURIComponent(state.run)}/hourly`);
  let data = await load();
  await drawRun(page, data);
  if (!LIVE || data.run.finished) return;
  $("#live").classList.remove("off");
  const timer = setInterval(async () => {
    try {
      data = await load();
      charts.length = 0;
      await drawRun(page, data);
      if (data.run.finished) { clearInterval(timer); $("#live").classList.add("off"); }
    } catch (err) {
      $("#live").classList.add("off");
    }
  }, 5000);
};
