// worldfeed read-only UI: vanilla JS over the REST API and the SSE live stream.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { run: null, channel: "feed", cursor: null, source: null, npcs: {}, seen: new Set() };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") node.style.cssText = v; // CSSOM: allowed by the CSP, unlike a style attribute
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

async function api(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`${resp.status} ${await resp.text()}`);
  return resp.json();
}

function simTime(minute) {
  const day = Math.floor(minute / 1440) + 1;
  const m = minute % 1440;
  const hh = String(Math.floor(m / 60)).padStart(2, "0");
  const mm = String(m % 60).padStart(2, "0");
  return `Day ${day}, ${hh}:${mm}`;
}

function who(id) {
  const npc = state.npcs[id];
  return npc ? { handle: npc.handle, name: npc.display_name } : { handle: id, name: "" };
}

function runQuery(extra = {}) {
  const params = new URLSearchParams();
  if (state.run) params.set("run_id", state.run);
  if (!LIVE) params.set("live", "0");
  for (const [k, v] of Object.entries(extra)) if (v !== null && v !== undefined && v !== "") params.set(k, v);
  const text = params.toString();
  return text ? `?${text}` : "";
}

function npcLink(id, text) {
  return el("a", { href: `/ui/npcs/${encodeURIComponent(id)}${runQuery()}`, text: text || who(id).handle });
}

// pages other than the feed and the NPC page register here: PAGES[name] = async (match) => ...
const PAGES = {};
const ROUTES = [
  [/^\/ui\/run\/?$/, "run"],
  [/^\/ui\/events\/?$/, "events"],
  [/^\/ui\/town\/?$/, "town"],
  [/^\/ui\/posts\/([^/]+)\/why\/?$/, "why"],
  [/^\/ui\/posts\/([^/]+)\/thread\/?$/, "thread"],
  [/^\/ui\/compare\/([^/]+)\/([^/]+)\/?$/, "compare"],
];

// load a vendored library once (api/static/vendor/; nothing comes from outside)
const loaded = {};
function loadScript(src) {
  if (!loaded[src]) {
    loaded[src] = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src;
      s.onload = resolve;
      s.onerror = () => reject(new Error(`could not load ${src}`));
      document.head.append(s);
    });
  }
  return loaded[src];
}

function showPage(name) {
  $("#feed-view").hidden = true;
  $("#npc-view").hidden = true;
  const page = $("#page-view");
  page.hidden = false;
  page.replaceChildren();
  document.querySelector("main").classList.add("wide");
  for (const a of document.querySelectorAll(".pages a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  return page;
}

function fmt(n, digits = 0) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function postNode(p, fresh = false) {
  const author = who(p.author);
  return el(
    "li",
    { class: `post ${p.channel}${fresh ? " fresh" : ""}`, "data-post-id": p.post_id },
    el("div", { class: "meta" },
      el("span", { class: "author" }, npcLink(p.author, author.handle)),
      author.name ? el("span", { text: author.name }) : null,
      p.source === "template" ? el("span", { class: "badge", text: "template" }) : null,
      p.moderation === "flagged" ? el("span", { class: "badge", text: "flagged" }) : null,
      el("span", { class: "time", text: simTime(p.sim_minute) }),
      el("a", { class: "why", href: `/ui/posts/${encodeURIComponent(p.post_id)}/why${runQuery()}`,
        "aria-label": `why this post (${simTime(p.sim_minute)})`, text: "why?" }),
      el("a", { class: "thread-link", href: `/ui/posts/${encodeURIComponent(p.post_id)}/thread${runQuery()}`,
        "aria-label": `thread of this post (${simTime(p.sim_minute)})`, text: p.reply_to ? "↩ thread" : p.repost_of ? "↻ thread" : "thread" })),
    p.title ? el("h3", { class: "title", text: p.title }) : null,
    el("p", { class: "body", text: p.body }),
  );
}

function showEmpty() {
  $("#empty").hidden = $("#posts").children.length > 0;
}

async function loadFeed(reset = true) {
  if (reset) {
    $("#posts").replaceChildren();
    state.cursor = null;
    state.seen = new Set();
  }
  const page = await api("/feed", { run_id: state.run, channel: state.channel, limit: 30, cursor: state.cursor });
  for (const p of page.items) {
    if (state.seen.has(p.post_id)) continue;
    state.seen.add(p.post_id);
    $("#posts").append(postNode(p));
  }
  state.cursor = page.next_cursor;
  $("#more").hidden = !state.cursor;
  showEmpty();
}

// ?live=0: a static snapshot without the SSE connection (headless captures, embedding);
// an open event stream never lets a page settle for tools that wait for the network.
const LIVE = new URLSearchParams(location.search).get("live") !== "0";

function connectLive() {
  if (state.source) state.source.close();
  if (!LIVE) return;
  const url = new URL("/stream/posts", location.origin);
  if (state.run) url.searchParams.set("run_id", state.run);
  url.searchParams.set("channel", state.channel);
  const source = new EventSource(url);
  source.onopen = () => $("#live").classList.remove("off");
  source.onerror = () => $("#live").classList.add("off");
  source.addEventListener("post", (ev) => {
    const p = JSON.parse(ev.data);
    if (state.seen.has(p.post_id)) return;
    state.seen.add(p.post_id);
    $("#posts").prepend(postNode(p, true));
    showEmpty();
  });
  state.source = source;
}

async function loadNpcs() {
  try {
    const page = await api("/npcs", { run_id: state.run, limit: 1000 });
    state.npcs = Object.fromEntries(page.items.map((n) => [n.npc_id, n]));
  } catch (err) {
    state.npcs = {};
  }
}

async function loadRuns() {
  const runs = await api("/runs", { limit: 50 });
  const select = $("#run-select");
  select.replaceChildren(el("option", { value: "", text: "all runs" }));
  for (const r of runs) {
    const label = `${r.run_id}${r.finished ? "" : " (running)"}`;
    select.append(el("option", { value: r.run_id, text: label }));
  }
  const wanted = new URLSearchParams(location.search).get("run_id");
  if (wanted && !runs.some((r) => r.run_id === wanted)) select.append(el("option", { value: wanted, text: wanted }));
  state.run = wanted || (runs[0] ? runs[0].run_id : null);
  select.value = state.run || "";
  select.onchange = async () => {
    state.run = select.value || null;
    const url = new URL(location.href);
    if (state.run) url.searchParams.set("run_id", state.run); else url.searchParams.delete("run_id");
    history.replaceState(null, "", url);
    await loadNpcs();
    if (!$("#feed-view").hidden) { await loadFeed(); connectLive(); }
    else location.href = url.toString();  // other pages: reload for the new run
  };
}

function bar(value, scale) {
  const width = Math.min(60, Math.abs(value) / scale * 60);
  return el("span", { class: `bar ${value < 0 ? "neg" : "pos"}`, style: `width:${width}px` });
}

async function showNpc(id) {
  $("#feed-view").hidden = true;
  $("#npc-view").hidden = false;
  const box = $("#npc");
  box.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  let npc;
  try {
    npc = await api(`/npcs/${encodeURIComponent(id)}`, { run_id: state.run });
  } catch (err) {
    box.replaceChildren(el("p", { class: "empty", text: `No NPC ${id}.` }));
    return;
  }
  document.title = `${npc.display_name} · worldfeed`;
  const s = npc.state;
  const profile = el("div", { class: "card", id: "npc-profile" },
    el("h2", { text: npc.display_name }),
    el("div", { class: "muted", text: `${npc.handle} · ${npc.occupation}, ${npc.age} · fame ${npc.fame}` }),
    el("p", { text: npc.voice }),
    el("div", { class: "muted", text: `Interests: ${npc.interests.join(", ") || "–"}` }),
    el("div", { class: "muted", text:
      s.tick === null ? "State: as the world starts" :
      `State at tick ${s.tick}: ${s.place ? "at " + s.place : "asleep"} · reputation ${s.reputation.toFixed(1)}` }));

  const rows = s.relationships.map((r) => el("tr", {},
    el("td", {}, npcLink(r.other_id, r.handle || r.other_id)),
    el("td", { text: r.display_name || "" }),
    el("td", {}, bar(r.affinity, 100), ` ${r.affinity.toFixed(0)}`),
    el("td", { text: r.trust.toFixed(0) }),
    el("td", { text: r.familiarity.toFixed(0) }),
    el("td", { text: r.tags.join(", ") })));
  const rels = el("div", { class: "card", id: "relationships" }, el("h4", { text: `Relationships (${rows.length})` }),
    rows.length ? el("div", { class: "scroll", tabindex: "0" }, el("table", { class: "rels" },
      el("thead", {}, el("tr", {}, ...["handle", "name", "affinity", "trust", "familiarity", "tags"].map((h) => el("th", { text: h })))),
      el("tbody", {}, ...rows))) : el("p", { class: "muted", text: "None yet." }));

  const goals = el("div", { class: "card" }, el("h4", { text: "Goals" }),
    el("ul", { class: "plain" }, ...s.goals.map((g) => el("li", { text: `${g.kind}${g.target ? " → " + g.target : ""}: ${Math.round(g.progress * 100)}%` }))));
  const memories = el("div", { class: "card" }, el("h4", { text: "Recent memories" }),
    s.memories.length ? el("ul", { class: "plain" }, ...s.memories.map((m) => el("li", { text: `${m.text} (tick ${m.tick})` })))
      : el("p", { class: "muted", text: "None yet." }));

  const timeline = el("div", { class: "card" }, el("h4", { text: "Timeline" }));
  const list = el("ol", { class: "posts" });
  timeline.append(list);
  const decided = el("div", { class: "card", id: "decisions" }, el("h4", { text: "Recent decisions (LLM)" }));
  const charts = el("div", { class: "card", id: "npc-charts" }, el("h2", { class: "h4", text: "Over the run" }));
  box.replaceChildren(profile, charts, rels, goals, memories, decided, timeline);
  npcDecisions(decided, id).catch(() => decided.append(el("p", { class: "muted", text: "Decisions unavailable." })));
  if (state.run) npcCharts(charts, id).catch((err) => charts.append(el("p", { class: "muted", text: `Charts unavailable: ${err.message}` })));
  else charts.append(el("p", { class: "muted", text: "Pick a run to see charts." }));
  try {
    const tl = await api(`/npcs/${encodeURIComponent(id)}/timeline`, { run_id: state.run, limit: 50 });
    for (const item of tl.items) {
      if (item.kind === "post") list.append(postNode(item.post));
      else list.append(el("li", { class: "post" },
        el("div", { class: "meta" }, el("span", { text: `${item.role} · ${item.event.type}` }),
          el("span", { class: "time", text: simTime(item.event.sim_minute) })),
        el("p", { class: "body", text: item.event.summary })));
    }
    if (!tl.items.length) list.append(el("li", { class: "muted", text: "Nothing yet." }));
  } catch (err) {
    list.append(el("li", { class: "muted", text: "Timeline unavailable." }));
  }
}

// What the NPC chose when it deliberated, the model's reason, and what the rules made of it.
async function npcDecisions(box, id) {
  const page = await api("/decisions", { run_id: state.run, npc: id, limit: 100 });
  const items = page.items.slice(-20).reverse();
  if (!items.length) { box.append(el("p", { class: "muted", text: "None: this NPC has not deliberated in this run." })); return; }
  box.append(el("ul", { class: "plain" }, ...items.map((d) => {
    const chose = d.action ? `${d.action}${d.event_type ? " / " + d.event_type : ""}${d.target ? " → " + d.target : ""}` : "—";
    const verdict = d.outcome === "accepted" ? "accepted" : `${d.outcome} (${d.reason_code || d.status})`;
    return el("li", { text: `${simTime(d.sim_minute)} · ${chose} · ${verdict}${d.model_reason ? " · “" + d.model_reason + "”" : ""}` });
  })));
}

async function main() {
  await loadRuns();
  await loadNpcs();
  for (const a of document.querySelectorAll(".pages a")) a.href = a.getAttribute("href").split("?")[0] + runQuery();
  const match = location.pathname.match(/^\/ui\/npcs\/([^/]+)/);
  if (match) {
    await showNpc(decodeURIComponent(match[1]));
    return;
  }
  for (const [pattern, name] of ROUTES) {
    const m = location.pathname.match(pattern);
    if (m) {
      await PAGES[name](showPage(name), m);
      return;
    }
  }
  document.querySelector('.pages a[data-page="feed"]').setAttribute("aria-current", "page");
  const tabs = [...document.querySelectorAll(".tab")];
  const activate = (tab) => {
    tabs.forEach((t) => t.classList.toggle("active", t === tab));
    state.channel = tab.dataset.channel;
  };
  const linked = tabs.find((t) => t.dataset.channel === new URLSearchParams(location.search).get("channel"));
  if (linked) activate(linked);  // ?channel=chat opens that tab
  for (const tab of tabs) {
    tab.onclick = async () => {
      activate(tab);
      const url = new URL(location.href);
      url.searchParams.set("channel", state.channel);
      history.replaceState(null, "", url);
      await loadFeed();
      connectLive();
    };
  }
  $("#more").onclick = () => loadFeed(false);
  await loadFeed();
  connectLive();
}

main().catch((err) => {
  document.querySelector("main").prepend(el("p", { class: "empty", text: `Could not load: ${err.message}` }));
});
