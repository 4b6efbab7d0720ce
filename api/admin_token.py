"""The admin token: the configured one, or one generated on first start and kept on disk.

``WORLDFEED_ADMIN_TOKEN`` wins when set (:class:`~worldfeed.settings.Settings` refuses the
published placeholders). Unset, as on the ``make run`` path, the API reads
``admin_token_file`` (``.local/admin-token``), creating it on first start with a random
token, readable by its owner only (mode 0600). A file readable by others, or holding a
placeholder or too short a token, is refused rather than trusted.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from pydantic import SecretStr

from worldfeed.settings import PLACEHOLDER_TOKENS, Settings

log = logging.getLogger(__name__)

MIN_LENGTH = 16


class AdminTokenError(RuntimeError):
    """The admin token file cannot be used (names the file and what is wrong)."""


def read_or_create(path: Path) -> str:
    """The token kept in ``path``; a fresh random one written there (0600) if none.

    The new file is written under a temporary name and linked into place, so a process
    starting at the same moment reads either no file or a whole token, never a partial one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        token = secrets.token_urlsafe(32)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            log.warning("generated an admin token in %s (mode 0600)", path)
            return token
        finally:
            tmp.unlink(missing_ok=True)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AdminTokenError(
            f"{path} is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600 it, "
            "or delete it to get a new token"
        )
    token = path.read_text().strip()
    if token in PLACEHOLDER_TOKENS or len(token) < MIN_LENGTH:
        raise AdminTokenError(
            f"{path} holds a placeholder or a token shorter than {MIN_LENGTH} characters: "
            "delete it to get a new one"
        )
    return token


def with_admin_token(settings: Settings) -> Settings:
    """``settings`` with an admin token: the configured one, else the kept or generated one."""
    if settings.admin_token.get_secret_value():
        return settings
    token = read_or_create(settings.admin_token_file)
    log.warning("admin routes: %s", usage(settings))
    return settings.model_copy(update={"admin_token": SecretStr(token)})


def usage(settings: Settings) -> str:
    """How to call an admin route: with ``$WORLDFEED_ADMIN_TOKEN`` when set, else the file."""
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host  # noqa: S104 - compared, not bound
    curl = f"curl -X POST http://{host}:{settings.api_port}/admin/runs"
    if settings.admin_token.get_secret_value():
        return f'{curl} -H "Authorization: Bearer $WORLDFEED_ADMIN_TOKEN" ...'
    path = settings.admin_token_file
    return f'token in {path}: {curl} -H "Authorization: Bearer $(cat {path})" ...'
