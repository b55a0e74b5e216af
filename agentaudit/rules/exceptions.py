"""Errors of the rule engine::

    AgentAuditError
    └── RuleEngineError                  the rule engine could not load or judge
        ├── RuleError                    a rule file is wrong; names the file, line and rule
        └── OwnersError                  an owners file is wrong; names the file and line

Evaluation never raises on bad events: it is load that fails, with the place named.
"""

from __future__ import annotations

from agentaudit.exceptions import AgentAuditError

__all__ = ["OwnersError", "RuleEngineError", "RuleError"]


class RuleEngineError(AgentAuditError):
    """The rule engine failed to load rules or ownership."""


class RuleError(RuleEngineError):
    """A rule cannot be loaded or evaluated.

    :param file: the rule file, when known.
    :param line: 1-based line in ``file``, when known.
    :param rule: the rule id, when known.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, rule: str | None = None) -> None:
        where = ":".join(str(part) for part in (file, line) if part is not None)
        prefix = f"{where}: " if where else ""
        prefix += f"rule {rule!r}: " if rule else ""
        super().__init__(prefix + message)
        self.file = file
        self.line = line
        self.rule = rule


class OwnersError(RuleEngineError):
    """An owners file is wrong; names the file and line.

    :param file: the owners file.
    :param line: 1-based line, when known.
    """

    def __init__(self, message: str, *, file: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")
        self.file = file
        self.line = line
