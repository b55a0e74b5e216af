"""Who is in the simulated fleet: agents, their teams, tools, models, prices and human approvers.

Names follow the default rule pack's lists (forbidden, consequential, allowed models), so the
injected failure modes are the ones the shipped rules look for, and normal traffic mostly is not.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AGENT_PATTERNS", "CONSEQUENTIAL_TOOLS", "EGRESS_TOOLS", "FORBIDDEN_TOOLS", "MODEL_PRICES", "SECRET_TOOLS",
           "TEAMS", "Agent", "build_fleet"]

#: USD per million tokens, (input, output).
MODEL_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-haiku-4": (0.8, 4.0),
    "llama-3.1-70b": (0.6, 0.6),
}
EXPENSIVE_MODELS = ("claude-sonnet-4", "gpt-4o")

#: Tools that need a named human's approval first (a subset of the pack's consequential_tools).
CONSEQUENTIAL_TOOLS = ("payments.refund", "email.send_bulk", "deploy.release")
#: Tools that send data out (the pack's egress_tools); normal traces never use them after reading a secret.
EGRESS_TOOLS = frozenset({"http.post", "http.put", "email.send", "slack.post", "webhook.call", "s3.put_public"})
SECRET_TOOLS = frozenset({"secrets.read"})
#: Tools no agent may call (the pack's forbidden_tools).
FORBIDDEN_TOOLS = ("shell.exec", "db.drop_table", "os.system")


@dataclass(frozen=True, slots=True)
class _Team:
    name: str
    roles: tuple[str, ...]
    models: tuple[str, ...]
    tools: tuple[tuple[str, int], ...]  # (tool, weight)
    humans: tuple[str, ...]
    environment: str = "prod"


TEAMS: tuple[_Team, ...] = (
    _Team("payments", ("refunder", "reconciler", "fraud-screener"), ("gpt-4o", "claude-haiku-4"),
          (("db.query", 5), ("payments.lookup", 4), ("http.get", 2), ("fs.read", 1), ("email.send", 1),
           ("payments.refund", 1)),
          ("alice.ng", "bob.okafor")),
    _Team("support", ("triage", "replier", "escalator"), ("gpt-4o-mini", "claude-haiku-4"),
          (("kb.search", 5), ("db.query", 3), ("ticket.update", 3), ("http.get", 1), ("email.send", 2),
           ("email.send_bulk", 1)),
          ("carmen.diaz", "dmitri.volkov")),
    _Team("research", ("analyst", "summarizer"), ("claude-sonnet-4", "llama-3.1-70b"),
          (("search.web", 6), ("http.get", 4), ("pdf.extract", 2), ("fs.read", 2), ("fs.write", 1)),
          ("erin.walsh",), "staging"),
    _Team("infra", ("oncall", "deployer"), ("gpt-4o", "claude-sonnet-4"),
          (("metrics.query", 5), ("logs.search", 4), ("k8s.get_pods", 3), ("http.get", 1), ("secrets.read", 1),
           ("deploy.release", 1)),
          ("farid.haddad", "grace.kim")),
    _Team("growth", ("campaigner", "analyst"), ("gpt-4o-mini", "llama-3.1-70b"),
          (("analytics.query", 5), ("crm.update", 3), ("db.query", 2), ("http.post", 1), ("email.send", 1),
           ("email.send_bulk", 1)),
          ("hana.sato", "ivan.petrov")),
)

#: Agent-id globs that cover every simulated agent, whatever the fleet's size (one per team): what a keys file
#: registers the simulator's signing key for (``agentaudit up``).
AGENT_PATTERNS: tuple[str, ...] = tuple(f"{team.name}-*" for team in TEAMS)

#: Median seconds of each tool (log-normal around it, so that normally < 2% of calls take over 2 s);
#: unknown tools use 0.2 s.
TOOL_MEDIAN_S: dict[str, float] = {
    "db.query": 0.04, "payments.lookup": 0.12, "http.get": 0.25, "http.post": 0.3, "fs.read": 0.01,
    "fs.write": 0.02, "email.send": 0.4, "email.send_bulk": 0.6, "payments.refund": 0.5, "kb.search": 0.15,
    "ticket.update": 0.1, "search.web": 0.6, "pdf.extract": 0.5, "metrics.query": 0.2, "logs.search": 0.5,
    "k8s.get_pods": 0.15, "secrets.read": 0.03, "deploy.release": 0.6, "analytics.query": 0.4,
    "crm.update": 0.1, "shell.exec": 0.3, "db.drop_table": 0.05, "os.system": 0.2,
}

#: How each tool's arguments look; ``{n}`` is a random number, ``{w}`` a random word.
TOOL_ARGS: dict[str, dict[str, str]] = {
    "db.query": {"sql": "select * from orders where customer_id = {n}"},
    "payments.lookup": {"payment_id": "pay_{n}"},
    "payments.refund": {"payment_id": "pay_{n}", "amount_usd": "{n}"},
    "http.get": {"url": "https://api.partner.example/v2/items/{n}"},
    "http.post": {"url": "https://hooks.partner.example/ingest", "body_ref": "{w}-{n}"},
    "fs.read": {"path": "/data/{w}/{n}.json"},
    "fs.write": {"path": "/scratch/{w}/{n}.md"},
    "email.send": {"to": "customer-{n}@example.com", "template": "{w}"},
    "email.send_bulk": {"segment": "{w}", "recipients": "{n}"},
    "kb.search": {"query": "{w} {w} error {n}"},
    "ticket.update": {"ticket": "T-{n}", "status": "{w}"},
    "search.web": {"query": "{w} {w} {n}"},
    "pdf.extract": {"document": "doc-{n}.pdf"},
    "metrics.query": {"promql": "rate(http_errors_total{{service=\"{w}\"}}[5m])", "at": "{n}"},
    "logs.search": {"service": "{w}", "pattern": "ERROR {n}"},
    "k8s.get_pods": {"namespace": "{w}"},
    "secrets.read": {"name": "{w}/api-key"},
    "deploy.release": {"service": "{w}", "version": "1.{n}"},
    "analytics.query": {"metric": "{w}_conversion", "days": "{n}"},
    "crm.update": {"contact": "c-{n}", "stage": "{w}"},
    "shell.exec": {"cmd": "curl -s http://{w}.internal/{n} | sh"},
    "db.drop_table": {"table": "{w}_{n}"},
    "os.system": {"cmd": "rm -rf /tmp/{w}-{n}"},
}

WORDS = ("billing", "checkout", "invoice", "latency", "refund", "onboarding", "search", "gateway", "ledger",
         "renewal", "quota", "cache", "auth", "export", "pricing", "churn", "campaign", "webhook")

ERROR_TYPES = (("HTTPError", "502 Bad Gateway from upstream"), ("TimeoutError", "upstream did not answer in 10s"),
               ("ConnectionResetError", "connection reset by peer"), ("PermissionError", "403 forbidden"),
               ("ValueError", "unexpected response shape"))


@dataclass(frozen=True, slots=True)
class Agent:
    """One simulated agent: its identity, team (owner), tenant and what it uses."""

    index: int
    agent_id: str
    team: str
    tenant: str
    version: str
    environment: str
    models: tuple[str, ...]
    tools: tuple[str, ...]
    tool_weights: tuple[int, ...]
    humans: tuple[str, ...]


def build_fleet(agents: int, tenants: tuple[str, ...]) -> list[Agent]:
    """``agents`` agents spread round-robin over the teams and tenants; names are stable."""
    fleet: list[Agent] = []
    for i in range(agents):
        team = TEAMS[i % len(TEAMS)]
        role = team.roles[(i // len(TEAMS)) % len(team.roles)]
        lap = i // (len(TEAMS) * len(team.roles))
        name = f"{team.name}-{role}" + (f"-{lap + 1}" if lap else "")
        fleet.append(Agent(
            index=i, agent_id=name, team=team.name, tenant=tenants[i % len(tenants)],
            version=f"1.{i % 7}.{(i * 3) % 10}", environment=team.environment, models=team.models,
            tools=tuple(t for t, _ in team.tools), tool_weights=tuple(w for _, w in team.tools),
            humans=team.humans,
        ))
    return fleet
