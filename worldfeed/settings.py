"""The one place that reads the environment.

Every setting has the prefix ``WORLDFEED_`` (``WORLDFEED_KAFKA_BOOTSTRAP`` and so on).
Build :class:`Settings` once at start-up and pass it down; nothing else calls
``os.getenv``.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worldfeed.endpoints import host_ports

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_TOKENS = {"", "change-me", "changeme", "dev-admin-token"}


class Settings(BaseSettings):
    """Runtime configuration for workers, the API and the CLI."""

    # env_parse_none_str: to_env writes an unset optional setting as "None"; it reads back as None
    model_config = SettingsConfigDict(
        env_prefix="WORLDFEED_", env_file=None, extra="ignore", env_parse_none_str="None"
    )

    env: Literal["dev", "test", "prod"] = Field("dev", description="Deployment environment.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of worldfeed's own loggers (libraries stay at INFO)."
    )
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    kafka_replication: int = Field(
        1,
        ge=1,
        le=16,
        description="Replication factor of the topics worldfeed creates (3 on a 3-broker "
        "cluster, whose brokers set min.insync.replicas=2).",
    )
    kafka_session_timeout_s: float = Field(
        15.0,
        ge=6.0,
        le=300.0,
        description="Consumer group session timeout: a worker killed without leaving (kill -9, "
        "a lost machine) keeps its partitions this long before the others take them over. "
        "Raise it if a worker's event loop can block longer (huge worlds).",
    )
    topic_prefix: str = Field("wf.", description="Prefix for every topic name (tests use a uuid).")
    world_partitions: int = Field(
        1, ge=1, le=256, description="Partitions of the world shard topics (= max world workers)."
    )
    app_id: str = Field("worldfeed", description="Faust app id; consumer groups derive from it.")
    store: str = Field("memory://", description="Faust table store (memory:// or rocksdb://).")
    state_dir: Path = Field(
        ROOT / ".local" / "faust", description="Where faust keeps its per-app data directories."
    )
    catalog_dir: Path = Field(ROOT / "catalog" / "worlds" / "town", description="World catalog.")
    clickhouse_dsn: str = Field(
        f"chdb://{ROOT / '.local' / 'chdb'}",
        description="chdb:///path for the embedded engine, or http://user:pass@host:8123/db.",
    )
    clickhouse_cluster: str | None = Field(
        None,
        description="ClickHouse cluster (remote_servers) that `worldfeed migrate` creates the "
        "tables on: ON CLUSTER, Replicated engines and Distributed tables (storage/cluster.py); "
        "unset: one server.",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
    )
    triton_grpc_url: str = Field(
        "127.0.0.1:8011",
        description="Triton gRPC endpoint host:port, or several comma-separated: the client "
        "spreads requests over them and takes one that fails out of rotation (llm/pool.py).",
    )
    triton_model: str = Field("llm", description="Model name in the Triton model repository.")
    llm_chat_template: Literal["chatml", "llama3", "plain"] = Field(
        "chatml",
        description="The served model's chat template, rendered by the client (llm.chat): "
        "chatml for SmolLM2 and Qwen, llama3 for Llama 3 instruct models, plain for none.",
    )
    llm_concurrency: int = Field(
        4, ge=1, le=256, description="Concurrent LLM requests per Triton instance."
    )
    llm_timeout_s: float = Field(60.0, gt=0, description="Timeout of one LLM request.")
    llm_retries: int = Field(3, ge=0, le=20, description="Retries of a failed LLM request.")
    llm_max_tokens: int = Field(
        1024,
        ge=8,
        le=2048,
        description="Cap on the new tokens of one post: a template's max_tokens above it is "
        "lowered to it (the default is above every template's, so templates decide).",
    )
    llm_tokens_per_s: float = Field(
        0.0, ge=0, description="Global LLM budget in prompt+output tokens/s (0 = unlimited)."
    )
    llm_budget_wait_s: float = Field(
        600.0, gt=0, description="Longest wait for the LLM budget before a request is dropped."
    )
    llm_outage_s: float = Field(
        300.0, ge=0, description="How long a render waits for Triton to return before fallback."
    )
    llm_cache: bool = Field(True, description="Answer repeated prompt+sampling from the cache.")
    render_concurrency: int = Field(
        16, ge=1, le=1024, description="Render requests in progress (queued for the LLM budget)."
    )
    sink_batch_size: int = Field(
        10_000, ge=1, description="Rows per ClickHouse insert at most (fewer, larger inserts)."
    )
    sink_flush_s: float = Field(1.0, gt=0, description="Flush a partial batch after this long.")
    tick_timeout_s: float = Field(
        15.0, gt=0, description="Re-send a tick that has not completed after this long."
    )
    snapshot_every_ticks: int = Field(
        4, ge=0, description="Snapshot changed NPCs every N ticks (0 = never; 4 = each sim hour)."
    )
    world_snapshot_every_ticks: int | None = Field(
        None,
        ge=0,
        description="Write a full-world snapshot (topic `snapshots`) every N ticks; unset: once"
        " per simulated day; 0: only on demand. Never changes what a run computes.",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Bind address of a worker's Prometheus /metrics endpoint."
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of a worker's Prometheus /metrics endpoint (0 = off; the API serves "
        "/metrics on its own port). Workers on one host each need their own.",
    )
    api_host: str = Field("127.0.0.1", description="API bind address.")
    api_port: int = Field(8000, ge=1, le=65535, description="API port.")
    admin_token: SecretStr = Field(
        SecretStr(""),
        description="Admin bearer token. Unset: the API generates one on first start and keeps "
        "it in admin_token_file (refused in prod, which must set one).",
    )
    run_seed: int = Field(
        1,
        description="Seed of the run that `worldfeed up` starts when --seed is not given "
        "(`worldfeed run-command start` takes its own --seed, default 1).",
    )
    step_minutes: int = Field(15, ge=1, le=1440, description="Simulated minutes per tick.")
    decide_budget: int = Field(
        0,
        ge=-1,
        le=100_000,
        description="NPCs that ask the LLM what to do, per tick, in the runs this process "
        "starts: 0 (default) = no deliberation, -1 = the catalog's decide.json budget_per_tick.",
    )
    decide_deadline_ticks: int = Field(
        0,
        ge=0,
        le=96,
        description="Ticks from a decision's request to its application "
        "(0 = the catalog's deadline_ticks).",
    )
    decide_timeout_s: float = Field(
        20.0,
        gt=0,
        description="Wall-clock time the deliberate stage gives one decision; then it records a "
        "timeout (the rules decide) and ignores a later answer.",
    )
    speed: float = Field(0.0, ge=0, description="0 = as fast as possible; N = N x real time.")

    admin_token_file: Path = Field(
        ROOT / ".local" / "admin-token",
        description="Where the API keeps the admin token it generates when admin_token is unset.",
    )
    api_allowed_hosts: list[str] = Field(
        ["localhost", "127.0.0.1", "::1"],
        description="Host header values the API answers (others get a 400); '*' allows any. "
        "Add the public name when the API is reached through one.",
    )
    api_cache_max_bytes: int = Field(
        64 * 2**20, ge=0, description="Memory bound of the /feed page cache (bodies and keys)."
    )
    api_timeline_posts: int = Field(
        500,
        ge=0,
        le=500,
        description="Newest posts kept in memory per feed filter where the sink runs in the "
        "API (0: none; every /feed page is read from ClickHouse). See api/timeline.py.",
    )
    api_timeline_max_bytes: int = Field(
        128 * 2**20, ge=0, description="Memory bound of the in-memory feed timelines."
    )
    api_feed_index_max_posts: int = Field(
        20_000_000,
        ge=0,
        description="Where the sink runs in the API: every stored post's place in its run's "
        "feeds is kept in memory (about 110 bytes a post) and its body in a log file, so that "
        "any page of a run's feed is served without a query; past this many posts the index "
        "switches off (0: never on). See api/postindex.py.",
    )
    stream_max_clients: int = Field(
        64, ge=1, le=10_000, description="Concurrent live streams (/stream/posts); then 503."
    )
    stream_lifetime_s: float = Field(
        3600.0,
        gt=0,
        description="A live stream ends after this long; the client reconnects with its "
        "Last-Event-ID and misses nothing.",
    )
    stream_idle_s: float = Field(
        60.0,
        gt=0,
        description="A live stream whose client takes no data for this long is closed.",
    )
    stream_rows_per_poll: int = Field(
        2000, ge=1, le=100_000, description="Most posts one live stream reads per poll."
    )
    world_max_relationships: int = Field(
        200_000,
        ge=1,
        description="Cap of POST /admin/worlds on npcs x neighbors (100) x relationship_density: "
        "200,000 is about 250 MB loaded (20,000 NPCs at density 1 would be 2,000,000, ~3.6 GB).",
    )
    worlds_dir: Path = Field(
        ROOT / ".local" / "worlds",
        description="A user's own worlds (POST /admin/worlds writes there); runs name them.",
    )
    world_cache_max_bytes: int = Field(
        512 * 2**20,
        ge=0,
        description="Estimated memory of the world catalogs the API keeps loaded.",
    )

    @field_validator("triton_grpc_url")
    @classmethod
    def _check_triton_urls(cls, value: str) -> str:
        """Each comma-separated entry must be host:port; the error names the bad one."""
        host_ports(value, "Triton URL")
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        token = self.admin_token.get_secret_value()
        if token and token.strip() in PLACEHOLDER_TOKENS:
            raise ValueError(
                "WORLDFEED_ADMIN_TOKEN is a published placeholder: set a real secret "
                "(openssl rand -hex 32), or unset it and the API generates one"
            )
        if self.env == "prod" and not token:
            raise ValueError("WORLDFEED_ADMIN_TOKEN must be set to a real secret when env=prod")
        return self

    @property
    def triton_grpc_urls(self) -> list[str]:
        """The Triton endpoints of ``triton_grpc_url``, in order."""
        return host_ports(self.triton_grpc_url, "Triton URL")

    @cached_property
    def ticks_per_day(self) -> int:
        """Ticks in one simulated day."""
        return (24 * 60) // self.step_minutes

    def to_env(self) -> dict[str, str]:
        """These settings as ``WORLDFEED_*`` variables, for a subprocess to build the same."""
        env = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, list | dict):
                value = json.dumps(value)  # pydantic-settings reads complex values as JSON
            env[f"WORLDFEED_{name.upper()}"] = str(value)
        return env

    def topic(self, name: str) -> str:
        """Full topic name for a topic declared in :mod:`topics`."""
        return f"{self.topic_prefix}{name}"
