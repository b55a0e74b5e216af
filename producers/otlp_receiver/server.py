"""Running the receiver: uvicorn serves the app; :class:`OtlpReceiver` owns the tenant clients, the server
and the order of shutdown (stop taking requests, then flush and close the SDK clients)."""

from __future__ import annotations

import ipaddress
import signal
import threading
import time

import uvicorn

from agentaudit.logs import get_logger
from agentaudit.producers.otlp_receiver._tenants import TenantClients
from agentaudit.producers.otlp_receiver._tokens import TenantTokens
from agentaudit.producers.otlp_receiver.app import TRACES_PATH, build_app
from agentaudit.producers.otlp_receiver.exceptions import OtlpConfigError
from agentaudit.producers.otlp_receiver.settings import OtlpSettings
from agentaudit.producers.settings import SdkSettings
from agentaudit.settings import KafkaSettings

__all__ = ["OtlpReceiver"]

_log = get_logger("agentaudit.otlp")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OtlpReceiver:
    """OTLP/HTTP traces in, action events out through the SDK, one client per tenant.

    :param settings: where it listens and whom it lets in, default :class:`OtlpSettings` from the environment.
    :param kafka: the broker, default :class:`~agentaudit.settings.KafkaSettings` from the environment.
    :param sdk: the SDK settings of the tenant clients (queue, spool, digest key, capture_bodies, ...).
    :raises OtlpConfigError: a bad tokens file, or no token while listening beyond loopback.

    >>> with OtlpReceiver(OtlpSettings(port=4318)) as receiver:
    ...     receiver.serve_forever()
    """

    def __init__(self, settings: OtlpSettings | None = None, *, kafka: KafkaSettings | None = None,
                 sdk: SdkSettings | None = None, topic: str | None = None) -> None:
        self.settings = settings or OtlpSettings()
        self.tokens = TenantTokens.load(self.settings)
        if self.tokens.dev_mode:
            if not _loopback(self.settings.host):
                raise OtlpConfigError(f"no bearer token is configured and the receiver would listen on "
                                      f"{self.settings.host}: set AGENTAUDIT_OTLP_TOKENS_FILE (or "
                                      "AGENTAUDIT_OTLP_TOKENS), or listen on 127.0.0.1")
            _log.warning("otlp.dev_mode", tenant=self.settings.tenant,
                         hint="no bearer token configured; loopback senders only, all as this tenant")
        self.clients = TenantClients(kafka or KafkaSettings(), sdk or SdkSettings(), agent=self.settings.agent,
                                     spool_root=self.settings.spool_dir, topic=topic)
        self.app = build_app(self.settings, self.tokens, self.clients.get)
        self._server = uvicorn.Server(uvicorn.Config(
            self.app, host=self.settings.host, port=self.settings.port, log_level="warning", access_log=False,
            lifespan="off", timeout_graceful_shutdown=5, limit_concurrency=256,
            log_config=None))  # uvicorn's lines go through the root logger: AGENTAUDIT_LOG_FORMAT=json renders them
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The traces endpoint, with the bound port (after :meth:`start` when the port was 0)."""
        port = self.settings.port
        servers = getattr(self._server, "servers", None) or []
        for server in servers:
            for sock in server.sockets:
                port = sock.getsockname()[1]
        host = self.settings.host if ":" not in self.settings.host else f"[{self.settings.host}]"
        return f"http://{host}:{port}{TRACES_PATH}"

    def serve_forever(self) -> None:
        """Serve until SIGINT/SIGTERM, then stop taking requests and close the tenant clients (what they hold
        is delivered or spooled). Our handlers, not uvicorn's: uvicorn raises the signal again once it has
        shut down, which would kill the process before the clients are closed."""
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not stop.wait(0.5) and self._thread is not None and self._thread.is_alive():
                pass
        finally:
            try:
                self.stop()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def start(self, timeout: float = 10.0) -> OtlpReceiver:
        """Serve on a background thread (tests, ``agentaudit up``); returns once it listens."""
        # no signal handlers to switch off: uvicorn installs them only on the main thread (Server.capture_signals)
        self._thread = threading.Thread(target=self._server.run, name="agentaudit-otlp", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OtlpConfigError(f"the receiver did not start listening on {self.settings.host}:"
                                      f"{self.settings.port} (address in use?)")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking requests, then flush and close the tenant clients."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.clients.close(timeout)

    def __enter__(self) -> OtlpReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
