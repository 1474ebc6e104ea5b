"""The ``paper`` grader mode: the rules of the paper's reference grader
(sail-sg/understand-r1-zero, ``math_grader.py``, as run by its recipes with
``--verifier_version math_verify``), in our own code and without ``eval``.

Extraction:
- R1 template (``answer_format="answer_tag"``): formatted only if the response contains
  ``</think> <answer>`` exactly (one space) and a closing ``</answer>``; the answer is
  everything after the last ``<answer>`` with ``</answer>`` removed; if it holds
  ``\\boxed`` the box is read, and an unreadable box is formatted but wrong.
- boxed templates (``"boxed"``): the last ``\\boxed`` in the text (``\\fbox`` never counts),
  braces counted from there ignoring escapes; the box must be written ``\\boxed{``
  (``\\boxed 5`` and an unclosed box are unformatted).
- ``"auto"`` (no reference counterpart): a box if there is one, else a closed answer tag as
  above, else the whole response is the answer.
- A reference holding ``\\boxed`` is reduced to its last box, the same way.

Comparison (any one suffices):
1. Hendrycks' MATH normalisation, then string equality;
2. the PRM800K-style check: normalise, split tuples/intervals element-wise (bracket kinds
   must match), unreduced fractions ``a/b`` must match as strings, an integer only equals
   an integer; otherwise symbolic equality, only for expressions the reference would
   evaluate (at most two distinct letters, no ``^{`` / ``^(`` / multi-digit exponents).
   Where the reference calls ``sympy.parse_expr`` + ``simplify`` we use our own parser
   (``parse.py``): exact rationals, numeric identity testing at random points;
3. math-verify on ``$...$``-wrapped answer and reference, LaTeX (boxed first) and plain
   expression targets, first match only, 1 s limits - with our safe plain-expression
   reader (``mv.py``) in place of ``parse_expr``.

Deviations: our unit-word list is shorter than the reference's MathQA list; LaTeX is
turned into text by a few rules of ours instead of pylatexenc; the reference's
"repetitiveness" filter for answers over 128 characters is not reproduced; a timeout is
our per-item limit (the reference's is 1 s per item and scores the item unformatted).
"""

from __future__ import annotations

import re

from drzero.grader.compare import reference_strings
from drzero.grader.parse import ParseError, TooComplex, parse_expr_safe, scalars_equal
from drzero.grader.verdict import Grade

_R1_MARKER = "</think> <answer>"
_BRACE_RE = re.compile(r"[{}]")


def paper_boxed(text: str) -> str | None:
    """The reference's reading of the last box (see module docstring); linear time."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    depth = 0
    for m in _BRACE_RE.finditer(text, start):  # every brace counts, escaped or not
        depth += 1 if m.group() == "{" else -1
        if depth == 0:
            whole = text[start : m.start() + 1]
            return whole[len("\\boxed{") : -1] if whole.startswith("\\boxed{") else None
    return None


def paper_extract(response: str, answer_format: str) -> tuple[bool, str | None]:
    """(formatted, answer) under the reference's rules."""
    tag_closed = _R1_MARKER in response and "</answer>" in response
    if answer_format == "answer_tag" or (answer_format == "auto" and "\\boxed" not in response and tag_closed):
        if not tag_closed:
            return False, None
        answer = response[response.rfind("<answer>") + len("<answer>") :].replace("</answer>", "")
        if "\\boxed" in answer:
            return True, paper_boxed(answer)
        return True, answer
    if "\\boxed" in response or answer_format == "boxed":
        answer = paper_boxed(response)
        return answer is not None, answer
    return True, response.strip()


# ---------------------------------------------------------------- 1. Hendrycks' MATH normalisation
_UNIT_WORDS = (
    "degrees", "degree", "cm", "centimeters", "meters", "meter", "km", "mm", "kg", "inches", "inch", "feet", "foot",
    "ft", "miles", "mile", "mph", "hours", "hour", "minutes", "minute", "seconds", "second", "days", "day",
    "weeks", "week", "months", "month", "years", "year", "dollars", "dollar", "cents", "cent", "units", "unit",
    "square", "sq", "cubic", "pounds", "lb", "grams", "gram", "liters", "liter", "gallons", "gallon",
)
_UNIT_WORD_RE = re.compile(r"(^|\W)(?:" + "|".join(_UNIT_WORDS) + r")($|\W)")


def _braced_fracs(s: str) -> str:
    r"""\frac12 -> \frac{1}{2}, \frac1{72} -> \frac{1}{72}."""
    return re.sub(r"\\frac(?:([^{\\\s])([^{\\\s])|([^{\\\s])(?=\{))", lambda m: (
        "\\frac{" + m.group(1) + "}{" + m.group(2) + "}" if m.group(1) else "\\frac{" + m.group(3) + "}"), s)


def hendrycks_normalize(answer: str) -> str:
    """Hendrycks' MATH answer normalisation, by its rules (see module docstring)."""
    s = answer.strip()
    m = re.fullmatch(r"\\text\{(.+?)\}", s)
    if m:
        s = m.group(1).strip()
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = re.sub(r"\\begin\{array\}\{.*?\}", r"\\begin{pmatrix}", s).replace("\\end{array}", "\\end{pmatrix}")
    s = s.replace("bmatrix", "pmatrix").replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
    s = s.replace("\\left", "").replace("\\right", "")
    stripped = re.sub(r"\\text\{.*?\}$", "", s).strip()
    if stripped and stripped != s:
        s = stripped
    for _ in range(2):
        stripped = _UNIT_WORD_RE.sub(r"\1\2", s)
        if stripped:
            s = stripped
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "")
    if "\\text{ " in s:
        s = s.split("\\text{ ")[0]
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    if s.count("=") == 1 and len(s.split("=")[0]) <= 2:
        s = s.split("=")[1]
    s = re.sub(r"\\sqrt([^{\s])", r"\\sqrt{\1}", s)
    s = s.replace(" ", "")
    s = _braced_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    if m:
        s = f"\\frac{{{int(m.group(1))}}}{{{int(m.group(2))}}}"
    return s


# ---------------------------------------------------------------- 2. PRM800K-style check
_PRM_UNITS = re.compile(
    r"(?:degree|cm|centimeter|meter|mile|second|minute|hour|day|week|month|year|foot|feet|inch|yard)(?:es)?(?:s)? *(?:\^[0-9]+)?"
)


def _latex_to_text(s: str) -> str:
    """The few LaTeX forms the PRM check needs as plain text (our rules, not pylatexenc)."""
    for _ in range(3):
        s = re.sub(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", s)
        s = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", s)
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    for a, b in (("\\left", ""), ("\\right", ""), ("\\pi", "pi"), ("\\cdot", "*"), ("\\times", "*"),
                 ("\\infty", "inf"), ("\\cup", "U"), ("\\sqrt", "sqrt"), ("\\,", ""), ("\\ ", "")):
        s = s.replace(a, b)
    return s.strip()


def _prm_normalize(expr: str) -> str:
    m = re.fullmatch(r"\\text\{(?P<t>.+?)\}", expr)
    if m:
        expr = m.group("t")
    expr = expr.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    expr = expr.replace(" or ", " , ").replace(" and ", " , ")
    expr = expr.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12")
    expr = _PRM_UNITS.sub("", expr)
    expr = re.sub(r"\^ *\\circ", "", expr)
    if expr and expr[0] == "{" and expr[-1] == "}":
        expr = expr[1:-1]
    expr = re.sub(r",\\! *", "", expr)
    if _is_float(expr) and _is_int(float(expr)):
        expr = str(int(round(float(expr))))
    if "\\" in expr:
        expr = _latex_to_text(expr)
    expr = re.sub(r"- *", "-", expr)
    expr = re.sub(r"([0-9]) +([0-9])", r"\1+\2", expr)  # 7 3/4 -> 7+3/4
    expr = expr.replace(" ", "").replace("{", "").replace("}", "").lower()
    if _str_is_int(expr):
        expr = str(int(float(_strip_commas(expr))))
    return expr


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _is_int(x: float) -> bool:
    try:
        return abs(x - int(round(x))) <= 1e-7
    except (OverflowError, ValueError):
        return False


def _strip_commas(expr: str) -> str:
    """Thousands commas only (``1,234`` -> ``1234``; tuple commas stay)."""
    previous = None
    while previous != expr:
        previous, expr = expr, re.sub(r"(\d),(\d\d\d)($|\D)", r"\1\2\3", expr)
    return expr


def _str_is_int(s: str) -> bool:
    try:
        return _is_int(float(_strip_commas(s)))
    except ValueError:
        return False


def _is_frac(s: str) -> bool:
    return bool(re.search(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$", s))


def _split_tuple(expr: str) -> list[str]:
    expr = _strip_commas(expr)
    if not expr:
        return []
    if len(expr) > 2 and expr[0] in "()[]" and expr[-1] in "()[]" and not any(c in expr[1:-1] for c in "()[]"):
        return [e.strip() for e in expr[1:-1].split(",")]
    return [expr]


def _would_evaluate(expr: str) -> bool:
    """The reference only hands an expression to sympy under these conditions."""
    letters = {c for c in expr.replace("sqrt", "").replace("frac", "") if c.isalpha()}
    if len(letters) > 2 or "^{" in expr or "^(" in expr:
        return False
    return not (re.search(r"\^[0-9]+\^", expr) or re.search(r"\^[0-9][0-9]+", expr))


def _symbolic_equal(gt: str, given: str) -> bool:
    if not _would_evaluate(f"({gt})-({given})"):
        return False
    try:
        return scalars_equal(parse_expr_safe(gt.replace("**", "^")), parse_expr_safe(given.replace("**", "^")))
    except (ParseError, TooComplex, RecursionError, ValueError, ZeroDivisionError, OverflowError, KeyError):
        return False


def prm_equal(given: str, gt: str) -> bool:
    gt_n, given_n = _prm_normalize(gt), _prm_normalize(given)
    if gt_n == given_n:
        return True
    if not given_n:
        return False
    gt_elems, given_elems = _split_tuple(gt_n), _split_tuple(given_n)
    if len(gt_elems) > 1 and (gt_n[0] != given_n[0] or gt_n[-1] != given_n[-1]):
        return False
    if len(gt_elems) != len(given_elems):
        return False
    for g, p in zip(gt_elems, given_elems):
        if _is_frac(g) and _is_frac(p):
            ok = g == p  # unreduced fractions must be written the same way
        elif _str_is_int(g) != _str_is_int(p):
            ok = False
        else:
            ok = _symbolic_equal(g, p)
        if not ok:
            return False
    return True


# ---------------------------------------------------------------- 3. math-verify (worker only)
def latex_equal(given: str, gt: str, parsing_timeout: int = 1) -> bool:
    from drzero.grader import mv
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, verify

    if _prm_normalize(gt) == _prm_normalize(given):
        return True
    config = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
    wrap = lambda s: s if "$" in s else f"${s}$"  # noqa: E731
    gold = mv.parse(wrap(gt), config, fallback_mode="no_fallback", extraction_mode="first_match", parsing_timeout=parsing_timeout)
    pred = mv.parse(wrap(given), config, fallback_mode="no_fallback", extraction_mode="first_match", parsing_timeout=parsing_timeout)
    try:
        return bool(gold and pred and verify(gold, pred, timeout_seconds=parsing_timeout))
    except Exception:  # noqa: BLE001 - a failure is "not equal", as in the reference
        return False


def paper_equal(given: str, gt: str, parsing_timeout: int = 1) -> bool:
    if "\\boxed" in gt:
        gt = paper_boxed(gt)
        if gt is None:
            return False
    if hendrycks_normalize(given) == hendrycks_normalize(gt):
        return True
    if prm_equal(given, gt):
        return True
    return latex_equal(given, gt, parsing_timeout)


def grade_paper(response: str, reference, answer_format: str, parsing_timeout: int = 1) -> Grade:
    """One response under the paper's reference rules (module docstring)."""
    formatted, answer = paper_extract(response, answer_format)
    if answer is None:
        return Grade(False, formatted, None, method="paper")
    for ref in reference_strings(reference):
        if paper_equal(answer, ref, parsing_timeout):
            return Grade(True, formatted, answer, method="paper")
    return Grade(False, formatted, answer, method="paper")
