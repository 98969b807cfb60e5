"""Keep secrets out of logs and messages: a redactor and a logging filter that applies it."""

from __future__ import annotations

import logging
import os
import re

_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",]+")
_MASK = "[REDACTED]"


def _secrets() -> list[str]:
    token = os.environ.get("VOLCAP_API_TOKEN", "")
    return [token] if len(token) >= 4 else []


def redact(text: str) -> str:
    """Replace the configured key and anything after `Bearer ` with a mask."""
    for secret in _secrets():
        text = text.replace(secret, _MASK)
    return _BEARER.sub(rf"\1{_MASK}", text)


class RedactingFilter(logging.Filter):
    """Redacts every record passing through a handler (a last line of defence)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install() -> None:
    """Attach the filter to the root handlers and silence httpx/httpcore request logging
    (their DEBUG output includes headers)."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
