"""A deliberately misbehaving HTTP server on loopback, scripted per request.

Raw sockets rather than http.server so a reply can be truncated, drip-fed, reset or left
hanging — the faults a real API and network produce and a well-behaved server cannot.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"[]"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    #: normal | truncate (send half the declared body, close) | drip (1 byte per `drip_every`)
    #: | hang (headers, then nothing) | stall (headers and half the body, then silence on an
    #: open connection until the server stops) | reset (close without a response)
    mode: str = "normal"
    drip_every: float = 0.05
    date: str | None = None  # HTTP Date header; default now


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]


class FaultServer:
    """`with FaultServer([Reply(...), ...]) as srv:` → `srv.url`; replies are used in order,
    the last one repeating. `srv.seen` records every request (headers lower-cased)."""

    def __init__(self, replies: list[Reply] | Callable[[int], Reply], host: str = "127.0.0.1"):
        self._replies = replies
        self.host = host
        self.seen: list[Seen] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()

    def _reply_for(self, n: int) -> Reply:
        if callable(self._replies):
            return self._replies(n)
        return self._replies[min(n, len(self._replies) - 1)]

    def _serve(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            reply = self._reply_for(n)
            n += 1
            threading.Thread(target=self._handle, args=(conn, reply), daemon=True).start()

    def _handle(self, conn: socket.socket, reply: Reply) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            self.seen.append(Seen(method, target, headers))
            if reply.mode == "reset":
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                return
            lines = [f"HTTP/1.1 {reply.status} X"]
            hdrs = {"Date": reply.date or formatdate(usegmt=True), "Connection": "close"}
            hdrs.update(reply.headers)
            hdrs.setdefault("Content-Length", str(len(reply.body)))
            lines += [f"{k}: {v}" for k, v in hdrs.items()]
            conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            try:
                if reply.mode == "normal":
                    conn.sendall(reply.body)
                elif reply.mode == "truncate":
                    conn.sendall(reply.body[: len(reply.body) // 2])
                elif reply.mode == "drip":
                    for i in range(len(reply.body)):
                        if self._stop.is_set():
                            return
                        conn.sendall(reply.body[i : i + 1])
                        time.sleep(reply.drip_every)
                elif reply.mode == "hang":
                    self._stop.wait(30)
                elif reply.mode == "stall":
                    conn.sendall(reply.body[: len(reply.body) // 2])
                    self._stop.wait()
            except OSError:
                return
