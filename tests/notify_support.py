"""Real HTTP receivers on loopback for the notifier's tests, and the records they feed it."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agentaudit.schemas import AvroCodec

NOW_US = time.time_ns() // 1000


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A ThreadingHTTPServer on 127.0.0.1 that records every POST.

    ``statuses``: answers to give first, in order (then 200). ``mode``: ``ok``, ``hang`` (never answers within
    a minute) or ``huge`` (a 200 with an endless body). :meth:`stop` and :meth:`start` again on the same port
    make an outage (connection refused in between).
    """

    statuses: list[int] = field(default_factory=list)
    mode: str = "ok"
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def accepted(self) -> list[Received]:
        """Requests answered with a 2xx (the ones that count as delivered)."""
        return [r for r in self.requests if r.headers.get("x-answered") == "200"]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                headers = {k.lower(): v for k, v in self.headers.items()}
                headers["x-answered"] = str(status)
                receiver.requests.append(Received(self.path, headers, body, time.time()))
                if receiver.mode == "hang":
                    receiver._release.wait(60)
                    return
                if receiver.mode == "huge":
                    self.send_response(200)
                    self.send_header("Content-Length", str(10 * 1024**3))
                    self.end_headers()
                    chunk = b"x" * 65_536
                    try:
                        for _ in range(160_000):  # 10 GiB, if anyone read it
                            self.wfile.write(chunk)
                    except OSError:
                        pass
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """The accepted requests once there are ``count`` of them (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.accepted) >= count:
                return self.accepted
            time.sleep(0.02)
        raise AssertionError(f"{self.url}: {len(self.accepted)} accepted of {count} expected in {timeout}s: "
                             f"{[r.body[:200] for r in self.requests]}")


def owners_file(path: Path, routes: list[dict[str, Any]], *, team: str = "payments") -> Path:
    """An owners file whose one team owns every tenant and has ``routes``."""
    doc = {"teams": {team: {"oncall": ["alice@example.com"], "routes": routes}},
           "owners": [{"tenant": "*", "team": team}]}
    path.write_text(json.dumps(doc))
    return path


def incident_record(incident_id: str | None = None, *, count: int = 1, summary: str = "shell_exec called",
                    **fields: Any) -> dict[str, Any]:
    record = {"incident_id": incident_id or f"inc-{uuid.uuid4().hex[:12]}", "tenant": "acme",
              "rule_id": "security.dangerous-tool", "rule_revision": "r1", "severity": "high", "mode": "detect",
              "owner": "", "key": "agent-1", "window_start_us": 0, "window_end_us": 0, "agent_id": "agent-1",
              "trace_id": "trace-1", "event_ids": ["e-1"], "first_seen_us": NOW_US, "last_seen_us": NOW_US,
              "count": count, "summary": summary, "tags": [], "attributes": {}}
    record.update(fields)
    return record


def lifecycle_record(incident_id: str, kind: str, *, actor: str = "ann@example.com", event_id: str | None = None,
                     at_us: int | None = None, **attributes: str) -> dict[str, Any]:
    return {"event_id": event_id or str(uuid.uuid4()), "incident_id": incident_id, "tenant": "acme", "type": kind,
            "actor": {"type": "human" if "@" in actor else "system", "id": actor}, "assignee": None, "note": None,
            "at_us": at_us or time.time_ns() // 1000, "attributes": dict(attributes)}


INCIDENT_CODEC = AvroCodec("incident")
LIFECYCLE_CODEC = AvroCodec("incident_lifecycle")
