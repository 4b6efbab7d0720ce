// A post's thread: the root, the reply chains and the repost tree under it, each post
// with what the town did about it (GET /posts/{id}/thread), and how the root's story
// spread across the town, tick by tick (GET /posts/{id}/spread).
"use strict";

const RELATION = { reply: "reply to", repost: "repost of" };

function threadPost(node, children, asked, byId) {
  const p = node.post;
  const item = postNode(p);
  item.classList.add("thread-post");
  item.dataset.relation = node.relation;
  item.dataset.depth = String(node.depth);
  if (p.post_id === asked) {
    item.classList.add("asked");
    item.setAttribute("aria-current", "true");
  }
  if (node.parent_id && RELATION[node.relation]) {
    const parent = byId.get(node.parent_id);
    const whose = parent ? who(parent.post.author).handle : `post ${node.parent_id} (not stored)`;
    item.querySelector(".meta").append(el("span", { class: `badge ${node.relation}`, text: `${RELATION[node.relation]} ${whose}` }));
  }
  item.append(el("p", { class: "counts muted" },
    `${fmt(node.seen)} read · ${fmt(node.likes)} liked · ${fmt(node.reposts)} reposted · ${fmt(node.replies)} replied`));
  const kids = children.get(p.post_id) || [];
  if (kids.length) {
    item.append(el("ol", { class: "thread", "aria-label": `answers to ${who(p.author).handle}` },
      ...kids.map((k) => threadPost(k, children, asked, byId))));
  }
  return item;
}

async function spreadChart(page, postId) {
  let spread;
  try {
    spread = await api(`/posts/${encodeURIComponent(postId)}/spread`);
  } catch (err) {
    return;
  }
  const box = el("div", { class: "card", id: "thread-spread", "data-readers": String(spread.readers) },
    el("h2", { class: "h4", text: "How the story spread" }));
  page.append(box);
  if (!spread.by_tick.length) {
    box.append(el("p", { class: "muted", text: "Nobody read a post about it (a run without the feed loop, or not yet)." }));
    return;
  }
  const last = spread.by_tick[spread.by_tick.length - 1];
  const share = spread.share === null ? "" : ` (${fmt(spread.share * 100, 1)}% of ${fmt(spread.town)})`;
  box.append(el("p", { id: "spread-summary", text: `${fmt(spread.readers)} NPCs read a post about it${share} by tick ${last.tick}.` }));
  const xs = spread.by_tick.map((t) => t.tick);
  const values = spread.by_tick.map((t) => (t.share === null ? t.readers : t.share * 100));
  await lineChart(box, {
    id: "chart-spread", title: spread.share === null ? "Readers so far" : "Share of the town that read about it (%)",
    xs, xLabel: tickLabel, series: [{ label: "read it", values, digits: 1 }],
    summary: `Readers by tick: ${spread.by_tick.map((t) => `tick ${t.tick}: ${t.readers}`).join(", ")}`,
  });
}

PAGES.thread = async (page, match) => {
  const postId = decodeURIComponent(match[1]);
  document.title = "Thread · worldfeed";
  let thread;
  try {
    thread = await api(`/posts/${encodeURIComponent(postId)}/thread`);
  } catch (err) {
    page.append(el("p", { class: "empty", text: `No post ${postId}.` }));
    return;
  }
  const root = thread.nodes.find((n) => n.post.post_id === thread.root_id);
  if (!state.run || state.run !== root.post.run_id) {
    state.run = root.post.run_id;
    await loadNpcs();
  }
  const children = new Map();
  const byId = new Map(thread.nodes.map((n) => [n.post.post_id, n]));
  for (const n of thread.nodes) {
    if (n.post.post_id === thread.root_id || !n.parent_id) continue;
    if (!children.has(n.parent_id)) children.set(n.parent_id, []);
    children.get(n.parent_id).push(n);
  }
  const replies = thread.nodes.filter((n) => n.relation === "reply").length;
  const reposts = thread.nodes.filter((n) => n.relation === "repost").length;
  page.append(
    el("h1", { class: "h2", text: "Thread" }),
    el("p", { class: "muted", id: "thread-summary" },
      `${thread.nodes.length} posts: ${replies} repl${replies === 1 ? "y" : "ies"}, ${reposts} repost${reposts === 1 ? "" : "s"}`,
      thread.truncated ? ` · more below the ${thread.depth} levels or ${thread.limit} posts shown` : ""),
    el("ol", { class: "posts thread", id: "thread" }, threadPost(root, children, thread.post_id, byId)),
  );
  await spreadChart(page, thread.root_id);
};
