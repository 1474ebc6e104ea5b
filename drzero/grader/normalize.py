"""String normalisation of extracted answers (LaTeX and plain text), for the ``drzero``
grader mode.

Pure string rewriting, linear in the input: remove delimiters, spacing commands,
``\\left``/``\\right``, ``\\text{}`` wrappers, degree signs, currency signs and units,
unify fraction commands, and read numbers written the way other locales write them
(``1 000``, ``11,\\!111,\\!100``, ``1.000.000``, ``1.234,5``, decimal commas ``0,111``).
The result is what ``parse.py`` reads.

The unit rule: a unit after a number is dropped, on either side, so ``79 g`` equals ``79``
and an answer that leaves out the reference's unit counts. When both sides carry a unit
we recognise and the units differ (``15 m`` against ``15 cm``), the answers differ; we
never convert units.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Unit spellings -> one canonical name (so "km" = "километров" = "千米"). Only used to tell
# two different units apart; any unit is dropped before comparing numbers.
_UNIT_GROUPS = {
    "mm": "mm|millimet(?:er|re)s?|毫米|мм",
    "cm": "cm|centimet(?:er|re)s?|cent[ií]metros?|厘米|см",
    "m": "m|met(?:er|re)s?|metros?|mètres?|Meter|米|м|метр(?:а|ов)?",
    "km": "km|kilomet(?:er|re)s?|kil[oó]metros?|千米|公里|км|километр(?:а|ов)?",
    "in": "in|inch(?:es)?|英寸",
    "ft": "ft|feet|foot",
    "yd": "yards?|yd",
    "mi": "miles?|mi",
    "g": "g|grams?|gramos?|grammes?|Gramm|克|г|грамм(?:а|ов)?",
    "kg": "kg|kilograms?|kilogramos?|kilogrammes?|Kilogramm|千克|公斤|кг|килограмм(?:а|ов)?",
    "t": "tonnes?|tons?|吨|т|тонн(?:а|ы)?",
    "l": "l|L|liters?|litres?|litros?|Liter|升|л|литр(?:а|ов)?",
    "ml": "ml|mL|milliliters?|millilitres?|毫升|мл",
    "s": "s|sec|seconds?|segundos?|secondes?|Sekunden?|秒|с|сек|секунд(?:а|ы)?",
    "min": "min|minutes?|minutos?|Minuten?|分钟|分|мин|минут(?:а|ы)?",
    "h": "h|hrs?|hours?|horas?|heures?|Stunden?|小时|时|ч|час(?:а|ов)?",
    "day": "days?|d[ií]as?|jours?|Tage?n?|天|日|дн(?:я|ей)|день",
    "week": "weeks?|semanas?|semaines?|Wochen?|周|星期|недел(?:я|и|ь)",
    "month": "months?|meses|mes|mois|Monate?n?|个月|月|месяц(?:а|ев)?",
    "year": "years?|años?|ans?|années?|Jahre?n?|年|岁|лет|год(?:а)?",
    "dollar": r"dollars?|d[oó]lares|USD|\$|美元",
    "euro": "euros?|Euro|EUR|€|евро",
    "pound": "pounds?|£|GBP",
    "yuan": "yuan|RMB|元|块|¥|￥",
    "ruble": r"рубл(?:ь|я|ей)|руб\.?|₽|rubles?",
    "cent": "cents?|céntimos?|centimes?|Cent|分钱|копе(?:йка|ек|йки)",
    "kmh": "km/h|kph|千米/小时|公里/小时|км/ч",
    "mph": "mph|miles per hour",
    "ms": "m/s|米/秒|м/с",
    "deg": "degrees?|deg|grados?|degrés?|Grad|度|градус(?:а|ов)?",
    "rad": "radians?|rad",
    "cm2": "cm\\^2|cm²|square centimet(?:er|re)s?|平方厘米|см²|см\\^2",
    "m2": "m\\^2|m²|square met(?:er|re)s?|平方米|м²|м\\^2",
    "cm3": "cm\\^3|cm³|cubic centimet(?:er|re)s?|立方厘米",
    "m3": "m\\^3|m³|cubic met(?:er|re)s?|立方米",
    "J": "J|joules?|焦耳|Дж",
    "N": "N|newtons?|牛|Н",
    "W": "W|watts?|瓦",
    "V": "V|volts?|伏",
    "Pa": "Pa|pascals?|帕",
    "Hz": "Hz|hertz|赫兹",
    "eV": "eV|MeV|keV",
    "K": "K|kelvin",
    "mol": "mol|moles?",
    "nm": "nm|nanomet(?:er|re)s?|纳米",
    "AA": "\\\\AA|Angstroms?|Å",
}
# Words that only say what was counted ("12 students", "7 canicas", "18 种") - dropped,
# never compared.
_COUNT_WORDS = (
    "units?|square units?|cubic units?|sq|square|cubic|people|persons?|students?|ways|points?|times|"
    "apples?|marbles?|eggs?|edges?|vertices|faces|sides?|lados|côtés|Seiten|сторон|items?|pieces?|coins?|cards?|"
    "books?|pages?|boxes|balls?|canicas|personas|personnes|Personen|человек|штук|шт\\.?|"
    "个|人|只|本|张|条|块|次|种|位|名|辆|棵|支|件|道|页|颗|头|匹|座|间|台|双|对"
)
_UNIT_ALT = "|".join(f"(?P<u_{name}>{alts})" for name, alts in _UNIT_GROUPS.items())
_TRAILING_UNIT_RE = re.compile(
    rf"(?<=[\d}})a-zA-Z.])\s*(?:\\,|~)?\s*(?:{_UNIT_ALT})(?:\^\{{?[23]\}}?|[²³])?\.?\s*$"
)
_TRAILING_COUNT_RE = re.compile(rf"(?<=[\d}})])\s*(?:{_COUNT_WORDS})\.?\s*$")
# Words after a number in scripts where they cannot be a variable: CJK, kana, Hangul,
# Cyrillic, Arabic, Devanagari, Bengali, Telugu, Thai ("18个", "8입니다", "8 яблок").
_SCRIPTS = "\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af\u0400-\u04ff\u0600-\u06ff\u0900-\u09ff\u0c00-\u0c7f\u0e00-\u0e7f"
_CJK_TAIL_RE = re.compile(rf"(?<=[\d}}])\s*[{_SCRIPTS}][{_SCRIPTS}\s]*(?:/\s*[{_SCRIPTS}]+)?\.?\s*$")
_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|textsf|texttt|mathrm|mathbf|mathit|mathsf|mathnormal|boldsymbol|mbox|"
    r"operatorname|textnormal|rm|bf|overline|boxed|fbox|displaystyle)\s*\{"
)
_SPACING_RE = re.compile(r"(?<!\\)\\(?:[,;: ]|quad|qquad|displaystyle|textstyle|limits|enspace|thinspace)")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?(?:\s*[CF](?![a-zA-Z]))?|\\circ|°\s*[CF]?(?![a-zA-Z])|\\degree")
_TRIG_RE = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc)(?![a-zA-Z])")
_DEGREE_IN_TRIG_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\^\s*\{?\s*\\circ\s*\}?|°)")
_MOD_RE = re.compile(r"\s*(?:\\pmod\s*\{?\s*\w+\s*\}?|\(\s*(?:\\bmod|\\mod|mod)\s*\w+\s*\)|\\bmod\s*\w+|\\mod\s*\w+)\s*$")
_LEFT_RIGHT_RE = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)\s*(?=[(\[\]).|\\{}<>])|\\(?:left|right)\.")
_CONNECTOR_RE = re.compile(r"\s+(?:and|or|et|ou|und|oder|y|o|и|или)\s+|\s*(?:和|或|与|以及)\s*")
_CURRENCIES = {"$": "dollar", "US$": "dollar", "€": "euro", "£": "pound", "¥": "yuan", "￥": "yuan", "₽": "ruble", "₹": "rupee"}
_LEADING_CURRENCY_RE = re.compile(r"^(US\$|[$€£¥￥₽₹])\s*(?=[-\d.])")
_TRAILING_CURRENCY_RE = re.compile(r"(?<=[\d.])\s*([$€£¥￥₽₹])\s*$")
_SPACE_THOUSANDS_RE = re.compile(r"(?<![\d.,])(\d{1,3})((?: \d{3})+)(?![\d])")
_DOT_THOUSANDS_RE = re.compile(r"(?<![\d.,])\d{1,3}(?:\.\d{3}){2,}(?![\d.])|(?<![\d.,])\d{1,3}(?:\.\d{3})+(?=,\d)")
_COMMA_THOUSANDS_RE = re.compile(r"^(-?(?:[a-zA-Z]\s*=\s*)?)([1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?)(\s*%?)$")
_MARKED_THOUSANDS_RE = re.compile(r"(?<=\d)(?:,\\!|\{,\})\s*(?=\d{3}(?!\d))")
_DECIMAL_COMMA_RE = re.compile(r"^(-?\d+),(\d+)(.*)$")
_POINT_BAR_RE = re.compile(r"^[A-Z]?(?:_\{?\w+\}?)?\s*\(\s*([^()|,]+?)\s*\|\s*([^()|,]+?)\s*(?:\|\s*([^()|,]+?)\s*)?\)$")
_FRENCH_INTERVAL_RE = re.compile(r"^([\[\]])\s*([^\[\];]+?)\s*;\s*([^\[\];]+?)\s*([\[\]])$")
_MAX_NORMALIZE_CHARS = 5000


def _unwrap_command(text: str, pattern: re.Pattern) -> str:
    """Replace ``\\cmd{content}`` by ``content`` for every match of ``pattern`` (no recursion;
    nested wrappers are handled by calling again)."""
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


@dataclass(frozen=True)
class Normalized:
    """A normalised answer: ``text`` for the parser, ``unit`` (canonical name) if a unit
    we know followed the number, and ``alternatives``: other readings of an ambiguous
    number (``3,5`` is 3.5 in most of Europe and the list 3, 5 elsewhere)."""

    text: str
    unit: str | None = None
    alternatives: tuple[str, ...] = ()

    @property
    def readings(self) -> tuple[str, ...]:
        return (self.text,) + self.alternatives


def ascii_digits(text: str) -> str:
    """Full-width and other scripts' digits as ASCII (``１８``, ``১৮``, ``٤٢`` -> ``18``, ``18``,
    ``42``), and other compatibility forms (NFKC), keeping ``²``/``³`` as powers."""
    text = text.replace("²", "^2").replace("³", "^3")
    text = unicodedata.normalize("NFKC", text).replace("⁄", "/")
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() and not ch.isascii() else ch for ch in text)


def _clean(answer: str) -> str:
    s = ascii_digits(answer[:_MAX_NORMALIZE_CHARS]).strip()
    for ch in ("\u00a0", "\u202f", "\u2009", "\u2007", "\u3000", "\n", "\t"):
        s = s.replace(ch, " ")
    for a, b in (("，", ","), ("；", ";"), ("：", ":"), ("（", "("), ("）", ")"), ("−", "-"), ("–", "-"),
                 ("×", "\\times "), ("÷", "\\div "), ("·", "\\cdot "), ("∞", "\\infty"), ("π", "\\pi"),
                 ("≤", "\\leq "), ("≥", "\\geq "), ("≠", "\\neq "), ("√", "\\sqrt"), ("∪", "\\cup "),
                 ("∅", "\\emptyset"), ("²", "^2"), ("³", "^3")):
        s = s.replace(a, b)
    s = s.replace("**", "")
    for _ in range(3):  # nested wrappers: \boxed{\text{\textbf{4}}}
        unwrapped = _unwrap_command(s, _TEXT_CMD_RE)
        if unwrapped == s:
            break
        s = unwrapped
    s = _MARKED_THOUSANDS_RE.sub("", s)  # 11,\!111,\!100 and 1{,}000: LaTeX thousands
    for a in ("$$", "\\(", "\\)", "\\[", "\\]"):
        s = s.replace(a, "")
    s = _SPACING_RE.sub(" ", s)
    s = s.replace("\\!", "").replace("~", " ").replace("{,}", ",").replace("{.}", ".")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    s = _LEFT_RIGHT_RE.sub("", s)
    s = s.replace("\\lbrace", "\\{").replace("\\rbrace", "\\}")
    s = s.replace("\\lvert", "|").replace("\\rvert", "|").replace("\\vert", "|").replace("\\mid", "|")
    s = s.replace("\\%", "%").replace("\\angle", "").replace("\\measuredangle", "").replace("\\triangle", "")
    if _TRIG_RE.search(s):  # sin(60^\circ): degrees inside a function are an angle
        s = _DEGREE_IN_TRIG_RE.sub(r"(\1\\pi/180)", s)
    s = _DEGREE_RE.sub("", s)
    s = _MOD_RE.sub("", s)
    s = s.replace("\\infinity", "\\infty").replace("\\varnothing", "\\emptyset").replace("\\le ", "\\leq ").replace("\\ge ", "\\geq ")
    s = re.sub(r"\\(le|ge)(?![a-zA-Z])", r"\\\1q", s)
    s = re.sub(r"(?<=[a-zA-Z])\^\{?-1\}?(?=\()", "_{-1}", s)  # f^{-1}(x): the inverse's name, f_{-1}
    s = re.sub(r"\\approx.*$", "", s) if re.search(r"\\approx", s) and not s.startswith("\\approx") else s
    s = re.sub(r"\s+", " ", s).strip()
    return s


def _strip_unit(s: str) -> tuple[str, str | None]:
    """Drop a trailing unit or count word after a number; return the canonical unit name."""
    unit = None
    for _ in range(2):
        m = _TRAILING_UNIT_RE.search(s)
        if m is not None and re.search(r"\d", s[: m.start()]):
            name = next(k[2:] for k, v in m.groupdict().items() if v is not None)
            head = s[: m.start()].strip()
            # "2x m" is no unit; a unit follows a number, a closing brace or "^2" of a number
            word = m.group(0).strip().rstrip(".")
            spaced = s[m.start()].isspace() or s[m.start() : m.start() + 2] in ("\\,", "~")
            if not (re.fullmatch(r"[a-zA-Z](?:\^\{?[23]\}?)?", word) and not spaced):
                unit = unit or name
                s = head
                continue
        m = _TRAILING_COUNT_RE.search(s) or _CJK_TAIL_RE.search(s)
        if m is not None and re.search(r"\d", s[: m.start()]):
            s = s[: m.start()].strip()
            continue
        break
    return s, unit


def _locale_numbers(s: str) -> tuple[str, tuple[str, ...]]:
    """Read thousands separators and decimal commas; return the text and, for a lone
    ambiguous ``d,dd`` number, the other reading."""
    s = _SPACE_THOUSANDS_RE.sub(lambda m: m.group(1) + m.group(2).replace(" ", ""), s)
    s = _DOT_THOUSANDS_RE.sub(lambda m: m.group(0).replace(".", ""), s)
    m = re.fullmatch(r"(-?)(\d+),(\d+)(\s*%?)", s)
    if m and (len(m.group(3)) != 3 or m.group(2) == "0" or len(m.group(2)) > 3):
        # "0,111", "1000,99", "2,75": a decimal comma; also keep the list reading "2, 75"
        # unless the digits cannot be a list of answers (a leading "0," then several digits)
        decimal = f"{m.group(1)}{m.group(2)}.{m.group(3)}{m.group(4)}"
        return decimal, (f"{m.group(1)}{m.group(2)}, {m.group(3)}{m.group(4)}",)
    m = _DECIMAL_COMMA_RE.match(s)
    if m and "," not in m.group(3) and (len(m.group(2)) != 3 or m.group(1).lstrip("-") == "0") and re.match(r"\s*(?:\\times|\\cdot|\*|%|$)", m.group(3)):
        return f"{m.group(1)}.{m.group(2)}{m.group(3)}", (s,)
    s = _COMMA_THOUSANDS_RE.sub(lambda m: m.group(1) + m.group(2).replace(",", "") + m.group(3), s)
    return s, ()


def normalize_answer(answer: str) -> Normalized:
    """Canonical form of an extracted answer string (see module docstring)."""
    s = _clean(answer)
    if len(s) >= 2 and s[0] == "$" and s[-1] == "$" and s[-2] != "\\":  # "$...$" delimiters
        s = s[1:-1].strip()
    s = s.replace("\\$", "$").rstrip(" .;,。")
    unit = None
    m = _LEADING_CURRENCY_RE.search(s) or _TRAILING_CURRENCY_RE.search(s)
    if m is not None:
        unit = _CURRENCIES[m.group(1)]
        s = (s[: m.start()] + s[m.end() :]).strip()
    s = s.replace("$", "").strip().rstrip(" .;,。")
    s, word_unit = _strip_unit(s)
    unit = unit or word_unit
    s = re.sub(r"^\s*(?:=|:)\s*", "", s)
    s = re.sub(r"\s+", " ", s).strip().rstrip(" .;,")
    # "x = 1 and x = 2" is a list; a connector inside prose is not (the connector itself is no prose)
    prose = re.search(r"[a-zA-Z]{3,}\s", _CONNECTOR_RE.sub(" ", re.sub(r"\\[a-zA-Z]+", "", s)))
    s = _CONNECTOR_RE.sub(", ", s) if not prose else s
    m = _POINT_BAR_RE.match(s)  # German point notation: S(2 | 3) is the point (2, 3)
    if m:
        s = "(" + ", ".join(g.strip() for g in m.groups() if g is not None) + ")"
    m = _FRENCH_INTERVAL_RE.match(s)
    if m:
        left = "(" if m.group(1) == "]" else "["
        right = ")" if m.group(4) == "[" else "]"
        s = f"{left}{m.group(2)}, {m.group(3)}{right}"
    s = re.sub(r"^[a-zA-Z]\s*\\in\s*", "", s)  # "x \in [1, 2]" -> "[1, 2]"
    s = s.replace("\\emptyset", "\\{\\}").replace("\\{ \\}", "\\{\\}")
    s, alternatives = _locale_numbers(s)
    return Normalized(s, unit, alternatives)
