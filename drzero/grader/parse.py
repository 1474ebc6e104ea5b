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
  one-variable inequalities (``x > 3``, ``-2 < x \\le 4``) are read as intervals;
- ``Bag(items, explicit)``: ``\\{...\\}`` sets and bare comma lists, unordered (a bare
  list also equals the tuple of its items in order); ``a \\pm b`` is the bag of both;
- ``Matrix(rows)``; ``Union(items)`` (of intervals, unordered);
- ``Equation(lhs, rhs)``: equal to another equation with the same sides, or after
  rearranging and scaling (``2x+4y-3=0`` = ``y=-x/2+3/4``); a labelled answer
  (``x = 5``, ``(p,q) = (3,2)``, ``AB = 4, CD = 5``, ``f(x) = ...``) equals its values;
- ``Text(str)``: anything else, compared as normalised text.

A decimal against a constant is equal at 6 decimal places, math-verify's rule
(``0.0833333`` = ``1/12``; ``0.333`` != ``1/3``), or at the precision it is written to
when that is at least 4 places and 3 significant digits (``0.3333`` = ``1/3``,
``_precision_equal``).
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
MAX_MATCHED_ITEMS = 64  # longer sets/lists are compared as sorted exact numbers, not pairwise

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

    def __init__(self, tokens, calls: bool = False):
        self.toks = tokens
        self.i = 0
        self.depth = 0
        self.calls = calls  # read f(x), I(0) as function calls, not products

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
        while self.peek()[1] in ("+", "-"):
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
                frac_next = self.peek()[1] == "\\frac"
                rhs = self.power()
                # a mixed number: 33\frac{1}{3} is 33 + 1/3, not 33 * 1/3
                mixed = frac_next and node[0] == "num" and node[1].denominator == 1 and not _is_decimal_literal(node)
                mixed = mixed and rhs[0] == "div" and rhs[1][0] == rhs[2][0] == "num"
                node = ("add", node, rhs) if mixed else ("mul", node, rhs)
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
            # a decimal keeps its written text: its precision is what it was written to
            node = ("num", _to_fraction(val), val if ("." in val or "e" in val.lower()) else False)
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
            if self.calls and self.peek()[1] == "(" and node[0] == "var":
                self.take()
                node = ("call", node[1], self.expr())
                self.expect(")")
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
        elif val == "\\log" and self.peek()[1] == "_":  # \log_2 8 = ln 8 / ln 2
            self.take()
            base = self.arg()
            node = ("div", ("fn", "ln", self.power()), ("fn", "ln", base))
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


def parse_expr_safe(text: str, calls: bool = False):
    """Parse an expression into a tuple AST. Raises ParseError / TooComplex. With
    ``calls``, a letter before ``(`` is a function applied to the bracket (``f(x)``)."""
    tokens = tokenize(text)
    if not tokens:
        raise ParseError("empty")
    return _Parser(tokens, calls).parse()


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
    if op in ("var", "const", "fn", "call"):
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
    if op == "call":  # an unknown function: a fixed smooth function per name
        seed = sum(ord(c) * (k + 1) for k, c in enumerate(node[1])) % 97 / 13.0
        return 2.0 + cmath.sin(1.3 * eval_float(node[2], env) + seed)
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
    """Tuples and intervals: ordered; the bracket kinds must match."""

    open: str
    close: str
    items: tuple


@dataclass(frozen=True)
class Bag:
    """Sets (``explicit``: written with ``\\{ \\}``) and bare comma lists, unordered. A
    bare list also equals a tuple with the same items in the same order."""

    items: tuple
    explicit: bool = False


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
_CHOICE_RE = re.compile(r"^\(?([A-E])\)?(?:[.:]?\s+.*)?$")
_MIXED_RE = re.compile(r"^(-?)(\d+)\s*\\frac\{?(\d+)\}?\{?(\d+)\}?$|^(-?)(\d+)\s+(\d+)/(\d+)$")
_REL_RE = re.compile(r"\\leq|\\geq|\\neq|\\ne\b|\\lt|\\gt|<|>")
_REL_SPLIT_RE = re.compile(r"(\\leq|\\geq|\\lt|\\gt|<|>)")
_REL_FLIP = {"<": ">", ">": "<", "\\leq": "\\geq", "\\geq": "\\leq", "\\lt": "\\gt", "\\gt": "\\lt"}
_INF = ("const", "inf")


def _interval(text: str):
    """``x > 3``, ``-2 < x \\le 4``, ``3 \\geq x`` -> the interval ``Seq``; None otherwise."""
    parts = [p.strip() for p in _REL_SPLIT_RE.split(text)]
    if len(parts) not in (3, 5) or not all(parts[::2]):
        return None
    sides, ops = parts[::2], [{"\\lt": "<", "\\gt": ">"}.get(o, o) for o in parts[1::2]]
    var_at = [i for i, p in enumerate(sides) if re.fullmatch(r"[a-zA-Z](?:_\{?\w+\}?)?", p)]
    if len(var_at) != 1:
        return None
    try:
        bounds = [parse_expr_safe(p) if i != var_at[0] else None for i, p in enumerate(sides)]
    except (ParseError, TooComplex):
        return None
    if any(b is not None and free_vars(b) for b in bounds):
        return None
    lo, hi, lo_open, hi_open = ("neg", _INF), _INF, True, True
    v = var_at[0]
    for i, op in enumerate(ops):
        # normalise to "var op bound"
        if i == v - 1:  # bound op var
            bound, op = bounds[i], _REL_FLIP[op]
        elif i == v:  # var op bound
            bound = bounds[i + 1]
        else:
            return None
        if op in (">", "\\geq"):
            lo, lo_open = bound, op == ">"
        else:
            hi, hi_open = bound, op == "<"
    return Seq("(" if lo_open else "[", ")" if hi_open else "]", (Scalar(lo), Scalar(hi)))


def parse_value(text: str, depth: int = 0, calls: bool = False):
    """Parse a normalised answer into one of the value types above (never raises
    except TooComplex). ``calls``: see ``parse_expr_safe``."""
    if depth > 8:
        raise TooComplex("nested structures")
    s = text.strip()
    if not s:
        return Text("")
    m = _MATRIX_RE.match(s)
    if m:
        rows = [r for r in (x.strip() for x in m.group(2).split("\\\\")) if r]
        return Matrix(tuple(tuple(parse_value(c, depth + 1, calls) for c in row.split("&")) for row in rows))
    for sign in ("\\pm", "\\mp"):  # 1 \pm \sqrt{2}: the two values
        if s.count(sign) == 1 and "," not in s:
            plus, minus = s.replace(sign, "+"), s.replace(sign, "-")
            return Bag((parse_value(plus, depth + 1, calls), parse_value(minus, depth + 1, calls)))
    union = split_top(s, ("\\cup",))
    if len(union) > 1:
        return Union(tuple(parse_value(u, depth + 1, calls) for u in union))
    if s.startswith("\\{") and s.endswith("\\}") and _balanced(s[2:-2].replace("\\{", "{").replace("\\}", "}")):
        return Bag(tuple(parse_value(x, depth + 1, calls) for x in split_top(s[2:-2], (",", ";")) if x), explicit=True)
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _balanced(s[1:-1]):
        items = split_top(s[1:-1], (",",))
        if len(items) > 1:
            return Seq(s[0], s[-1], tuple(parse_value(x, depth + 1, calls) for x in items))
    items = split_top(s, (",", ";"))
    if len(items) > 1:
        bag = Bag(tuple(parse_value(x, depth + 1, calls) for x in items if x))
        return _solution_tuples(bag) or bag
    if _REL_RE.search(s):
        interval = _interval(s)
        return interval if interval is not None else Text(re.sub(r"\s+", "", s))
    sides = split_top(s, ("=",))
    if len(sides) >= 2 and all(sides):
        # a chain "a = b = c" states its value last: keep the first side as the label
        return Equation(parse_value(sides[0], depth + 1, calls), parse_value(sides[-1], depth + 1, calls))
    m = _MIXED_RE.match(s)
    if m:
        g = [x for x in m.groups() if x is not None]
        sign, whole, num, den = g[0], int(g[1]), int(g[2]), int(g[3])
        if den:
            value = whole + Fraction(num, den)
            return Scalar(("num", -value if sign else value))
    m = _CHOICE_RE.match(s)
    if m and (len(s) <= 3 or s.startswith("(")):
        return Text(m.group(1))
    if re.search(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}", s):  # a word, not a product of variables
        return Text(re.sub(r"\s+", "", s).lower().replace("\\", ""))
    percent = s.endswith("%")
    body = s.rstrip("%").strip()
    try:
        return Scalar(parse_expr_safe(body, calls), percent)
    except ParseError:
        return Text(re.sub(r"\s+", "", s).lower().replace("\\", ""))


# ---------------------------------------------------------------- comparison
def _solution_tuples(bag: Bag) -> Bag | None:
    """A labelled list of solutions, ``x=1, y=4; x=4, y=1`` (the same labels repeated),
    as the set of its solution tuples ``{(1, 4), (4, 1)}``, each tuple in the order the
    labels are first written; None if ``bag`` is not one."""
    items = bag.items
    if not all(isinstance(x, Equation) for x in items):
        return None
    names = [_label_name(x.lhs) for x in items]
    if None in names:
        return None
    order = list(dict.fromkeys(names))
    k = len(order)
    if k < 2 or len(items) % k or len(items) == k:
        return None
    tuples = []
    for start in range(0, len(items), k):
        chunk = dict(zip(names[start : start + k], items[start : start + k]))
        if set(chunk) != set(order):
            return None
        tuples.append(Seq("(", ")", tuple(chunk[n].rhs for n in order)))
    return Bag(tuple(tuples), explicit=True)


def _is_decimal_literal(node) -> bool:
    if node[0] == "neg":
        return _is_decimal_literal(node[1])
    return node[0] == "num" and len(node) > 2 and bool(node[2])


def _rounded_equal(a, b) -> bool:
    """math-verify's rule for a decimal against a constant: equal at 6 decimal places
    (so ``0.0833333`` = 1/12 and ``3.1415927`` = pi, but ``0.333`` != 1/3)."""
    if free_vars(a) or free_vars(b):
        return False
    try:
        va, vb = eval_float(a, {}), eval_float(b, {})
    except (ZeroDivisionError, OverflowError, ValueError, TooComplex):
        return False
    if abs(va.imag) > 1e-12 or abs(vb.imag) > 1e-12 or not (math.isfinite(va.real) and math.isfinite(vb.real)):
        return False
    x, y = va.real, vb.real
    # and relatively close, so that 3.3e-18 and 3.3e-19 (both 0.000000) stay apart
    return round(x, 6) == round(y, 6) and abs(x - y) <= 1e-4 * max(abs(x), abs(y), 1e-300)


PRECISION_MIN_PLACES = 4  # places after the point a decimal needs to be read at its written precision
PRECISION_MIN_SIGNIFICANT = 3  # ... and significant digits (0.0000 is no 1/30000)


def _written_decimal(node) -> str | None:
    """The text of a decimal literal such as ``0.3333`` (sign aside), else None."""
    if node[0] == "neg":
        return _written_decimal(node[1])
    if node[0] == "num" and len(node) > 2 and isinstance(node[2], str) and "e" not in node[2].lower():
        return node[2]
    return None


def _precision_equal(a, b) -> bool:
    """A decimal written to at least 4 places after the point and 3 significant digits
    against a value written without decimals is equal when it is that value rounded at the
    digits written: within half a unit of its last place (``0.3333`` = 1/3, ``2.6667`` =
    8/3, ``1.4142`` = sqrt 2, ``0.0278`` = 1/36; ``0.3334``, ``0.33``, ``0.667``, ``1.414``
    and ``3.14`` are not). Fewer digits are too coarse to tell the exact value from a near
    miss."""
    for dec, other in ((a, b), (b, a)):
        text = _written_decimal(dec)
        if text is None or _has_decimal(other):
            continue
        places = len(text.partition(".")[2])
        significant = len(text.replace(".", "").lstrip("0"))
        if places < PRECISION_MIN_PLACES or significant < PRECISION_MIN_SIGNIFICANT or free_vars(other):
            continue
        try:
            vd, vo = eval_float(dec, {}), eval_float(other, {})
        except (ZeroDivisionError, OverflowError, ValueError, TooComplex):
            continue
        if abs(vo.imag) > 1e-12 or not math.isfinite(vo.real):
            continue
        if abs(vd.real - vo.real) <= 0.5 * 10.0 ** -places * (1 + 1e-9):
            return True
    return False


def _has_decimal(node) -> bool:
    if node[0] == "num":
        return len(node) > 2 and bool(node[2])
    return any(isinstance(x, tuple) and _has_decimal(x) for x in node[1:])


def _scalar_equal(a: Scalar, b: Scalar) -> bool:
    pa = ("div", a.ast, ("num", Fraction(100))) if a.percent else a.ast
    pb = ("div", b.ast, ("num", Fraction(100))) if b.percent else b.ast
    pairs = [(a.ast, b.ast)]
    if a.percent != b.percent:  # "10%" == "0.1", and "10%" == "10"
        pairs.append((pa, pb))
    for x, y in pairs:
        if scalars_equal(x, y):
            return True
        if (_is_decimal_literal(x) or _is_decimal_literal(y)) and (_rounded_equal(x, y) or _precision_equal(x, y)):
            return True
    return False


def _label_name(value) -> str | None:
    """The name when ``value`` is a label: a variable (``x``, ``a_5``, ``BC``), a function
    value (``f(x)``, ``P(A)``) or a sum of variables (``m+n``); no numbers in it."""
    if not isinstance(value, Scalar) or value.percent:
        return None
    ast = value.ast

    def clean(node) -> bool:
        if node[0] == "var":
            return True
        if node[0] == "call":
            return clean(node[2])
        if node[0] in ("mul", "add", "sub"):
            return clean(node[1]) and clean(node[2])
        return False

    if not clean(ast):
        return None
    return repr(ast)


def _is_call(value) -> bool:
    """``f(x)``, ``g_{inv}(t)``: a name applied to a variable."""
    if not isinstance(value, Scalar):
        return False
    ast = value.ast
    return ast[0] == "call" or (ast[0] == "mul" and ast[1][0] == "var" and ast[2][0] == "var")


def _function_labels(x, y) -> bool:
    """``f(x)`` against ``y`` or ``g(x)``: both name a function's value, so ``f(x) = 2x+3``
    and ``y = 2x+3`` state the same function (``x = 5`` and ``y = 5`` do not)."""
    is_y = lambda v: isinstance(v, Scalar) and v.ast == ("var", "y")  # noqa: E731
    return (_is_call(x) and (is_y(y) or _is_call(y))) or (_is_call(y) and is_y(x))


def labelled(value) -> dict | None:
    """``{label: value}`` for ``a = 3``, ``(p, q) = (3, 2)`` and ``AB = 4, CD = 5``;
    None if ``value`` is not a labelled answer (or repeats a label: ``x = 1, x = 2``)."""
    if isinstance(value, Equation):
        name = _label_name(value.lhs)
        if name is not None:
            return {name: value.rhs}
        if isinstance(value.lhs, Seq) and isinstance(value.rhs, Seq) and len(value.lhs.items) == len(value.rhs.items):
            names = [_label_name(x) for x in value.lhs.items]
            if all(names) and len(set(names)) == len(names):
                return dict(zip(names, value.rhs.items))
        return None
    if isinstance(value, Bag) and not value.explicit and all(isinstance(x, Equation) for x in value.items):
        out: dict = {}
        for x in value.items:
            part = labelled(x)
            if part is None or set(part) & set(out):
                return None
            out.update(part)
        return out
    return None


def _plain_items(value):
    """The items of a value written as a plain sequence: a bare list, a ``(...)`` tuple, or
    one value; None for sets, intervals with ``[``, matrices."""
    if isinstance(value, Bag) and not value.explicit:
        return value.items
    if isinstance(value, Seq) and (value.open, value.close) == ("(", ")"):
        return value.items
    if isinstance(value, (Scalar, Text)):
        return (value,)
    return None


def _same_variable_list(value):
    """``x = 1, x = 2`` (or ``x = 1`` alone) -> the values, as a bare list."""
    if isinstance(value, Bag) and value.items and all(isinstance(x, Equation) for x in value.items):
        names = {_label_name(x.lhs) for x in value.items}
        if len(names) == 1 and None not in names:
            return Bag(tuple(x.rhs for x in value.items))
    return None


def values_equal(a, b) -> bool:
    """Structural equality of parsed values (see module docstring)."""
    if isinstance(a, Scalar) and isinstance(b, Scalar):
        return _scalar_equal(a, b)
    for x, y in ((a, b), (b, a)):
        listed = _same_variable_list(x)
        if listed is not None:
            return values_equal(listed, y)
    la, lb = labelled(a), labelled(b)
    if la is not None and lb is not None:
        if set(la) == set(lb):
            return all(values_equal(la[k], lb[k]) for k in la)
        if isinstance(a, Equation) and isinstance(b, Equation) and _function_labels(a.lhs, b.lhs):
            return values_equal(a.rhs, b.rhs)  # f(x) = 2x+3 against y = 2x+3
        if isinstance(a, Equation) and isinstance(b, Equation):
            return _equations_equal(a, b)
        return False
    for x, lx, y in ((a, la, b), (b, lb, a)):
        if lx is not None and isinstance(x, Equation) and isinstance(y, Equation):
            return _equations_equal(x, y)  # x + y = 10 against x + y - 10 = 0
        if lx is not None:
            # labels on one side only: the values in the labelled side's order
            values = tuple(lx.values())
            if len(values) == 1:
                return values_equal(values[0], y)
            items = _plain_items(y)
            return items is not None and _ordered_equal(values, items)
    if isinstance(a, Equation) and isinstance(b, Equation):
        return _equations_equal(a, b)
    if isinstance(a, Equation) or isinstance(b, Equation):
        return False
    if type(a) is not type(b):
        if isinstance(a, Bag) and len(a.items) == 1:  # "{5}" vs "5"
            return values_equal(a.items[0], b)
        if isinstance(b, Bag) and len(b.items) == 1:
            return values_equal(a, b.items[0])
        for x, y in ((a, b), (b, a)):  # a bare list against a tuple: same order
            if isinstance(x, Bag) and not x.explicit and isinstance(y, Seq) and (y.open, y.close) == ("(", ")"):
                return _ordered_equal(x.items, y.items)
        return False
    if isinstance(a, Text):
        return a.text == b.text
    if isinstance(a, Seq):
        if len(a.items) != len(b.items):
            return False
        if len(a.items) == 2 and _may_be_interval(a) and _may_be_interval(b):
            # an interval: bracket kinds matter, except at an infinite end
            if a.open != b.open and not _is_infinite(a.items[0]):
                return False
            if a.close != b.close and not _is_infinite(a.items[1]):
                return False
        return _ordered_equal(a.items, b.items)  # longer: a tuple or vector, ( ) or [ ]
    if isinstance(a, Union):
        return _unordered_equal(a.items, b.items)
    if isinstance(a, Matrix):
        return len(a.rows) == len(b.rows) and all(_ordered_equal(x, y) for x, y in zip(a.rows, b.rows))
    if isinstance(a, Bag):
        return _unordered_equal(a.items, b.items)
    return False


def _may_be_interval(seq: Seq) -> bool:
    """False for a pair that cannot be an interval (``(6, 5)``: its ends are in the wrong
    order), which is then a point whatever its brackets."""
    lo, hi = seq.items
    if not (isinstance(lo, Scalar) and isinstance(hi, Scalar)):
        return True
    try:
        a, b = eval_exact(lo.ast), eval_exact(hi.ast)
    except (TooComplex, ParseError):
        return True
    return a is None or b is None or a < b


def _is_infinite(value) -> bool:
    if not isinstance(value, Scalar):
        return False
    ast = value.ast
    while ast[0] == "neg":
        ast = ast[1]
    return ast == _INF


def _equations_equal(a: Equation, b: Equation) -> bool:
    """Same sides (either way round), or the same equation after rearranging and scaling:
    (lhs - rhs) of one is a constant non-zero multiple of the other's."""
    if (values_equal(a.lhs, b.lhs) and values_equal(a.rhs, b.rhs)) or (
        values_equal(a.lhs, b.rhs) and values_equal(a.rhs, b.lhs)
    ):
        return True
    if not all(isinstance(x, Scalar) and not x.percent for x in (a.lhs, a.rhs, b.lhs, b.rhs)):
        return False
    da, db = ("sub", a.lhs.ast, a.rhs.ast), ("sub", b.lhs.ast, b.rhs.ast)
    names = sorted(free_vars(da) | free_vars(db))
    if not names or free_vars(da) != free_vars(db):
        return False
    rng = random.Random(54321)
    ratio = None
    for _ in range(4):
        env = {n: complex(rng.uniform(-2.9, 2.9)) for n in names}
        try:
            va, vb = eval_float(da, env), eval_float(db, env)
        except (ZeroDivisionError, OverflowError, ValueError):
            return False
        if abs(vb) < 1e-9 or abs(va) < 1e-9:
            return False
        r = va / vb
        if ratio is None:
            ratio = r
        elif not _close(r, ratio, 1e-7):
            return False
    return True


def _ordered_equal(xs, ys) -> bool:
    return len(xs) == len(ys) and all(values_equal(x, y) for x, y in zip(xs, ys))


def _unordered_equal(xs, ys) -> bool:
    if len(xs) != len(ys):
        return False
    if len(xs) > MAX_MATCHED_ITEMS:  # long lists: exact numbers only, compared sorted
        exact = [[eval_exact(v.ast) if isinstance(v, Scalar) and not v.percent else None for v in zs] for zs in (xs, ys)]
        return all(v is not None for vs in exact for v in vs) and sorted(exact[0]) == sorted(exact[1])
    remaining = list(ys)
    for x in xs:
        for j, y in enumerate(remaining):
            if values_equal(x, y):
                del remaining[j]
                break
        else:
            return False
    return True


# ---------------------------------------------------------------- parse-tree helpers
def children(value) -> tuple:
    """The values directly inside a structured value (none for ``Scalar`` and ``Text``)."""
    if isinstance(value, (Seq, Bag, Union)):
        return value.items
    if isinstance(value, Matrix):
        return tuple(x for row in value.rows for x in row)
    if isinstance(value, Equation):
        return (value.lhs, value.rhs)
    return ()


def _has_function(node) -> bool:
    return node[0] == "fn" or any(isinstance(x, tuple) and _has_function(x) for x in node[1:])


def is_plain_number(value) -> bool:
    """Whether ``value`` is a single number without variables or functions (``12``,
    ``-\\frac{3}{4}``, ``2.5\\%``), a labelled one (``x = 5``), or a choice letter: the only
    values on which a fast "not equal" is final (issue 33). Structures (tuples, lists, sets,
    intervals, matrices) and anything with a variable, a root or a word go to math-verify."""
    if isinstance(value, Text):
        return len(value.text) == 1 and value.text.isupper()
    if isinstance(value, Scalar):
        return not free_vars(value.ast) and not _has_function(value.ast)
    label = labelled(value)
    if label is not None and len(label) == 1:
        return all(is_plain_number(x) for x in label.values())
    return False


def _leaf_numbers(value, out: list) -> bool:
    """Append the exact numbers inside ``value`` to ``out``; False if any leaf is not one."""
    if isinstance(value, Scalar):
        v = None if value.percent or free_vars(value.ast) else eval_exact(value.ast)
        out.append(v)
        return v is not None
    if isinstance(value, Text):
        return False
    label = labelled(value)
    if label is None and isinstance(value, Equation):
        return False  # "6 \times 7 = 42" is no structure of numbers
    items = tuple(label.values()) if label is not None else children(value)
    return bool(items) and all(_leaf_numbers(x, out) for x in items)


def same_numbers_reordered(a, b) -> bool:
    """Whether two structures of exact numbers hold the same numbers, so that they can
    only differ in order, repetition or brackets (``5, 4`` against ``AB=4, CD=5``;
    ``(4, 3)`` against ``(3, 4)``; ``[1, 4]`` against ``[1, 4)``; ``\\{1,1,2\\}`` against
    ``\\{1,2,2\\}``). Order and multiplicity are rules of ours that math-verify does not
    share (it reads a comma list as a set), so our "not equal" on such a pair is final."""
    if isinstance(a, Scalar) or isinstance(b, Scalar):
        return False
    xs, ys = [], []
    try:
        if not (_leaf_numbers(a, xs) and _leaf_numbers(b, ys)):
            return False
    except (TooComplex, RecursionError, ValueError, ZeroDivisionError, OverflowError):
        return False
    return len(xs) > 1 and sorted(set(xs)) == sorted(set(ys))

