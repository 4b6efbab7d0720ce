"""Kafka client adapters shared by the outer layers (API, CLI): topic admin, run commands."""
