"""deploy/observe/: the Prometheus scrape config and the Grafana dashboard keep up with the
series worldfeed/metrics.py defines and the ports compose gives the processes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from worldfeed.metrics import REGISTRY
from worldfeed.settings import ROOT

OBSERVE = ROOT / "deploy" / "observe"
DASHBOARD = OBSERVE / "grafana" / "dashboards" / "worldfeed.json"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
NAMED = (  # the list: each has a panel
    "worldfeed_tick_duration_seconds",
    "worldfeed_barrier_wait_seconds",
    "worldfeed_stage_messages_total",
    "worldfeed_consumer_lag_messages",
    "worldfeed_llm_latency_seconds",
    "worldfeed_llm_tokens_total",
    "worldfeed_llm_cache_lookups_total",
    "worldfeed_llm_budget_queue",
    "worldfeed_dead_letters_total",
    "worldfeed_sink_batch_messages",
    "worldfeed_sink_insert_seconds",
    "worldfeed_api_request_duration_seconds",
)


def sample_names() -> set[str]:
    """Every sample name the catalog can expose."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("worldfeed_"):
            names.update(family.name + s for s in SUFFIXES[family.type])
    return names


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_the_dashboard_queries_only_series_that_exist() -> None:
    known = sample_names()
    for expr in expressions():
        used = set(re.findall(r"worldfeed_[a-z_]+", expr))
        assert used and used <= known, (expr, used - known)


def test_the_dashboard_shows_every_named_series() -> None:
    text = " ".join(expressions())
    for name in NAMED:
        assert name in text, name


def test_panels_use_the_provisioned_datasource() -> None:
    source = (OBSERVE / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    uid = re.search(r"uid: (\S+)", source)
    assert uid
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        assert panel["datasource"]["uid"] == uid.group(1), panel["title"]


def test_prometheus_scrapes_the_ports_compose_gives() -> None:
    yaml: Any = pytest.importorskip("yaml")
    config = yaml.safe_load((OBSERVE / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    env = compose["x-worldfeed-env"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in ("worker", "sink"):
        sd = jobs[name]["dns_sd_configs"][0]
        assert sd["names"] == [name] and str(sd["port"]) == env["WORLDFEED_METRICS_PORT"]
    assert jobs["api"]["static_configs"][0]["targets"] == [f"api:{env['WORLDFEED_API_PORT']}"]
    allowed = json.loads(compose["services"]["api"]["environment"]["WORLDFEED_API_ALLOWED_HOSTS"])
    assert "api" in allowed, "the API's host guard would answer Prometheus with a 400"
