"""Keep secrets out of logs and messages: a redactor, a logging filter, and their installation."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator

_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",]+")
_MASK = "[REDACTED]"
_registered: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secret(secret: str) -> None:
    """Redact this value too (the API resource registers its key when it is set up)."""
    if len(secret) >= 4:
        with _lock:
            _registered.add(secret)


_readers: dict[str, Callable[[], str]] = {}


def register_secret_reader(name: str, read: Callable[[], str]) -> None:
    """Redact whatever `read()` returns when text is redacted, so a key rotated while a process
    runs is redacted too. `pipelines.config` registers one per variable holding a key (the
    usual ones, and each source's `token_env` when a sources file is loaded); `name` keeps a
    second registration of the same variable from adding a second reader."""
    with _lock:
        _readers[name] = read


def _secrets() -> list[str]:
    with _lock:
        found = set(_registered)
        readers = list(_readers.values())
    for read in readers:
        value = read()
        if len(value) >= 4:
            found.add(value)
    return sorted(found, key=len, reverse=True)


def redact(text: str) -> str:
    """Replace the configured key and anything after `Bearer ` with a mask."""
    for secret in _secrets():
        text = text.replace(secret, _MASK)
    return _BEARER.sub(rf"\1{_MASK}", text)


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is logging's problem, not ours
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None


class RedactingFilter(logging.Filter):
    """Redacts every record passing through a handler (a last line of defence)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def install() -> None:
    """Redact every log record at creation, attach the filter to the root handlers, and
    silence httpx/httpcore request logging (their DEBUG output includes headers).

    The record factory is what reaches Dagster: `context.log` is a `logging.Logger` whose
    records (and so the event log's messages) are made by it, while handler filters only see
    handlers that exist when this runs. Idempotent.
    """
    global _installed
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


class ScrubbedError(RuntimeError):
    """An error whose message carried a secret, re-raised with the secret masked."""


@contextlib.contextmanager
def scrubbed_errors() -> Iterator[None]:
    """Re-raise any exception whose text holds a secret as a ScrubbedError with it masked, and
    without the original attached (Dagster stores a failed step's error, cause and context)."""
    try:
        yield
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        cleaned = redact(text)
        if cleaned == text:
            raise
        raise ScrubbedError(cleaned) from None
