// "Why this post": the event behind it with its impact, the rule it passed, why this
// author, and every render attempt (verdict, tokens, cache), from GET /posts/{id}/why.
"use strict";

function row(label, value) {
  return el("tr", {}, el("th", { scope: "row", text: label }), el("td", {}, value));
}

function eventLine(e) {
  return el("li", {}, el("a", { href: `/ui/events${runQuery({ tick_from: e.tick, tick_to: e.tick })}#${e.event_id}`, text: `${e.type} at ${simTime(e.sim_minute)}` }),
    ` — ${e.summary}`);
}

PAGES.why = async (page, match) => {
  const postId = decodeURIComponent(match[1]);
  document.title = "Why this post · worldfeed";
  let why;
  try {
    why = await api(`/posts/${encodeURIComponent(postId)}/why`);
  } catch (err) {
    page.append(el("p", { class: "empty", text: `No post ${postId}.` }));
    return;
  }
  if (!state.run || state.run !== why.post.run_id) {
    state.run = why.post.run_id;
    await loadNpcs();
  }
  const p = why.post;
  const e = why.event;
  const parts = [el("h1", { class: "h2", text: "Why this post" })];
  parts.push(el("ol", { class: "posts", id: "why-post" }, postNode(p)));

  if (e) {
    const impact = e.impact;
    const components = impact ? ["novelty", "conflict", "status", "cascade", "total"].map((k) =>
      el("tr", { "data-component": k }, el("th", { scope: "row", text: k }),
        el("td", {}, el("span", { class: `bar ${k === "total" ? "pos" : "neutral"}`, style: `width:${Math.round(Math.min(1, impact[k]) * 80)}px` })),
        el("td", { class: "num", text: fmt(impact[k], 2) }))) : [];
    parts.push(el("div", { class: "card", id: "why-event", "data-event-id": e.event_id },
      el("h2", { class: "h4", text: "The event" }),
      el("p", {}, el("span", { class: "badge", text: e.type }), " ", e.summary),
      el("p", { class: "muted" }, npcLink(e.actor), e.target ? " → " : "", e.target ? npcLink(e.target) : "",
        ` · ${e.place || "somewhere"} · ${simTime(e.sim_minute)} · tick ${e.tick} · ${e.source}`),
      impact ? el("table", { class: "rels impact-table", id: "why-impact" },
        el("caption", { text: "Impact score and its components" }), el("tbody", {}, ...components))
        : el("p", { class: "muted", text: "not scored" })));
  }

  const rule = why.rule;
  parts.push(el("div", { class: "card", id: "why-rule" },
    el("h2", { class: "h4", text: "The threshold it passed" }),
    rule ? el("p", { id: "why-threshold" },
      `On ${rule.channel}, ${e ? (/^[aeiou]/i.test(e.type) ? "an " : "a ") + e.type : "such an"} event becomes a post when its impact reaches `,
      el("strong", { text: fmt(rule.threshold, 2) }), ". Its score was ",
      el("strong", { text: fmt(rule.score, 2) }), rule.passed ? " ✓ passed." : " ✗ below (re-scored since?).",
      ` Template “${rule.template}”` + (rule.rate_limit_per_day ? `, at most ${rule.rate_limit_per_day} posts per author per day.` : "."))
      : el("p", { class: "muted", text: "No catalog rule found." })));

  const a = why.author;
  parts.push(el("div", { class: "card", id: "why-author" },
    el("h2", { class: "h4", text: "Why this author" }),
    el("p", {}, npcLink(a.npc_id, a.handle || a.npc_id), a.display_name ? ` (${a.display_name})` : "",
      rule ? ` — rule “${rule.author_rule}”: ${a.reason}.` : ` — ${a.reason}.`)));

  const attempts = why.attempts.map((c) => el("tr", { "data-call-id": c.call_id },
    el("td", { class: "num", text: String(c.attempt) }),
    el("td", {}, el("span", { class: `verdict ${c.outcome}`, text: c.outcome })),
    el("td", { text: c.error || "" }),
    el("td", { class: "num", text: fmt(c.tokens_in) }),
    el("td", { class: "num", text: fmt(c.tokens_out) }),
    el("td", { class: "num", text: `${fmt(c.latency_ms)} ms` }),
    el("td", { text: c.cache_hit ? "yes" : "no" })));
  parts.push(el("div", { class: "card", id: "why-attempts" },
    el("h2", { class: "h4", text: `Render attempts (${why.attempts.length}) · written by ${p.source === "llm" ? "the LLM" : "the fallback template"}` }),
    attempts.length ? el("div", { class: "scroll", tabindex: "0" }, el("table", { class: "rels" },
      el("thead", {}, el("tr", {}, ...["#", "verdict", "error", "tokens in", "tokens out", "latency", "cache"].map((t) => el("th", { scope: "col", text: t })))),
      el("tbody", {}, ...attempts)))
      : el("p", { class: "muted", text: "No LLM call stored for this post." })));

  if (why.refers_to.length || why.rescored_by.length) {
    parts.push(el("div", { class: "card", id: "why-cascade" },
      el("h2", { class: "h4", text: "The story around it" }),
      why.refers_to.length ? el("p", { class: "muted", text: "It reacts to:" }) : null,
      why.refers_to.length ? el("ul", { class: "plain" }, ...why.refers_to.map(eventLine)) : null,
      why.rescored_by.length ? el("p", { class: "muted", text: "Later events that re-scored it:" }) : null,
      why.rescored_by.length ? el("ul", { class: "plain" }, ...why.rescored_by.map(eventLine)) : null));
  }
  if (why.notes.length) parts.push(el("div", { class: "card muted" }, el("ul", { class: "plain" }, ...why.notes.map((n) => el("li", { text: n })))));
  page.append(...parts);
};
