"""RFC 8785 canonical JSON: the RFC's own examples, the fast path against the reference package, and
conversions that are the same in every process (no memory address ever reaches a digest)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
import uuid

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from agentaudit.control.approvals import args_hash
from agentaudit.producers._capture import json_text
from agentaudit.schemas.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalError,
    canonical_json,
    canonical_text,
    jcs_number,
    to_json_value,
)

# RFC 8785 Appendix B: IEEE 754 bit patterns and the text JCS writes for them.
RFC_NUMBERS = [
    ("0000000000000000", "0"), ("8000000000000000", "0"), ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"), ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"), ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"), ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"), ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"), ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"), ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"), ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"), ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"), ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"), ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _double(bits: str) -> float:
    return struct.unpack(">d", bytes.fromhex(bits))[0]


@pytest.mark.parametrize(("bits", "text"), RFC_NUMBERS)
def test_numbers_are_written_as_rfc_8785_appendix_b_says(bits: str, text: str) -> None:
    assert jcs_number(_double(bits)) == text
    assert canonical_json([_double(bits)]) == f"[{text}]"


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_nan_and_infinity_have_no_strict_form(bits: str) -> None:
    with pytest.raises(CanonicalError):
        canonical_json({"x": _double(bits)})


def test_the_rfc_section_3_2_2_example() -> None:
    source = r'''{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }'''
    expected = ('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
                '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}')
    assert canonical_json(json.loads(source)) == expected


def test_keys_sort_by_utf16_code_units_as_in_rfc_section_3_2_3() -> None:
    source = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
              "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control",
              "\u00f6": "Latin Small Letter O With Diaeresis"}
    order = list(json.loads(canonical_json(source)))
    # Code point order would put U+FB33 before U+1F600; UTF-16 puts the surrogate pair (D83D) first.
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonical_json(dict(reversed(list(source.items())))) == canonical_json(source)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_the_fast_path_writes_exactly_what_the_reference_package_writes(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value).decode()
    assert canonical_text(value) == (rfc8785.dumps(value).decode(), None)


@pytest.mark.parametrize("value", [{"x": object()}, {"x": float("nan")}, {"x": MAX_SAFE_INTEGER + 1},
                                   {1: "x"}, {"x": "\ud800"}, {"x": {1, 2}}])
def test_strict_forms_refuse_what_json_cannot_hold(value: object) -> None:
    with pytest.raises(CanonicalError):
        canonical_json(value)
    with pytest.raises(ValueError, match="must be JSON values"):
        args_hash(value)


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: float


def test_values_json_cannot_hold_are_converted_by_the_documented_rules() -> None:
    value = {"nan": float("nan"), "inf": float("-inf"), "big": 2**60, "neg0": -0.0, "set": {"b", "a", "c"},
             "tuple": (1, 2), "bytes": b"ok", "enum": Color.RED, "point": Point(1, 0.5), 7: "seven", True: "t"}
    text, problem = canonical_text(value)
    assert problem is None
    assert json.loads(text) == {"nan": "NaN", "inf": "-Infinity", "big": str(2**60), "neg0": 0,
                                "set": ["a", "b", "c"], "tuple": [1, 2], "bytes": "ok", "enum": "red",
                                "point": {"x": 1, "y": 0.5}, "7": "seven", "true": "t"}
    assert to_json_value(2**53)[0] == str(2**53) and to_json_value(MAX_SAFE_INTEGER)[0] == MAX_SAFE_INTEGER


class Opaque:
    """Default __repr__ and __str__: '<...Opaque object at 0x7f...>' in every process a new address."""


def _plain() -> None:
    pass


def test_default_reprs_never_put_an_address_into_a_digest() -> None:
    value = {"obj": Opaque(), "func": _plain, "method": Opaque().__init__, "nested": [Opaque(), {Opaque()}]}
    text, _ = json_text(value)
    assert "0x" not in text and "Opaque object" in text and "_plain" in text
    assert json_text(value) == json_text({"obj": Opaque(), "func": _plain, "method": Opaque().__init__,
                                          "nested": [Opaque(), {Opaque()}]})


_CHILD = textwrap.dedent("""
    import hashlib
    from agentaudit.producers._capture import json_text

    class Opaque:
        pass

    def plain():
        pass

    value = {"obj": Opaque(), "func": plain, "set": {"alpha", "beta", "gamma", "delta", "epsilon"},
             "nan": float("nan"), "big": 2**70, 3: [Opaque(), frozenset({"x", "y", "z"})]}
    text, problem = json_text(value)
    print(hashlib.sha256(text.encode()).hexdigest(), "0x" in text, problem)
""")


def test_the_same_value_gives_the_same_digest_in_two_interpreters() -> None:
    """Two processes with different string-hash seeds (so different set orders) and different heaps."""
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=60,
                              check=True)
        outputs.append(done.stdout.split())
    assert outputs[0] == outputs[1]
    digest, has_address, problem = outputs[0]
    assert len(digest) == 64 and has_address == "False" and problem == "None"


class Hostile:
    def __str__(self) -> str:
        raise RuntimeError("no")

    def __repr__(self) -> str:
        raise RuntimeError("no")


def test_conversion_never_raises_and_says_what_was_lost() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    deep: list[object] = []
    node = deep
    for _ in range(200):
        node.append([])
        node = node[0]  # type: ignore[assignment]  # walking down the nested lists just built
    for value, problem in ((Hostile(), "str() of Hostile raised RuntimeError"), (cycle, "cyclic reference"),
                           (deep, "nested deeper than 64 levels"), ({"k": "\udcff"}, "lone surrogates replaced"),
                           ({1: "a", "1": "b"}, "keys that read the same as text")):
        text, said = canonical_text(value)
        json.loads(text)
        assert said == problem
    # Colliding keys keep the value whose canonical form sorts last, whatever the insertion order.
    assert canonical_text({1: "a", "1": "b"})[0] == canonical_text({"1": "b", 1: "a"})[0] == '{"1":"b"}'


def test_hashes_built_on_it_are_plain_sha256_of_the_canonical_bytes() -> None:
    args = {"amount": 40.0, "to": "é"}
    assert args_hash(args) == hashlib.sha256('{"amount":40,"to":"é"}'.encode()).hexdigest()


def _nested(levels: int, leaf: object) -> list[object]:
    root: list[object] = [leaf]
    for _ in range(levels - 1):
        root = [root]
    return root


@pytest.mark.parametrize("levels", [64, 65, 200])
def test_depth_is_cut_alike_whichever_path_writes_the_value(levels: int) -> None:
    """Ints only take the fast path, a float forces the slow one: both keep 64 levels and cut the rest."""
    fast, slow = canonical_text(_nested(levels, 1)), canonical_text(_nested(levels, 1.5))
    assert fast[0].replace("1", "X") == slow[0].replace("1.5", "X")
    assert (fast[1], slow[1]) == ((None, None) if levels <= 64 else ("nested deeper than 64 levels",) * 2)


@settings(max_examples=2000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_jcs_number_writes_every_float_as_the_reference_package_does(value: float) -> None:
    assert jcs_number(value) == rfc8785.dumps(value).decode()


def test_the_strict_form_refuses_the_same_types_whatever_else_the_value_holds() -> None:
    for odd in (uuid.UUID(int=1), Color.RED):
        for value in ({"x": odd}, {"x": odd, "f": 1.5}):
            with pytest.raises(CanonicalError):
                canonical_json(value)


@pytest.mark.parametrize("value", [{"u": uuid.UUID(int=7)}, {"e": Color.RED}, {"p": Point(1, 2)},
                                   {"d": datetime.date(2026, 1, 2)}])
def test_types_orjson_writes_itself_read_as_the_documented_conversion_says(value: object) -> None:
    assert canonical_text(value)[0] == rfc8785.dumps(to_json_value(value)[0]).decode()
