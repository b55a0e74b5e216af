"""Attack: make the SDK raise into the agent, or lose the record of what the agent did.

Whoever controls what an agent handles (a prompt, a tool result, a third-party object) controls
the values the agent passes to the SDK. The README promises the SDK never raises into the agent.
Each test passes the exact hostile value and expects: no exception from the SDK, the agent's own
exception unchanged, the action still runs and is sealed as an event the pipeline accepts (decoded
with the pipeline's validation), and the event names what could not be captured in an
``agentaudit.uncaptured.<field>`` attribute.

The property test drives every public entry point with generated hostile values;
``AGENTAUDIT_FUZZ_EXAMPLES`` sets how many examples (default 25).
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from agentaudit.control import ActionBlocked
from agentaudit.control.approvals import Approval
from agentaudit.infra.kafka import read_all
from agentaudit.producers import AuditClient
from agentaudit.producers.otel import AuditSpanExporter, AuditSpanProcessor, span_action_id
from agentaudit.schemas import AvroCodec
from tests.sdk_support import offline_client, records_of

UNCAPTURED = "agentaudit.uncaptured."
_ARMED = [False]  # hostile dunders raise only while the SDK runs, so that test reports can print them


class Hostile:
    """An object whose chosen dunders raise ``exc``: what a hostile or broken library hands an agent."""

    def __init__(self, raising: frozenset[str], exc: type[Exception] = ValueError) -> None:
        self.raising = raising
        self.exc = exc

    def _maybe(self, what: str) -> None:
        if _ARMED[0] and what in self.raising:
            raise self.exc(f"hostile {what}")

    def __repr__(self) -> str:
        self._maybe("repr")
        return f"Hostile({sorted(self.raising)})"

    def __str__(self) -> str:
        self._maybe("str")
        return "hostile"

    def __eq__(self, other: object) -> bool:
        self._maybe("eq")
        return self is other

    def __hash__(self) -> int:
        self._maybe("hash")
        return id(self)

    def __iter__(self) -> Iterator[Any]:
        self._maybe("iter")
        return iter(())

    def __len__(self) -> int:
        self._maybe("len")
        return 0

    def __bool__(self) -> bool:
        self._maybe("bool")
        return True

    def __int__(self) -> int:
        self._maybe("int")
        return 1

    def __float__(self) -> float:
        self._maybe("float")
        return 1.0

    def __lt__(self, other: object) -> bool:
        self._maybe("lt")
        return False


class HostileError(Exception):
    """An agent exception whose ``__str__`` raises (it once made the SDK raise RuntimeError instead)."""

    def __str__(self) -> str:
        raise RuntimeError("hostile __str__")


def nested(depth: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


def cyclic_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def cyclic_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["self"] = value
    return value


class RaisingItems(dict):  # type: ignore[type-arg]  # hostile input: any keys and values
    def items(self):  # type: ignore[no-untyped-def]  # it only raises
        raise KeyError("hostile items()")


DUNDERS = ("repr", "str", "eq", "hash", "iter", "len", "bool", "int", "float", "lt")
EXCEPTIONS = (ValueError, RuntimeError, RecursionError, KeyError, TypeError, MemoryError)

hostile = st.builds(Hostile, st.frozensets(st.sampled_from(DUNDERS), min_size=1), st.sampled_from(EXCEPTIONS))
surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.characters(), max_size=20)
keys = st.builds(Hostile, st.frozensets(st.sampled_from([d for d in DUNDERS if d != "hash"])),
                 st.sampled_from(EXCEPTIONS)) | surrogates  # usable as dict keys: hashing works
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), surrogates,
    st.binary(max_size=64), st.builds(pow, st.just(10), st.just(5000)), st.just(-(2**200)),
    st.builds(str.__mul__, st.just("x"), st.just(2_000_000)), st.just(b"\xff" * 1000),
    st.just("postgres://app:hunter2@db/prod"), hostile)
structures = st.one_of(
    st.integers(100, 20_000).map(nested), st.builds(cyclic_list), st.builds(cyclic_dict),
    st.builds(lambda h: RaisingItems(a=h), hostile), st.builds(lambda h: {h: 1, "k": h}, hostile))
values = st.recursive(scalars | structures,
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=8)
FUZZ_EXAMPLES = int(os.environ.get("AGENTAUDIT_FUZZ_EXAMPLES", "25"))


class Expected:
    """The events one example must have produced: action ids (start+end) and point ids."""

    def __init__(self) -> None:
        self.actions: list[str] = []
        self.points: list[str] = []


def drive(audit: AuditClient, data: st.DataObject, expected: Expected) -> None:
    """Every public entry point, each argument drawn hostile. Any exception from the SDK fails the test."""
    def v() -> Any:  # one fresh hostile value per argument, drawn disarmed (hypothesis hashes and prints)
        _ARMED[0] = False
        try:
            return data.draw(values)
        finally:
            _ARMED[0] = True

    def t() -> Any:  # an explicit event time: hostile, naive or aware datetimes, microseconds in and out of range
        _ARMED[0] = False
        try:
            return data.draw(values | st.datetimes(timezones=st.none() | st.just(UTC))
                             | st.integers(-(2**70), 2**70))
        finally:
            _ARMED[0] = True

    _ARMED[0] = True
    try:
        with audit.action(v(), name=v(), agent=v(), parent=v(), input=v(), attributes=v(), model=v(),
                          links=v(), run_id=v(), start_time_us=t(), end_time_us=t()) as act:
            act.set_output(v())
            act.set_attribute(v(), v())
            act.set_cost(input_tokens=v(), output_tokens=v(), cost_usd=v(), model=v())
            act.add_cost(input_tokens=v(), output_tokens=v(), cost_usd=v())
            act.set_status(v(), v())
            act.link(v())
        expected.actions.append(act.action_id)

        async def in_async() -> None:
            async with audit.action("chat", name=v(), input=v(), attributes={"k": v()}) as act:
                act.set_output(v())
            expected.actions.append(act.action_id)
        asyncio.run(in_async())

        result = v()

        @audit.action("execute_tool", name=v(), attributes={"a": v()})
        def tool(*args: Any, **kwargs: Any) -> Any:
            expected.actions.append(audit.current_action_id() or "missing")
            return result

        assert tool(v(), v(), key=v()) is result  # the agent's return value, untouched

        plain = object()  # asyncio itself reprs a task's result in places: not the SDK's to guard

        @audit.action("execute_tool")
        async def atool(*args: Any, **kwargs: Any) -> Any:
            expected.actions.append(audit.current_action_id() or "missing")
            return plain

        assert asyncio.run(atool(v(), key=v())) is plain

        error = HostileError()
        with pytest.raises(HostileError) as raised, audit.action("execute_tool", name=v(), input=v()) as act:
            raise error
        assert raised.value is error  # the agent's own exception, not one of the SDK's
        expected.actions.append(act.action_id)

        expected.points += [
            audit.decision(v(), input=v(), output=v(), reason=v(), agent=v(), attributes=v(), time_us=t()),
            audit.message(v(), content=v(), to=v(), role=v(), agent=v(), attributes=v(), time_us=t()),
            audit.approval(v(), name=v(), input=v(), granted=v(), grant=v(), agent=v(), attributes=v(),
                           time_us=t()),
            audit.handoff(v(), input=v(), agent=v(), attributes=v(), time_us=t()),
            audit.event(v(), v(), agent=v(), parent=v(), input=v(), output=v(), attributes=v(), actor=v(),
                        status=v(), links=v(), time_us=t()),
            audit.emit({"kind": v(), "name": v(), "input": v(), "cost_usd": v(), "input_tokens": v(),
                        "status": v(), "actor_type": v(), "actor_id": v(), "links": v(), "parent": v(),
                        "error_message": v(), data.draw(keys): v(), "attributes": v(), "time_us": t()}),
            audit.emit(v()),
        ]
        audit.record_action(v(), v(), action_id="rec-" + str(len(expected.actions)), trace_id=v(),
                            start_time_us=v(), end_time_us=v(), parent_action_id=v(), depth=v(), agent=v(),
                            status=v(), error_type=v(), error_message=v(), model=v(), input_tokens=v(),
                            output_tokens=v(), cost_usd=v(), attributes=v(), links=v())
        expected.actions.append("rec-" + str(len(expected.actions)))
    finally:
        _ARMED[0] = False


def otel_text() -> st.SearchStrategy[Any]:
    """Values OpenTelemetry itself accepts as span attributes, chosen to hurt: NaN, huge, surrogates, junk."""
    return st.one_of(surrogates, st.builds(str.__mul__, st.just("n"), st.just(200_000)),
                     st.floats(allow_nan=True, allow_infinity=True),
                     st.integers(min_value=-(2**70), max_value=2**70), st.booleans(),
                     st.lists(st.integers(), max_size=3).map(tuple))


def drive_otel(audit: AuditClient, data: st.DataObject, expected: Expected) -> None:
    for provider_kind in ("processor", "exporter"):
        provider = TracerProvider()
        if provider_kind == "processor":
            provider.add_span_processor(AuditSpanProcessor(audit, include_all=True))
        else:
            provider.add_span_processor(SimpleSpanProcessor(AuditSpanExporter(audit, include_all=True)))
        tracer = provider.get_tracer("hostile")
        name = data.draw(surrogates | st.builds(str.__mul__, st.just("s"), st.just(100_000)))
        attrs = {key: data.draw(otel_text()) for key in (
            "gen_ai.operation.name", "gen_ai.agent.name", "gen_ai.tool.name", "gen_ai.request.model",
            "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.cost_usd", "error.type",
            "user.thing")}
        with tracer.start_as_current_span(name, attributes=attrs) as span:
            with tracer.start_as_current_span("child", attributes={"gen_ai.operation.name": "chat"}) as child:
                child.set_status(Status(StatusCode.ERROR, data.draw(surrogates)))
            ctx = span.get_span_context()
            child_ctx = child.get_span_context()
        expected.actions += [span_action_id(ctx.trace_id, ctx.span_id),
                             span_action_id(child_ctx.trace_id, child_ctx.span_id)]
        provider.shutdown()


def check(records: list[dict[str, Any]], expected: Expected) -> None:
    """Every expected action has a start and an end event, every point event is there, and each
    decoded with the pipeline's own validation (records_of decodes with it)."""
    phases: dict[str, set[str]] = {}
    for record in records:
        phases.setdefault(record["action_id"], set()).add(record["phase"])
        assert all(type(k) is str and type(v) is str for k, v in record["attributes"].items())
        assert math.isfinite(record["cost_usd"])
    missing = [a for a in expected.actions if phases.get(a) != {"start", "end"}]
    assert not missing, f"actions not recorded start+end: {missing[:5]}"
    missing = [p for p in expected.points if not p or phases.get(p) != {"point"}]
    assert not missing, f"point events not recorded: {missing[:5]}"


@pytest.mark.slow
def test_every_entry_point_survives_generated_hostile_values(tmp_path: Path) -> None:
    """Attack: hypothesis-generated objects whose __repr__/__str__/__eq__/__hash__/__iter__/__len__/__bool__/
    __int__/__float__ raise (ValueError ... MemoryError), 100..20,000-deep and cyclic structures, 10**5000,
    2 MB strings, bytes, NaN and infinities, lone surrogates, a DB URL with its password; in every argument
    of every public entry point. Expected: nothing raises, every action and point event is sealed and valid."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    audit = offline_client(tmp_path / "spool")
    expected = Expected()

    # no shrinking: megabyte strings and 100,000-deep lists make it take minutes; the failing draws print
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, phases=(Phase.generate,),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        drive(audit, data, expected)
        drive_otel(audit, data, expected)

    try:
        run()
    finally:
        _ARMED[0] = False
        audit.close(timeout=0.5)
    stats = audit.stats()
    assert stats["invalid"] == 0 and stats["redaction_errors"] == 0, stats
    records = records_of(tmp_path / "spool")
    check(records, expected)
    assert any(k.startswith(UNCAPTURED) for r in records for k in r["attributes"])


# -- each finding of issue 11, as reported ------------------------------------------------------------


def _armed_hostile(*raising: str) -> Hostile:
    _ARMED[0] = True
    return Hostile(frozenset(raising))


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditClient]:
    client = offline_client(tmp_path / "spool")
    yield client
    _ARMED[0] = False
    client.close(timeout=0.3)


def _sealed(audit: AuditClient, tmp_path: Path) -> list[dict[str, Any]]:
    _ARMED[0] = False
    audit.close(timeout=0.3)
    assert audit.stats()["invalid"] == 0
    return records_of(tmp_path / "spool")


def test_an_input_holding_an_object_whose_repr_raises(audit: AuditClient, tmp_path: Path) -> None:
    """Attack: ``input={"card": <object whose __repr__ raises ValueError>}``. It used to raise out of
    ``action()``. Expected: the action runs; both events say the input was not fully captured."""
    ran = []
    with audit.action("execute_tool", name="pay", input={"card": _armed_hostile("repr", "str")}):
        ran.append(1)
    start, end = _sealed(audit, tmp_path)
    assert ran == [1] and start["input_digest"] and end["status"] == "ok"
    # objects are captured by str(), never repr() (RFC 8785 digests, docs/canonical-json.md)
    assert start["attributes"][UNCAPTURED + "input"] == "str() of Hostile raised ValueError"


def test_set_output_with_an_object_whose_repr_raises(audit: AuditClient, tmp_path: Path) -> None:
    """Attack: ``act.set_output(<object whose __repr__ and __str__ raise>)``. Expected: no exception, the end
    event carries an output digest and ``agentaudit.uncaptured.output``."""
    with audit.action("execute_tool", name="fetch") as act:
        act.set_output(_armed_hostile("repr", "str"))
    _, end = _sealed(audit, tmp_path)
    assert end["output_digest"] and "str() of Hostile raised" in end["attributes"][UNCAPTURED + "output"]


def test_attributes_whose_str_raises(audit: AuditClient, tmp_path: Path) -> None:
    """Attack: ``set_attribute("k", v)`` and ``attributes={"k": v}`` with ``v.__str__`` raising ValueError.
    Expected: no exception; the attribute is a placeholder and the event says which key and why."""
    with audit.action("execute_tool", name="t", attributes={"given": _armed_hostile("str")}) as act:
        act.set_attribute("set", _armed_hostile("str"))
    start, end = _sealed(audit, tmp_path)
    assert start["attributes"]["given"] == "<unprintable Hostile>"
    assert "given: str() of Hostile raised ValueError" in start["attributes"][UNCAPTURED + "attributes"]
    assert end["attributes"]["set"] == "<unprintable Hostile>"


def test_an_input_nested_100000_levels_deep(audit: AuditClient, tmp_path: Path) -> None:
    """Attack: an input list nested 100,000 levels (``json.dumps`` and ``repr`` raise RecursionError).
    Expected: no exception; the digest covers the first 64 levels and the event says so."""
    with audit.action("execute_tool", name="deep", input=nested(100_000)):
        pass
    start, _ = _sealed(audit, tmp_path)
    assert start["attributes"][UNCAPTURED + "input"] == "nested deeper than 64 levels"


def test_an_agent_exception_whose_str_raises_propagates_unchanged(audit: AuditClient, tmp_path: Path) -> None:
    """Attack: the agent raises an exception whose ``__str__`` raises. It used to be replaced by the SDK's
    own RuntimeError. Expected: the agent's exception object propagates; the end event has status error,
    the type, a placeholder message and ``agentaudit.uncaptured.error_message``."""
    error = HostileError()
    with pytest.raises(HostileError) as raised, audit.action("execute_tool", name="boom"):
        raise error
    assert raised.value is error
    _, end = _sealed(audit, tmp_path)
    assert end["status"] == "error" and end["error_type"] == "HostileError"
    assert end["error_message"] == "<unprintable HostileError>"
    assert end["attributes"][UNCAPTURED + "error_message"] == "str() of HostileError raised RuntimeError"


@pytest.mark.parametrize(("value", "field", "problem"), [
    ("tool\ud800name", "name", "lone surrogates replaced"),
    ("n" * 5_000_000, "name", "cut from 5000000 characters"),
])
def test_names_that_cannot_be_encoded_or_are_huge(audit: AuditClient, tmp_path: Path, value: str, field: str,
                                                  problem: str) -> None:
    """Attack: a name with a lone surrogate (UTF-8 cannot encode it: the event used to be dropped as
    unencodable) or of 5 million characters (beyond the broker's message size). Expected: both events
    sealed, the name cleaned or cut, and the note says which."""
    with audit.action("execute_tool", name=value):
        pass
    start, end = _sealed(audit, tmp_path)
    assert start["name"] == end["name"] and len(start["name"]) <= 1024
    assert start["attributes"][UNCAPTURED + field] == problem


def test_counts_and_costs_the_pipeline_would_reject(audit: AuditClient, tmp_path: Path) -> None:
    """Attack: ``emit({"cost_usd": nan, "input_tokens": 2**80})`` and ``set_cost(cost_usd=inf)``: a NaN cost
    was sealed and then refused by the consumer; a 2**80 count made the event unencodable. Expected: the
    values are left out, the events are valid, and the notes name the fields."""
    audit.emit({"kind": "decision", "name": "n", "cost_usd": float("nan"), "input_tokens": 2**80})
    with audit.action("chat", name="m") as act:
        act.set_cost(cost_usd=float("inf"), output_tokens=-5)
    point, _, end = _sealed(audit, tmp_path)
    assert point["cost_usd"] == 0.0 and point["input_tokens"] == 0
    assert set(point["attributes"]) >= {UNCAPTURED + "cost_usd", UNCAPTURED + "input_tokens"}
    assert end["cost_usd"] == 0.0 and UNCAPTURED + "output_tokens" in end["attributes"]


def test_the_span_processor_survives_junk_span_attributes(audit: AuditClient, tmp_path: Path) -> None:
    """Attack: a GenAI span whose ``gen_ai.usage.input_tokens`` is ``"lots"`` and cost is NaN: ``int()`` used
    to raise inside ``span.end()``, i.e. in the agent's own ``with tracer.start_as_current_span``.
    Expected: the span ends normally; the action is recorded with the junk left out and noted."""
    provider = TracerProvider()
    provider.add_span_processor(AuditSpanProcessor(audit))
    with provider.get_tracer("t").start_as_current_span("chat", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "lots",
            "gen_ai.usage.cost_usd": float("nan")}):
        pass
    provider.shutdown()
    _, end = _sealed(audit, tmp_path)
    assert end["input_tokens"] == 0 and end["cost_usd"] == 0.0
    assert {UNCAPTURED + "input_tokens", UNCAPTURED + "cost_usd"} <= set(end["attributes"])


def test_an_approval_over_arguments_that_cannot_be_hashed_refuses_the_action(audit: AuditClient,
                                                                             tmp_path: Path) -> None:
    """Attack: ``action(..., input={"amount": <object whose __repr__ raises>}, approval=grant)``: the approval
    check cannot hash the arguments (it raised ValueError into the agent). Expected: the action does not run,
    the agent gets ``ActionBlocked`` with code ``gate_error`` (the one exception the SDK raises on purpose),
    and a guardrail event records the refusal."""
    grant = Approval.grant(agent_id="agent-under-test", tool="payments.refund", args={"amount": 40},
                           approver="alice")
    ran = []
    with pytest.raises(ActionBlocked) as blocked:
        with audit.action("execute_tool", name="payments.refund", input={"amount": _armed_hostile("repr")},
                          approval=grant):
            ran.append(1)
    assert ran == [] and blocked.value.code == "gate_error"
    (note,) = _sealed(audit, tmp_path)
    assert note["kind"] == "guardrail" and note["status"] == "denied" and note["attributes"]["code"] == "gate_error"


@pytest.mark.integration
@pytest.mark.broker
def test_hostile_values_are_delivered_through_a_real_broker(kafka_settings_factory, tmp_path: Path) -> None:
    """Attack: the findings above, through a real broker (tansu here; Apache Kafka in CI). Expected: every
    event reaches the topic and decodes with the pipeline's validation."""
    kafka = kafka_settings_factory(partitions=1)
    _ARMED[0] = True
    try:
        with AuditClient(kafka=kafka, tenant="acme", agent="bot", spool_dir=tmp_path / "spool") as audit:
            with audit.action("execute_tool", name="x\udcff", input={"h": Hostile(frozenset({"repr"}))}) as act:
                act.set_output(nested(100_000))
                act.set_attribute("k", Hostile(frozenset({"str"})))
            with pytest.raises(HostileError), audit.action("execute_tool", name="boom"):
                raise HostileError()
            audit.emit({"kind": "decision", "cost_usd": float("nan"), "name": "n" * 3_000_000})
            assert audit.flush(20)
            stats = audit.stats()
    finally:
        _ARMED[0] = False
    assert stats["invalid"] == 0 and stats["delivered"] == 5, stats
    codec = AvroCodec("action")
    records = [codec.decode(m.value()) for m in read_all(kafka, kafka.topics.actions, expected=5, timeout=20)]
    assert len(records) == 5
    assert sum(1 for r in records for k in r["attributes"] if k.startswith(UNCAPTURED)) >= 5
