"""Lists of ``host:port`` endpoints, as settings and command lines give them."""

from __future__ import annotations

from collections.abc import Sequence


def host_ports(value: str | Sequence[str], what: str = "endpoint") -> list[str]:
    """The ``host:port`` entries of a comma-separated list (or a list), each checked.

    Raises:
        ValueError: The list is empty, an entry is listed twice, or an entry is not
            ``host:port`` with a port in 1..65535 (the message names the entry).
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    out = [item.strip() for item in items]
    if not any(out):
        raise ValueError(f"no {what} given (expected host:port[,host:port...])")
    for entry in out:
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{what} {entry!r} is not host:port (port 1-65535)")
    if len(set(out)) != len(out):
        raise ValueError(f"{what} listed twice in {','.join(out)!r}")
    return out
