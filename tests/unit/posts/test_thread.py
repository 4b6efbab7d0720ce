"""Replies and reposts are posts (issue 18): rendered with the post they answer in the
prompt, and stored with ``reply_to`` / ``repost_of``."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from llm.complete import Answer
from posts.prompt import build_prompt
from posts.service import Rendered, template_fallback, to_post
from sim.impact import book_of
from sim.local import LocalRun
from sim.world import WorldIndex
from tests.unit.posts.test_service import FakeLLM, service
from tests.unit.sim.catalog_edit import with_feed
from topics import POSTS, RENDER_REQUESTS
from topics.codec import DecodeError, decode, encode
from topics.models import RenderRequested
from worldfeed.ids import derive_id

MakeRequest = Callable[..., RenderRequested]


@pytest.fixture(scope="module")
def feed_requests(index: WorldIndex) -> tuple[WorldIndex, list[RenderRequested]]:
    """The render requests of a day with the feed loop on (the real impact stage)."""
    feed_index = with_feed(index.catalog)
    run = LocalRun(feed_index, "r", 3)
    for _ in range(96):
        run.step()
    return feed_index, book_of(feed_index, run.events)[1]


def answers(requests: list[RenderRequested], relation: str) -> list[RenderRequested]:
    return [r for r in requests if r.parent is not None and r.parent.relation == relation]


def test_replies_and_reposts_are_requested_with_the_post_they_answer(
    feed_requests: tuple[WorldIndex, list[RenderRequested]],
) -> None:
    _, requests = feed_requests
    made = {derive_id("post", r.request_id): r for r in requests}
    reactions = [r for r in requests if r.event.source == "feed"]
    assert answers(requests, "reply") and answers(requests, "repost")
    for req in reactions:
        parent = req.parent
        assert parent is not None, req.event.type
        # the parent is a post the run wrote up, on an earlier tick, by whom it reacts to
        earlier = made[parent.post_id]
        assert earlier.event.event_id == parent.event_id == req.event.refs[0]
        assert earlier.event.tick < req.event.tick
        assert parent.author == earlier.author == req.event.target
        assert parent.text == earlier.event.summary
        assert parent.relation == ("repost" if req.event.type == "reposted_post" else "reply")
    # everything else is a post of its own
    assert all(r.parent is None for r in requests if r.event.source != "feed")


def test_a_reply_renders_with_its_thread(
    feed_requests: tuple[WorldIndex, list[RenderRequested]],
) -> None:
    index, requests = feed_requests
    some = answers(requests, "reply")[:3] + answers(requests, "repost")[:3]
    assert len(some) == 6
    for req in some:
        assert req.parent is not None
        prompt = build_prompt(index, req, index.catalog.templates[req.template])
        parent_author = index.npc(req.parent.author).display_name
        assert f'{parent_author} posted about this: "{req.parent.text.rstrip(".")}"' in prompt.text
        assert f"Write your {req.parent.relation} to {parent_author}'s post" in prompt.text
        # the fallback quotes the post it answers
        assert req.parent.text in template_fallback(index, req)["body"]


def test_a_post_of_its_own_has_no_thread_in_its_prompt(
    index: WorldIndex, make_request: MakeRequest
) -> None:
    req = make_request()
    prompt = build_prompt(index, req, index.catalog.templates[req.template])
    assert "posted about this" not in prompt.text


async def test_the_stored_reply_and_repost_carry_their_parent(
    feed_requests: tuple[WorldIndex, list[RenderRequested]],
) -> None:
    index, requests = feed_requests
    for relation in ("reply", "repost"):
        req = answers(requests, relation)[0]
        assert req.parent is not None
        name = index.npc(req.parent.author).display_name
        r = service(FakeLLM([f"{name}, I read your post twice and I still cannot believe it."]))
        r.load = lambda _world: index
        out = await r.handle(req)
        assert out.post is not None
        post = out.post
        if relation == "reply":
            assert (post.reply_to, post.repost_of) == (req.parent.post_id, None)
        else:
            assert (post.reply_to, post.repost_of) == (None, req.parent.post_id)
        assert decode(POSTS, encode(post)) == post
        assert decode(RENDER_REQUESTS, encode(req)) == req


def test_a_plain_post_has_no_parent(make_request: MakeRequest) -> None:
    answer = Answer(fields=None, attempts=0, repaired=False)
    out = Rendered(answer=answer, fields={"body": "hello"}, source="template")
    post = to_post(make_request(), out, ("published", None))
    assert post.reply_to is None and post.repost_of is None


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("relation", "quote", "/parent/relation"),
        ("post_id", "x" * 65, "/parent/post_id"),
        ("text", "", "/parent/text"),
    ],
)
def test_garbage_in_a_parent_is_refused_naming_the_field(
    feed_requests: tuple[WorldIndex, list[RenderRequested]], field: str, value: str, where: str
) -> None:
    _, requests = feed_requests
    req = answers(requests, "reply")[0]
    raw = req.model_dump(mode="json")
    raw["parent"][field] = value
    with pytest.raises(DecodeError, match=where):
        decode(RENDER_REQUESTS, orjson.dumps(raw))


@pytest.mark.parametrize("field", ["reply_to", "repost_of"])
@pytest.mark.parametrize("value", [7, "x" * 65, ["post_1"]])
def test_garbage_in_reply_to_or_repost_of_is_refused(field: str, value: object) -> None:
    post = {
        "post_id": "post_1",
        "request_id": "rq_1",
        "run_id": "r",
        "event_id": "ev_1",
        "channel": "feed",
        "author": "a",
        "tick": 1,
        "sim_minute": 15,
        "body": "hi",
        "source": "llm",
        "score": 0.5,
        field: value,
    }
    with pytest.raises(DecodeError, match=f"/{field}"):
        decode(POSTS, orjson.dumps(post))
