"""Who owns what: agents, tools, tenants and rules mapped to teams, on-call and escalation chains.

Patterns are globs; the most specific match wins. The owners file format and the specificity
order: ``docs/owners.md``.

>>> owners = load_owners("owners.yaml")
>>> owners.resolve(agent="billing-refunds").team
'payments'
"""

from __future__ import annotations

import fnmatch
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentaudit.rules._spec import parse_duration
from agentaudit.rules._yaml import LineDict, YamlError, load_yaml, read_yaml_text
from agentaudit.rules.exceptions import OwnersError
from agentaudit.schemas import (
    Actor,
    ActorType,
    Incident,
    IncidentLifecycleEvent,
    IncidentState,
    IncidentStatus,
    LifecycleType,
    Severity,
)

__all__ = [
    "DEFAULT_DEADLINES_US",
    "SUBJECTS",
    "Owner",
    "OwnersError",
    "OwnershipMap",
    "due_escalations",
    "load_owners",
    "unowned_agents",
]

SUBJECTS = ("rule", "agent", "tool", "tenant")  # tie-break order, first wins
DEFAULT_DEADLINES_US = {"critical": 15 * 60_000_000, "high": 3_600_000_000, "medium": 4 * 3_600_000_000,
                        "low": 24 * 3_600_000_000}
ESCALATOR = "agentaudit-escalator"
NOTIFIER = "agentaudit-notifier"  # the system actor of ``notified`` lifecycle events (agentaudit notify)
_NS = uuid.UUID("0e4f6a0c-93f5-4c0c-b0a8-5d7f4f9f2c61")
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Owner:
    """The team that owns a subject, how to reach it, and which mapping said so."""

    team: str
    oncall: tuple[str, ...] = ()
    escalation: tuple[str, ...] = ()
    subject: str = ""
    pattern: str = ""


@dataclass(frozen=True)
class _Entry:
    subject: str
    pattern: str
    team: str
    order: int
    line: int
    matcher: Any = field(compare=False)

    @property
    def specificity(self) -> tuple[int, int, int, int]:
        exact = 0 if _GLOB.search(self.pattern) else 1
        literal = len(_GLOB.sub("", self.pattern))
        return (exact, literal, -SUBJECTS.index(self.subject), -self.order)


class OwnershipMap:
    """Resolves owners by the most specific matching pattern; built by :func:`load_owners`."""

    def __init__(self, entries: Sequence[_Entry], teams: dict[str, dict[str, tuple[str, ...]]],
                 deadlines_us: dict[str, int | None], source: str = "",
                 routes: dict[str, tuple[tuple[dict[str, Any], int | None], ...]] | None = None) -> None:
        self.entries = tuple(sorted(entries, key=lambda e: e.specificity, reverse=True))
        self.teams = teams
        self.deadlines_us = deadlines_us
        self.source = source
        #: per team, its notification routes as written (``(mapping, line)``); see agentaudit.consumers.notify
        self.routes = routes or {}
        self._cache: dict[tuple[str, str, str, str], Owner | None] = {}

    def resolve(self, *, rule: str = "", agent: str = "", tool: str = "", tenant: str = "") -> Owner | None:
        """The owner of the most specific pattern matching any of the given subjects, or None."""
        cache_key = (rule, agent, tool, tenant)
        if cache_key in self._cache:
            return self._cache[cache_key]
        values = {"rule": rule, "agent": agent, "tool": tool, "tenant": tenant}
        found = None
        for entry in self.entries:  # most specific first
            value = values[entry.subject]
            if value and entry.matcher(value):
                team = self.teams.get(entry.team, {})
                found = Owner(entry.team, team.get("oncall", ()), team.get("escalation", ()), entry.subject,
                              entry.pattern)
                break
        if len(self._cache) < 100_000:
            self._cache[cache_key] = found
        return found

    def rows(self) -> list[dict[str, Any]]:
        """The mapping as rows of the ClickHouse ``owners`` table."""
        rows = []
        for entry in self.entries:
            team = self.teams.get(entry.team, {})
            exact, literal, _, _ = entry.specificity
            rows.append({"subject_kind": entry.subject, "pattern": entry.pattern, "team": entry.team,
                         "oncall": list(team.get("oncall", ())), "escalation": list(team.get("escalation", ())),
                         "specificity": exact * 10_000 + literal, "source": self.source})
        return rows


def load_owners(path: str | Path) -> OwnershipMap:
    """Read an owners file; raises :class:`OwnersError` naming file and line."""
    name = str(path)
    try:
        doc = load_yaml(read_yaml_text(path))
    except OSError as exc:
        raise OwnersError(f"cannot read owners file: {exc.strerror}; check the path", file=name) from exc
    except YamlError as exc:
        raise OwnersError(f"{exc}; fix the YAML", file=name, line=exc.line) from exc
    if not isinstance(doc, LineDict):
        raise OwnersError("an owners file is a mapping with teams, owners and deadlines", file=name, line=1)
    for key in doc:
        if key not in ("teams", "owners", "deadlines"):
            raise OwnersError(f"unknown key {key!r}; expected teams, owners, deadlines", file=name,
                              line=doc.line_of(key))
    teams: dict[str, dict[str, tuple[str, ...]]] = {}
    routes: dict[str, tuple[tuple[dict[str, Any], int | None], ...]] = {}
    raw_teams = doc.get("teams") or {}
    if not isinstance(raw_teams, dict):
        raise OwnersError("teams must be a mapping of team name to contacts", file=name, line=doc.line_of("teams"))
    for team, spec in raw_teams.items():
        spec = spec or {}
        line = raw_teams.line_of(team) if isinstance(raw_teams, LineDict) else None
        if not isinstance(spec, dict) or any(k not in ("oncall", "escalation", "routes") for k in spec):
            raise OwnersError(f"team {team!r}: expected oncall and escalation lists and routes", file=name, line=line)
        raw_routes = spec.get("routes") or []
        if not isinstance(raw_routes, list) or not all(isinstance(r, dict) for r in raw_routes):
            raise OwnersError(f"team {team!r}: routes must be a list of mappings, each with a kind", file=name,
                              line=line)
        # checked field by field by agentaudit.consumers.notify.routes, which alone knows the route kinds
        routes[str(team)] = tuple((dict(r), r.line if isinstance(r, LineDict) else line) for r in raw_routes)
        contacts = {}
        for key in ("oncall", "escalation"):
            value = spec.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise OwnersError(f"team {team!r}: {key} must be a list of contacts", file=name, line=line)
            contacts[key] = tuple(value)
        teams[str(team)] = contacts
    entries: list[_Entry] = []
    raw_owners = doc.get("owners") or []
    if not isinstance(raw_owners, list):
        raise OwnersError("owners must be a list of {agent|tool|tenant|rule: glob, team: name}", file=name,
                          line=doc.line_of("owners"))
    for order, item in enumerate(raw_owners):
        line = item.line if isinstance(item, LineDict) else doc.line_of("owners")
        if not isinstance(item, dict):
            raise OwnersError("each owners entry is a mapping", file=name, line=line)
        subjects = [s for s in SUBJECTS if s in item]
        unknown = [k for k in item if k not in (*SUBJECTS, "team")]
        if len(subjects) != 1 or unknown:
            raise OwnersError(f"each entry names exactly one of {list(SUBJECTS)} and a team; got {sorted(item)}",
                              file=name, line=line)
        subject = subjects[0]
        pattern = str(item[subject])
        team = item.get("team")
        if not isinstance(team, str) or not team:
            raise OwnersError("entry needs a team", file=name, line=line)
        if teams and team not in teams:
            raise OwnersError(f"unknown team {team!r}; declare it under teams", file=name, line=line)
        matcher = re.compile(fnmatch.translate(pattern)).match if _GLOB.search(pattern) else pattern.__eq__
        entries.append(_Entry(subject, pattern, team, order, line, matcher))
    deadlines: dict[str, int | None] = dict(DEFAULT_DEADLINES_US)
    raw_deadlines = doc.get("deadlines") or {}
    if not isinstance(raw_deadlines, dict):
        raise OwnersError("deadlines must map severities to durations", file=name, line=doc.line_of("deadlines"))
    for severity, text in raw_deadlines.items():
        line = raw_deadlines.line_of(severity) if isinstance(raw_deadlines, LineDict) else None
        if severity not in {s.value for s in Severity}:
            raise OwnersError(f"unknown severity {severity!r}", file=name, line=line)
        if text in (None, "never"):
            deadlines[severity] = None
            continue
        us = parse_duration(text)
        if us is None:
            raise OwnersError(f"bad deadline {text!r} for {severity}; use 15m, 1h, 1d or never", file=name, line=line)
        deadlines[severity] = us
    return OwnershipMap(entries, teams, deadlines, source=name, routes=routes)


def unowned_agents(agents: Iterable[tuple[str, str]], owners: OwnershipMap) -> list[tuple[str, str]]:
    """The ``(tenant, agent_id)`` pairs that no agent or tenant mapping covers, sorted."""
    return sorted({(tenant, agent) for tenant, agent in agents
                   if owners.resolve(agent=agent, tenant=tenant) is None})


def due_escalations(incidents: Iterable[Incident], lifecycle: Iterable[IncidentLifecycleEvent],
                    owners: OwnershipMap, now_us: int) -> list[IncidentLifecycleEvent]:
    """``escalated`` events for open incidents left unacknowledged past their severity's deadline.

    One level per deadline elapsed since the incident was first seen, each level assigned to the
    next contact of the owning team's escalation chain. Event ids derive from incident and level,
    so running this twice (or from two schedulers) publishes the same events, which the store
    deduplicates.
    """
    history: dict[str, list[IncidentLifecycleEvent]] = {}
    for event in lifecycle:
        history.setdefault(event.incident_id, []).append(event)
    out: list[IncidentLifecycleEvent] = []
    for incident in sorted(incidents, key=lambda i: i.incident_id):
        deadline = owners.deadlines_us.get(incident.severity.value)
        if not deadline:
            continue
        state = IncidentState.fold(incident.incident_id, history.get(incident.incident_id, []))
        if state.status is not IncidentStatus.OPEN:
            continue
        due_levels = max(0, (now_us - incident.first_seen_us) // deadline)
        owner = owners.resolve(rule=incident.rule_id, agent=incident.agent_id, tenant=incident.tenant)
        chain = owner.escalation if owner else ()
        for level in range(state.escalation_level + 1, due_levels + 1):
            assignee = chain[min(level, len(chain)) - 1] if chain else None
            out.append(IncidentLifecycleEvent(
                event_id=str(uuid.uuid5(_NS, f"{incident.incident_id}/escalated/{level}")),
                incident_id=incident.incident_id, tenant=incident.tenant, type=LifecycleType.ESCALATED,
                actor=Actor(type=ActorType.SYSTEM, id=ESCALATOR), assignee=assignee,
                note=f"unacknowledged {incident.severity.value} incident past {level} x deadline; level {level}",
                at_us=incident.first_seen_us + level * deadline,
                attributes={"level": str(level), "team": owner.team if owner else ""},
            ))
    return out
