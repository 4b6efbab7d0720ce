// The events view: filter a run's events by type, NPC, place, impact and ticks; each event
// links to the posts it caused and to the events that re-scored it (its cascade).
"use strict";

const FILTERS = ["type", "npc", "place", "min_impact", "tick_from", "tick_to"];

function impactBar(impact) {
  if (!impact) return el("span", { class: "muted", text: "not scored" });
  const width = Math.round(Math.min(1, impact.total) * 60);
  return el("span", { class: "impact", title: `novelty ${fmt(impact.novelty, 2)} · conflict ${fmt(impact.conflict, 2)} · status ${fmt(impact.status, 2)} · cascade ${fmt(impact.cascade, 2)}` },
    el("span", { class: "bar pos", style: `width:${width}px` }), ` ${fmt(impact.total, 2)}`);
}

function eventNode(e, byId) {
  const posts = e.posts.map((p) => el("li", {},
    el("a", { href: `/ui/posts/${encodeURIComponent(p.post_id)}/why${runQuery()}`, class: `chip ${p.channel}`, text: `${p.channel} by ${who(p.author).handle}` })));
  const cascade = e.rescored_by.map((id) => {
    const later = byId[id];
    return el("li", {}, el("a", { href: `#${id}`, class: "chip", text: later ? `${later.type} at ${simTime(later.sim_minute)}` : id }));
  });
  const refs = (e.refs || []).map((id) => {
    const earlier = byId[id];
    return el("li", {}, el("a", { href: `#${id}`, class: "chip", text: earlier ? `re: ${earlier.type} at ${simTime(earlier.sim_minute)}` : `re: ${id}` }));
  });
  return el("li", { class: "post event", id: e.event_id, "data-event-id": e.event_id, "data-type": e.type },
    el("div", { class: "meta" },
      el("span", { class: "badge", text: e.type }),
      el("span", {}, npcLink(e.actor)),
      e.target ? el("span", {}, "→ ", npcLink(e.target)) : null,
      e.place ? el("span", { text: `@ ${e.place}` }) : null,
      el("span", { class: "time", text: `${simTime(e.sim_minute)} · tick ${e.tick}` })),
    el("p", { class: "body", text: e.summary }),
    el("div", { class: "meta" }, el("span", { text: "impact" }), impactBar(e.impact)),
    posts.length ? el("div", { class: "links" }, el("span", { class: "muted", text: "posts: " }), el("ul", { class: "chips" }, ...posts)) : null,
    refs.length ? el("div", { class: "links" }, el("span", { class: "muted", text: "reacts to: " }), el("ul", { class: "chips" }, ...refs)) : null,
    cascade.length ? el("div", { class: "links" }, el("span", { class: "muted", text: "re-scored by: " }), el("ul", { class: "chips" }, ...cascade)) : null);
}

function select(name, label, values, current, labelOf = (v) => v) {
  const s = el("select", { name, id: `f-${name}` }, el("option", { value: "", text: "any" }),
    ...values.map((v) => el("option", { value: v, text: labelOf(v) })));
  s.value = current || "";
  return el("label", { class: "field" }, `${label} `, s);
}

function number(name, label, current, attrs) {
  const input = el("input", { type: "number", name, id: `f-${name}`, inputmode: "decimal", ...attrs });
  if (current !== null && current !== undefined) input.value = current;
  return el("label", { class: "field" }, `${label} `, input);
}

PAGES.events = async (page) => {
  document.title = "Events · worldfeed";
  if (!state.run) {
    page.append(el("p", { class: "empty", text: "No run yet." }));
    return;
  }
  const params = new URLSearchParams(location.search);
  const current = Object.fromEntries(FILTERS.map((f) => [f, params.get(f)]));
  const list = el("ol", { class: "posts", id: "events", "aria-live": "polite" });
  const count = el("p", { class: "muted", id: "events-count" });
  const form = el("form", { class: "card filters", id: "event-filters", role: "search", "aria-label": "filter events" });
  page.append(el("h1", { class: "h2", text: "Events" }), form, count, list);

  let latest = 0; // answers to superseded filter changes may arrive late: only the newest is shown
  async function load() {
    const asked = ++latest;
    const query = Object.fromEntries(FILTERS.map((f) => [f, current[f]]));
    const data = await api(`/views/runs/${encodeURIComponent(state.run)}/events`, { ...query, limit: 500 });
    if (asked !== latest) return;
    if (!form.children.length) {
      form.append(
        select("type", "type", data.types, current.type),
        select("npc", "NPC", data.actors, current.npc, (v) => who(v).handle),
        select("place", "place", data.places, current.place),
        number("min_impact", "min impact", current.min_impact, { min: 0, max: 1, step: 0.05 }),
        number("tick_from", "from tick", current.tick_from, { min: 0, step: 1 }),
        number("tick_to", "to tick", current.tick_to, { min: 0, step: 1 }),
        el("button", { type: "reset", class: "more", text: "clear" }));
      form.addEventListener("change", () => apply());
      form.addEventListener("submit", (ev) => { ev.preventDefault(); apply(); });
      form.addEventListener("reset", () => setTimeout(apply, 0));
    }
    const byId = Object.fromEntries(data.items.map((e) => [e.event_id, e]));
    list.replaceChildren(...data.items.map((e) => eventNode(e, byId)));
    count.textContent = `${data.items.length}${data.more ? "+" : ""} event${data.items.length === 1 ? "" : "s"}` +
      (data.last_tick !== null ? ` (the run is at tick ${data.last_tick})` : "");
    if (!data.items.length) list.append(el("li", { class: "empty", text: "No event matches." }));
  }

  async function apply() {
    const url = new URL(location.href);
    for (const f of FILTERS) {
      const value = form.elements[f].value;
      current[f] = value || null;
      if (value) url.searchParams.set(f, value); else url.searchParams.delete(f);
    }
    history.replaceState(null, "", url);
    await load();
  }
  await load();
};
