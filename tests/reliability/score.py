"""Record one family's figures for the scorecard (a no-op unless `VOLCAP_SCORECARD` names a file)."""

from __future__ import annotations

import json
import os
from typing import Any


def record(family: str, **figures: Any) -> None:
    """Append `figures` for `family` to the scorecard file (JSON lines)."""
    path = os.environ.get("VOLCAP_SCORECARD")
    if not path:
        return
    with open(path, "a") as out:
        out.write(json.dumps({"family": family, **figures}, default=str) + "\n")
