"""Every ``# noqa`` and ``# type: ignore`` names its codes and says why (issue 16: no silent exceptions).

The forms are ``# noqa: CODE[, CODE] - reason`` and ``# type: ignore[code, code]  # reason`` (mypy reads
nothing after the ``]`` but a further comment, so the reason is one). ruff checks that each noqa still
suppresses something (RUF100); mypy does the same for each ignore in the files it checks (warn_unused_ignores).
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("agentaudit", "producers", "consumers", "schemas", "dashboard", "infra", "tests", "benchmarks")
NOQA = re.compile(r"#\s*noqa\b", re.IGNORECASE)
WITH_REASON = re.compile(r"#\s*noqa:\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*\s+-\s+\S")
TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore\b")
IGNORE_WITH_REASON = re.compile(r"#\s*type:\s*ignore\[[a-z][a-z-]*(\s*,\s*[a-z][a-z-]*)*\]\s+#\s*\S")


def _sources() -> list[Path]:
    files = {p.resolve() for folder in FOLDERS for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts}
    return sorted(files | {ROOT / "setup.py"})


def _bare(path: Path, marker: re.Pattern[str], form: re.Pattern[str], root: Path = ROOT) -> list[str]:
    """``file:line: comment`` for each comment in ``path`` with ``marker`` but not in ``form``."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return [f"{path.relative_to(root)}:{token.start[0]}: {token.string}" for token in tokens
            if token.type == tokenize.COMMENT and marker.search(token.string) and not form.search(token.string)]


def _bare_noqa(path: Path, root: Path = ROOT) -> list[str]:
    return _bare(path, NOQA, WITH_REASON, root)


def _bare_ignore(path: Path, root: Path = ROOT) -> list[str]:
    return _bare(path, TYPE_IGNORE, IGNORE_WITH_REASON, root)


def test_every_noqa_names_its_rules_and_says_why() -> None:
    sources = _sources()
    assert len(sources) > 300, "the walk found too few files: wrong root?"
    bare = [line for path in sources for line in _bare_noqa(path)]
    assert not bare, "write `# noqa: CODE - why`:\n" + "\n".join(bare)


def test_a_bare_noqa_is_caught(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('x = 1  # noqa: F841\ny = "# noqa in a string"\nz = 2  # noqa: E501 - a long URL\nw = 3  # noqa\n',
                      encoding="utf-8")
    assert [line.split(": ", 1)[0] for line in _bare_noqa(sample, tmp_path)] == ["sample.py:1", "sample.py:4"]


def test_every_type_ignore_names_its_codes_and_says_why() -> None:
    bare = [line for path in _sources() for line in _bare_ignore(path)]
    assert not bare, "write `# type: ignore[code]  # why`:\n" + "\n".join(bare)


def test_a_bare_type_ignore_is_caught(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("a = f()  # type: ignore\n"
                      "b = f()  # type: ignore[arg-type]\n"
                      "c = f()  # type: ignore[arg-type]  # the attack under test\n"
                      "d = f()  # type: ignore[arg-type] - mypy reads this as no ignore at all\n"
                      "e = f()  # type: ignore[union-attr, index]  # set by start()\n"
                      'g = "# type: ignore in a string"\n', encoding="utf-8")
    assert [line.split(": ", 1)[0] for line in _bare_ignore(sample, tmp_path)] == [
        "sample.py:1", "sample.py:2", "sample.py:4"]
