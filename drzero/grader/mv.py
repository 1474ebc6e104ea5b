"""math-verify, as its documentation calls it, minus the one ``eval`` on model output.

math-verify's ``parse(text)`` tries two extraction targets: ``LatexExtractionConfig``
(LaTeX, converted by latex2sympy) and ``ExprExtractionConfig`` (plain numbers and
expressions such as ``1/2`` or ``3*4+5``). The second hands what it matched to
``sympy.parsing.parse_expr`` (and plain numbers to ``sympy.Number(str)``), which calls
Python ``eval``. We never run that on model output, not even in the sandbox.

``parse`` below is math-verify's ``parse`` with the same defaults, the same regexes
(taken from math-verify itself), the same priorities and the same first/any-match
logic, except that a plain-expression match is read by our own ``read_plain_expr``:
a small recursive-descent parser for exactly what math-verify's expression regex admits
(digits, ``.``, ``+ - * / ^ ( )``) with Python's precedence, building the same sympy
numbers math-verify would (``Integer``, ``Float(str)``, percentages via
latex2sympy's ``convert_to_pct``). Expressions Python would reject (``2(3)``, ``3×4``)
give nothing, as they do in math-verify; power towers give nothing instead of hanging.
Otherwise the result is the same sympy object, unevaluated as ``parse_expr(...,
evaluate=False)`` leaves it (``1/3.`` -> ``1/3.0``, ``1-2-3`` -> ``-1*3 - 1*2 + 1``).

Import this module only in sandbox workers: it imports sympy and math-verify, and
math-verify's own timeouts use ``signal.alarm``, which needs a process's main thread.
"""

from __future__ import annotations

import math
import re
from itertools import groupby

import sympy
from latex2sympy2_extended.latex2sympy2 import convert_to_pct
from math_verify import ExprExtractionConfig, LatexExtractionConfig, verify
from math_verify.errors import TimeoutException
from math_verify.parser import extract_latex, get_extraction_regexes
from math_verify.utils import timeout

from drzero.grader.compare import reference_strings

DEFAULT_CONFIG = (LatexExtractionConfig(), ExprExtractionConfig())
MAX_POWER_DIGITS = 2000

_PLAIN_TOKEN_RE = re.compile(r"\s*(?:(\d+\.?\d*|\.\d+)|(\*\*|[-+*/()]))")


class _Reject(Exception):
    """Python would not evaluate this expression (syntax), or it is too big."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _PLAIN_TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise _Reject(text[pos])
        out.append(("num", m.group(1)) if m.group(1) is not None else ("op", m.group(2)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _PlainParser:
    """expr := term (('+'|'-') term)* ; term := unary (('*'|'/') unary)* ;
    unary := ('+'|'-') unary | power ; power := atom ('**' unary)? ; atom := NUMBER | '(' expr ')'
    (Python's grammar for these operators: ``**`` binds tighter than unary minus on its
    left and is right-associative). Produces a small tree; ``_build`` turns it into what
    ``parse_expr(..., evaluate=False)`` builds."""

    def __init__(self, tokens):
        self.toks, self.i, self.depth = tokens, 0, 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def parse(self):
        node = self.expr()
        if self.i != len(self.toks):
            raise _Reject("trailing")
        return node

    def expr(self):
        self.depth += 1
        if self.depth > 100:
            raise _Reject("deep")
        node = self.term()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            rhs = self.term()
            node = ("add", node, rhs if op == "+" else ("mul_raw", ("num", sympy.Integer(-1)), rhs))
        self.depth -= 1
        return node

    def term(self):
        node = self.unary()
        while self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            if op == "/" and self.peek()[1] == "/":  # Python's floor division
                self.take()
                node = ("floordiv", node, self.unary())
                continue
            rhs = self.unary()
            node = ("mul", node, rhs if op == "*" else ("pow", rhs, ("num", sympy.Integer(-1))))
        return node

    def unary(self):
        self.depth += 1
        if self.depth > 100:
            raise _Reject("deep")
        if self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            node = self.unary()
            node = ("neg", node) if op == "-" else node
        else:
            node = self.power()
        self.depth -= 1
        return node

    def power(self):
        base = self.atom()
        if self.peek()[1] == "**":
            self.take()
            return ("pow", base, self.unary())
        return base

    def atom(self):
        kind, val = self.take()
        if kind == "num":
            if not val.isascii():
                raise _Reject(val)
            return ("num", sympy.Float(val) if "." in val else sympy.Integer(int(val)))
        if val == "(":
            node = self.expr()
            if self.take()[1] != ")":
                raise _Reject(")")
            return node
        raise _Reject(str(val))


def _size_check(node) -> float:
    """A rough magnitude (log10) of the value, raising ``_Reject`` for power towers before
    anything big is built or later evaluated by ``verify``."""
    kind = node[0]
    if kind == "num":
        return math.log10(abs(float(node[1])) + 1.0)
    if kind == "neg":
        return _size_check(node[1])
    if kind in ("add", "mul", "mul_raw", "floordiv"):
        return _size_check(node[1]) + _size_check(node[2]) + 1
    base, exponent = _size_check(node[1]), _size_check(node[2])
    if exponent > math.log10(MAX_POWER_DIGITS) + 1 or (base + 1) * 10**exponent > MAX_POWER_DIGITS:
        raise _Reject("power too large")
    return (base + 1) * 10**exponent


def _build(node, inside: str | None = None):
    """sympy's ``EvaluateFalseTransformer``: ``Add``/``Mul``/``Pow`` with
    ``evaluate=False``, nested sums and products flattened into one call, ``a - b`` as
    ``Add(a, Mul(-1, b))``, ``a / b`` as ``Mul(a, Pow(b, -1))``; unary minus evaluates."""
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "neg":
        return -_build(node[1])
    if kind == "pow":
        return sympy.Pow(_build(node[1]), _build(node[2]), evaluate=False)
    if kind == "floordiv":  # not rewritten by the transformer: evaluated, as Python does
        return _build(node[1]) // _build(node[2])
    if kind == "mul_raw":
        return sympy.Mul(_build(node[1]), _build(node[2]), evaluate=False)
    func = sympy.Add if kind == "add" else sympy.Mul
    return func(*_flat_args(node, kind), evaluate=False)


def _flat_args(node, kind: str) -> list:
    out = []
    for child in node[1:]:
        if child[0] == kind:
            out.extend(_flat_args(child, kind))
        else:
            out.append(_build(child))
    return out


def read_plain_expr(text: str):
    """What math-verify's ``parse_expr(text.replace('^', '**'), evaluate=False)`` gives for
    a string its expression regex matched, built without ``eval``; None where Python would
    fail to parse or evaluate it, or where it is a power tower."""
    text = text.replace("\n", " ").replace("^", "**")
    try:
        tokens = _tokens(text)
        if not tokens:
            return None
        tree = _PlainParser(tokens).parse()
        _size_check(tree)
        return _build(tree)
    except (_Reject, ZeroDivisionError, OverflowError, ValueError, TypeError, RecursionError):
        return None


def _extract_expr(match: re.Match):
    """math-verify's ``extract_expr``, with ``read_plain_expr`` for its ``parse_expr`` and
    sympy's number constructors for its ``Number(str)``."""
    groups = match.groupdict()
    expr = groups.get("expr", "") or ""
    integer = next((v for k, v in groups.items() if k.startswith("integer") and v), "")
    decimal = next((v for k, v in groups.items() if k.startswith("decimal") and v), "")
    if integer or decimal:
        negative = integer.startswith("-")
        digits = integer.translate(str.maketrans("", "", ", ")).lstrip("-").lstrip("0") or "0"
        text = f"{'-' if negative else ''}{digits}{decimal.replace(',', '.')}"
        if not text.isascii():  # sympify fails on other scripts' digits, and parse gives []
            raise ValueError(f"not a Python number: {text!r}")
        number = sympy.Float(text) if "." in text else sympy.Integer(int(text))
        if groups.get("percent"):
            number = convert_to_pct(number)
        return number, text
    if expr:
        return read_plain_expr(expr), expr
    return None, expr


def _extract(match: re.Match, target):
    if isinstance(target, LatexExtractionConfig):
        return extract_latex(match, target)
    if isinstance(target, ExprExtractionConfig):
        return _extract_expr(match)
    raise ValueError(f"unsupported extraction target {target!r}")


def _extract_targets(text: str, targets, fallback_mode: str, extraction_mode: str) -> list:
    """math-verify's search order: patterns grouped by priority; within a group, matches
    from the rightmost end; the first that converts wins."""
    patterns = sorted(
        ((pattern, target, priority) for regexes, target in get_extraction_regexes(targets) for pattern, priority in regexes),
        key=lambda x: x[2],
    )
    found, fallbacks, matched = [], [], False
    for _, group in groupby(patterns, key=lambda x: x[2]):
        matches = [(m, m.start(), m.end(), target) for pattern, target, _ in group for m in pattern.finditer(text)]
        matches.sort(key=lambda x: (x[2], -x[1]), reverse=True)
        for m, _, _, target in matches:
            value, as_text = _extract(m, target)
            matched = True
            if as_text:
                fallbacks.append(as_text)
            if value is not None:
                found.append(value)
                break
            if extraction_mode == "first_match":
                break
        if found or (matched and extraction_mode == "first_match"):
            break
    if fallback_mode == "first_match" and fallbacks:
        found.append(fallbacks[0])
    return found


def parse(
    text: str,
    extraction_config=DEFAULT_CONFIG,
    fallback_mode: str = "first_match",
    extraction_mode: str = "any_match",
    parsing_timeout: int = 5,
) -> list:
    """``math_verify.parse`` with the safe plain-expression reader (module docstring)."""
    try:
        return timeout(timeout_seconds=parsing_timeout)(_extract_targets)(
            text, tuple(extraction_config), fallback_mode, extraction_mode
        )
    except (Exception, TimeoutException):  # noqa: BLE001 - math-verify returns [] on any failure
        return []


def gold_text(reference: str) -> str:
    """A reference as the math-verify README passes it: inside ``$...$`` unless it already
    holds math delimiters or a box."""
    if any(d in reference for d in ("$", "\\boxed", "\\(", "\\[")):
        return reference
    return f"${reference}$"


def math_verify_equal(response: str, reference, parsing_timeout: int = 5) -> tuple[bool, list]:
    """The ``math_verify`` grader mode: ``verify(parse(gold), parse(response))`` for each
    reference (any may match). Returns (verdict, the parsed response)."""
    answer = parse(response, parsing_timeout=parsing_timeout)
    if not answer:
        return False, answer
    for ref in reference_strings(reference):
        gold = parse(gold_text(ref), parsing_timeout=parsing_timeout)
        if gold and verify(gold, answer, timeout_seconds=parsing_timeout):
            return True, answer
    return False, answer
