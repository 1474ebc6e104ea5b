"""Final-answer extraction from model responses.

Every function here is linear in the length of its input and never recurses: braces are
matched in one pass with an explicit stack, so a 1 MB response, 10,000 nested braces or
10,000 unclosed ``\\boxed{`` take milliseconds.

Formats (``answer_format``):
- ``"boxed"``: the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested and escaped braces
  matched; an unclosed box is skipped);
- ``"answer_tag"``: the last ``<answer>...</answer>`` (an unclosed tag at the end counts,
  since generation stops *at* ``</answer>`` and engines drop the stop string); a
  ``\\boxed{}`` inside the tag is read;
- ``"auto"``: boxed, then answer tag, then a closing phrase ("the answer is ...",
  "final answer: ...", "答案是", "la réponse est", "Ответ:", "####", ...), then, for short
  responses only, the last inline math or the whole text (what grader test suites and API
  users pass).

``find_answers`` is what the ``drzero`` grader mode uses: the answer the format asks for,
the run of boxes that ends the response (``\\boxed{3}, \\boxed{5} and \\boxed{7}``), and,
when the format's marker is missing, the answer a reader would take from the response's
closing sentence (``... so the largest $n$ is 34.``, ``答：... **92** ...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANSWER_FORMATS = ("auto", "boxed", "answer_tag")

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_OPEN_TAG = "<answer>"
_CLOSE_TAG = "</answer>"
_PHRASE_RE = re.compile(
    r"(?:the\s+final\s+answer\s+is|final\s+answer\s*(?:is)?\s*[:：]?|the\s+answer\s+is|\banswer\s*(?=[:：])"
    r"|la\s+réponse\s+(?:finale\s+)?est|réponse\s+finale\s*[:：]|\bréponse\s*(?=[:：])"
    r"|die\s+(?:endgültige\s+)?antwort\s+(?:ist|lautet)|\bantwort\s*(?=[:：])"
    r"|la\s+respuesta\s+(?:final\s+)?es|respuesta\s+final\s*[:：]|\brespuesta\s*(?=[:：])"
    r"|ответ\s*(?=[:：])|ответ\s+(?:равен|—|-)"
    r"|最终答案(?:是|为)?|答案(?:是|为)|答案\s*(?=[:：])|答\s*(?=[:：])|(?:最终)?结论\s*(?=[:：])|综上所述|故选|所以选"
    r"|答えは|答え\s*(?=[:：])|\bconclusion\s*(?=[:：])|\b(?:end)?ergebnis\s*(?=[:：])"
    r"|la\s+risposta\s+(?:finale\s+)?è|\brisposta\s*(?=[:：])|a\s+resposta\s+(?:final\s+)?é|\bresposta\s*(?=[:：])"
    r"|jibu\s+(?:ni|ya\s+mwisho\s+ni)|\bjibu\s*(?=[:：])|উত্তর(?:\s+হল|\s+হলো)?|సమాధానం|คำตอบ(?:คือ)?"
    r"|정답은|답은|정답\s*(?=[:：])|\b답\s*(?=[:：])|đáp\s+án(?:\s+là)?|\bjawaban(?:nya)?(?:\s+adalah)?"
    r"|उत्तर(?:\s+है)?"
    r"|^[ \t]*####)"
    r"\s*[:：]?\s*",
    re.IGNORECASE | re.MULTILINE,
)
# ``\$`` is a dollar sign, not a delimiter (``$\$10,455$``)
_INLINE_MATH_RE = re.compile(r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_BOLD_RE = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)
# Where a response stops answering the question asked: a new chat turn, an end-of-text
# token, or a few-shot continuation ("Problem:" after Minerva's "I hope it is correct.").
_CONTINUATION_RE = re.compile(
    r"<\|im_end\|>|<\|im_start\|>|<\|endoftext\|>|<\|eot_id\|>|<\|end_of_text\|>|</s>|<｜end▁of▁sentence｜>"
    r"|\n[ \t]*(?:Human|User|USER|Question|Problem)[ \t]*:|\n\nQ:"
)
_HOPE_RE = re.compile(r"I hope it is correct\.?", re.IGNORECASE)
# Copulas after which a closing sentence states its answer.
_COPULA_RE = re.compile(
    r"\s(?:is|are|equals|was|est|sont|vaut|ist|beträgt|lautet|sind|es|son|equivale|равно|равен|равна|составляет)\s"
    r"|(?<![但于就总还也像])是|(?<![因作成认称])为|等于|=",
    re.IGNORECASE,
)
# A sentence that opens with a time or condition before its subject, the number right after
# the preposition ("After 4 weeks ...", "Nach 3 Stunden ...", "Au bout de 3 mois ...",
# "经过 3 小时，..."): that first number is not the answer ("En total hay 90" keeps 90).
_LEAD_IN_RE = re.compile(
    r"^\s*(?:after|in|within|over|for|with|at|nach|in|innerhalb|mit|bei|après|au\s+bout\s+de|en|dans|pendant|avec"
    r"|después\s+de|tras|en|durante|con|через|за|после|经过|过了|用了)\s*$",
    re.IGNORECASE,
)
_NUMBER_RE = re.compile(r"-?\d+(?:[ ,.]\d+)*(?:\s*/\s*\d+)?\s*%?")
# Between two boxes that answer together: short, and no sentence break.
# A few connectors in a row (``$ \quad \text{and} \quad $``, ``\]\nand\n\[``, ``and the
# minimum value is``, part labels ``$\n(b) $``), then a label (``x_2 =``); no sentence end.
_BOX_JOINER_RE = re.compile(
    r"^[\s$,;，；、&]*(?:(?:\\quad|\\qquad|\\[,;: ]|\\\\|\\[\[\]()]|\\text(?:normal|rm)?\{[^{}]{0,12}\}"
    r"|(?:and|or|et|ou|und|oder|y|o|и|или)(?:\s+(?:the\s+)?(?:[a-zA-Z]+\s+){0,3}(?:is|are|sont|est|ist|es|son))?"
    r"|和|或|与|以及|\*\*|(?:[Pp]art\s*)?\(?(?:[a-h]|[ivx]{1,4}|\d{1,2})\)\s*:?)[\s$,;，；、&]*){0,4}"
    r"(?:[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*)?[\s$]*$"
)
BOX_JOINER_MAX_CHARS = 40
# A word of prose (not a LaTeX command, not a one-letter variable), or a run of CJK text.
_PROSE_RE = re.compile(r"(?<![\\a-zA-Z])[^\W\d_]{3,}|[\u4e00-\u9fff]{2,}")
SHORT_RESPONSE_CHARS = 200  # marker-free text shorter than this is graded as a whole
# A sentence that sets a task instead of answering one ("Compute 2 * 11.", "What is 6 + 5?",
# "Exercise 3: Find x."): a base model with no template often goes on to write the next
# question, and the expression in it is not its answer (math-verify reads "2 * 11" as 22).
# The verb opens the sentence, capitalised (a hard-wrapped "we\nfind 42 ..." is prose).
_TASK_RE = re.compile(
    r"^(?:(?i:problem|question|exercise|example|task)\s*\d*\s*[:.)]\s*|\([a-z0-9]{1,3}\)\s*)?"
    r"(?:Compute|Evaluate|Calculate|Find|Simplify|Solve|Determine|What\s+(?:is|are)|How\s+(?:many|much))\b"
)
# What states a result inside a sentence that opens like a task ("Simplify 4/8 to 1/2.",
# "Find the GCD: 6.", "**Compute the total:** 36", "Calculate 15% of 80, which gives 12.").
_TASK_RESULT_RE = re.compile(r"[=:→≈]|\*\*|\\to\b|\\approx|\\Rightarrow|\b(?:to|gives?|get|gets|yields?|obtain)\b")
# A numbering label left alone by the sentence split ("2.", "Exercise 2.", "(b)").
_LABEL_RE = re.compile(r"^(?:\(?[A-Za-z0-9]{1,3}[.)]|(?i:problem|question|exercise|example|task)\s*\d*\s*[.:)]?)$")
TASK_MAX_CHARS = 300  # a task sentence is short; longer ones are never read as tasks
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？।])\s*|\n+")


_BRACE_TOKEN_RE = re.compile(r"\\.|[{}]", re.DOTALL)


def _brace_pairs(text: str) -> dict[int, int]:
    """Map each ``{`` index to its matching ``}`` index, in one pass (escaped braces and
    unmatched braces are ignored); the regex skips everything else at C speed."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_TOKEN_RE.finditer(text):
        ch = m.group()
        if ch == "{":
            stack.append(m.start())
        elif ch == "}" and stack:
            pairs[stack.pop()] = m.start()
    return pairs


@dataclass(frozen=True)
class Box:
    start: int  # index of the backslash of \boxed
    end: int  # index just past the closing brace (or the bare token)
    content: str


def find_boxes(text: str) -> list[Box]:
    """Every closed ``\\boxed{...}`` / ``\\fbox{...}`` (and bare ``\\boxed 5``), in order.
    Boxes nested inside another box are not listed separately."""
    starts = list(_BOX_RE.finditer(text))
    if not starts:
        return []
    pairs = _brace_pairs(text)
    boxes: list[Box] = []
    for m in starts:
        if boxes and m.start() < boxes[-1].end:
            continue  # inside the previous box
        j = m.end()
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            close = pairs.get(j)
            if close is not None:
                boxes.append(Box(m.start(), close + 1, text[j + 1 : close].strip()))
            continue  # unclosed: skipped
        bare = re.match(r"([^\s${}\\]+)", text[j : j + 200])
        if bare:
            boxes.append(Box(m.start(), j + bare.end(), bare.group(1).strip()))
    return boxes


def extract_boxed(text: str) -> str | None:
    """Content of the last closed ``\\boxed{...}`` or ``\\fbox{...}``; None if there is none."""
    boxes = find_boxes(text)
    return boxes[-1].content if boxes else None


def extract_box_group(text: str, boxes: list[Box] | None = None) -> list[str] | None:
    """The run of two or more boxes that ends the boxed part of ``text``, joined only by
    short connectors (``,``, ``and``, ``或``, ``$ or $x=``); None if the last box stands alone.
    ``boxes``: ``find_boxes(text)`` if the caller has it already."""
    boxes = find_boxes(text) if boxes is None else boxes
    if len(boxes) < 2:
        return None
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        between = text[prev.end : group[0].start]
        if len(between) > BOX_JOINER_MAX_CHARS or not _BOX_JOINER_RE.match(between):
            break
        group.insert(0, prev)
    return [b.content for b in group] if len(group) > 1 else None


def extract_answer_tag(text: str) -> str | None:
    """Content of the last ``<answer>`` tag (closed or running to the end of text)."""
    body = _tag_body(text)
    if body is None:
        return None
    boxed = extract_boxed(body)
    if boxed is not None:
        return boxed
    body = body.strip()
    return body or None


def cut_continuation(text: str) -> str:
    """``text`` up to where the model stopped answering: a new chat turn, an end-of-text
    token, or what follows Minerva's "I hope it is correct."."""
    m = _CONTINUATION_RE.search(text)
    if m is not None and m.start() > 0:
        text = text[: m.start()]
    m = _HOPE_RE.search(text)
    if m is not None:
        text = text[: m.end()]
    return text


def _math_in(segment: str) -> str | None:
    """The last inline-math group of ``segment``, else its last bold group."""
    found = None
    for m in _INLINE_MATH_RE.finditer(segment):
        found = next(g for g in m.groups() if g is not None)
    if found is not None:
        return found.strip() or None
    for m in _BOLD_RE.finditer(segment):
        found = m.group(1)
    return found.strip() if found else None


def _first_math_in(segment: str) -> str | None:
    m = _INLINE_MATH_RE.search(segment)
    if m is not None:
        return next(g for g in m.groups() if g is not None).strip() or None
    m = _BOLD_RE.search(segment)
    return m.group(1).strip() if m else None


def _sentence_head(line: str) -> str:
    """``line`` up to its first sentence end (not the decimal point of ``3.5``)."""
    head = re.split(r"(?<!\d)\.(?:\s|$)|\.\s|。|！|？|।|!\s|\?\s|I hope", line, maxsplit=1)[0]
    return head.strip().rstrip(".").strip()


def extract_phrase(text: str) -> str | None:
    """What follows the last answer phrase ("the answer is", "final answer:", "答案是",
    "la réponse est", "Ответ:", "####", ...): a box, inline math or bold there, else the
    rest of the sentence. If the phrase ends its line, the next non-empty line is read."""
    last = None
    for m in _PHRASE_RE.finditer(text):
        last = m
    if last is None:
        return None
    rest = text[last.end() : last.end() + 2000]
    boxed = extract_boxed(rest)
    if boxed is not None:
        return boxed
    lines = rest.split("\n")
    line = lines[0].strip()
    if not line.strip("*# "):
        line = next((x.strip() for x in lines[1:] if x.strip()), "")
    if line.startswith("$$") or line.startswith("\\["):
        math = _first_math_in(line)
        if math is not None:
            return math
    head = _sentence_head(line)
    math = _first_math_in(head) or (_first_math_in(line) if not head else None)
    if math is not None:
        return math.replace("**", "").strip() or None
    head = head.replace("**", "").strip()
    if _PROSE_RE.search(head) and re.search(r"\d", head):
        return _stated_number(head) or head
    return head or None


def _stated_number(sentence: str) -> str | None:
    """The answer an answer sentence in prose states: what follows its copula if it has
    one ("Answer: the total is 45"), else its first number, not its last ("Réponse : il
    reste 220 $ à payer d'ici 12 mois", "结论：两地相距 240 千米，两车 3 小时后相遇")."""
    if _COPULA_RE.search(_mask_math(sentence)):
        return extract_closing(sentence)
    masked = _mask_math(sentence)
    numbers = list(_NUMBER_RE.finditer(masked))
    if len(numbers) > 1 and _LEAD_IN_RE.match(masked[: numbers[0].start()]):
        numbers = numbers[1:]  # "After 4 weeks she has saved $96": the lead-in's number is no answer
    return sentence[numbers[0].start() : numbers[0].end()].strip() if numbers else None


def _stated_after_phrase(text: str) -> str | None:
    """What the last answer phrase of ``text`` states, if it states a value at once (a
    number, math or bold right after it: "The final answer is $10,455$.", "#### 18"), so
    that "the answer is reasonable since ..." is no answer."""
    last = None
    for m in _PHRASE_RE.finditer(text):
        last = m
    if last is None or not re.match(r"\s*(?:[-−$\\(\[\d]|\*\*)", text[last.end() : last.end() + 20]):
        return None
    found = extract_phrase(text)
    return found if found is not None and re.search(r"\d", found) else None


def is_task(sentence: str) -> bool:
    """Whether ``sentence`` sets a task ("Compute 2 * 11.", "What is 6 + 5?") and states
    no result: it opens with a task verb, ends with "." or "?", and after the verb has no
    ``=``, copula, colon, arrow, bold, "to" or "gives" (``_TASK_RESULT_RE``)."""
    s = sentence.strip().lstrip("#>- ").strip()
    if len(s) > TASK_MAX_CHARS or not s.endswith((".", "?")):
        return False
    m = _TASK_RE.match(s)
    if m is None:
        return False
    rest = s[m.end():]
    return _TASK_RESULT_RE.search(rest) is None and _COPULA_RE.search(_mask_math(rest)) is None


def drop_trailing_tasks(text: str) -> str:
    """``text`` without the task sentences it ends with (``is_task``), and the numbering
    labels in front of them on their line ("2.", "Exercise 2."): what a reader would look in for the
    answer of a response that goes on to write the next question. A response cut off
    mid-sentence is left as it is."""
    body = text.rstrip()
    starts = [0] + [m.end() for m in _SENTENCE_END_RE.finditer(body) if 0 < m.end() < len(body)]
    end, dropped = len(body), False
    for start in reversed(starts):  # one pass: linear in the length of ``text``
        if start >= end:
            continue
        segment = body[start:end]
        if is_task(segment):
            dropped = True
        # a label shares its task's line ("2. Compute ..."); "22." on a line of its own is an answer
        elif not (dropped and "\n" not in segment and _LABEL_RE.match(segment.strip())):
            break
        end = start
    return body[:end].rstrip()


def extract_closing(text: str) -> str | None:
    """The answer stated by the last sentence of a response with no answer marker:
    bold text there, else what follows its last copula in prose ("is", "是", "=", "est",
    ...), else whichever comes last of its inline math and its numbers. Up to two earlier
    sentences are tried when the last states nothing, unless the text stops mid-sentence
    (truncated). None if nothing is stated (a response that never answers)."""
    body = text.rstrip()[-3000:]
    # the last sentence that holds something: split at sentence ends and newlines
    parts = [p for p in _SENTENCE_END_RE.split(body) if p.strip()]
    # a response cut off mid-sentence ("Wait, let") only answers in that last fragment
    lookback = 3 if not is_unfinished(body) else 1
    for part in reversed(parts[-lookback:]):
        sentence = part.strip()
        bold = None
        for m in _BOLD_RE.finditer(sentence):
            bold = m.group(1)
        if bold:
            return re.sub(r"^[^:：]{0,20}[:：]\s*", "", bold.strip()) or None
        copula = None
        for m in _COPULA_RE.finditer(_mask_math(sentence)):
            copula = m
        if copula is not None:
            after = sentence[copula.end() :]
            math = _first_math_in(after)
            if math is not None and after.find("$") < 25:
                return math
            num = _NUMBER_RE.search(after)
            if num is not None:
                return after[num.start() :].strip().rstrip(".。").strip()
        # the last thing stated: inline math or a number in prose, whichever comes later
        maths = list(_INLINE_MATH_RE.finditer(sentence))
        nums = list(_NUMBER_RE.finditer(_mask_math(sentence)))
        if maths and (not nums or maths[-1].end() >= nums[-1].end()):
            found = next(g for g in maths[-1].groups() if g is not None).strip()
            if found:
                return found
        if nums:
            return sentence[nums[-1].start() :].strip().rstrip(".。").strip()
    return None


def is_unfinished(text: str) -> bool:
    """Whether ``text`` stops mid-sentence (truncated generation): its last character is a
    letter or a comma, not an end of sentence, a number, a bracket or math."""
    tail = text.rstrip()[-1:]
    return bool(tail) and (tail.isalpha() or tail in ",;:(") and not ("\u4e00" <= tail <= "\u9fff")


def _mask_math(sentence: str) -> str:
    """``sentence`` with the inside of inline math blanked (same length), so copulas are
    only found in prose."""
    return _INLINE_MATH_RE.sub(lambda m: "$" + " " * (len(m.group(0)) - 2) + "$", sentence)


def prose_words(text: str) -> int:
    """How many words of prose ``text`` holds outside math and LaTeX commands."""
    bare = re.sub(r"\\[a-zA-Z]+(?:\{[^{}]*\})?", " ", _mask_math(text[-3000:]))
    return len(_PROSE_RE.findall(bare))


def extract_short(text: str) -> str | None:
    """For short, marker-free text: the last inline math segment, else the whole text."""
    if len(text) > SHORT_RESPONSE_CHARS:
        return None
    found = None
    for m in _INLINE_MATH_RE.finditer(text):
        found = next(g for g in m.groups() if g is not None)
    if found is not None and len(text) - len(found) < 30:
        return found.strip() or None
    return text.strip() or None


def extract_answer(text: str, answer_format: str = "auto") -> str | None:
    """The final answer in ``text`` under ``answer_format`` (see module docstring)."""
    if answer_format == "boxed":
        return extract_boxed(text)
    if answer_format == "answer_tag":
        return extract_answer_tag(text)
    if answer_format != "auto":
        raise ValueError(f"unknown answer_format {answer_format!r}; expected one of {ANSWER_FORMATS}")
    for fn in (extract_boxed, extract_answer_tag, extract_phrase, extract_short):
        found = fn(text)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class Answers:
    """What ``find_answers`` read from one response.

    formatted: the answer format's own marker held an answer (a box for ``boxed``, an
        answer tag for ``answer_tag``, any marker for ``auto``).
    candidates: answer strings, most trusted first; the first is the reported answer.
    reliable: the candidates come from an explicit marker (box, tag, phrase) or from a
        short response graded whole, not from the closing-sentence heuristic.
    text: the response up to where it stopped answering (``cut_continuation``).
    scope: the part of ``text`` that holds the answer: the answer tag's body when there is
        one; with no marker, ``text`` less the task sentences it ends with
        (``drop_trailing_tasks``); None for ``text`` itself.
    """

    formatted: bool
    candidates: tuple[str, ...]
    reliable: bool
    text: str
    scope: str | None = None  # where math-verify should look


def _tag_body(text: str) -> str | None:
    """What the last ``<answer>`` tag holds, up to ``</answer>`` or the end of text."""
    start = text.rfind(_OPEN_TAG)
    if start < 0:
        return None
    body = text[start + len(_OPEN_TAG) :]
    end = body.find(_CLOSE_TAG)
    return body[:end] if end >= 0 else body


def _answers_in_tag(body: str) -> list[str]:
    boxes = find_boxes(body)
    if boxes:
        group = extract_box_group(body, boxes)
        return [boxes[-1].content] + ([", ".join(group)] if group else [])
    body = body.strip()
    if not body:
        return []
    tail = body[-3000:]
    out = [x for x in (extract_phrase(tail), _math_in(tail)) if x]
    out.append(body[:1000])
    if _PROSE_RE.search(_mask_math(tail)):
        closing = extract_closing(tail)
        if closing:
            out.append(closing)
    return out


def find_answers(response: str, answer_format: str) -> Answers:
    """The candidate final answers of ``response`` for the ``drzero`` grader mode, in the
    order: the format's own marker (answer tag, boxes), then any other marker, an answer
    phrase, a short response as a whole, and last the closing sentence (unreliable)."""
    text = cut_continuation(response)
    tag = _tag_body(text) if answer_format in ("answer_tag", "auto") else None
    if tag is not None:
        found = _answers_in_tag(tag)
        if found:
            return Answers(True, _dedupe(found), True, text, tag)
    boxes = find_boxes(text)
    if boxes:
        # an answer sentence after the last box outranks it: the box held an intermediate
        # result ("the tax is \boxed{255} ... Final Answer: The final answer is $10,455$.")
        after = _stated_after_phrase(text[boxes[-1].end :])
        if after is not None:  # formatted all the same: the response holds a box
            return Answers(answer_format in ("boxed", "auto"), (after,), True, text)
        group = extract_box_group(text, boxes)
        found = [boxes[-1].content] + ([", ".join(group)] if group else [])
        return Answers(answer_format in ("boxed", "auto"), _dedupe(found), True, text)
    tag = _tag_body(text) if answer_format == "boxed" else None
    if tag is not None and _answers_in_tag(tag):
        return Answers(False, _dedupe(_answers_in_tag(tag)), True, text)
    phrase = extract_phrase(text)
    if phrase is not None:
        return Answers(answer_format == "auto", (phrase,), True, text)
    body = drop_trailing_tasks(text)
    closing = extract_closing(body)
    if len(body) <= SHORT_RESPONSE_CHARS:
        short = extract_short(body)
        if prose_words(body) <= 2:  # an answer, not a sentence: graded as a whole
            found = [x for x in (short, closing) if x]
            if found:
                return Answers(answer_format == "auto", _dedupe(found), True, text, body)
    if closing is not None:
        return Answers(False, (closing,), False, text, body)
    return Answers(False, (), False, text, body)


def _dedupe(items: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for x in items:
        x = x.strip()
        if x and x not in out:
            out.append(x)
    return tuple(out)
