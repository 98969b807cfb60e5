"""Valid API payloads to start from; each test changes only what it is about."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def volume(n: int = 1, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"vol-{n:06d}",
        "name": f"data volume {n}",
        "created_at": "2026-01-01T00:00:00Z",
        "used_bytes": 1_000 * n,
        "inode_count": 10 * n,
        "mount_count": 1,
        "max_size_bytes": 1_000_000,
        "max_file_count": 100_000,
        "max_mounts": 4,
        "last_reconciled_at": "2026-11-27T00:55:00Z",
        "status": "attached",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def body(volumes: list[dict[str, Any]]) -> bytes:
    return json.dumps(volumes).encode()


def write_body(tmp_path: Path, payload: object, name: str = "body.json") -> Path:
    path = tmp_path / name
    path.write_bytes(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    return path
