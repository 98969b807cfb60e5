"""Keys reach the redactor by registration: configuration registers the variables holding them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import config, redaction


def test_a_sources_key_is_redacted_and_so_is_its_rotated_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(
        '[[sources]]\nname = "eu"\nurl = "https://eu.example"\ntoken_env = "KEY_EU_R"\n'
    )
    monkeypatch.setenv("KEY_EU_R", "first-key-0a1b")
    assert redaction.redact("sent first-key-0a1b") == "sent first-key-0a1b"  # not registered yet
    config.sources({"VOLCAP_SOURCES": str(path)})
    assert redaction.redact("sent first-key-0a1b") == "sent [REDACTED]"
    monkeypatch.setenv("KEY_EU_R", "second-key-2c3d")  # rotated while the process runs
    assert redaction.redact("sent second-key-2c3d") == "sent [REDACTED]"


def test_the_single_source_key_is_redacted_without_a_sources_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOLCAP_API_TOKEN", "plain-key-7e8f")
    assert redaction.redact("token plain-key-7e8f") == "token [REDACTED]"


def test_the_environment_is_read_in_pipelines_config_alone() -> None:
    package = Path(config.__file__).parent
    readers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "config.py"
        and any(word in path.read_text() for word in ("os.environ", "getenv("))
    )
    assert readers == []
