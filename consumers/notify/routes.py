"""Where a team is notified: the ``routes`` of each team in the owners file, checked field by field.

An owners file's team names its routes::

    teams:
      payments:
        oncall: [alice@example.com]
        routes:
          - {kind: slack, url: "https://hooks.slack.com/services/T000/B000/XXXX"}
          - {kind: pagerduty, routing_key_env: PAYMENTS_PD_KEY}      # or routing_key: "..."
          - {kind: alertmanager, url: "http://alertmanager:9093/api/v2/alerts"}
          - {kind: webhook, url: "https://hooks.example.com/agentaudit", secret_env: PAYMENTS_HOOK_SECRET}

Secrets (``routing_key``, ``secret``) may be written inline or named by an environment variable
(``*_env``), read when the file is loaded at the entry point. A route's ``id`` (``team/index``)
is what deliveries are deduplicated by, together with the incident and its state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, TypeAdapter, ValidationError

from agentaudit.consumers.exceptions import RouteConfigError
from agentaudit.rules.owners import OwnershipMap

__all__ = ["AlertmanagerRoute", "PagerDutyRoute", "Route", "RouteTable", "SlackRoute", "WebhookRoute", "load_routes"]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_STRICT = ConfigDict(frozen=True, extra="forbid")


class SlackRoute(BaseModel):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat)."""

    model_config = _STRICT
    kind: Literal["slack"]
    url: HttpUrl
    id: str = ""


class PagerDutyRoute(BaseModel):
    """PagerDuty Events API v2: trigger, acknowledge and resolve, ``dedup_key`` = incident id."""

    model_config = _STRICT
    kind: Literal["pagerduty"]
    routing_key: SecretStr
    url: HttpUrl = HttpUrl(PAGERDUTY_EVENTS_URL)
    id: str = ""


class AlertmanagerRoute(BaseModel):
    """A receiver of Prometheus Alertmanager's webhook payload (version 4)."""

    model_config = _STRICT
    kind: Literal["alertmanager"]
    url: HttpUrl
    id: str = ""


class WebhookRoute(BaseModel):
    """A generic JSON webhook, signed with HMAC-SHA256 (see :mod:`agentaudit.consumers.notify.payloads`)."""

    model_config = _STRICT
    kind: Literal["webhook"]
    url: HttpUrl
    secret: SecretStr = Field(min_length=16)
    id: str = ""


Route = Annotated[SlackRoute | PagerDutyRoute | AlertmanagerRoute | WebhookRoute, Field(discriminator="kind")]
_ROUTE: TypeAdapter[Any] = TypeAdapter(Route)
_ENV_FIELDS = {"routing_key_env": "routing_key", "secret_env": "secret"}


@dataclass(frozen=True)
class RouteTable:
    """Each team's routes; :meth:`for_team` is what the worker asks."""

    by_team: Mapping[str, tuple[Any, ...]]

    def for_team(self, team: str) -> tuple[Any, ...]:
        """The routes of ``team`` (none for an unknown or empty team)."""
        return self.by_team.get(team, ())

    def __len__(self) -> int:
        return sum(len(r) for r in self.by_team.values())


def _from_env(raw: dict[str, Any], *, file: str, line: int | None, where: str,
              environ: Mapping[str, str]) -> dict[str, Any]:
    out = dict(raw)
    for env_field, field in _ENV_FIELDS.items():
        if env_field not in out:
            continue
        name = out.pop(env_field)
        if field in out:
            raise RouteConfigError(f"give {field} or {env_field}, not both", file=file, line=line, field=f"{where}.{field}")
        if not isinstance(name, str) or name not in environ:
            raise RouteConfigError(f"environment variable {name!r} is not set; export it before starting the notifier",
                                   file=file, line=line, field=f"{where}.{env_field}")
        out[field] = environ[name]
    return out


def load_routes(owners: OwnershipMap, environ: Mapping[str, str] | None = None) -> RouteTable:
    """Check every team's routes; raises :class:`RouteConfigError` naming the file, line and field at fault.

    :param environ: where ``*_env`` names are looked up; default ``os.environ`` (call this at the entry point).
    """
    environ = os.environ if environ is None else environ
    file = owners.source or "owners file"
    by_team: dict[str, tuple[Any, ...]] = {}
    for team, raw_routes in owners.routes.items():
        routes = []
        for index, (raw, line) in enumerate(raw_routes):
            where = f"teams.{team}.routes[{index}]"
            if "kind" not in raw:
                raise RouteConfigError("missing; one of slack, pagerduty, alertmanager, webhook", file=file,
                                       line=line, field=f"{where}.kind")
            try:
                route = _ROUTE.validate_python(_from_env(raw, file=file, line=line, where=where, environ=environ))
            except ValidationError as exc:
                error = exc.errors(include_input=False)[0]
                field = ".".join(str(part) for part in error["loc"] if part != raw.get("kind"))
                raise RouteConfigError(error["msg"], file=file, line=line,
                                       field=f"{where}.{field}" if field else where) from exc
            routes.append(route.model_copy(update={"id": f"{team}/{index}"}))
        by_team[team] = tuple(routes)
    return RouteTable(by_team)
