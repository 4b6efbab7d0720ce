"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol.

Enough of CDP for the UI tests: open a page, evaluate JavaScript (awaiting promises),
wait for a condition the page makes true, click and change form fields through the DOM,
take screenshots at a given viewport, and collect console errors and Content Security
Policy violations. The websocket is aiohttp's client (aiohttp comes with faust).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[2] / ".local" / "screenshots"
PAINTED = """
(sel => [...document.querySelectorAll(sel)].map(c => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
  return n;
}))(%s)
"""


class PageError(AssertionError):
    """JavaScript threw, or a condition did not come true in time."""


class Browser:
    """One Chromium process with one page; use as ``async with Browser(tmp) as b``."""

    def __init__(self, profile: Path, width: int = 1200, height: int = 900) -> None:
        self.profile = profile
        self.width = width
        self.height = height
        self.proc: subprocess.Popen[str] | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Browser:
        assert CHROMIUM, "chromium is not installed (apt-get install chromium)"
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        port = await asyncio.to_thread(self._devtools_port)
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t["type"] == "page")
        self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self.reader = asyncio.create_task(self._read())
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")
        await self.viewport(self.width, self.height)
        return self

    def _devtools_port(self) -> int:
        assert self.proc is not None and self.proc.stderr is not None
        deadline = time.monotonic() + 60
        for line in self.proc.stderr:
            found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if found:
                return int(found.group(1))
            if time.monotonic() > deadline:
                break
        raise RuntimeError("chromium did not start its DevTools endpoint")

    async def __aexit__(self, *exc: object) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One CDP command; its result, or PageError with the protocol's error."""
        assert self.ws is not None
        call_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        await self.ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 60)
        if "error" in reply:
            raise PageError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        """Emulate a window of ``width`` x ``height`` CSS pixels (a phone with mobile=True)."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )

    async def goto(self, url: str, ready: str = "document.readyState === 'complete'") -> None:
        """Navigate and wait until ``ready`` (JavaScript) is true."""
        self.events.clear()
        await self.send("Page.navigate", url=url)
        await self.wait_for(ready)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise PageError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, condition: str, timeout_s: float = 30.0) -> None:
        """Wait until the JavaScript ``condition`` is truthy (in JavaScript's sense)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(PageError):
                if await self.evaluate(f"Boolean({condition})"):
                    return
            if time.monotonic() > deadline:
                text = await self.evaluate(
                    "document.body ? document.body.innerText.slice(0, 800) : ''"
                )
                raise PageError(
                    f"not true after {timeout_s:.0f}s: {condition}\n{self.problems()}\n{text}"
                )
            await asyncio.sleep(0.1)

    async def painted(self, selector: str) -> list[int]:
        """Non-transparent pixels of each canvas matching ``selector`` (0: a blank canvas)."""
        counts: list[int] = await self.evaluate(PAINTED % json.dumps(selector))
        return counts

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the viewport) at ``path``."""
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and CSP violations since the last goto."""
        out = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(
                    f"exception: {params['exceptionDetails'].get('text')} "
                    f"{params['exceptionDetails'].get('exception', {}).get('description', '')}"
                )
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                out.append(
                    "console: "
                    + " ".join(
                        str(a.get("value", a.get("description"))) for a in params.get("args", [])
                    )
                )
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                out.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        return out
