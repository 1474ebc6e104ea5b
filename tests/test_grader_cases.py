"""Table-driven equivalence cases for drzero.grader, one table per category.

Each row is (predicted answer, reference, expected verdict). The prediction is wrapped
in ``\\boxed{}`` so extraction runs too.
"""

import pytest

from drzero.grader import grade

INTEGERS = [
    ("42", "42", True), ("42", "43", False), ("-7", "-7", True), ("-7", "7", False),
    ("007", "7", True), ("+5", "5", True), ("0", "-0", True), ("1000000", "10^6", True),
    ("1,000", "1000", True), ("12,345,678", "12345678", True), ("1,000", "100", False),
    ("1{,}000", "1000", True), ("2^{10}", "1024", True), ("3!", "6", True), ("10!", "3628800", True),
]
DECIMALS = [
    ("0.5", "0.5", True), ("0.50", "0.5", True), (".5", "0.5", True), ("0.5", "0.05", False),
    ("3.14", "3.14", True), ("3.14", "3.141", False), ("2.0", "2", True), ("1.25", "5/4", True),
    ("-0.75", "-\\frac{3}{4}", True), ("0.333", "\\frac{1}{3}", False), ("1,234.5", "1234.5", True),
    ("9.6", "9.6\n", True), ("9.57", "9.6", False), ("0.1", "1/10", True),
    # issue 33: at the precision written, with 4+ places and 3+ significant digits
    ("0.3333", "\\frac{1}{3}", True), ("0.6667", "\\frac{2}{3}", True), ("3.1416", "\\pi", True),
    ("-0.4286", "-\\frac{3}{7}", True), ("0.3334", "\\frac{1}{3}", False), ("0.0833", "\\frac{1}{12}", True), ("0.0001", "\\frac{1}{9000}", False),
    ("1.4142", "\\sqrt{3}", False), ("0.3333", "0.33333", False),
]
FRACTIONS = [
    ("\\frac{1}{2}", "0.5", True), ("\\frac12", "1/2", True), ("\\dfrac{3}{4}", "\\frac{3}{4}", True),
    ("\\tfrac{3}{4}", "0.75", True), ("\\frac{2}{4}", "\\frac{1}{2}", True), ("\\frac{1}{3}", "\\frac{1}{2}", False),
    ("3/4", "\\frac34", True), ("-\\frac{1}{2}", "\\frac{-1}{2}", True), ("\\frac{-1}{2}", "\\frac{1}{2}", False),
    ("\\frac{10}{4}", "\\frac{5}{2}", True), ("\\frac{\\frac{1}{2}}{2}", "\\frac14", True), ("1/2", "2/1", False),
    ("\\frac{7}{3}", "2\\frac{1}{3}", True), ("\\cfrac{1}{2}", "0.5", True), ("\\frac{1}{2}", "\\frac{1}{2}", True),
]
MIXED = [
    ("2\\frac{1}{2}", "\\frac{5}{2}", True), ("2\\frac{1}{2}", "2.5", True), ("2 1/2", "5/2", True),
    ("-1\\frac{1}{4}", "-\\frac54", True), ("3\\frac{1}{2}", "3.25", False), ("6\\frac{1}{4}", "\\frac{25}{4}", True),
]
PERCENT = [
    ("50\\%", "0.5", True), ("50\\%", "50", True), ("50%", "50\\%", True), ("25\\%", "0.5", False),
    ("12.5\\%", "0.125", True), ("0.5", "50\\%", True), ("5\\%", "50\\%", False), ("100\\%", "1", True),
]
SCIENTIFIC = [
    ("1.5e3", "1500", True), ("1.5 \\times 10^{3}", "1500", True), ("3 \\times 10^8", "3e8", True),
    ("6.02 \\times 10^{23}", "6.02e23", True), ("2 \\times 10^{-3}", "0.002", True), ("2 \\times 10^{3}", "200", False),
    ("10^{-2}", "0.01", True), ("1.2\\cdot10^{5}", "120000", True),
]
RADICALS = [
    ("2\\sqrt{2}", "\\sqrt{8}", True), ("\\sqrt{2}", "\\sqrt{3}", False), ("\\sqrt{12}", "2\\sqrt{3}", True),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", True), ("\\sqrt[3]{8}", "2", True), ("\\sqrt[3]{27}", "9", False),
    ("3\\sqrt{5}", "\\sqrt{45}", True), ("\\sqrt{2}+1", "1+\\sqrt{2}", True), ("\\sqrt{2}-1", "1-\\sqrt{2}", False),
    ("\\sqrt 2", "\\sqrt{2}", True), ("5\\sqrt{2}/2", "\\frac{5\\sqrt{2}}{2}", True), ("sqrt(2)", "\\sqrt{2}", True),
    ("\\frac{1+\\sqrt{5}}{2}", "\\frac{\\sqrt{5}+1}{2}", True), ("4-2\\sqrt{3}", "(\\sqrt{3}-1)^2", True),
]
PI = [
    ("2\\pi", "2 \\pi", True), ("\\pi/2", "\\frac{\\pi}{2}", True), ("\\frac{\\pi}{3}", "\\frac{\\pi}{6}", False),
    ("3\\pi", "3.14", False), ("\\pi r^2", "r^2\\pi", True), ("\\frac{4}{3}\\pi", "\\frac{4\\pi}{3}", True),
    ("1-\\frac{1}{e}", "1+\\frac{1}{e}", False), ("1-1/e", "1+1/e", False), ("e^2", "e\\cdot e", True),
    ("\\frac{\\pi}{2}", "90", False), ("2\\pi - 1", "2\\pi+1", False),
]
DEGREES_UNITS_TEXT = [
    ("90^\\circ", "90", True), ("90^{\\circ}", "90", True), ("45°", "45", True), ("30^\\circ", "60", False),
    ("5 \\text{ cm}", "5", True), ("5\\text{ cm}^2", "5", True), ("12 \\text{ dollars}", "12", True),
    ("\\$12.50", "12.5", True), ("7 \\text{ inches}", "8", False), ("\\text{10 meters}", "10", True),
    ("\\text{Monday}", "\\text{Monday}", True), ("\\text{odd}", "odd", True), ("\\text{even}", "\\text{odd}", False),
    ("3 \\mbox{ units}", "3", True), ("\\textbf{4}", "4", True), ("4 hours", "4", True),
    ("\\text{Yes}", "yes", True), ("100 \\text{ km}", "10", False),
]
LEFT_RIGHT = [
    ("\\left(1,2\\right)", "(1,2)", True), ("\\left[0,1\\right]", "[0,1]", True), ("\\left(\\frac{1}{2}\\right)", "0.5", True),
    ("\\left\\{1,2\\right\\}", "\\{1,2\\}", True), ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\left( 3, \\frac{\\pi}{3} \\right)", False), ("\\bigl(2\\bigr)", "2", True),
]
EQUATIONS = [
    ("x = 5", "5", True), ("x=5", "x = 5", True), ("y = 2x + 3", "y=3+2x", True), ("x = 5", "6", False),
    ("k = -2", "-2", True), ("5", "x=5", True), ("y = 2x + 3", "y = 2x - 3", False), ("a=\\frac{1}{2}", "0.5", True),
    ("n = 10", "10", True), ("x^2 + y^2 = 1", "y^2 + x^2 = 1", True), ("2x+3", "y=2x+3", True),
]
TUPLES = [
    ("(1, 2)", "(1,2)", True), ("(1, 2)", "(2, 1)", False), ("(1,2,3)", "(1, 2, 3)", True), ("(1,2)", "(1,2,3)", False),
    ("(0.5, 2)", "(\\frac12, 2)", True), ("(-1, \\sqrt{2})", "(-1,\\sqrt2)", True), ("(3, -4)", "(3,4)", False),
    ("\\left( \\frac{1}{2}, \\frac{\\sqrt{3}}{2} \\right)", "(0.5, \\frac{\\sqrt{3}}{2})", True),
    ("(2, 3, 4)", "(4, 3, 2)", False), ("(a, b)", "(a,b)", True),
]
SETS = [
    ("\\{1, 2\\}", "\\{2, 1\\}", True), ("\\{1,2,3\\}", "\\{3,2,1\\}", True), ("\\{1, 2\\}", "\\{1, 3\\}", False),
    ("\\{1\\}", "1", True), ("1, 2", "2, 1", True), ("-2, 3", "3,-2", True), ("1, 2", "1, 2, 3", False),
    ("1,2,3", "\\{1,2,3\\}", True), ("\\{\\frac12, 2\\}", "\\{2, 0.5\\}", True), ("x = 1, 2", "1,2", True),
    ("3, 5, 7", "7, 5, 3", True), ("\\{1,1,2\\}", "\\{1,2,2\\}", False),
]
INTERVALS = [
    ("[1, 2)", "[1,2)", True), ("[1, 2)", "[1, 2]", False), ("(1, 2]", "[1, 2]", False), ("(-\\infty, 3)", "(-\\infty,3)", True),
    ("(-\\infty, 3]", "(-\\infty, 3)", False), ("[0, \\infty)", "[0,\\infty)", True), ("(0, 1) \\cup (2, 3)", "(0,1)\\cup(2,3)", True),
    ("(0, 1) \\cup (2, 3)", "(0,1)\\cup(2,4)", False), ("x \\in [2, 5]", "[2,5]", True), ("[\\frac{1}{2}, 1]", "[0.5, 1]", True),
    ("(-\\infty, -1) \\cup (1, \\infty)", "(-\\infty,-1)\\cup(1,\\infty)", True), ("[-2, 2]", "[-2,3]", False),
]
MATRICES = [
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", True),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix}1&2\\\\4&3\\end{pmatrix}", False),
    ("\\begin{pmatrix} \\frac{1}{2} \\\\ 3 \\end{pmatrix}", "\\begin{pmatrix}0.5\\\\3\\end{pmatrix}", True),
    ("\\begin{bmatrix} 1 & 0 \\\\ 0 & 1 \\end{bmatrix}", "\\begin{bmatrix}1&0\\\\0&1\\end{bmatrix}", True),
    ("\\begin{pmatrix} 2 \\\\ -1 \\end{pmatrix}", "\\begin{pmatrix} -1 \\\\ 2 \\end{pmatrix}", False),
    ("\\begin{pmatrix} \\sqrt{4} & 0 \\end{pmatrix}", "\\begin{pmatrix} 2 & 0 \\end{pmatrix}", True),
]
CHOICES = [
    ("B", "B", True), ("(B)", "B", True), ("\\text{(B)}", "B", True), ("B", "C", False), ("\\textbf{(C)}", "C", True),
    ("(D)", "(D)", True), ("(A)", "E", False), ("\\text{E}", "E", True),
]
SYMBOLIC = [
    ("(x+1)^2", "x^2+2x+1", True), ("x^2-1", "(x-1)(x+1)", True), ("x^2+1", "(x+1)^2", False), ("2x", "x+x", True),
    ("\\frac{x}{2}", "0.5x", True), ("a^2 b", "b a^2", True), ("\\frac{1}{x+1}", "\\frac{1}{x}+1", False),
    ("3x^2 - 6x", "3x(x-2)", True), ("\\sin^2 x + \\cos^2 x", "1", True), ("2\\sin x \\cos x", "\\sin(2x)", True),
    ("\\ln(e^2)", "2", True), ("\\log(8)/\\log(2)", "3", True), ("x_1 + x_2", "x_2 + x_1", True), ("x^3", "x^2", False),
    ("24x^2-6x+3", "24x^2-6x+3", True), ("24x^2-6x+3", "24x^2+6x+3", False), ("\\binom{5}{2}", "10", True),
    ("\\frac{n(n+1)}{2}", "\\frac{n^2+n}{2}", True), ("2^n", "n^2", False), ("-x+y", "y-x", True),
]
NEAR_MISSES = [  # close but wrong: a lenient grader gives these away
    ("2", "-2", False), ("1/2", "1/3", False), ("\\sqrt{2}", "1.414", False), ("3.1461", "\\pi", False), ("3.142", "\\pi", False),
    ("0.66", "\\frac{2}{3}", False), ("100", "1000", False), ("10^{5}", "10^{6}", False), ("x+1", "x-1", False),
    ("(1,2)", "[1,2]", False), ("\\{1,2\\}", "\\{1,2,3\\}", False), ("\\frac{\\pi}{4}", "45", False),
    ("2\\sqrt{3}", "3\\sqrt{2}", False), ("e", "\\pi", False), ("x^2", "2x", False), ("5!", "100", False),
    ("A", "B", False), ("\\text{yes}", "\\text{no}", False), ("-\\infty", "\\infty", False), ("0", "1", False),
    ("12\\%", "0.012", False), ("1.5", "15", False), ("\\frac{3}{2}", "\\frac{2}{3}", False), ("(0,0)", "(0,1)", False),
    ("\\sqrt{x}", "x", False), ("2^{3}", "3^{2}", False), ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\end{pmatrix}", False),
]


def _rows(table):
    return [pytest.param(p, r, e, id=f"{p}|{r}") for p, r, e in table]


ALL_TABLES = (
    INTEGERS + DECIMALS + FRACTIONS + MIXED + PERCENT + SCIENTIFIC + RADICALS + PI + DEGREES_UNITS_TEXT + LEFT_RIGHT
    + EQUATIONS + TUPLES + SETS + INTERVALS + MATRICES + CHOICES + SYMBOLIC + NEAR_MISSES
)


def test_table_is_large_and_balanced():
    assert len(ALL_TABLES) >= 200
    positives = sum(e for _, _, e in ALL_TABLES)
    assert 0.3 < positives / len(ALL_TABLES) < 0.8


@pytest.mark.parametrize("pred,ref,expected", _rows(ALL_TABLES))
def test_equivalence(pred, ref, expected):
    g = grade(f"The final result is $\\boxed{{{pred}}}$.", ref)
    assert g.formatted and g.extracted == pred.strip()
    assert g.correct is expected, g


RESPONSES = [
    ("Thus the answer is \\boxed{\\frac{1}{2}}.", "0.5", "boxed", True, True),
    ("\\boxed{3} then \\boxed{4}", "4", "boxed", True, True),
    ("\\fbox{7}", "7", "boxed", True, True),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}", "boxed", True, True),
    ("\\boxed 5", "5", "boxed", True, True),
    ("no box here, answer 5", "5", "boxed", False, True),  # drzero mode reads unboxed answers; paper mode does not
    ("<think>2+2</think> <answer>4</answer>", "4", "answer_tag", True, True),
    ("<think>2+2</think>\n\n<answer>\n4\n</answer>", "4", "answer_tag", True, True),
    ("<think>2+2</think><answer>4</answer>", "4", "answer_tag", True, True),
    ("<think>..</think> <answer> so \\boxed{4} </answer>", "4", "answer_tag", True, True),
    ("<think>..</think> <answer> 4", "4", "answer_tag", True, True),
    ("<think>no answer tag</think>", "4", "answer_tag", False, False),
    ("So, the answer is 12.", "12", "auto", True, True),
    ("Final Answer: $\\frac{3}{4}$", "0.75", "auto", True, True),
    ("The final answer is 3.5. I hope it is correct.", "3.5", "auto", True, True),
    ("... The answer is: (B)", "B", "auto", True, True),
    ("$\\frac{1}{2}$", "0.5", "auto", True, True),
    ("Let us think. " * 30 + "We continue with more questions.", "4", "auto", False, False),
]


@pytest.mark.parametrize("response,ref,fmt,formatted,correct", RESPONSES)
def test_extraction_formats(response, ref, fmt, formatted, correct):
    g = grade(response, ref, answer_format=fmt)
    assert (g.formatted, g.correct) == (formatted, correct), g


def test_list_reference_any_match_and_float_reference():
    assert grade("\\boxed{2}", ["1", "2"]).correct
    assert not grade("\\boxed{3}", ["1", "2"]).correct
    assert grade("\\boxed{142}", 142.0).correct
    assert grade("\\boxed{0.5}", 0.5).correct
    assert grade("\\boxed{9.6}", ["9.6\n"]).correct


def test_unknown_format_is_a_clear_error():
    with pytest.raises(ValueError, match="answer_format"):
        grade("\\boxed{1}", "1", answer_format="xml")
