"""The provider's `GET /v1/volumes` over a simulated fleet, plus `/_sim/*` control endpoints."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import polars as pl
import polars.selectors as cs

from simulator import render
from simulator.clock import SimClock, from_us, http_date, iso, parse_instant
from simulator.fleet import Fleet

DEFAULT_START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
DEFAULT_TOKEN = "volcap-dev-token"


@dataclass
class _Faults:
    """The next `count` volume-list requests fail with `status` (e.g. 429, 503)."""

    status: int = 0
    count: int = 0
    retry_after: int | None = None


class SimulatorServer:
    """A loopback HTTP server over a `Fleet`; a context manager that serves from a thread.

    >>> with SimulatorServer(volumes=100, token="t") as sim:  # doctest: +SKIP
    ...     httpx.get(f"{sim.url}/v1/volumes", headers={"Authorization": "Bearer t"})
    """

    def __init__(
        self,
        volumes: int = 2_000,
        seed: int = 0,
        token: str = DEFAULT_TOKEN,
        start: datetime = DEFAULT_START,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 0.0,
        forbidden_token: str | None = None,
        fleet: Fleet | None = None,
        layout: render.Layout | str = render.COMPACT,
    ) -> None:
        self.fleet = fleet if fleet is not None else Fleet(volumes, seed, start)
        #: the whitespace layout of `/v1/volumes` bodies (`POST /_sim/layout` changes it)
        self.layout = render.Layout.parse(layout) if isinstance(layout, str) else layout
        self.clock = SimClock(self.fleet.start, speed)
        self.token = token
        self.forbidden_token = forbidden_token
        self.faults = _Faults()
        self.volume_requests = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # - clock

    def now(self) -> datetime:
        return self.clock.now()

    def set_clock(self, at: datetime) -> None:
        self.clock.set(at)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # - test hooks

    def inject_faults(self, status: int, count: int = 1, retry_after: int | None = None) -> None:
        """Fail the next `count` requests to /v1/volumes with `status` (after auth passes)."""
        with self._lock:
            self.faults = _Faults(status, count, retry_after)

    def set_layout(self, layout: render.Layout | str) -> None:
        """Serve `/v1/volumes` in another whitespace layout from the next request on."""
        self.layout = render.Layout.parse(layout) if isinstance(layout, str) else layout

    def prerender(self, fields: Sequence[str] | None = None) -> int:
        """Render the body for the current instant ahead of time; returns its size in bytes."""
        return self.fleet.prerender(self.now(), fields, self.layout)

    # - lifecycle

    def start(self) -> SimulatorServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="volcap-simulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Serve on the calling thread until interrupted."""
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take_fault(self) -> _Faults | None:
        with self._lock:
            self.volume_requests += 1
            if self.faults.count <= 0:
                return None
            self.faults.count -= 1
            return _Faults(self.faults.status, 1, self.faults.retry_after)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _truth_json(frame: pl.DataFrame) -> list[dict[str, Any]]:
    text = frame.with_columns(cs.datetime().dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"))
    return text.to_dicts()


def _handler_for(sim: SimulatorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "volcap-simulator"
        sim_us = 0

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def date_time_string(self, timestamp: float | None = None) -> str:
            # Every response is dated by the simulated clock, not the wall clock.
            return http_date(from_us(self.sim_us))

        def _send(
            self,
            status: int,
            chunks: Sequence[bytes | memoryview],
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(sum(memoryview(c).nbytes for c in chunks)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command == "HEAD":
                return
            try:
                for chunk in chunks:
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _error(self, status: int, code: str, message: str, **headers: str) -> None:
            self._send(status, [_json({"error": code, "message": message})], headers)

        def _drain(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:
            self.sim_us = sim.clock.now_us()
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            if url.path == "/v1/volumes":
                self._list_volumes(query)
            elif url.path.startswith("/_sim/") and self._control_allowed():
                self._control_get(url.path, query)
            else:
                self._error(404, "not_found", f"no such path: {url.path}")

        def do_POST(self) -> None:
            self.sim_us = sim.clock.now_us()
            body = self._drain()
            url = urlsplit(self.path)
            if url.path.startswith("/_sim/") and self._control_allowed():
                try:
                    payload = json.loads(body or b"{}")
                    if not isinstance(payload, dict):
                        raise ValueError("expected a JSON object")
                    self._control_post(url.path, payload)
                except (ValueError, TypeError, KeyError) as e:
                    self._error(400, "bad_request", str(e))
            elif url.path == "/v1/volumes":
                self._not_allowed()
            else:
                self._error(404, "not_found", f"no such path: {url.path}")

        def _not_allowed(self) -> None:
            """Any other method: 405 with the methods the path takes (http.server says 501)."""
            self.sim_us = sim.clock.now_us()
            self._drain()
            url = urlsplit(self.path)
            allow = "GET, POST" if url.path.startswith("/_sim/") else "GET"
            self._error(405, "method_not_allowed", f"use {allow}", Allow=allow)

        def __getattr__(self, name: str) -> Any:
            # http.server looks up `do_<METHOD>`; every method but GET/POST/HEAD lands here.
            if name.startswith("do_"):
                return self._not_allowed
            raise AttributeError(name)

        def _control_allowed(self) -> bool:
            if _is_loopback(self.client_address[0]):
                return True
            self._error(403, "forbidden", "control endpoints answer loopback clients only")
            return False

        def _list_volumes(self, query: dict[str, list[str]]) -> None:
            auth = self.headers.get("Authorization") or ""
            scheme, _, token = auth.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                self._error(401, "unauthorized", "missing bearer token",
                            **{"WWW-Authenticate": "Bearer"})  # fmt: skip
                return
            if sim.forbidden_token is not None and token == sim.forbidden_token:
                self._error(403, "forbidden", "this key may not list volumes")
                return
            if token != sim.token:
                self._error(401, "unauthorized", "invalid API key",
                            **{"WWW-Authenticate": 'Bearer error="invalid_token"'})  # fmt: skip
                return
            fault = sim._take_fault()
            if fault is not None:
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(fault.retry_after)
                self._error(fault.status, "injected_fault", "simulated failure", **headers)
                return
            masks = query.get("fields")
            try:
                if masks is not None and len(masks) != 1:
                    raise render.FieldMaskError("fields given more than once")
                fields = render.parse_fields(masks[0] if masks else None)
            except render.FieldMaskError as e:
                self._error(400, "invalid_fields", str(e))
                return
            body = sim.fleet.render_body(self.sim_us, fields, sim.layout)
            self._send(200, body.chunks)

        def _control_get(self, path: str, query: dict[str, list[str]]) -> None:
            if path == "/_sim/clock":
                self._send(200, [_json({"now": iso(from_us(self.sim_us))})])
            elif path == "/_sim/scenarios":
                self._send(200, [_json(sim.fleet.scenario_ids())])
            elif path == "/_sim/info":
                f = sim.fleet
                info = {"volumes": f.volumes, "seed": f.seed, "start": iso(f.start),
                        "now": iso(from_us(self.sim_us)), "speed": sim.clock.speed,
                        "volume_requests": sim.volume_requests,
                        "layout": sim.layout.as_json()}  # fmt: skip
                self._send(200, [_json(info)])
            elif path == "/_sim/layout":
                self._send(200, [_json(sim.layout.as_json())])
            elif path == "/_sim/truth":
                try:
                    at = parse_instant(query["at"][0]) if "at" in query else from_us(self.sim_us)
                except ValueError as e:
                    self._error(400, "bad_request", f"bad 'at': {e}")
                    return
                ids = [i for v in query.get("volume_id", []) for i in v.split(",") if i]
                frame = sim.fleet.truth(at, ids or None)
                self._send(200, [_json({"at": iso(at), "volumes": _truth_json(frame)})])
            else:
                self._error(404, "not_found", f"no such path: {path}")

        def _control_post(self, path: str, payload: dict[str, Any]) -> None:
            if path == "/_sim/clock":
                if "now" in payload:
                    sim.set_clock(parse_instant(str(payload["now"])))
                if "advance_seconds" in payload:
                    sim.advance(float(payload["advance_seconds"]))
                if "speed" in payload:
                    sim.clock.set(sim.clock.now())
                    sim.clock.speed = float(payload["speed"])
                self._send(200, [_json({"now": iso(sim.now())})])
            elif path == "/_sim/prerender":
                mask = payload.get("fields")
                fields = render.parse_fields(mask) if mask else None
                at = sim.now()
                size = sim.fleet.prerender(at, fields, sim.layout)
                self._send(200, [_json({"now": iso(at), "bytes": size})])
            elif path == "/_sim/layout":
                # {"style": "pretty", "indent": 4, "newline": "\r\n", "padding": " "}
                sim.set_layout(render.Layout.parse(payload))
                self._send(200, [_json(sim.layout.as_json())])
            elif path == "/_sim/faults":
                sim.inject_faults(
                    int(payload["status"]), int(payload.get("count", 1)),
                    payload.get("retry_after"),
                )  # fmt: skip
                self._send(200, [_json({"ok": True})])
            else:
                self._error(404, "not_found", f"no such path: {path}")

        do_HEAD = do_GET

    return Handler


def serve(
    volumes: int = 2_000,
    seed: int = 0,
    token: str = DEFAULT_TOKEN,
    start: datetime = DEFAULT_START,
    host: str = "127.0.0.1",
    port: int = 8080,
    speed: float = 0.0,
    ready: Any = print,
    layout: str = "compact",
) -> None:
    """Build the fleet and serve until interrupted; `ready(url_line)` is called once listening."""
    sim = SimulatorServer(
        volumes=volumes,
        seed=seed,
        token=token,
        start=start,
        host=host,
        port=port,
        speed=speed,
        layout=layout,
    )
    ready(
        f"volcap simulator: {sim.url}  ({volumes} volumes, seed {seed}, "
        f"clock {iso(sim.now())}, speed {speed or 'manual'}, layout {layout})"
    )
    with contextlib.suppress(KeyboardInterrupt):
        sim.serve_forever()
