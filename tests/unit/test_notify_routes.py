"""Routes in the owners file: each kind loads, each mistake is named by file, line and field;
payload shapes and state keys that need no broker; the notify package's ``__all__`` is complete."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from agentaudit.consumers import notify
from agentaudit.consumers.exceptions import RouteConfigError
from agentaudit.consumers.notify import Notification, load_routes, render
from agentaudit.rules.owners import OwnersError, load_owners

GOOD = """\
teams:
  payments:
    oncall: [alice@example.com]
    routes:
      - {kind: slack, url: "https://hooks.slack.com/services/T0/B0/X"}
      - {kind: pagerduty, routing_key_env: PD_KEY}
      - {kind: alertmanager, url: "http://alertmanager:9093/hook"}
      - {kind: webhook, url: "https://hooks.example.com/a", secret: "0123456789abcdef"}
  platform:
    oncall: [ops@example.com]
owners:
  - {tenant: "*", team: payments}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "owners.yaml"
    path.write_text(text)
    return path


def test_every_route_kind_loads_with_ids_and_secrets_from_the_environment(tmp_path: Path) -> None:
    table = load_routes(load_owners(write(tmp_path, GOOD)), {"PD_KEY": "k-123"})
    routes = table.for_team("payments")
    assert [(r.kind, r.id) for r in routes] == [("slack", "payments/0"), ("pagerduty", "payments/1"),
                                                ("alertmanager", "payments/2"), ("webhook", "payments/3")]
    assert routes[1].routing_key.get_secret_value() == "k-123"
    assert str(routes[1].url) == "https://events.pagerduty.com/v2/enqueue"
    assert "k-123" not in repr(routes[1]) and "0123456789abcdef" not in repr(routes[3])
    assert table.for_team("platform") == () and table.for_team("nobody") == ()


@pytest.mark.parametrize(("route", "line", "field", "words"), [
    ('{url: "https://x.example/h"}', 5, "teams.payments.routes[0].kind", "missing"),
    ('{kind: teams, url: "https://x.example/h"}', 5, "teams.payments.routes[0]", "slack"),
    ('{kind: slack, url: "not a url"}', 5, "teams.payments.routes[0].url", "URL"),
    ('{kind: slack, url: "https://x.example/h", channel: "#ops"}', 5, "teams.payments.routes[0].channel", "xtra"),
    ('{kind: webhook, url: "https://x.example/h", secret: "short"}', 5, "teams.payments.routes[0].secret", "16"),
    ('{kind: pagerduty, routing_key_env: UNSET_VAR}', 5, "teams.payments.routes[0].routing_key_env", "UNSET_VAR"),
    ('{kind: pagerduty}', 5, "teams.payments.routes[0].routing_key", "required"),
])
def test_a_bad_route_is_named_by_file_line_and_field(tmp_path: Path, route: str, line: int, field: str,
                                                     words: str) -> None:
    path = write(tmp_path, f"teams:\n  payments:\n    oncall: [a@example.com]\n    routes:\n      - {route}\n")
    with pytest.raises(RouteConfigError) as caught:
        load_routes(load_owners(path), {})
    assert caught.value.file == str(path) and caught.value.line == line and caught.value.field == field
    assert str(caught.value).startswith(f"{path}:{line}: {field}: ") and words in str(caught.value)


def test_routes_that_are_not_a_list_of_mappings_fail_at_owners_load(tmp_path: Path) -> None:
    path = write(tmp_path, "teams:\n  payments:\n    routes: https://hooks.example.com\n")
    with pytest.raises(OwnersError, match=r"owners.yaml:2: team 'payments': routes must be a list of mappings"):
        load_owners(path)


def _note(**fields) -> Notification:
    base = dict(incident_id="inc-1", state="resolved", key="resolved/0", route_id="payments/1", tenant="acme",
                team="payments", rule_id="cost.spike", severity="critical", summary="cost spike", agent_id="a-1",
                actor="ann@example.com", note="", level=0, first_seen_us=1_700_000_000_000_000,
                at_us=1_700_000_060_000_000, link="https://audit.example.com/?page=incident&incident=inc-1")
    return Notification(**{**base, **fields})


def test_pagerduty_resolve_and_acknowledge_carry_only_the_dedup_key(tmp_path: Path) -> None:
    route = load_routes(load_owners(write(tmp_path, GOOD)), {"PD_KEY": "k"}).for_team("payments")[1]
    import json

    resolve = json.loads(render(route, _note())[0])
    assert resolve == {"routing_key": "k", "event_action": "resolve", "dedup_key": "inc-1", "client": "agentaudit",
                       "client_url": "https://audit.example.com/?page=incident&incident=inc-1"}
    ack = json.loads(render(route, _note(state="acknowledged", key="acknowledged/0"))[0])
    assert ack["event_action"] == "acknowledge" and "payload" not in ack
    trigger = json.loads(render(route, _note(state="opened", key="opened/0"))[0])
    assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["timestamp"] == "2023-11-14T22:14:20Z"


def test_notify_modules_export_what_they_define() -> None:
    for name in ("delivery", "payloads", "routes", "settings", "worker"):
        module = importlib.import_module(f"agentaudit.consumers.notify.{name}")
        assert all(hasattr(module, item) for item in module.__all__), name
        classes = [n for n, obj in vars(module).items()
                   if inspect.isclass(obj) and obj.__module__ == module.__name__ and not n.startswith("_")]
        assert set(classes) <= set(module.__all__), f"{name}: {set(classes) - set(module.__all__)}"
        assert set(module.__all__) <= set(notify.__all__) | {"PAGERDUTY_EVENTS_URL"}, name
