"""Every ``# noqa`` names its rules and says why (issue 16: no silent lint exceptions).

The form is ``# noqa: CODE[, CODE] - reason``; ruff itself checks that each one still suppresses something (RUF100).
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


def _sources() -> list[Path]:
    files = {p.resolve() for folder in FOLDERS for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts}
    return sorted(files | {ROOT / "setup.py"})


def _bare_noqa(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: comment`` for each noqa comment in ``path`` without codes and a reason."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return [f"{path.relative_to(root)}:{token.start[0]}: {token.string}" for token in tokens
            if token.type == tokenize.COMMENT and NOQA.search(token.string) and not WITH_REASON.search(token.string)]


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
