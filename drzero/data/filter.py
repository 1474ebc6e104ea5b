"""``--dataset-filter``: keep the rows of a question set that satisfy a small condition.

    level in ['Level 3', 'Level 4', 'Level 5']          # MATH levels 3-5 (paper Sec. 4)
    type == 'Algebra' and level != 'Level 1'
    year >= 2000

Grammar: one or more comparisons joined by ``and``; each is ``COLUMN OP VALUE`` with
``OP`` one of ``==  !=  <  <=  >  >=  in  not in``, ``COLUMN`` a column name (a Python
identifier) and ``VALUE`` a literal: a number, a quoted string, or a list of them.
The text is parsed with ``ast`` and only these node types are accepted; nothing is
evaluated, so a filter cannot run code. ``==`` and ``in`` also match when the two sides
are equal as strings (``year == '2001'`` matches the integer 2001).
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass

from drzero.errors import DrZeroError

_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
           ast.GtE: ">="}


@dataclass(frozen=True)
class Condition:
    column: str
    op: str  # one of _SYMBOL's values
    value: object  # a literal; a tuple for in / not in

    def __call__(self, row: dict) -> bool:
        x = row[self.column]
        if self.op in ("in", "not in"):
            hit = any(_same(x, v) for v in self.value)
            return hit if self.op == "in" else not hit
        if self.op in ("==", "!="):
            return _same(x, self.value) == (self.op == "==")
        try:
            return _ORDER[self.op](float(x), float(self.value))
        except (TypeError, ValueError):
            raise DrZeroError(f"--dataset-filter: {self.column} {self.op} {self.value!r} needs numbers, "
                              f"got {x!r}") from None


def _same(a, b) -> bool:
    return a == b or str(a) == str(b)


def parse_filter(text: str) -> list[Condition]:
    """The conditions of ``text`` (all must hold); DrZeroError names what is wrong."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise DrZeroError(f"--dataset-filter {text!r}: not a condition such as \"level in ['Level 3', 'Level 4']\"") from None
    parts = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    return [_condition(part, text) for part in parts]


def _condition(node, text: str) -> Condition:
    bad = DrZeroError(f"--dataset-filter {text!r}: each part must be COLUMN OP VALUE joined by `and` "
                      f"(OP: {', '.join(_SYMBOL.values())}; VALUE: a number, a quoted string or a list of them)")
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.left, ast.Name)):
        raise bad
    op = _SYMBOL.get(type(node.ops[0]))
    try:
        value = ast.literal_eval(node.comparators[0])
    except (ValueError, SyntaxError, TypeError):
        raise bad from None
    if op in ("in", "not in"):
        if not isinstance(value, (list, tuple, set)):
            raise DrZeroError(f"--dataset-filter {text!r}: `{op}` needs a list, e.g. [3, 4, 5]")
        value = tuple(value)
    elif isinstance(value, (list, tuple, set, dict)) or op is None:
        raise bad
    return Condition(node.left.id, op, value)


def apply_filter(rows: list[dict], text: str, source: str) -> list[dict]:
    """The rows of ``rows`` (raw dataset rows) that satisfy the filter ``text``."""
    conditions = parse_filter(text)
    columns = list(rows[0]) if rows else []
    for c in conditions:
        if rows and c.column not in rows[0]:
            raise DrZeroError(f"{source}: --dataset-filter names column {c.column!r}, which it lacks "
                              f"(columns: {', '.join(columns)})")
    kept = [row for row in rows if all(c(row) for c in conditions)]
    if not kept:
        raise DrZeroError(f"{source}: --dataset-filter {text!r} keeps none of its {len(rows)} rows")
    return kept
