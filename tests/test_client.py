"""The API client against a misbehaving server: retries, refusals, contract errors, secrets."""

from __future__ import annotations

import time
from email.utils import formatdate
from importlib.metadata import version

import pytest

from fakes.faultserver import FaultServer, Reply
from fakes.payloads import body, volume
from pipelines.api import ApiError, ContractError, VolumesClient

TOKEN = "canary-token-4f1d9c"
GOOD = Reply(body=body([volume(1), volume(2)]))


def api(url: str, **kw) -> VolumesClient:
    # waits are asserted through what the server saw, or recorded by a test's own `sleep`
    return VolumesClient(
        **{"base_url": url, "token": TOKEN, "backoff_base": 0.01, "sleep": lambda s: None, **kw}
    )


def fetch(client: VolumesClient, tmp_path):
    return client.fetch_to(tmp_path / "body.json")


def test_sends_bearer_key_field_mask_and_user_agent(tmp_path):
    with FaultServer([GOOD]) as srv:
        result = fetch(api(srv.url), tmp_path)
    seen = srv.seen[0]
    assert seen.target.startswith("/v1/volumes?fields=")
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["user-agent"] == f"volcap/{version('volcap')}"
    fields = seen.target.split("fields=")[1].replace("%2C", ",").split(",")
    assert len(fields) == 12
    assert result.byte_count == len(GOOD.body)
    assert (tmp_path / "body.json").read_bytes() == GOOD.body


def test_records_the_response_date_header(tmp_path):
    with FaultServer([Reply(body=GOOD.body, date="Fri, 27 Nov 2026 01:05:03 GMT")]) as srv:
        result = fetch(api(srv.url), tmp_path)
    assert result.date is not None
    assert result.date.isoformat() == "2026-11-27T01:05:03+00:00"


def test_ingest_retries_after_429_honouring_retry_after(tmp_path):
    waits: list[float] = []
    with FaultServer([Reply(429, b"slow down", {"Retry-After": "7"}), GOOD]) as srv:
        client = api(srv.url, sleep=waits.append)
        result = fetch(client, tmp_path)
    assert waits == [7.0]
    assert result.attempts == 2


def test_retry_after_as_http_date_is_honoured(tmp_path):
    when = formatdate(time.time() + 30, usegmt=True)
    waits: list[float] = []
    with FaultServer([Reply(429, b"", {"Retry-After": when}), GOOD]) as srv:
        client = api(srv.url, sleep=waits.append)
        fetch(client, tmp_path)
    assert 25 <= waits[0] <= 31


def test_retry_after_beyond_the_cap_fails_fast(tmp_path):
    with FaultServer([Reply(429, b"", {"Retry-After": "3600"}), GOOD]) as srv:
        with pytest.raises(ApiError, match="exceeds the cap"):
            fetch(api(srv.url, retry_after_cap=60), tmp_path)
    assert len(srv.seen) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_until_success(tmp_path, status):
    with FaultServer([Reply(status, b"oops"), Reply(status, b"oops"), GOOD]) as srv:
        result = fetch(api(srv.url), tmp_path)
    assert result.attempts == 3


def test_attempts_are_bounded(tmp_path):
    with FaultServer([Reply(503, b"down")]) as srv:
        with pytest.raises(ApiError, match=r"gave up on .* after 3 attempts in [\d.]+s: HTTP 503"):
            fetch(api(srv.url, max_attempts=3), tmp_path)
    assert len(srv.seen) == 3


def test_backoff_grows_exponentially_with_jitter(tmp_path):
    waits: list[float] = []
    with FaultServer([Reply(503, b"")] * 4 + [GOOD]) as srv:
        client = api(srv.url, backoff_base=1.0, backoff_max=100, sleep=waits.append)
        fetch(client, tmp_path)
    assert len(waits) == 4
    for i, w in enumerate(waits):
        assert 0.5 * 2**i <= w <= 2**i


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_fail_at_once_naming_status_not_key(tmp_path, status):
    with FaultServer([Reply(status, b"no")]) as srv, pytest.raises(ApiError) as err:
        fetch(api(srv.url), tmp_path)
    assert str(status) in str(err.value)
    assert TOKEN not in str(err.value)
    assert len(srv.seen) == 1


def test_other_client_errors_are_not_retried(tmp_path):
    with FaultServer([Reply(400, b"bad field")]) as srv:
        with pytest.raises(ApiError, match="HTTP 400"):
            fetch(api(srv.url), tmp_path)
    assert len(srv.seen) == 1


def test_html_with_status_200_is_a_contract_error(tmp_path):
    html = Reply(body=b"<html>login</html>", headers={"Content-Type": "text/html"})
    with FaultServer([html]) as srv, pytest.raises(ContractError, match="text/html"):
        fetch(api(srv.url), tmp_path)


def test_truncated_body_is_retried_and_then_fails(tmp_path):
    with FaultServer([Reply(body=GOOD.body * 50, mode="truncate")]) as srv:
        with pytest.raises(ApiError, match="gave up"):
            fetch(api(srv.url, max_attempts=2), tmp_path)
    assert len(srv.seen) == 2


def test_connection_reset_is_retried(tmp_path):
    with FaultServer([Reply(mode="reset"), GOOD]) as srv:
        result = fetch(api(srv.url), tmp_path)
    assert result.attempts == 2


def test_oversized_body_is_refused(tmp_path):
    with FaultServer([Reply(body=b"[" + b" " * 5000 + b"]")]) as srv:
        with pytest.raises(ContractError, match="exceeds the cap"):
            fetch(api(srv.url, max_body_bytes=1000), tmp_path)


def test_oversized_body_without_content_length_is_cut_off(tmp_path):
    chunked = Reply(
        body=b"[" + b" " * 5000 + b"]",
        headers={"Content-Type": "application/json", "Content-Length": ""},
    )
    chunked.headers.pop("Content-Length")
    # Without Content-Length the server streams until close.
    with (
        FaultServer(
            [
                Reply(
                    body=chunked.body,
                    headers={"Content-Type": "application/json", "Content-Length": "5002"},
                )
            ]
        ) as srv,
        pytest.raises(ContractError),
    ):
        fetch(api(srv.url, max_body_bytes=1000), tmp_path)


def test_a_drip_feeding_server_cannot_hold_the_fetch_past_its_deadline(tmp_path):
    drip = Reply(body=GOOD.body * 20, mode="drip", drip_every=0.02)
    with FaultServer([drip]) as srv, pytest.raises(ApiError, match="deadline"):
        fetch(api(srv.url, fetch_deadline=0.3), tmp_path)


def test_a_hanging_server_is_a_stall(tmp_path):
    with FaultServer([Reply(body=GOOD.body, mode="hang")]) as srv:
        with pytest.raises(ApiError, match=r"attempt 1 received 0 of \d+ bytes, then stalled"):
            fetch(api(srv.url, stall_timeout=0.2, max_attempts=1), tmp_path)


STALLED = Reply(body=GOOD.body * 40, mode="stall")


def test_a_stall_is_retried_then_reported_with_bytes_received_and_silence(tmp_path):
    with FaultServer([STALLED]) as srv, pytest.raises(ApiError) as err:
        fetch(api(srv.url, stall_timeout=0.3, max_attempts=2), tmp_path)
    line = str(err.value)
    half, whole = len(STALLED.body) // 2, len(STALLED.body)
    assert line.startswith(f"gave up on {srv.url}/v1/volumes after 2 attempts in ")
    assert f"attempt 2 received {half} of {whole} bytes, then stalled for 0.3s" in line
    assert "\n" not in line and TOKEN not in line and "fields=" not in line
    assert len(srv.seen) == 2


def test_a_stalled_peer_fails_within_the_fetch_deadline(tmp_path):
    """Each attempt stalls for 1 s; the third is cut short by the 3 s deadline, and no fourth
    starts. The deadline is overrun by at most one stall timeout, so 3 + 1 s bounds it."""
    with FaultServer([STALLED]) as srv:
        client = api(srv.url, fetch_deadline=3, stall_timeout=1, sleep=time.sleep)
        started = time.monotonic()
        with pytest.raises(ApiError) as err:
            fetch(client, tmp_path)
        elapsed = time.monotonic() - started
    line = str(err.value)
    assert elapsed < 3 + 1
    assert line.startswith(f"gave up on {srv.url}/v1/volumes at the 3s fetch deadline after ")
    assert len(srv.seen) == 3
    assert "after 3 attempts in " in line
    assert f"attempt 3 received {len(STALLED.body) // 2} of {len(STALLED.body)} bytes" in line
    assert "then stalled for " in line


def test_a_retry_that_would_start_past_the_deadline_is_not_waited_for(tmp_path):
    waits: list[float] = []
    with FaultServer([Reply(429, b"", {"Retry-After": "7"}), GOOD]) as srv:
        client = api(srv.url, fetch_deadline=5, sleep=waits.append)
        with pytest.raises(ApiError) as err:
            fetch(client, tmp_path)
    assert waits == []
    assert len(srv.seen) == 1
    assert "at the 5s fetch deadline after 1 attempt in " in str(err.value)
    assert "HTTP 429; the next attempt, in 7.0s, would start past it" in str(err.value)


def test_redirect_to_another_origin_is_not_followed_and_never_gets_the_key(tmp_path):
    with FaultServer([GOOD], host="127.0.0.2") as elsewhere:
        redirect = Reply(
            302, b"", {"Location": f"{elsewhere.url}/v1/volumes", "Content-Type": "text/plain"}
        )
        with FaultServer([redirect]) as srv:
            with pytest.raises(ApiError, match="another origin"):
                fetch(api(srv.url), tmp_path)
    assert elsewhere.seen == []


def test_same_origin_redirect_is_followed_with_the_key(tmp_path):
    with FaultServer(
        lambda n: Reply(301, b"", {"Location": "/v2/volumes"}) if n == 0 else GOOD
    ) as srv:
        fetch(api(srv.url), tmp_path)
    assert srv.seen[1].target.startswith("/v2/volumes?fields=")
    assert srv.seen[1].headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    "url",
    ["http://api.example.com", "ftp://127.0.0.1", "http://10.0.0.1:8080"],
)
def test_plain_http_is_refused_unless_loopback(tmp_path, url):
    with pytest.raises(ApiError):
        fetch(api(url), tmp_path)


def test_empty_token_is_refused(tmp_path):
    with pytest.raises(ApiError, match="VOLCAP_API_TOKEN"):
        VolumesClient(base_url="http://127.0.0.1:1", token="").fetch_to(tmp_path / "b")


def test_connection_refused_is_retried_then_reported(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ApiError, match="connection error"):
        fetch(api(f"http://127.0.0.1:{port}", max_attempts=2), tmp_path)


def test_the_client_is_plain_python_and_its_repr_hides_the_key():
    """The client imports no Dagster (a script or bench uses it as it is), and its repr, which
    tracebacks and debuggers print, never shows the key."""
    import subprocess
    import sys

    code = "import sys, pipelines.api; sys.exit('dagster' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    assert TOKEN not in repr(VolumesClient(base_url="http://127.0.0.1:1", token=TOKEN))


def test_the_resource_builds_the_client_with_its_configuration():
    from pipelines.resources import VolumeApi

    resource = VolumeApi(base_url="http://127.0.0.1:1", token=TOKEN, max_attempts=2)
    client = resource.client()
    assert (client.base_url, client.token, client.max_attempts) == (
        "http://127.0.0.1:1",
        TOKEN,
        2,
    )
    assert client.fetch_deadline == VolumesClient.fetch_deadline
