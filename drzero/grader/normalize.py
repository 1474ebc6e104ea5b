"""String normalisation of extracted answers (LaTeX and plain text).

Pure string rewriting, linear in the input: remove delimiters, spacing commands,
``\\left``/``\\right``, ``\\text{}`` wrappers, degree signs, units and trailing words,
unify fraction commands. The result is what ``parse.py`` reads.
"""

from __future__ import annotations

import re

# Units and words that decorate a number without changing it ("5 cm", "12 dollars").
_UNITS = (
    "cm|mm|km|m|meters?|metres?|centimeters?|kilometers?|inch(?:es)?|in|feet|foot|ft|yards?|"
    "miles?|mph|kg|g|grams?|kilograms?|pounds?|lbs?|ounces?|oz|seconds?|sec|s|minutes?|min|"
    "hours?|hrs?|h|days?|weeks?|months?|years?|dollars?|cents?|units?|degrees?|deg|radians?|rad|"
    "square|sq|cubic|liters?|litres?|l|ml|people|students?|ways|points?|times|percent|"
    "mol|J|K|N|W|V|Pa|Hz|eV|nm|Angstroms?|\\\\AA"
)
_TRAILING_UNIT_RE = re.compile(rf"(?<=[\d}}\)a-zA-Z])\s*(?:{_UNITS})(?:\^\{{?[23]\}}?)?\s*$")
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname|textnormal|rm|bf)\s*\{")
_SPACING_RE = re.compile(r"(?<!\\)\\(?:[,;:! ]|quad|qquad|displaystyle|textstyle|limits)")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|°|\\degree")
_LEFT_RIGHT_RE = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)\s*(?=[(\[\]).|\\{}<>])|\\(?:left|right)\.")
_MAX_NORMALIZE_CHARS = 5000


def _unwrap_command(text: str, pattern: re.Pattern) -> str:
    """Replace ``\\cmd{content}`` by ``content`` for every match of ``pattern`` (no recursion)."""
    out = []
    i = 0
    while True:
        m = pattern.search(text, i)
        if m is None:
            out.append(text[i:])
            break
        out.append(text[i : m.start()])
        depth = 1
        j = m.end()
        while j < len(text) and depth:
            if text[j] == "\\":
                j += 2
                continue
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
            j += 1
        if depth:  # unbalanced: keep the rest as is
            out.append(text[m.end() :])
            break
        out.append(text[m.end() : j - 1])
        i = j
    return "".join(out)


def normalize(answer: str) -> str:
    """Canonical form of an extracted answer string (see module docstring)."""
    s = answer[:_MAX_NORMALIZE_CHARS].strip()
    s = s.replace("\n", " ").replace("\\$", "")
    # math delimiters
    for a, b in (("$$", ""), ("$", ""), ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", "")):
        s = s.replace(a, b)
    s = _unwrap_command(s, _TEXT_CMD_RE)
    s = _SPACING_RE.sub(" ", s)
    s = s.replace("\\!", "").replace("~", " ")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    s = _LEFT_RIGHT_RE.sub("", s)
    s = s.replace("\\lbrace", "\\{").replace("\\rbrace", "\\}")
    s = s.replace("\\lvert", "|").replace("\\rvert", "|").replace("\\vert", "|")
    s = s.replace("\\$", "").replace("\\%", "%").replace("{,}", "")
    s = _DEGREE_RE.sub("", s)
    s = s.replace("\\infinity", "\\infty").replace("∞", "\\infty").replace("−", "-").replace("×", "\\times")
    s = s.replace("\\le ", "\\leq ").replace("\\ge ", "\\geq ")
    s = re.sub(r"\s+", " ", s).strip()
    # trailing punctuation and "units" words
    s = s.rstrip(" .;")
    for _ in range(2):
        stripped = _TRAILING_UNIT_RE.sub("", s).strip()
        if stripped and stripped != s and re.search(r"[\d}]", stripped):
            s = stripped
    # "x \in [1, 2]" -> "[1, 2]"
    s = re.sub(r"^[a-zA-Z]\s*\\in\s*", "", s)
    return s
