"""``agentaudit up``: the whole pipeline on one machine, from nothing but what pip installed.

Every component is its own process and they talk only through the Kafka and ClickHouse
protocols, configured by URLs, exactly as in production: the broker (tansu, in memory or on
SeaweedFS S3 with ``durable``), the store (``agentaudit store``: chDB behind ClickHouse's HTTP
interface), the consumer, the notifier (``agentaudit notify``), a simulated agent fleet and the dashboard.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentaudit.infra.embedded import ManagedProcess, SeaweedS3, TansuBroker
from agentaudit.infra.embedded.ports import free_port, port_open

__all__ = ["CREDENTIALS_FILE", "KEYS_FILE", "SIMULATOR_KEY_ID", "STATE_FILE", "Stack", "StackSettings",
           "StoreCredentials", "provision_simulator_key", "read_state", "store_credentials"]

_log = logging.getLogger("agentaudit.infra.stack")
STATE_FILE = "stack.json"
CREDENTIALS_FILE = "store.credentials"
DEFAULT_OWNERS = Path(__file__).resolve().parent / "configs" / "owners.yaml"
DEFAULT_SIMULATE_SEED = 7  # with a fresh run nonce per start unless AGENTAUDIT_SIMULATE_SEED pins a seed
#: The producer keys file under home (public keys; the consumer verifies every stream with it).
KEYS_FILE = "producer-keys.yaml"
#: The simulator's signing key: ``home/keys/simulator.key`` (mode 0600), registered in :data:`KEYS_FILE`.
SIMULATOR_KEY_ID = "simulator"


class StackSettings(BaseSettings):
    """What ``agentaudit up`` starts and where.

    :param home: ``AGENTAUDIT_HOME``, data and logs, default ``./.agentaudit``.
    :param durable: ``AGENTAUDIT_DURABLE``: broker log on SeaweedFS S3 instead of memory.
    :param broker_port: ``AGENTAUDIT_BROKER_PORT``, default 9092 (a free port if taken).
    :param store_port: ``AGENTAUDIT_STORE_PORT``, default 8123 (a free port if taken).
    :param dashboard_port: ``AGENTAUDIT_DASHBOARD_PORT``, default 8501 (a free port if taken).
    :param metrics_port: ``AGENTAUDIT_METRICS_PORT``, the consumer's Prometheus port, default 9108.
    :param simulate_rate: ``AGENTAUDIT_SIMULATE_RATE``, simulated events per second; 0 disables the fleet.
    :param agents: ``AGENTAUDIT_SIMULATE_AGENTS``, simulated agents.
    :param simulate_seed: ``AGENTAUDIT_SIMULATE_SEED``, pins the fleet's seed: every start then re-sends the
        same ids (for reproducing a run). Unset (default): seed 7 with a fresh run nonce per start, so a
        second start over the same home never reuses an event, trace or stream id.
    :param simulate_mode: ``AGENTAUDIT_SIMULATE_MODE``: ``fleet`` (default, agents with injected failure modes) or
        ``conversation`` (customer-service conversations of four support agents, endless, one starting about
        every 30 s, with injected policy breaches).
    :param simulate_breach_rate: ``AGENTAUDIT_SIMULATE_BREACH_RATE``, conversation mode: share of runs with one
        injected breach, default 0.1.
    :param rules: ``AGENTAUDIT_RULES``, rule files for the consumer and the dashboard; default the built-in pack.
    :param owners: ``AGENTAUDIT_OWNERS``, the owners file; default the simulated fleet's
        (``infra/configs/owners.yaml``).
    :param otlp: ``AGENTAUDIT_OTLP``: start the OTLP/HTTP receiver (``agentaudit otlp``; tokens and dev mode
        from its ``AGENTAUDIT_OTLP_*`` settings), default true.
    :param otlp_port: ``AGENTAUDIT_OTLP_PORT``, default 4318 (a free port if taken).
    :param otlp_spool_dir: ``AGENTAUDIT_OTLP_SPOOL_DIR``, the receiver's spool root; default ``home/otlp-spool``.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_", frozen=True, extra="ignore")

    home: Path = Path(".agentaudit")
    durable: bool = False
    broker_port: int = 9092
    store_port: int = 8123
    dashboard_port: int = 8501
    metrics_port: int = 9108
    simulate_rate: float = Field(default=200.0, ge=0)
    simulate_agents: int = Field(default=12, gt=0)
    simulate_seed: int | None = None
    simulate_mode: Literal["fleet", "conversation"] = "fleet"
    simulate_breach_rate: float = Field(default=0.1, ge=0, le=1)
    rules: str | None = None
    owners: Path | None = None
    otlp: bool = True
    otlp_port: int = 4318
    otlp_spool_dir: Path | None = None


class StoreCredentials(NamedTuple):
    """The store's passwords: ``default`` (any SQL: the consumer, migrations) and ``reader`` (read-only:
    the dashboard, analysts)."""

    password: str
    reader_password: str

    def __repr__(self) -> str:
        return "StoreCredentials(password='***', reader_password='***')"


def store_credentials(home: Path) -> StoreCredentials:
    """The store's passwords kept in ``home/store.credentials`` (mode 0600), made on first call."""
    path = Path(home) / CREDENTIALS_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)  # someone loosened it: the passwords are as good as the file's mode
        data = json.loads(path.read_text())
        return StoreCredentials(data["password"], data["reader_password"])
    credentials = StoreCredentials(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
    with os.fdopen(fd, "w") as out:
        json.dump(credentials._asdict(), out)
    return credentials


def provision_simulator_key(home: Path) -> tuple[Path, Path]:
    """Make (or find) the simulated fleet's signing key and a keys file registering it; returns both paths.

    The key (``home/keys/simulator.key``, mode 0600) is registered as ``service:simulator`` for the fleet's
    agents (one glob per simulated team, of any tenant) in ``home/producer-keys.yaml``; keys others added
    there are kept. Idempotent: a restart finds both. A registered public key that is not the key file's
    (the key file was replaced) is refused rather than silently re-registered.

    :raises InfraError: the registration does not match the key file.
    """
    from agentaudit.infra.exceptions import InfraError
    from agentaudit.producers.simulator import AGENT_PATTERNS
    from agentaudit.schemas import SigningKey
    from agentaudit.schemas.keys_file import add_key, read_keys
    from agentaudit.schemas.signing import public_key_text

    home = Path(home)
    key_path = home / "keys" / f"{SIMULATOR_KEY_ID}.key"
    keys_file = home / KEYS_FILE
    key = SigningKey.load_or_create(key_path)
    entry = read_keys(keys_file).get(key.key_id)
    if entry is None:
        add_key(keys_file, key_id=key.key_id, public_key=key.public_key, principal=f"service:{SIMULATOR_KEY_ID}",
                agents=list(AGENT_PATTERNS))
    elif public_key_text(entry.public) != key.public_key:
        raise InfraError(f"{keys_file}: key {key.key_id!r} is registered with another public key than {key_path}; "
                         f"register the new one under another id (`agentaudit keys rotate {key.key_id} ...`) or "
                         "remove the entry")
    return key_path, keys_file


@dataclass
class _Component:
    name: str
    url: str
    start: Callable[[], None]
    stop: Callable[[], None]
    alive: Callable[[], bool]
    log: Path
    pid: Callable[[], int | None] = field(default=lambda: None)


def _port(preferred: int) -> int:
    return preferred if not port_open("127.0.0.1", preferred) else free_port()


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


class Stack:
    """Starts the components in dependency order and stops them in reverse.

    Example::

        with Stack(StackSettings(simulate_rate=100)) as stack:
            print(stack.urls["dashboard"])
    """

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        self.home = self.settings.home.resolve()
        self.logs = self.home / "logs"
        self.ports = {
            "broker": _port(self.settings.broker_port),
            "store": _port(self.settings.store_port),
            "dashboard": _port(self.settings.dashboard_port),
            "metrics": _port(self.settings.metrics_port),
            "otlp": _port(self.settings.otlp_port),
        }
        self.urls = {
            "broker": f"127.0.0.1:{self.ports['broker']}",
            "store": f"http://127.0.0.1:{self.ports['store']}",
            "dashboard": f"http://127.0.0.1:{self.ports['dashboard']}",
            "metrics": f"http://127.0.0.1:{self.ports['metrics']}/metrics",
            "otlp": f"http://127.0.0.1:{self.ports['otlp']}/v1/traces",
        }
        self.env = {
            "AGENTAUDIT_BOOTSTRAP_SERVERS": self.urls["broker"],
            "AGENTAUDIT_CLICKHOUSE_URL": self.urls["store"],
        }
        # The sink's digest key (signs what it stored; `agentaudit verify --store` checks it) lives under home.
        self.env["AGENTAUDIT_SINK_DIGEST_KEY"] = str(self.home / "keys" / "sink-digest.key")
        self._started: list[_Component] = []
        # Dashboard sign-in: per-person hashes in a mode-0600 file under home; the first operator is made on first start.
        self.users_file = self.home / "dashboard-users"
        self.env["AGENTAUDIT_DASHBOARD_USERS_FILE"] = str(self.users_file)
        #: ``(name, password)`` of the operator created by this start (None when the users file already existed).
        self.first_operator: tuple[str, str] | None = None
        #: the control plane's authority file and keys (``home/authority.yaml``, ``home/keys``), made by :meth:`start`.
        self.authority: Any = None
        #: the store's passwords (``home/store.credentials``), read or made by :meth:`start`.
        self.credentials: StoreCredentials | None = None
        #: the producer keys file every stream is verified with, and the simulator's signing key (made by :meth:`start`).
        self.keys_file = self.home / KEYS_FILE
        self.simulator_key_file = self.home / "keys" / f"{SIMULATOR_KEY_ID}.key"
        self.env["AGENTAUDIT_KEYS_FILE"] = str(self.keys_file)

    # -- components -------------------------------------------------------------------------

    def _components(self) -> list[_Component]:
        s = self.settings
        components: list[_Component] = []
        s3: SeaweedS3 | None = None
        if s.durable:
            s3 = SeaweedS3(self.home / "s3")
            components.append(_Component("s3 (SeaweedFS)", s3.endpoint, s3.start, s3.stop, lambda: s3.running,
                                         s3.log_path))
        broker = TansuBroker(self.ports["broker"], "s3" if s3 else "memory",
                             s3_endpoint=s3.endpoint if s3 else None, data_dir=self.home / "broker")
        storage = f"s3 {s3.endpoint}" if s3 else "memory"
        components.append(_Component(f"broker (tansu, {storage})", self.urls["broker"], broker.start, broker.stop,
                                     lambda: broker.running, broker.log_path))
        credentials = self._store_credentials()
        store = self._process("store", _python("agentaudit.infra.store", "--data-dir", str(self.home / "store"),
                                               "--host", "127.0.0.1", "--port", str(self.ports["store"])),
                              ready_port=self.ports["store"],
                              env={"AGENTAUDIT_STORE_PASSWORD": credentials.password,
                                   "AGENTAUDIT_STORE_READER_PASSWORD": credentials.reader_password})
        components.append(self._wrap("store (chDB, ClickHouse HTTP)", self.urls["store"], store,
                                     after=self._migrate))
        consume = ["agentaudit.cli", "consume", "--metrics-port", str(self.ports["metrics"])]
        rules = str(Path(s.rules).resolve()) if s.rules else ""
        if rules:
            # the consumer runs in the home directory: hand it a path that does not depend on our cwd
            consume += ["--rules", rules]
        consume += ["--owners", str(Path(s.owners).resolve() if s.owners else DEFAULT_OWNERS)]
        if s3:
            # rule state survives a restart only with a log that does: a memory broker restarts at offset 0
            consume += ["--state-dir", str(self.home / "state")]
        consumer = self._process("consumer", _python(*consume), ready_port=self.ports["metrics"])
        components.append(self._wrap("consumer (sink + rules)", self.urls["metrics"], consumer))
        # notifications routed by the owners file's team routes: its own group, so the sink never waits for it
        notifier = self._process("notifier", _python(
            "agentaudit.cli", "notify", "--owners", str(Path(s.owners).resolve() if s.owners else DEFAULT_OWNERS),
            "--state-dir", str(self.home / "notify"), "--dashboard-url", self.urls["dashboard"]))
        components.append(self._wrap("notifier (owners' routes)", self.urls["broker"], notifier))
        if s.simulate_rate > 0:
            seed = ["--seed", str(s.simulate_seed)] if s.simulate_seed is not None else [
                "--seed", str(DEFAULT_SIMULATE_SEED), "--run-nonce", secrets.token_hex(8)]
            if s.simulate_mode == "conversation":  # endless: the runs are built as their time comes
                mode = ["--mode", "conversation", "--breach-rate", str(s.simulate_breach_rate)]
                label = f"simulator (conversations, {s.simulate_breach_rate:.0%} breached)"
            else:
                mode = ["--agents", str(s.simulate_agents)]
                label = f"simulator ({s.simulate_agents} agents, {s.simulate_rate:g} ev/s)"
            simulator = self._process("simulator", _python(
                "agentaudit.cli", "simulate", "--clock", "wall", "--rate", str(s.simulate_rate), *mode, *seed),
                # signs its streams as an SDK agent does; the schedule follows AGENTAUDIT_CHECKPOINT_* if set
                env={"AGENTAUDIT_SIGNING_KEY_FILE": str(self.simulator_key_file)})
            components.append(self._wrap(label, self.urls["broker"], simulator))
        if s.otlp:  # any language's OTel exporter -> actions; each tenant's spool under home
            receiver = self._process("otlp", _python("agentaudit.cli", "otlp", "--port", str(self.ports["otlp"])),
                                     ready_port=self.ports["otlp"],
                                     env={"AGENTAUDIT_OTLP_SPOOL_DIR": str(s.otlp_spool_dir or self.home / "otlp-spool")})
            components.append(self._wrap("OTLP receiver (OTLP/HTTP traces)", self.urls["otlp"], receiver))
        dashboard = self._process("dashboard", _python(
            "agentaudit.cli", "dashboard", "--host", "127.0.0.1", "--port", str(self.ports["dashboard"])),
            ready_port=self.ports["dashboard"], ready_timeout=60,
            # the dashboard only reads (read-only store user) and describes the rules the consumer judges with
            env={"AGENTAUDIT_CLICKHOUSE_USER": "reader", "AGENTAUDIT_CLICKHOUSE_PASSWORD": credentials.reader_password,
                 **({"AGENTAUDIT_DASHBOARD_RULES": rules} if rules else {})})
        components.append(self._wrap("dashboard (Streamlit)", self.urls["dashboard"], dashboard))
        return components

    def _process(self, name: str, argv: list[str], *, ready_port: int | None = None,
                 ready_timeout: float = 45.0, env: dict[str, str] | None = None) -> ManagedProcess:
        return ManagedProcess(name, argv, log_path=self.logs / f"{name}.log", ready_port=ready_port,
                              env={**self.env, **(env or {})}, cwd=self.home, ready_timeout=ready_timeout)

    def _store_credentials(self) -> StoreCredentials:
        """Read or make the store's passwords; every component but the dashboard gets ``default``'s."""
        if self.credentials is None:
            self.credentials = store_credentials(self.home)
            self.env["AGENTAUDIT_CLICKHOUSE_PASSWORD"] = self.credentials.password
        return self.credentials

    def analyst_hint(self) -> str:
        """How an analyst connects to the store (read-only user; the password file is mode 0600)."""
        return (f"clickhouse_connect.get_client(host='127.0.0.1', port={self.ports['store']}, username='reader', "
                f"password=json.load(open('{self.home / CREDENTIALS_FILE}'))['reader_password'])")

    @staticmethod
    def _wrap(label: str, url: str, process: ManagedProcess, *, after: Callable[[], None] | None = None) -> _Component:
        def start() -> None:
            process.start()
            if after is not None:
                after()

        return _Component(label, url, start, process.stop, lambda: process.running, process.log_path,
                          pid=lambda: process.pid)

    def _ensure_first_operator(self) -> None:
        from agentaudit.dashboard.credentials import ensure_first_operator

        password = ensure_first_operator(self.users_file)
        if password is not None:
            self.first_operator = ("admin", password)

    def _ensure_authority(self) -> None:
        """Every reader of the control and lifecycle topics checks signatures against home/authority.yaml."""
        from agentaudit.control.provision import provision_authority

        self.authority = provision_authority(self.home, operator="admin")
        self.env["AGENTAUDIT_AUTHORITY_FILE"] = str(self.authority.authority_file)
        self.env["AGENTAUDIT_SERVICE_KEY_FILE"] = str(self.authority.service_key_file)  # consumer, dashboard

    def _migrate(self) -> None:
        from agentaudit.consumers.migrate import migrate
        from agentaudit.infra.kafka import KafkaAdmin
        from agentaudit.settings import KafkaSettings, StoreSettings

        migrate(StoreSettings(clickhouse_url=self.urls["store"],
                              clickhouse_password=self._store_credentials().password))  # type: ignore[arg-type]  # a str; pydantic makes it a SecretStr
        kafka = KafkaSettings(bootstrap_servers=self.urls["broker"])
        t = kafka.topics
        KafkaAdmin(kafka).ensure_topics([t.actions, t.incidents, t.lifecycle, t.control, t.dlq])

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, on_started: Callable[[str, str], None] | None = None) -> None:
        """Start everything; on any failure, stop what already runs and re-raise."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._ensure_first_operator()
        self._ensure_authority()
        provision_simulator_key(self.home)  # streams are signed end to end: the consumer requires it
        try:
            for component in self._components():
                began = time.monotonic()
                component.start()
                self._started.append(component)
                if on_started is not None:
                    on_started(component.name, f"{component.url}  ({time.monotonic() - began:.1f}s)")
        except BaseException:
            self.stop()
            raise
        self._write_state()

    def dead(self) -> list[_Component]:
        """Components that exited on their own."""
        return [c for c in self._started if not c.alive()]

    def wait(self, stop: threading.Event, poll: float = 0.5) -> _Component | None:
        """Block until ``stop`` is set or a component dies; returns the dead one, if any."""
        while not stop.wait(poll):
            dead = self.dead()
            if dead:
                return dead[0]
        return None

    def stop(self) -> None:
        """Stop in reverse order; every child is reaped, none outlives us."""
        while self._started:
            component = self._started.pop()
            try:
                component.stop()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                _log.exception("stopping %s failed", component.name)
        (self.home / STATE_FILE).unlink(missing_ok=True)

    def _write_state(self) -> None:
        state = {"pid": os.getpid(), "urls": self.urls, "home": str(self.home),
                 "components": [{"name": c.name, "url": c.url, "log": str(c.log), "pid": c.pid()}
                                for c in self._started]}
        (self.home / STATE_FILE).write_text(json.dumps(state, indent=2))

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_state(home: Path) -> dict | None:
    """What a running ``agentaudit up`` wrote about itself, or None."""
    try:
        return json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None

