"""What each route kind receives: the body and headers of one notification.

- ``slack``: ``{"text", "blocks"}``; every text that came from an event is escaped (``&``, ``<``, ``>`` as
  Slack documents, and ``@`` mentions broken with a zero-width joiner), so an incident cannot ping
  ``<!channel>`` or ``@here`` or plant a link.
- ``pagerduty``: an Events API v2 event; ``event_action`` trigger (opened, escalated, reopened),
  acknowledge or resolve, ``dedup_key`` = incident id, the deep link in ``links``.
- ``alertmanager``: Alertmanager's webhook payload (version 4), one alert, ``firing`` or ``resolved``.
- ``webhook``: the notification as JSON, signed: ``X-Agentaudit-Timestamp: <unix seconds>`` and
  ``X-Agentaudit-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``. Verify with
  :func:`verify_signature` (or the same three lines anywhere), and refuse old timestamps.

Every kind carries ``X-Agentaudit-Delivery``, stable per incident, state and route: a receiver that
keeps it can drop the rare repeat a crash between delivery and its record can cause.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

__all__ = ["Notification", "deep_link", "render", "sign", "slack_escape", "verify_signature"]

TIMESTAMP_HEADER = "X-Agentaudit-Timestamp"
SIGNATURE_HEADER = "X-Agentaudit-Signature"
DELIVERY_HEADER = "X-Agentaudit-Delivery"
_PD_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "info": "info"}
_PD_ACTION = {"opened": "trigger", "escalated": "trigger", "reopened": "trigger", "acknowledged": "acknowledge",
              "resolved": "resolve"}
_MENTION = re.compile(r"@(?=\w)")
_SLACK_LIMIT = 2_900  # a section block's text is at most 3000 characters


@dataclass(frozen=True, slots=True)
class Notification:
    """One state change of one incident, for one route (the worker's unit of delivery)."""

    incident_id: str
    state: str  # opened, acknowledged, escalated, resolved, reopened
    key: str  # the dedup key within the incident, e.g. "escalated/2"
    route_id: str
    tenant: str
    team: str
    rule_id: str
    severity: str
    summary: str
    agent_id: str
    actor: str
    note: str
    level: int
    first_seen_us: int
    at_us: int
    link: str

    @property
    def delivery_id(self) -> str:
        return f"{self.incident_id}/{self.key}/{self.route_id}"


def deep_link(dashboard_url: str, incident_id: str) -> str:
    """The dashboard page of one incident."""
    return f"{dashboard_url.rstrip('/')}/?page=incident&incident={quote(incident_id, safe='')}"


def slack_escape(text: str, limit: int = _SLACK_LIMIT) -> str:
    """Text from an event made inert for Slack mrkdwn: no mention, no link, no markup, bounded."""
    text = text[:limit].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MENTION.sub("@\u2060", text)  # "@here" -> "@<word joiner>here": shown alike, never a mention
    # *bold* _italic_ ~strike~ `code`: break them the same way, shown unchanged
    return re.sub(r"([*_~`])", "\u2060\\1\u2060", text)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat().replace("+00:00", "Z")


def _headline(n: Notification) -> str:
    what = {"opened": "opened", "acknowledged": f"acknowledged by {n.actor}", "resolved": f"resolved by {n.actor}",
            "reopened": f"reopened by {n.actor}", "escalated": f"escalated to level {n.level}"}.get(n.state, n.state)
    return f"[{n.severity.upper()}] {n.rule_id} {what}"


def _slack(n: Notification) -> dict[str, Any]:
    headline = slack_escape(_headline(n))
    lines = [f"*{headline}*", slack_escape(n.summary or n.rule_id),
             f"tenant {slack_escape(n.tenant)} · agent {slack_escape(n.agent_id or '-')} · team {slack_escape(n.team)}"]
    if n.note:
        lines.append(f"note: {slack_escape(n.note, 500)}")
    lines.append(f"<{n.link}|Open incident {slack_escape(n.incident_id, 200)}>")
    return {"text": f"{headline}: {slack_escape(n.summary or n.rule_id, 300)}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}],
            "unfurl_links": False}


def _pagerduty(n: Notification, routing_key: str) -> dict[str, Any]:
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": _PD_ACTION[n.state],
                             "dedup_key": n.incident_id, "client": "agentaudit", "client_url": n.link}
    if event["event_action"] == "trigger":
        event["payload"] = {
            "summary": f"{_headline(n)}: {n.summary or n.rule_id}"[:1024], "source": n.agent_id or n.tenant,
            "severity": _PD_SEVERITY.get(n.severity, "warning"), "timestamp": _iso(n.at_us), "component": n.agent_id,
            "group": n.tenant, "class": n.rule_id,
            "custom_details": {"incident_id": n.incident_id, "team": n.team, "state": n.state, "level": n.level,
                               "note": n.note},
        }
        event["links"] = [{"href": n.link, "text": "agentaudit incident"}]
    return event


def _alertmanager(n: Notification) -> dict[str, Any]:
    status = "resolved" if n.state == "resolved" else "firing"
    labels = {"alertname": n.rule_id, "severity": n.severity, "incident_id": n.incident_id, "tenant": n.tenant,
              "team": n.team, "agent_id": n.agent_id}
    annotations = {"summary": n.summary or n.rule_id, "description": _headline(n), "state": n.state,
                   "level": str(n.level), "dashboard": n.link}
    alert = {"status": status, "labels": labels, "annotations": annotations, "startsAt": _iso(n.first_seen_us),
             "endsAt": _iso(n.at_us) if status == "resolved" else "0001-01-01T00:00:00Z", "generatorURL": n.link,
             "fingerprint": hashlib.sha256(n.incident_id.encode()).hexdigest()[:16]}
    return {"version": "4", "groupKey": f"{{}}:{{incident_id=\"{n.incident_id}\"}}", "truncatedAlerts": 0,
            "status": status, "receiver": n.team, "groupLabels": {"incident_id": n.incident_id},
            "commonLabels": labels, "commonAnnotations": annotations, "externalURL": n.link.split("/?", 1)[0],
            "alerts": [alert]}


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Agentaudit-Signature`` value of ``body`` sent at ``timestamp`` (unix seconds)."""
    return "v1=" + hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, timestamp: str, signature: str, *, tolerance_s: int = 300,
                     now: float | None = None) -> bool:
    """True when ``signature`` is ``body``'s at ``timestamp`` and the timestamp is within ``tolerance_s``."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, sent), signature)


def render(route: Any, n: Notification, *, now: float | None = None) -> tuple[bytes, dict[str, str]]:
    """The request body and headers of notification ``n`` for ``route``."""
    headers = {"Content-Type": "application/json", DELIVERY_HEADER: n.delivery_id, "User-Agent": "agentaudit-notify"}
    if route.kind == "slack":
        doc = _slack(n)
    elif route.kind == "pagerduty":
        doc = _pagerduty(n, route.routing_key.get_secret_value())
    elif route.kind == "alertmanager":
        doc = _alertmanager(n)
    else:
        doc = {"type": f"incident.{n.state}", "delivery_id": n.delivery_id, "incident": asdict(n), "link": n.link}
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    if route.kind == "webhook":
        timestamp = int(time.time() if now is None else now)
        headers[TIMESTAMP_HEADER] = str(timestamp)
        headers[SIGNATURE_HEADER] = sign(route.secret.get_secret_value().encode(), body, timestamp)
    return body, headers
