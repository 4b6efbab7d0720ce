"""Prometheus metrics of the API process (and of its embedded sink)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from worldfeed import metrics

router = APIRouter(prefix="/metrics", tags=["metrics"])


@router.get("", include_in_schema=False)
async def read_metrics() -> Response:
    """This process's series in the Prometheus text format (worldfeed/metrics.py)."""
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
