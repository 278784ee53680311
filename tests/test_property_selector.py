"""Property tests of the Calico selector parser (generator/calico/selector.py).

tests/test_calico_selector.py already round-trips small ASTs and checks DNF equivalence. These
cover what it does not: arbitrary (mostly malformed) text never escapes as anything but a
SelectorError with a position inside the text; accepted text is a fixed point of the canonical
printer; ASTs whose keys are keywords and whose values hold quotes, operators, commas and
non-ASCII round-trip and keep their verdicts; and every alternative spelling Calico accepts
(single quotes, extra whitespace and parentheses, doubled '!', trailing commas, unsorted sets)
parses to the same AST as the canonical text.
"""
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from generator.calico.selector import (
    All, And, Contains, EndsWith, Equals, Global, Has, In, Not, NotEquals, NotIn, Or,
    SelectorError, StartsWith, parse, prefixed,
)
from tests.strategies import label_dicts, selector_ast, selector_text

# CI profile: fixed examples, no example database, no wall-clock deadline on a loaded box.
CI = settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- arbitrary text

@CI
@given(selector_text())
@example("has(")                 # error at end of text: position == len
@example("'")                    # unterminated string at 0
@example("a not")                # keyword prefix at end
@example("a starts")
@example("global(")
@example("k in {'a',")
@example("a\u00e9 == 'x'")      # non-ASCII after a label
@example("!" * 50)
@example("(" * 40 + "all()" + ")" * 40)
def test_arbitrary_text_parses_or_raises_selector_error(text):
    try:
        ast = parse(text)
    except SelectorError as e:
        assert 0 <= e.position <= len(text), (text, e.position)
        assert e.text == text
        assert e.message and "\n" not in e.message
        # the helpers that turn it into a UserError line and a caret never fail
        assert e.caret().split("\n")[-1] == " " * e.position + "^"
        assert str(e.position) in e.describe()
        return
    # accepted: canonical text is a fixed point and means the same thing
    canon = str(ast)
    assert parse(canon) == ast, (text, canon)
    assert str(parse(canon)) == canon


def test_moderate_nesting_parses():
    text = "(" * 100 + "has(a)" + ")" * 100
    assert parse(text) == Has("a")


# Regression: the recursive-descent parser overflowed Python's stack at ~330
# nested '(' and RecursionError escaped instead of a SelectorError or an AST.
@pytest.mark.parametrize("opener", ["(", "!("])
def test_deep_nesting_never_escapes_as_recursion_error(opener):
    depth = 1000
    text = opener * depth + "has(a)" + ")" * depth
    try:
        ast = parse(text)
    except SelectorError as e:
        assert 0 <= e.position <= len(text)
        return
    assert parse(str(ast)) == ast


# --------------------------------------------------------------------------- generated ASTs

@CI
@given(selector_ast(), st.lists(label_dicts(), min_size=1, max_size=4))
@example(Equals("in", "'"), [{"in": "'"}])
@example(In("not", ("", "\"", "'")), [{"not": ""}, {}])
@example(Not(Not(Has("has"))), [{"has": "x"}, {}])
@example(Or((And((Has("a"), Global())), NotIn("contains", ()))), [{}, {"contains": "x"}])
def test_wide_alphabet_round_trip_keeps_verdicts(ast, label_sets):
    text = str(ast)
    again = parse(text)
    assert again == ast, text
    for labels in label_sets:
        assert again.evaluate(labels) == ast.evaluate(labels), (text, labels)


def _q(value: str, quote_pref: str) -> str:
    """Quote with the preferred quote character when the value allows it."""
    if quote_pref not in value:
        return f"{quote_pref}{value}{quote_pref}"
    other = "'" if quote_pref == '"' else '"'
    return f"{other}{value}{other}"


@st.composite
def spelled(draw, ast) -> str:
    """Another text Calico accepts for the same AST (independent of the canonical printer)."""
    ws = lambda: draw(st.sampled_from(["", " ", "\t", "  "]))          # noqa: E731
    must = lambda: draw(st.sampled_from([" ", "\t", " \t "]))          # noqa: E731
    qp = draw(st.sampled_from(["'", '"']))
    t = type(ast)
    if t is All:
        return f"all({ws()})"
    if t is Global:
        return f"global({ws()})"
    if t is Has:
        return f"has({ws()}{ast.key}{ws()})"
    if t in (Equals, NotEquals):
        op = "==" if t is Equals else "!="
        return f"{ast.key}{ws()}{op}{ws()}{_q(ast.value, qp)}"
    if t in (Contains, StartsWith, EndsWith):
        word = {Contains: "contains", StartsWith: f"starts{must()}with",
                EndsWith: f"ends{must()}with"}[t]
        # a keyword needs a separator after the label (else it is part of the label)
        return f"{ast.key}{must()}{word}{ws()}{_q(ast.value, qp)}"
    if t in (In, NotIn):
        vals = list(ast.values)
        if vals and draw(st.booleans()):
            vals = vals + [draw(st.sampled_from(vals))]          # duplicates collapse
        vals = draw(st.permutations(vals))                      # order does not matter
        body = f",{ws()}".join(_q(v, qp) for v in vals)
        if vals and draw(st.booleans()):
            body += ","                                          # trailing comma accepted
        word = "in" if t is In else f"not{must()}in"
        return f"{ast.key}{must()}{word}{ws()}{{{ws()}{body}{ws()}}}"
    if t is Not:
        inner = draw(spelled(ast.operand))
        # '!!x' collapses to x, so a double negation of the operand is spelled with parens
        if type(ast.operand) is Not or draw(st.booleans()):
            inner = f"({ws()}{inner}{ws()})"
        else:
            inner = f"({inner})" if type(ast.operand) in (And, Or) else inner
        bang = draw(st.sampled_from(["!", "!!!"]))               # odd count = one negation
        return f"{bang}{ws()}{inner}"
    # And / Or: operands of the other kind (or a Not) need no parens by precedence, but an
    # And inside an Or may be left bare; an Or inside an And must be parenthesised.
    sep = "&&" if t is And else "||"
    parts = []
    for o in ast.operands:
        s = draw(spelled(o))
        to = type(o)
        if to is t or (t is And and to is Or) or draw(st.booleans()):
            s = f"({ws()}{s}{ws()})"
        parts.append(s)
    return f"{ws()}{sep}{ws()}".join(parts)


@CI
@given(st.data(), selector_ast(max_leaves=8))
def test_alternative_spellings_parse_to_the_same_ast(data, ast):
    text = data.draw(spelled(ast), label="text")
    assert parse(text) == ast, text


def test_double_negation_spellings():
    assert parse("!(!has(a))") == Not(Not(Has("a")))
    assert parse("!!!(!has(a))") == Not(Not(Has("a")))
    assert parse("!!!has(a)") == Not(Has("a"))


@CI
@given(selector_ast(max_leaves=8), label_dicts())
def test_prefixed_selects_the_prefixed_labels(ast, labels):
    # 'pcns.' prefixing (namespace selectors inside rule selectors) must not change verdicts
    pre = prefixed(ast, "pcns.")
    assert pre.evaluate({f"pcns.{k}": v for k, v in labels.items()}) == ast.evaluate(labels)
    assert parse(str(pre)) == pre


@pytest.mark.parametrize("value", [3, 1.5, b"has(a)", True])
def test_non_string_input_is_a_selector_error(value):
    with pytest.raises(SelectorError):
        parse(value)
