"""Causal context that follows the code: the current action, through ``contextvars``.

asyncio tasks copy the context when they are created, so a task started inside an action sees
that action as its parent. Plain threads do not: use :func:`wrap` or :class:`ContextExecutor`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar

__all__ = ["ContextExecutor", "Frame", "current_frame", "new_frame", "wrap"]

P = ParamSpec("P")
R = TypeVar("R")


class Frame(NamedTuple):
    """The innermost running action: what a child needs to link to it."""

    action_id: str
    trace_id: str
    depth: int
    agent: str
    run_id: str


if TYPE_CHECKING:
    #: Builds a :class:`Frame`: the type checker checks each field as for ``Frame(...)``.
    new_frame = Frame
else:
    _tuple_new = tuple.__new__

    def new_frame(action_id, trace_id, depth, agent, run_id):
        # Frame(...) as a plain function call: the class call costs ~65 ns more per action on the agent's thread
        return _tuple_new(Frame, (action_id, trace_id, depth, agent, run_id))


CURRENT: contextvars.ContextVar[Frame | None] = contextvars.ContextVar("agentaudit_action", default=None)


def current_frame() -> Frame | None:
    """The innermost action running in this context, or None outside any action."""
    return CURRENT.get()


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` bound to a copy of the caller's context, so that it runs as a child of the current action
    on whatever thread calls it: ``threading.Thread(target=wrap(work))``."""
    ctx = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.run(fn, *args, **kwargs)

    run.__wrapped__ = fn  # type: ignore[attr-defined]  # the functools.wraps attribute; functions declare none
    return run


class ContextExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in a copy of the submitter's context (its current action)."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
