"""One HTTP POST per notification, retried with jittered exponential back-off (tenacity over httpx).

A receiver cannot hold the notifier: every request has a timeout, the answer is read up to
``max_response_bytes`` and no further, and redirects are not followed (a webhook URL is exact).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from agentaudit.consumers.exceptions import DeliveryError
from agentaudit.consumers.notify.payloads import Notification, render
from agentaudit.consumers.notify.settings import NotifySettings

__all__ = ["Delivered", "Sender"]

_RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Delivered:
    """A receiver's 2xx answer: status, attempts it took, and the first bytes of its body."""

    status: int
    attempts: int
    body: bytes


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and exc.retryable


class Sender:
    """Posts notifications; ``send`` retries up to ``settings.attempts`` times, then raises :class:`DeliveryError`.

    :param transport: an httpx transport, for tests that drive it without a network; default the network.
    """

    def __init__(self, settings: NotifySettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._client = httpx.Client(timeout=httpx.Timeout(settings.timeout_s), follow_redirects=False,
                                    transport=transport, trust_env=False)

    def post_once(self, route: object, notification: Notification) -> Delivered:
        """One attempt; raises :class:`DeliveryError` (``retryable`` for 5xx, 408/425/429 and network errors)."""
        body, headers = render(route, notification)
        url = str(route.url)  # type: ignore[attr-defined]  # every route model has a url; render() checked it
        deadline = time.monotonic() + self.settings.timeout_s * 2
        limit = self.settings.max_response_bytes
        try:
            with self._client.stream("POST", url, content=body, headers=headers) as response:
                kept = bytearray()
                for chunk in response.iter_raw():
                    kept += chunk[: max(0, limit - len(kept))]
                    if len(kept) >= limit or time.monotonic() > deadline:
                        break  # the rest is dropped unread: closing the stream closes the connection
        except httpx.HTTPError as exc:
            raise DeliveryError(f"POST {url}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return Delivered(status, 1, bytes(kept))
        retryable = status >= 500 or status in _RETRYABLE_STATUS
        raise DeliveryError(f"POST {url}: HTTP {status}: {bytes(kept[:200])!r}", status=status, retryable=retryable)

    def send(self, route: object, notification: Notification) -> Delivered:
        """Deliver with retries; the last :class:`DeliveryError` is raised when every attempt failed."""
        s = self.settings
        retrying = Retrying(stop=stop_after_attempt(s.attempts), retry=retry_if_exception(_retryable),
                            wait=wait_exponential(multiplier=s.retry_initial_s, max=s.retry_max_s)
                            + wait_random(0, s.retry_initial_s), reraise=True)
        for attempt in retrying:
            with attempt:
                result = self.post_once(route, notification)
            if not attempt.retry_state.outcome.failed:  # type: ignore[union-attr]  # set once the attempt ran
                return Delivered(result.status, attempt.retry_state.attempt_number, result.body)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def close(self) -> None:
        self._client.close()
