"""The thread view in headless Chromium (issue 18): a post links to its thread, which shows
the root, the reply chain and the repost under it with what the town did about each post,
and the story's spread across the town by tick; accessible and phone-sized."""

from __future__ import annotations

import json
from typing import Any

import pytest

from storage import ClickHouseWriter
from tests.e2e.browser import CHROMIUM, Browser
from tests.e2e.test_ui_pages import (  # noqa: F401 - fixtures, used by name
    PHONE,
    api_url,
    browser,
    database,
    serious_axe_violations,
    shot,
    writer,
)
from tests.fixtures.ui_story import RUN, Story, seed_story
from topics.models import PostPublished, PostSeen

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium"),
]

ROOT = "po_ui_0001"  # the mayor's feed post about the argument with the developer
TOWN = 30  # the story's ticks say 30 NPCs


def _answer(n: str, author: str, tick: int, body: str, **kw: Any) -> PostPublished:
    return PostPublished(
        post_id=f"po_ui_{n}",
        request_id=f"rq_ui_{n}",
        run_id=RUN,
        event_id=f"ev_ui_{n}",
        channel="feed",
        author=author,
        tick=tick,
        sim_minute=tick * 15,
        body=body,
        source="llm",
        score=0.3,
        **kw,
    )


def _seen(i: int, npc: str, tick: int, post: PostPublished, **kw: Any) -> PostSeen:
    return PostSeen(
        exposure_id=f"ex_ui_{i:04d}",
        run_id=RUN,
        tick=tick,
        sim_minute=tick * 15,
        npc_id=npc,
        post_key=f"fp_{post.post_id}",
        post_id=post.post_id,
        event_id=post.event_id,
        post_tick=post.tick,
        author=post.author,
        channel=post.channel,
        recommender="affinity",
        rank=0,
        **kw,
    )


@pytest.fixture
def story(writer: ClickHouseWriter) -> Story:  # noqa: F811 - this module's story has a thread
    """The UI story plus a thread under the mayor's post: the developer replies, the mayor
    answers him (a feud), the reporter reposts it; readers of the story over four ticks."""
    s = seed_story(writer)
    root, news = s.post(ROOT), s.post("po_ui_0003")
    reply = _answer(
        "t001", "victor_crane", 40, "Eleanor Hart, the park is a parking lot.", reply_to=ROOT
    )
    feud = _answer(
        "t002", "eleanor_hart", 44, "Victor Crane, not while I am mayor.", reply_to=reply.post_id
    )
    repost = _answer("t003", "sam_okafor", 41, "Read this, Brookfield.", repost_of=ROOT)
    s.posts += [reply, feud, repost]
    readers = ["ben_castillo", "mia_hart", "bea_summers", "carla_ruiz", "hugo_bell", "sam_okafor"]
    seen = [
        _seen(0, readers[0], 37, root, reaction="like", reaction_event_id="ev_l0"),
        _seen(1, readers[1], 37, root),
        _seen(2, readers[2], 38, news),
        _seen(3, readers[0], 38, news),  # read about it again: counted once in the spread
        _seen(4, readers[3], 39, root, reaction="repost", reaction_event_id="ev_rp"),
        _seen(5, readers[4], 40, root, reaction="reply", reaction_event_id="ev_rep"),
        _seen(6, readers[5], 42, reply, reaction="feud", reaction_event_id="ev_f"),
    ]
    writer.write_messages([reply, feud, repost, *seen])
    return s


async def test_a_post_links_to_its_thread_which_shows_the_tree_and_the_spread(
    browser: Browser,  # noqa: F811
    api_url: str,  # noqa: F811
    story: Story,
) -> None:
    await browser.goto(f"{api_url}/?run_id={RUN}&live=0")
    await browser.wait_for("document.querySelectorAll('#posts li.post').length > 0")
    link = await browser.evaluate(
        f"document.querySelector('#posts li[data-post-id=\"{ROOT}\"] a.thread-link')"
        ".getAttribute('href')"
    )
    assert link.startswith(f"/ui/posts/{ROOT}/thread")
    await browser.goto(api_url + link)  # from the reply: the whole thread, the reply marked
    await browser.wait_for("document.querySelector('#chart-spread canvas')")
    tree = await browser.evaluate(
        "[...document.querySelectorAll('#thread li.thread-post')].map(li => ({id: "
        "li.dataset.postId, depth: Number(li.dataset.depth), relation: li.dataset.relation, "
        "parent: li.parentElement.closest('li.thread-post')?.dataset.postId || null, "
        "asked: li.classList.contains('asked'), counts: li.querySelector(':scope > .counts')"
        ".textContent, badge: li.querySelector(':scope > .meta .badge.reply, "
        ":scope > .meta .badge.repost')?.textContent || null}))"
    )
    by_id = {n["id"]: n for n in tree}
    assert [n["id"] for n in tree] == [ROOT, "po_ui_t001", "po_ui_t002", "po_ui_t003"]
    assert (by_id[ROOT]["depth"], by_id[ROOT]["relation"], by_id[ROOT]["parent"]) == (
        0,
        "root",
        None,
    )
    assert (by_id["po_ui_t001"]["parent"], by_id["po_ui_t001"]["relation"]) == (ROOT, "reply")
    assert (by_id["po_ui_t002"]["parent"], by_id["po_ui_t002"]["depth"]) == ("po_ui_t001", 2)
    assert (by_id["po_ui_t003"]["parent"], by_id["po_ui_t003"]["relation"]) == (ROOT, "repost")
    assert [by_id[k]["badge"] for k in (ROOT, "po_ui_t001", "po_ui_t002", "po_ui_t003")] == [
        None,
        "reply to @mayor_hart",
        "reply to @victorcrane",
        "repost of @mayor_hart",
    ]
    assert by_id[ROOT]["asked"] and not by_id["po_ui_t001"]["asked"]
    # what the town did about each post (the exposures)
    assert by_id[ROOT]["counts"] == "4 read · 1 liked · 1 reposted · 1 replied"
    assert by_id["po_ui_t001"]["counts"] == "1 read · 0 liked · 0 reposted · 1 replied"
    # the story's spread: 5 distinct readers of posts about the argument (the feed post and
    # the news article; the reply is a story of its own), of 30 NPCs
    summary = await browser.evaluate("document.querySelector('#spread-summary').textContent")
    assert summary == "5 NPCs read a post about it (16.7% of 30) by tick 40."
    assert all(n > 500 for n in await browser.painted("#chart-spread canvas")), "blank chart"
    assert not browser.problems(), browser.problems()
    await shot(browser, "thread")
    # opened from the answer to the answer: the same tree, that post marked
    await browser.goto(f"{api_url}/ui/posts/po_ui_t002/thread?live=0")
    await browser.wait_for("document.querySelector('#thread li.asked')")
    asked = await browser.evaluate("document.querySelector('#thread li.asked').dataset.postId")
    root = await browser.evaluate("document.querySelector('#thread > li').dataset.postId")
    assert (asked, root) == ("po_ui_t002", ROOT)


async def test_an_unknown_post_has_no_thread(
    browser: Browser,  # noqa: F811
    api_url: str,  # noqa: F811
    story: Story,
) -> None:
    await browser.goto(f"{api_url}/ui/posts/po_nope/thread?live=0")
    await browser.wait_for("document.querySelector('#page-view .empty')")
    text = await browser.evaluate("document.querySelector('#page-view .empty').textContent")
    assert text == "No post po_nope."


async def test_the_thread_page_is_accessible_and_fits_a_phone(
    browser: Browser,  # noqa: F811
    api_url: str,  # noqa: F811
    story: Story,
) -> None:
    await browser.viewport(*PHONE, mobile=True)
    await browser.goto(f"{api_url}/ui/posts/po_ui_t002/thread?live=0")
    await browser.wait_for("document.querySelector('#chart-spread canvas')")
    assert not browser.problems(), browser.problems()
    overflow = await browser.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{overflow}px wider than a phone screen"
    await shot(browser, "thread-phone")
    serious = await serious_axe_violations(browser)
    assert not serious, json.dumps(serious, indent=1)
