"""Attacks on canonical JSON: make two different values share one canonical form, so that an approval
or a digest for one would cover the other.

What RFC 8785 says, and so what holds here (docs/canonical-json.md):

- key order is not part of a JSON object's value: any insertion order gives one form (by design);
- JSON has one number type: ``1`` and ``1.0`` are the same number and share a form, as do ``0`` and
  ``-0.0``; an approval of ``{"amount": 1}`` covers ``{"amount": 1.0}``, which is the same amount;
- strings are compared as code points, with no Unicode normalisation: NFC and NFD spellings differ;
- escapes are minimal and fixed, so a string cannot pose as structure.

Values JSON cannot hold (a NaN, an integer beyond 2**53, a non-string key, an object) have no strict
form: ``args_hash`` refuses them, so they cannot collide with a JSON value under an approval. The
never-raising capture converts them to strings, and there a conversion can share a form with that
string; those cases are pinned below so that a change is seen.
"""

from __future__ import annotations

import unicodedata

import pytest

from agentaudit.control.approvals import args_hash
from agentaudit.producers._capture import json_text
from agentaudit.schemas.canonical import canonical_json, canonical_text

DISTINCT = [
    ({"name": unicodedata.normalize("NFC", "café")}, {"name": unicodedata.normalize("NFD", "café")}),
    ({"k": "\u212b"}, {"k": "\u00c5"}),  # ANGSTROM SIGN vs LATIN CAPITAL A WITH RING: canonically equivalent
    ({"k": "\ufb01"}, {"k": "fi"}),  # compatibility ligature
    ({"a": 1}, {"a": "1"}),
    ({"a": 1}, {"a": True}),
    ({"a": None}, {"a": "null"}),
    ({"a": 0}, {"a": False}),
    ({"a": [1, 2]}, {"a": "[1,2]"}),
    ({"a": "1,\"b\":2"}, {"a": "1", "b": 2}),  # a string posing as more members
    ({"a\":1,\"b": 2}, {"a": 1, "b": 2}),  # a key posing as more members
    ({"a": "x\n"}, {"a": "x\\n"}),  # a newline vs a backslash and an n
    ({"a": "\u0000"}, {"a": ""}),
    ({"a": 9007199254740991}, {"a": 9007199254740990}),  # the largest exact integer and its neighbour
    ({"a": 0.1 + 0.2}, {"a": 0.3}),  # 0.30000000000000004 is not 0.3
    ({"a": [{}]}, {"a": [[]]}),
    ({"": 1}, {" ": 1}),
]


@pytest.mark.parametrize(("one", "other"), DISTINCT)
def test_different_json_values_never_share_a_canonical_form(one: object, other: object) -> None:
    assert canonical_json(one) != canonical_json(other)
    assert args_hash(one) != args_hash(other)
    assert json_text(one)[0] != json_text(other)[0]


SAME = [
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    ({"a": 1}, {"a": 1.0}),
    ({"a": 0}, {"a": -0.0}),
    ({"a": 100}, {"a": 1e2}),
    ({"\U0001f600": 1, "\ufb33": 2}, {"\ufb33": 2, "\U0001f600": 1}),
    ({"a": [1, 2]}, {"a": (1, 2)}),
]


@pytest.mark.parametrize(("one", "other"), SAME)
def test_equal_json_values_share_one_form_as_rfc_8785_says(one: object, other: object) -> None:
    assert canonical_json(one) == canonical_json(other)
    assert args_hash(one) == args_hash(other)


CONVERTED = [
    ({"a": float("nan")}, {"a": "NaN"}),
    ({"a": 2**53}, {"a": "9007199254740992"}),
    ({1: "x"}, {"1": "x"}),
    ({"a": "\ud800"}, {"a": "?"}),
    ({"a": {"y", "x"}}, {"a": ["x", "y"]}),
]


@pytest.mark.parametrize(("converted", "plain"), CONVERTED)
def test_converted_values_may_share_a_form_in_capture_but_never_under_an_approval(converted: object,
                                                                                   plain: object) -> None:
    assert canonical_text(converted)[0] == canonical_text(plain)[0]  # the documented conversion
    with pytest.raises(ValueError, match="must be JSON values"):
        args_hash(converted)
    assert args_hash(plain)  # the plain JSON value has its hash; the converted one has none to collide with
