"""``python -m agentaudit.infra.store --data-dir D --port P``: run the store server until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from agentaudit.infra.store._settings import DEFAULT_DATA_DIR, StoreServerSettings
from agentaudit.infra.store.exceptions import StoreLockedError
from agentaudit.logs import configure_logging

__all__ = ["DEFAULT_DATA_DIR", "main", "run"]


def run(data_dir: str, host: str, port: int, password: str | None, reader_password: str | None = None,
        protect_metrics: bool = True) -> int:
    """Serve until a signal arrives; returns the process exit code."""
    from agentaudit.infra.store._limits import StoreLimits
    from agentaudit.infra.store.server import StoreServer

    try:
        server = StoreServer(data_dir, host=host, port=port, password=password, reader_password=reader_password,
                             limits=StoreLimits(), protect_metrics=protect_metrics)
    except StoreLockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc}; pick another --port", file=sys.stderr)
        return 2

    def stop(signum: int, _frame: object) -> None:
        # shutdown() blocks until serve_forever returns, so it must not run on the serving thread.
        threading.Thread(target=server._httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    auth = "password required" if password else "no password: any local user has full SQL, set --password"
    if reader_password:
        auth += ", read-only user reader"
    print(f"agentaudit store serving {server.engine.data_dir} at {server.url} (ClickHouse HTTP, chDB "
          f"{server.engine.version}, {auth})", flush=True)
    server.serve_forever()
    print("agentaudit store stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    settings = StoreServerSettings()
    parser = argparse.ArgumentParser(prog="python -m agentaudit.infra.store", description=__doc__)
    parser.add_argument("--data-dir", default=settings.dir)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--password", default=settings.secret("password"),
                        help="password of user default (any SQL); env AGENTAUDIT_STORE_PASSWORD")
    parser.add_argument("--reader-password", default=settings.secret("reader_password"),
                        help="password of user reader (read-only); env AGENTAUDIT_STORE_READER_PASSWORD")
    parser.add_argument("--open-metrics", action="store_true",
                        help="serve /metrics without a password (default: behind it when one is set)")
    parser.epilog = ("Limits come from AGENTAUDIT_STORE_MAX_EXECUTION_TIME (s, default 30), ..._MAX_MEMORY_USAGE "
                     "(2 GiB), ..._MAX_RESULT_BYTES (256 MiB), ..._MAX_BODY_BYTES (128 MiB), ..._MAX_QUERY_BYTES "
                     "(1 MiB), ..._MAX_CONCURRENT_READS (4), ..._MAX_QUEUED_READS (16), ..._READ_QUEUE_TIMEOUT (10 s), "
                     "..._READER_MAX_THREADS (half the cores), ..._MAX_CONCURRENT_WRITES (4).")
    args = parser.parse_args(argv)
    configure_logging(logging.INFO)  # AGENTAUDIT_LOG_FORMAT, as `agentaudit store`
    return run(args.data_dir, args.host, args.port, args.password, args.reader_password, not args.open_metrics)


if __name__ == "__main__":
    sys.exit(main())
