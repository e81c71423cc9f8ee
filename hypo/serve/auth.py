"""Who may post data and who may look: per-recorder tokens and viewer tokens, in one JSON file.

    {"recorders": {"OR-1 recorder": "<token>", "OR-2 recorder": "<token>"},
     "viewers": {"research screen": "<token>"}}

A recorder presents its token where a Vital Recorder presents its registered code: the payload's ``vrcode`` (VitalDB's
``vrcode`` plays this role), or, for senders that can, an ``Authorization: Bearer`` header (HTTP) or the Socket.IO
``auth`` ``{"token": ...}`` / ``?token=`` query. The log names the recorder (the file's key), never the token.

The page and its live feed need a viewer token (``?token=`` once; it is then kept in a cookie) unless the server
listens on the loopback interface only, where everyone who can reach it is on this machine. Tokens are compared in
constant time. ``hypo serve`` without ``--tokens`` writes a file with one recorder and one viewer token (random,
mode 0600) into the log folder and says where it is.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
from pathlib import Path

from hypo.errors import ConfigError

TOKENS_FILE = "tokens.json"
MIN_TOKEN_LEN = 8


class Tokens:
    """Recorder and viewer tokens (see the module docstring).

    Args:
        recorders: Recorder name -> token.
        viewers: Viewer name -> token.
    """

    def __init__(self, recorders: dict[str, str], viewers: dict[str, str] | None = None) -> None:
        for what, d in (("recorders", recorders), ("viewers", viewers or {})):
            for name, tok in d.items():
                if not isinstance(tok, str) or len(tok) < MIN_TOKEN_LEN:
                    raise ConfigError(f"tokens: {what} {name!r} needs a token of at least {MIN_TOKEN_LEN} characters")
        if not recorders:
            raise ConfigError("tokens: no recorder token; nothing could post data")
        self.recorders = dict(recorders)
        self.viewers = dict(viewers or {})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokens:
        """Read a tokens file.

        Raises:
            ConfigError: A missing or unreadable file, or one without recorder tokens.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"tokens file {path}: cannot read it ({exc.strerror or exc})") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"tokens file {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict) or not isinstance(data.get("recorders"), dict):
            raise ConfigError(f"tokens file {path}: expected {{\"recorders\": {{name: token}}, \"viewers\": {{...}}}}")
        return cls(data["recorders"], data.get("viewers") or {})

    @classmethod
    def create(cls, path: str | os.PathLike) -> Tokens:
        """Write a new tokens file (one recorder, one viewer; random tokens; mode 0600) and return it."""
        tokens = cls({"recorder-1": secrets.token_urlsafe(18)}, {"viewer-1": secrets.token_urlsafe(18)})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"recorders": tokens.recorders, "viewers": tokens.viewers}, f, indent=2)
        return tokens

    @staticmethod
    def _find(table: dict[str, str], token: str | None) -> str | None:
        if not token or not isinstance(token, str):
            return None
        found = None
        for name, tok in table.items():  # every entry is compared: the time does not tell which one matched
            if hmac.compare_digest(tok.encode(), token.encode()):
                found = name
        return found

    def recorder(self, token: str | None) -> str | None:
        """The recorder a token belongs to, or None."""
        return self._find(self.recorders, token)

    def viewer(self, token: str | None) -> str | None:
        """The viewer a token belongs to, or None."""
        return self._find(self.viewers, token)

    def first_recorder_token(self) -> str:
        """A recorder token (for ``hypo replay --token-file``)."""
        return next(iter(self.recorders.values()))


def tokens_for(log_dir: str | os.PathLike, path: str | os.PathLike | None) -> tuple[Tokens, str, bool]:
    """The server's tokens: ``path`` when given, else ``LOG/tokens.json`` (created when missing).

    Returns:
        ``(tokens, file, created)``.
    """
    if path:
        return Tokens.load(path), os.fspath(path), False
    default = Path(log_dir) / TOKENS_FILE
    if default.exists():
        return Tokens.load(default), os.fspath(default), False
    return Tokens.create(default), os.fspath(default), True


def is_loopback(host: str) -> bool:
    """Whether a bind address is the loopback interface only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
