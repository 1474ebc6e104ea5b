"""A small, safe parser and comparator for math answers.

Why not ``sympy.sympify``/``parse_expr``: both call Python ``eval`` on the text, and the
text is model output. This module tokenises and parses by hand (recursive descent with
an explicit depth bound), evaluates with exact ``Fraction`` arithmetic where possible and
with complex floats otherwise, and decides symbolic equality by evaluating both sides at
random points. Power towers, huge factorials and deep nesting raise ``TooComplex``
instead of eating time or memory.

Values (what an answer string parses to):
- ``Scalar(ast, percent)``: an expression;
- ``Seq(open, close, items)``: tuples / intervals, ordered, bracket kinds must match;
- ``Bag(items)``: ``\\{...\\}`` sets and bare comma lists, unordered;
- ``Matrix(rows)``; ``Union(items)`` (of intervals, ordered); ``Equation(lhs, rhs)``;
- ``Text(str)``: anything else, compared as normalised text.
"""

from __future__ import annotations

import cmath
import math
import random
import re
from dataclasses import dataclass
from fractions import Fraction


class TooComplex(Exception):
    """The answer is too large or deep to evaluate safely."""


class ParseError(Exception):
    """The answer is not in the supported grammar."""


MAX_DEPTH = 60
MAX_TOKENS = 400
MAX_EXACT_DIGITS = 2000
MAX_FACTORIAL = 200

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+(?![a-zA-Z]))?|\.\d+)|(?P<cmd>\\[a-zA-Z]+)|(?P<word>[a-zA-Z])|(?P<op>\\\{|\\\}|[-+*/^(){}\[\],!_|']))"
)
_FUNCS = {
    "sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "cot": lambda z: 1 / cmath.tan(z),
    "sec": lambda z: 1 / cmath.cos(z), "csc": lambda z: 1 / cmath.sin(z),
    "arcsin": cmath.asin, "arccos": cmath.acos, "arctan": cmath.atan,
    "sinh": cmath.sinh, "cosh": cmath.cosh, "tanh": cmath.tanh,
    "ln": cmath.log, "log": cmath.log, "exp": cmath.exp,
}
_PLAIN_FUNCS = ("arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "pi")
_CONSTS = {"\\pi": "pi", "\\infty": "inf", "\\e": "e"}
_MUL_CMDS = {"\\cdot", "\\times", "\\ast"}


# ---------------------------------------------------------------- tokenizer + parser
def tokenize(text: str) -> list[tuple[str, str]]:
    for name in _PLAIN_FUNCS:  # "sqrt(2)", "sin x" written without a backslash
        text = re.sub(rf"(?<![\\a-zA-Z]){name}(?![a-zA-Z])", "\\\\" + name, text)
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise ParseError(f"unexpected character {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        if len(tokens) > MAX_TOKENS:
            raise TooComplex("too many tokens")
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)* ; term := unary (('*'|'/'|implicit) unary)* ;
    unary := ('-'|'+') unary | power ; power := postfix ('^' unary)? ; postfix := atom '!'*"""

    def __init__(self, tokens):
        self.toks = tokens
        self.i = 0
        self.depth = 0

    def peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else (None, None)

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, value):
        kind, val = self.take()
        if val != value:
            raise ParseError(f"expected {value!r}, got {val!r}")

    def enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TooComplex("nested too deeply")

    def parse(self):
        node = self.expr()
        if self.i != len(self.toks):
            raise ParseError(f"trailing token {self.peek()[1]!r}")
        return node

    def expr(self):
        self.enter()
        node = self.term()
        while self.peek()[1] in ("+", "-", "\\pm"):
            op = self.take()[1]
            rhs = self.term()
            node = ("add" if op == "+" else "sub", node, rhs)
        self.depth -= 1
        return node

    def _starts_atom(self):
        kind, val = self.peek()
        if kind in ("num", "word"):
            return True
        if kind == "cmd":
            return val not in _MUL_CMDS and val not in ("\\div", "\\pm", "\\mp")
        return val in ("(", "{", "\\{", "[") and kind == "op" and val != "["

    def term(self):
        node = self.unary()
        while True:
            kind, val = self.peek()
            if val in ("*", "/") or val in _MUL_CMDS or val == "\\div":
                self.take()
                rhs = self.unary()
                node = ("div" if val in ("/", "\\div") else "mul", node, rhs)
            elif self._starts_atom():
                node = ("mul", node, self.power())
            else:
                return node

    def unary(self):
        self.enter()
        val = self.peek()[1]
        if val in ("-", "+"):
            self.take()
            node = self.unary()
            node = ("neg", node) if val == "-" else node
        else:
            node = self.power()
        self.depth -= 1
        return node

    def power(self):
        base = self.postfix()
        if self.peek()[1] == "^":
            self.take()
            self.enter()
            exponent = self.unary() if self.peek()[1] != "{" else self.group()
            self.depth -= 1
            return ("pow", base, exponent)
        return base

    def postfix(self):
        node = self.atom()
        while self.peek()[1] == "!":
            self.take()
            node = ("fact", node)
        return node

    def group(self):
        """``{ expr }``"""
        self.expect("{")
        node = self.expr()
        self.expect("}")
        return node

    def arg(self):
        """A LaTeX argument: ``{expr}`` or a single token (``\\frac12``)."""
        kind, val = self.peek()
        if val == "{":
            return self.group()
        if kind == "num" and val.isdigit():
            if len(val) > 1:  # \frac12: one digit per argument, the rest stays
                self.toks[self.i] = ("num", val[1:])
            else:
                self.take()
            return ("num", Fraction(val[0]))
        return self.atom()

    def atom(self):
        self.enter()
        kind, val = self.take()
        if kind == "num":
            node = ("num", _to_fraction(val))
        elif kind == "word":
            node = ("const", "e") if val == "e" else ("const", "i") if val == "i" else ("var", val)
            if self.peek()[1] == "_":  # subscripted variable: x_1, a_{n}
                self.take()
                sub = self.take()[1]
                if sub == "{":
                    parts = []
                    while self.peek()[1] not in ("}", None):
                        parts.append(self.take()[1])
                    self.expect("}")
                    sub = "".join(parts)
                node = ("var", f"{val}_{sub}")
        elif val in ("(", "{"):
            closing = ")" if val == "(" else "}"
            node = self.expr()
            self.expect(closing)
        elif val == "\\frac":
            node = ("div", self.arg(), self.arg())
        elif val == "\\binom":
            node = ("binom", self.arg(), self.arg())
        elif val == "\\sqrt":
            if self.peek()[1] == "[":
                self.take()
                index = self.expr()
                self.expect("]")
                node = ("pow", self.arg(), ("div", ("num", Fraction(1)), index))
            else:
                node = ("pow", self.arg(), ("num", Fraction(1, 2)))
        elif val in _CONSTS:
            node = ("const", _CONSTS[val])
        elif val is not None and val[1:] in _FUNCS:
            name = val[1:]
            if self.peek()[1] == "^":  # \sin^2 x
                self.take()
                exponent = self.arg()
                node = ("pow", ("fn", name, self.power()), exponent)
            else:
                node = ("fn", name, self.power())
        else:
            raise ParseError(f"unsupported token {val!r}")
        self.depth -= 1
        return node


def _to_fraction(text: str) -> Fraction:
    if "e" in text.lower():
        mant, _, exp = text.lower().partition("e")
        if abs(int(exp)) > 400:
            raise TooComplex("exponent too large")
        return Fraction(mant) * Fraction(10) ** int(exp)
    return Fraction(text)


def parse_expr_safe(text: str):
    """Parse an expression into a tuple AST. Raises ParseError / TooComplex."""
    tokens = tokenize(text)
    if not tokens:
        raise ParseError("empty")
    return _Parser(tokens).parse()


# ---------------------------------------------------------------- evaluation
def free_vars(node) -> set[str]:
    if node[0] == "var":
        return {node[1]}
    out: set[str] = set()
    for child in node[1:]:
        if isinstance(child, tuple):
            out |= free_vars(child)
    return out


def eval_exact(node) -> Fraction | None:
    """Exact rational value, or None when the expression is not rational arithmetic."""
    op = node[0]
    if op == "num":
        return node[1]
    if op in ("var", "const", "fn"):
        return None
    if op == "neg":
        v = eval_exact(node[1])
        return None if v is None else -v
    if op == "fact":
        v = eval_exact(node[1])
        if v is None or v.denominator != 1 or v < 0:
            return None
        if v > MAX_FACTORIAL:
            raise TooComplex("factorial too large")
        return Fraction(math.factorial(int(v)))
    if op == "binom":
        n, k = eval_exact(node[1]), eval_exact(node[2])
        if n is None or k is None or n.denominator != 1 or k.denominator != 1 or n > 10_000:
            return None
        return Fraction(math.comb(int(n), int(k))) if 0 <= k <= n else Fraction(0)
    a, b = eval_exact(node[1]), eval_exact(node[2])
    if a is None or b is None:
        return None
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div":
        return None if b == 0 else a / b
    if op == "pow":
        if b.denominator != 1:
            return None
        size = abs(b.numerator) * max(len(str(a.numerator)), len(str(a.denominator)))
        if size > MAX_EXACT_DIGITS:
            raise TooComplex("power too large")
        if a == 0 and b < 0:
            return None
        return a ** int(b)
    raise ParseError(op)


def eval_float(node, env: dict[str, complex]) -> complex:
    """Complex floating-point value under a variable assignment ``env``."""
    op = node[0]
    if op == "num":
        return complex(node[1])
    if op == "var":
        return env[node[1]]
    if op == "const":
        return {"pi": math.pi, "e": math.e, "i": 1j, "inf": complex(math.inf)}[node[1]]
    if op == "neg":
        return -eval_float(node[1], env)
    if op == "fn":
        return _FUNCS[node[1]](eval_float(node[2], env))
    if op == "fact":
        v = eval_float(node[1], env)
        if abs(v.imag) > 1e-12 or v.real > MAX_FACTORIAL or v.real < 0:
            raise TooComplex("factorial")
        return complex(math.gamma(v.real + 1))
    if op == "binom":
        n, k = eval_float(node[1], env).real, eval_float(node[2], env).real
        if n > 10_000:
            raise TooComplex("binomial")
        return complex(math.gamma(n + 1) / (math.gamma(k + 1) * math.gamma(n - k + 1)))
    a, b = eval_float(node[1], env), eval_float(node[2], env)
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div":
        return a / b
    if op == "pow":
        if abs(b) > 1e4 and abs(a) > 1.0001:
            raise TooComplex("power too large")
        if b.imag == 0 and a.imag == 0 and a.real < 0 and float(b.real).is_integer():
            return complex(a.real ** int(b.real))
        if b.imag == 0 and a.imag == 0 and a.real >= 0:
            return complex(a.real ** b.real)
        return a**b
    raise ParseError(op)


def _close(x: complex, y: complex, rel: float) -> bool:
    if not (cmath.isfinite(x) and cmath.isfinite(y)):
        return x == y
    return abs(x - y) <= rel * max(1.0, abs(x), abs(y))


def scalars_equal(a, b) -> bool:
    """Equality of two expression ASTs: exact when both are rational, else numeric at
    random points (3 assignments of the free variables, relative tolerance 1e-7)."""
    ea, eb = eval_exact(a), eval_exact(b)
    if ea is not None and eb is not None:
        return ea == eb
    names = sorted(free_vars(a) | free_vars(b))
    rng = random.Random(12345)
    trials = 3 if names else 1
    for _ in range(trials):
        env = {n: complex(rng.uniform(1.1, 2.9)) for n in names}
        try:
            va, vb = eval_float(a, env), eval_float(b, env)
        except (ZeroDivisionError, OverflowError, ValueError):
            return False
        if not _close(va, vb, 1e-7):
            return False
    return True


# ---------------------------------------------------------------- structured values
@dataclass(frozen=True)
class Scalar:
    ast: tuple
    percent: bool = False


@dataclass(frozen=True)
class Seq:
    open: str
    close: str
    items: tuple


@dataclass(frozen=True)
class Bag:
    items: tuple


@dataclass(frozen=True)
class Matrix:
    rows: tuple


@dataclass(frozen=True)
class Union:
    items: tuple


@dataclass(frozen=True)
class Equation:
    lhs: object
    rhs: object


@dataclass(frozen=True)
class Text:
    text: str


def split_top(text: str, seps: tuple[str, ...]) -> list[str]:
    """Split on separators that are not inside (), [], {} (escaped braces count)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        if text.startswith("\\{", i) or text.startswith("\\}", i):
            depth += 1 if text[i + 1] == "{" else -1
            i += 2
            continue
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            for sep in seps:
                if text.startswith(sep, i):
                    parts.append(text[start:i])
                    start = i + len(sep)
                    i = start - 1
                    break
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _balanced(inner: str) -> bool:
    depth = 0
    for ch in inner:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth < 0:
            return False
    return depth == 0


_MATRIX_RE = re.compile(r"^\\begin\{([pbBvV]?matrix|array)\}(?:\{[^}]*\})?(.*)\\end\{\1\}$", re.DOTALL)
_THOUSANDS_RE = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_CHOICE_RE = re.compile(r"^\(?([A-E])\)?$")
_MIXED_RE = re.compile(r"^(-?)(\d+)\s*\\frac\{?(\d+)\}?\{?(\d+)\}?$|^(-?)(\d+)\s+(\d+)/(\d+)$")
_REL_RE = re.compile(r"\\leq|\\geq|\\neq|\\ne\b|\\lt|\\gt|<|>|≤|≥")


def parse_value(text: str, depth: int = 0):
    """Parse a normalised answer into one of the value types above (never raises
    except TooComplex)."""
    if depth > 8:
        raise TooComplex("nested structures")
    s = text.strip()
    if not s:
        return Text("")
    m = _MATRIX_RE.match(s)
    if m:
        rows = [r for r in (x.strip() for x in m.group(2).split("\\\\")) if r]
        return Matrix(tuple(tuple(parse_value(c, depth + 1) for c in row.split("&")) for row in rows))
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    if _REL_RE.search(s):
        return Text(re.sub(r"\s+", "", s))
    m = _MIXED_RE.match(s)
    if m:
        g = [x for x in m.groups() if x is not None]
        sign, whole, num, den = g[0], int(g[1]), int(g[2]), int(g[3])
        if den:
            value = whole + Fraction(num, den)
            return Scalar(("num", -value if sign else value))
    union = split_top(s, ("\\cup",))
    if len(union) > 1:
        return Union(tuple(parse_value(u, depth + 1) for u in union))
    if s.startswith("\\{") and s.endswith("\\}") and _balanced(s[2:-2].replace("\\{", "{").replace("\\}", "}")):
        return Bag(tuple(parse_value(x, depth + 1) for x in split_top(s[2:-2], (",", ";")) if x))
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _balanced(s[1:-1]):
        items = split_top(s[1:-1], (",",))
        if len(items) > 1:
            return Seq(s[0], s[-1], tuple(parse_value(x, depth + 1) for x in items))
    items = split_top(s, (",", ";"))
    if len(items) > 1:
        return Bag(tuple(parse_value(x, depth + 1) for x in items if x))
    sides = split_top(s, ("=",))
    if len(sides) == 2:
        return Equation(parse_value(sides[0], depth + 1), parse_value(sides[1], depth + 1))
    m = _CHOICE_RE.match(s)
    if m:
        return Text(m.group(1))
    if re.search(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}", s):  # a word, not a product of variables
        return Text(re.sub(r"\s+", "", s).lower().replace("\\", ""))
    percent = s.endswith("%")
    body = s.rstrip("%").strip()
    try:
        return Scalar(parse_expr_safe(body), percent)
    except ParseError:
        return Text(re.sub(r"\s+", "", s).lower().replace("\\", ""))


def values_equal(a, b) -> bool:
    """Structural equality of parsed values (see module docstring)."""
    if isinstance(a, Scalar) and isinstance(b, Scalar):
        if scalars_equal(a.ast, b.ast):
            return True
        if a.percent != b.percent:  # "10%" == "0.1"
            pa = ("div", a.ast, ("num", Fraction(100))) if a.percent else a.ast
            pb = ("div", b.ast, ("num", Fraction(100))) if b.percent else b.ast
            return scalars_equal(pa, pb)
        return False
    if isinstance(a, Equation) and not isinstance(b, Equation):
        return _equation_vs_value(a, b)
    if isinstance(b, Equation) and not isinstance(a, Equation):
        return _equation_vs_value(b, a)
    if type(a) is not type(b):
        # a one-element set/list against a scalar: "{5}" vs "5"
        if isinstance(a, Bag) and len(a.items) == 1:
            return values_equal(a.items[0], b)
        if isinstance(b, Bag) and len(b.items) == 1:
            return values_equal(a, b.items[0])
        return False
    if isinstance(a, Text):
        return a.text == b.text
    if isinstance(a, Equation):
        return (values_equal(a.lhs, b.lhs) and values_equal(a.rhs, b.rhs)) or (
            values_equal(a.lhs, b.rhs) and values_equal(a.rhs, b.lhs)
        )
    if isinstance(a, Seq):
        return (a.open, a.close) == (b.open, b.close) and _ordered_equal(a.items, b.items)
    if isinstance(a, (Union,)):
        return _ordered_equal(a.items, b.items)
    if isinstance(a, Matrix):
        return len(a.rows) == len(b.rows) and all(_ordered_equal(x, y) for x, y in zip(a.rows, b.rows))
    if isinstance(a, Bag):
        return _unordered_equal(a.items, b.items)
    return False


def _equation_vs_value(eq: Equation, other) -> bool:
    """``x = 5`` against ``5``: the side that is a lone variable is dropped."""
    if isinstance(eq.lhs, Scalar) and eq.lhs.ast[0] == "var":
        return values_equal(eq.rhs, other)
    if isinstance(eq.rhs, Scalar) and eq.rhs.ast[0] == "var":
        return values_equal(eq.lhs, other)
    return False


def _ordered_equal(xs, ys) -> bool:
    return len(xs) == len(ys) and all(values_equal(x, y) for x, y in zip(xs, ys))


def _unordered_equal(xs, ys) -> bool:
    if len(xs) != len(ys):
        return False
    remaining = list(ys)
    for x in xs:
        for j, y in enumerate(remaining):
            if values_equal(x, y):
                del remaining[j]
                break
        else:
            return False
    return True
