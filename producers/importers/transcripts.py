"""OpenAI-style chat transcripts (JSON lines, one run per line) as action events.

A line is ``{"messages": [...]}`` with optional ``run_id``, ``agent_id``, ``tenant``, ``model`` and
``started_at``; each message has a ``role`` (``system``, ``user``, ``assistant``, ``tool``) and may carry
``timestamp`` (ISO 8601 with a zone, or epoch seconds). A run becomes:

- an ``invoke_agent`` action, the root (its ``run_id`` is the line's);
- a ``message`` event per user (and system) message: ``role`` attribute and the content's keyed digest;
- a ``chat`` action per assistant message, from the message before it to this one (model and
  ``usage`` tokens when given; the content as the output digest);
- an ``execute_tool`` action per entry of an assistant's ``tool_calls``: input the parsed arguments,
  ``args_hash`` as the SDK records it for an approval of the same arguments, ``tool_call_id``, a link to
  the chat turn that asked for it, and the matching ``tool`` message's time, content (and ``error``).
  The calls of one turn run one after another, as agent loops run them: the first starts at the
  assistant message, each next one when the one before answered (so a run's events are in time order).

Everything is a child of the root (depth 1), as a live agent instrumented with the SDK records it.
Missing times come from a deterministic clock: each message ``step`` after the one before; a run starts
at ``started_at``, else one ``step`` before its first timed message, else (no time at all) at the
importer's ``start``, such runs one after another, :data:`RUN_GAP_US` apart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

from agentaudit.producers.importers._common import ClientFactory, ImportReport, iter_json_lines, parse_time_us
from agentaudit.producers.importers.exceptions import ImportInputError

__all__ = ["ToolCall", "TranscriptRun", "Turn", "import_transcripts", "parse_run", "record_run"]

_ROLES = frozenset(("system", "developer", "user", "assistant", "tool"))
#: Gap the deterministic clock leaves between two runs without times.
RUN_GAP_US = 60_000_000


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: Any
    result: Any = None
    result_us: int | None = None
    error: str | None = None
    answered: bool = False


@dataclass(slots=True)
class Turn:
    """One message, with its time once placed (``time_us``; None until the clock fills it)."""

    role: str
    content: Any
    time_us: int | None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None


@dataclass(slots=True)
class TranscriptRun:
    """One parsed line: where it came from, who ran it, its turns."""

    path: str
    line: int
    run_id: str
    agent: str | None
    tenant: str | None
    started_us: int | None
    turns: list[Turn]

    @property
    def timed(self) -> bool:
        return self.started_us is not None or any(t.time_us is not None for t in self.turns)


@overload
def _text(value: Any, where: str, bad: Any, *, required: Literal[True] = True) -> str: ...
@overload
def _text(value: Any, where: str, bad: Any, *, required: bool) -> str | None: ...
def _text(value: Any, where: str, bad: Any, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise bad(where, f"expected a non-empty string, got {json.dumps(value)[:80]}")
    return value


def _count(value: Any, where: str, bad: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise bad(where, f"expected a token count (an integer >= 0), got {json.dumps(value)[:80]}")
    return value


def parse_run(obj: Any, *, path: str, line: int) -> TranscriptRun:
    """Check one transcript line and read it; raises :class:`ImportInputError` naming the first bad field."""
    def bad(where: str, reason: str) -> ImportInputError:
        return ImportInputError(path, line, where, reason)

    if not isinstance(obj, dict):
        raise bad("(line)", f"expected a JSON object with \"messages\", got {type(obj).__name__}")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "expected a non-empty list of messages")
    run_id = obj.get("run_id")
    run_id = _text(run_id, "run_id", bad) if run_id is not None else f"{Path(path).name}:{line}"
    started = obj.get("started_at")
    started_us = parse_time_us(started, "started_at", path=path, line=line) if started is not None else None
    run_model = _text(obj.get("model"), "model", bad, required=False)
    turns: list[Turn] = []
    calls: dict[str, ToolCall] = {}
    for i, message in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad(at, f"expected an object with a role, got {type(message).__name__}")
        role = message.get("role")
        if role not in _ROLES:
            raise bad(f"{at}.role", f"expected one of {sorted(_ROLES)}, got {json.dumps(role)[:80]}")
        stamp = message.get("timestamp", message.get("created_at"))
        time_us = parse_time_us(stamp, f"{at}.timestamp", path=path, line=line) if stamp is not None else None
        turn = Turn(role, message.get("content"), time_us)
        if role == "assistant":
            turn.model = _text(message.get("model"), f"{at}.model", bad, required=False) or run_model
            usage = message.get("usage")
            if usage is not None:
                if not isinstance(usage, dict):
                    raise bad(f"{at}.usage", "expected an object with prompt_tokens and completion_tokens")
                turn.input_tokens = _count(usage.get("prompt_tokens", usage.get("input_tokens")),
                                           f"{at}.usage.prompt_tokens", bad)
                turn.output_tokens = _count(usage.get("completion_tokens", usage.get("output_tokens")),
                                            f"{at}.usage.completion_tokens", bad)
            raw_calls = message.get("tool_calls") or []
            if not isinstance(raw_calls, list):
                raise bad(f"{at}.tool_calls", "expected a list of tool calls")
            for j, raw in enumerate(raw_calls):
                where = f"{at}.tool_calls[{j}]"
                if not isinstance(raw, dict):
                    raise bad(where, "expected an object with id and function")
                call_id = _text(raw.get("id"), f"{where}.id", bad)
                function = raw.get("function")
                if not isinstance(function, dict):
                    raise bad(f"{where}.function", "expected an object with name and arguments")
                name = _text(function.get("name"), f"{where}.function.name", bad)
                args = function.get("arguments", {})
                if isinstance(args, str):
                    try:
                        args = json.loads(args) if args.strip() else {}
                    except ValueError as exc:
                        raise bad(f"{where}.function.arguments", f"not a JSON document: {exc}") from None
                if call_id in calls:
                    raise bad(f"{where}.id", f"{call_id!r} is used by an earlier tool call")
                call = ToolCall(call_id, name, args)
                calls[call_id] = call
                turn.tool_calls.append(call)
        elif role == "tool":
            call_id = _text(message.get("tool_call_id"), f"{at}.tool_call_id", bad)
            answered = calls.get(call_id)
            if answered is None:
                raise bad(f"{at}.tool_call_id", f"{call_id!r} answers no earlier tool call of this run")
            call = answered
            if call.answered:
                raise bad(f"{at}.tool_call_id", f"{call_id!r} was already answered")
            error = message.get("error")
            if error is not None and not isinstance(error, (str, bool)):
                raise bad(f"{at}.error", "expected a message (string) or true")
            call.answered, call.result, call.error = True, turn.content, (
                (error if isinstance(error, str) else "tool error") if error else None)
            turn.tool_call_id = call_id
        turns.append(turn)
    previous = started_us
    for i, turn in enumerate(turns):
        if turn.time_us is not None:
            if previous is not None and turn.time_us < previous:
                raise bad(f"messages[{i}].timestamp", "goes back in time (before the message or start before it)")
            previous = turn.time_us
    return TranscriptRun(path, line, run_id, _text(obj.get("agent_id"), "agent_id", bad, required=False),
                         _text(obj.get("tenant"), "tenant", bad, required=False), started_us, turns)


def _place(run: TranscriptRun, start_us: int | None, step_us: int) -> int:
    """Fill missing message times (each ``step_us`` after the one before); returns the run's start."""
    if run.started_us is not None:
        begin = run.started_us
    else:
        first = next((t.time_us for t in run.turns if t.time_us is not None), None)
        if first is not None:
            before = next(i for i, t in enumerate(run.turns) if t.time_us is not None)
            begin = first - (before + 1) * step_us
        elif start_us is not None:
            begin = start_us
        else:
            raise ImportInputError(run.path, run.line, "messages[0].timestamp",
                                   "the run has no times (no started_at, no message timestamp); pass --start "
                                   "to give runs without times a deterministic clock")
    clock = begin
    calls = {call.id: call for turn in run.turns for call in turn.tool_calls}
    for turn in run.turns:
        clock = turn.time_us if turn.time_us is not None else clock + step_us
        turn.time_us = clock
        if turn.tool_call_id is not None:
            calls[turn.tool_call_id].result_us = clock
    return begin


def _placed(turn: Turn) -> int:
    """A turn's time once :func:`_place` has run, which leaves no turn without one."""
    if turn.time_us is None:
        raise RuntimeError("a transcript turn was recorded before _place gave it a time")
    return turn.time_us


def record_run(run: TranscriptRun, client: Any, *, start_us: int | None = None, step_us: int = 1_000_000) -> int:
    """Record ``run`` through ``client`` (an :class:`~agentaudit.producers.AuditClient` of the run's tenant) with
    its real times, missing ones from the deterministic clock; returns the number of events. Raises
    :class:`ImportInputError` only when the run has no time and no ``start_us`` was given."""
    begin = _place(run, start_us, step_us)
    end = max(begin, *(_placed(t) for t in run.turns), *(c.result_us or 0 for t in run.turns for c in t.tool_calls))
    agent = run.agent
    events = 2
    with client.action("invoke_agent", name=agent or client.settings.agent_id, agent=agent, run_id=run.run_id,
                       start_time_us=begin, end_time_us=end):
        previous = begin
        for turn in run.turns:
            at = _placed(turn)
            if turn.role in ("user", "system", "developer"):
                client.message(turn.role, content=turn.content, role=turn.role, time_us=at)
                events += 1
            elif turn.role == "assistant":
                with client.action("chat", name=turn.model or "chat", model=turn.model, start_time_us=previous,
                                   end_time_us=at) as chat:
                    if turn.input_tokens is not None or turn.output_tokens is not None:
                        chat.set_cost(input_tokens=turn.input_tokens or 0, output_tokens=turn.output_tokens or 0)
                    if turn.content is not None:
                        chat.set_output(turn.content)
                events += 2
                began = at
                for call in turn.tool_calls:  # one after another: each starts when the one before answered
                    done = call.result_us if call.result_us is not None else began
                    began = min(began, done)
                    with client.action("execute_tool", name=call.name, input=call.arguments, links=[chat.action_id],
                                       attributes={"args_hash": client.args_hash(call.arguments),
                                                   "tool_call_id": call.id},
                                       start_time_us=began, end_time_us=done) as tool:
                        if not call.answered:
                            tool.set_status("unset")
                        elif call.error is not None:
                            tool.set_status("error", call.error)
                        if call.result is not None:
                            tool.set_output(call.result)
                    events += 2
                    began = done
            previous = at
    return events


def import_transcripts(paths: Sequence[Path], clients: ClientFactory, report: ImportReport, *,
                       start_us: int | None = None, step_us: int = 1_000_000) -> ImportReport:
    """Import every line of every file; a bad line is rejected (with its file, line and field) and the
    rest go on. Runs without times follow each other on the deterministic clock from ``start_us``."""
    cursor = start_us
    for path in paths:
        report.files += 1
        for number, raw, value in iter_json_lines(path):
            if isinstance(value, ImportInputError):
                report.reject(value, raw)
                continue
            try:
                run = parse_run(value, path=str(path), line=number)
                untimed = not run.timed
                report.events += record_run(run, clients(run.tenant), start_us=cursor, step_us=step_us)
            except ImportInputError as exc:
                report.reject(exc, raw)
                continue
            report.runs += 1
            if untimed and cursor is not None:
                cursor = max(_placed(t) for t in run.turns) + RUN_GAP_US
    return report
