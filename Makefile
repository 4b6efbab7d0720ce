# worldfeed — one command to run, one to test. `make help` lists the targets.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: help install run test test-unit test-integration lint format schemas bench stop clean \
	bench-1m bench-branch bench-decide bench-spread chaos eval-posts

help: ## this list
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

install: ## install everything the local path needs (.venv, .venv-triton, Kafka jars)
	deploy/local/install.sh

run: install ## start Kafka, Triton, workers and the API; play Day 1; print where to read the feed
	.venv/bin/worldfeed up

test: install ## the whole suite; starts the Kafka broker and Triton server it needs
	$(PY) -m pytest

test-unit: ## unit tests only (no services)
	$(PY) -m pytest tests/unit

test-integration: install ## integration and end-to-end tests
	$(PY) -m pytest tests/integration tests/e2e tests/api

lint: install ## ruff (lint + format check), mypy --strict, import-linter layer contracts (.importlinter)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	.venv/bin/lint-imports

format: ## ruff format
	$(PY) -m ruff format .

schemas: ## regenerate topic and catalog JSON Schemas
	.venv/bin/worldfeed schemas
	$(PY) -m catalog.schemas

bench: install ## benchmarks (world throughput, pipeline vs raw Kafka)
	$(PY) -m bench.world

bench-1m: install ## time per tick from 10k to 1M NPCs, 1 worker x 1 partition then 2 x 4 (about an hour; the 1M world's index is built once, ~6 min, 10 GiB)
	$(PY) -m bench.world --sizes 10000,100000,1000000 --ticks 4 --skip-pipeline
	$(PY) -m bench.world --sizes 10000,100000,1000000 --ticks 4 --workers 2 --partitions 4 --skip-pipeline

bench-api: ## feed API p50/p99 at 200 req/s over 10M posts, 5,000 posts/s arriving (chDB, embedded sink, uvicorn on loopback)
	$(PY) -m bench.api_feed

stop: ## stop a local Kafka / Triton left running
	-deploy/local/kafka.sh stop
	-deploy/local/triton.sh stop

clean: stop ## remove local state (topics data, chDB, logs)
	rm -rf .local/kafka-data-* .local/chdb .local/logs .local/index-cache

eval-posts: ## post quality over Day 1 of three seeds: grounded, invented names, contradictions, tone, headlines, attribution, LLM vs fallback (starts Triton unless URL=host:grpc_port)
	$(PY) -m bench.eval_posts $(if $(URL),--url $(URL),)

bench-llm: ## LLM benchmark: posts/s, tokens/s, latency p50/p90/p99 at concurrency 1/2/4 (starts Triton unless URL=host:grpc_port)
	$(PY) -m bench.llm $(if $(URL),--url $(URL),)

bench-decide: ## LLM decisions: decisions/s, p50/p99 at concurrency 1/2/4, valid/repaired/rejected/fallback %, ticks/s off vs on, LLM calls per 1000 NPC-ticks with/without cohorts (starts Triton unless URL=host:grpc_port)
	$(PY) -m bench.decide $(if $(URL),--url $(URL),)

bench-spread: ## the feed loop: exposures and reactions per tick at 1k/10k NPCs, added cost per tick, a scandal's spread under each recommender (in process)
	$(PY) -m bench.spread

bench-branch: install ## snapshot size/time at 10k and 100k NPCs, branch -> first tick, replay speed vs the original run
	$(PY) -m bench.branch

chaos: install ## repeated fault rounds on a real multi-worker run (ROUNDS=50); invariants checked after each
	$(PY) -m bench.chaos --rounds $(or $(ROUNDS),50)
