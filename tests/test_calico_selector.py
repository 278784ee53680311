import pytest
from hypothesis import given, settings, strategies as st

from generator.calico.selector import (
    All, And, Contains, EndsWith, Equals, Global, Has, In, Not, NotEquals, NotIn, Or,
    SelectorError, StartsWith, label_keys, literals, parse, to_dnf, to_nnf,
)


@pytest.mark.parametrize("text,ast", [
    ("", All()),
    ("   \t ", All()),
    ("all()", All()),
    ("all( )", All()),
    ("global()", Global()),
    ("has(app)", Has("app")),
    ("has( a.b/c-d_e )", Has("a.b/c-d_e")),
    ("app == 'web'", Equals("app", "web")),
    ('app=="web"', Equals("app", "web")),
    ("app != 'web'", NotEquals("app", "web")),
    ("k in {'b', \"a\", 'b'}", In("k", ("a", "b"))),
    ("k in {}", In("k", ())),
    ("k in {'a',}", In("k", ("a",))),        # Calico accepts a trailing comma
    ("k not in {'x'}", NotIn("k", ("x",))),
    ("k not\tin {'x'}", NotIn("k", ("x",))),
    ("k notin {'x'}", NotIn("k", ("x",))),    # prefix keyword match, as Calico's tokenizer
    ("k in{'x'}", In("k", ("x",))),
    ("k contains 'x'", Contains("k", "x")),
    ("k starts with 'x'", StartsWith("k", "x")),
    ("k starts  with 'x'", StartsWith("k", "x")),
    ("k ends with 'x'", EndsWith("k", "x")),
    ("!has(a)", Not(Has("a"))),
    ("!!has(a)", Has("a")),                    # leading !s collapse
    ("!!!has(a)", Not(Has("a"))),
    ("!(!has(a))", Not(Not(Has("a")))),
    ("a == 'it''s'", None),                    # no escapes: two strings -> error
    ("projectcalico.org/namespace == 'prod'", Equals("projectcalico.org/namespace", "prod")),
    ("k == 'say \"hi\"'", Equals("k", 'say "hi"')),
    ("has(all)", Has("all")),
    ("all == 'x'", Equals("all", "x")),        # 'all' without '(' is a label
])
def test_terms(text, ast):
    if ast is None:
        with pytest.raises(SelectorError):
            parse(text)
    else:
        assert parse(text) == ast


def test_precedence():
    a, b, c = Has("a"), Has("b"), Has("c")
    assert parse("has(a) || has(b) && has(c)") == Or((a, And((b, c))))
    assert parse("has(a) && has(b) || has(c)") == Or((And((a, b)), c))
    assert parse("!has(a) && has(b)") == And((Not(a), b))
    assert parse("!(has(a) && has(b))") == Not(And((a, b)))
    assert parse("(has(a) || has(b)) && has(c)") == And((Or((a, b)), c))
    assert parse("has(a) && has(b) && has(c)") == And((a, b, c))
    assert parse("has(a) && (has(b) && has(c))") == And((a, And((b, c))))


@pytest.mark.parametrize("text,pos,fragment", [
    ("a", 1, "end of selector"),
    ("a =", 2, "=="),
    ("a == b", 5, "quoted string"),
    ("has(", 4, "label name"),
    ("has(a", 5, "closing"),
    ("all(x)", 4, "closing"),
    ("(has(a)", 7, "')'"),
    ("has(a))", 6, "')'"),
    ("has(a) has(b)", 7, "after a complete expression"),
    ("a & b", 2, "&&"),
    ("a | b", 2, "||"),
    ("a == 'x", 5, "unterminated"),
    ("a foo 'x'", 2, "operator"),
    ("a starts 'x'", 2, "operator"),
    ("a\n== 'x'", 1, "operator"),              # newline is not whitespace
    ("has(a) &&\nhas(b)", 9, "unexpected character"),
    ("!", 1, "expected a selector term"),
    ("has(a) &&", 9, "expected a selector term"),
    ("k in 'a'", 5, "set literal"),
    ("k in {'a' 'b'}", 10, "'}'"),
    ("== 'x'", 0, "expected a selector term"),
    ("#x", 0, "unexpected character"),
])
def test_errors_have_positions(text, pos, fragment):
    with pytest.raises(SelectorError) as ei:
        parse(text)
    e = ei.value
    assert e.position == pos, (str(e), e.position)
    assert fragment in str(e)
    lines = e.caret().split("\n")
    assert lines[-1] == " " * pos + "^"
    assert str(pos) in e.describe() and "\n" not in e.describe().replace(text, "")


def test_evaluate_absent_labels():
    empty: dict = {}
    assert parse("a != 'x'").evaluate(empty)
    assert parse("a not in {'x'}").evaluate(empty)
    assert parse("!has(a)").evaluate(empty)
    for s in ("a == 'x'", "a in {'x'}", "has(a)", "a contains ''", "a starts with ''",
              "a ends with ''"):
        assert not parse(s).evaluate(empty), s
    labels = {"a": "xyz"}
    assert parse("a contains 'y'").evaluate(labels)
    assert parse("a starts with 'xy'").evaluate(labels)
    assert parse("a ends with 'yz'").evaluate(labels)
    assert not parse("a != 'xyz'").evaluate(labels)
    assert parse("a in {'q', 'xyz'}").evaluate(labels)
    assert not parse("a not in {'q', 'xyz'}").evaluate(labels)
    assert parse("global()").evaluate(labels)   # a label test that is always true, as in Calico


def test_canonical_text_matches_calico():
    assert str(parse("has(a)&&b=='c'||!d in {'z','y'}")) == \
        '((has(a) && b == "c") || !d in {"y", "z"})'
    assert str(parse("k == 'say \"hi\"'")) == "k == 'say \"hi\"'"
    assert str(parse("")) == "all()"


def test_parse_is_cached():
    assert parse("has(cache-me)") is parse("has(cache-me)")


def test_dnf_and_helpers():
    sel = parse("!(a == 'x' || has(b)) && (c in {'1'} || d != '2')")
    assert to_dnf(sel) == [
        (NotEquals("a", "x"), Not(Has("b")), In("c", ("1",))),
        (NotEquals("a", "x"), Not(Has("b")), NotEquals("d", "2")),
    ]
    assert to_dnf(parse("all()")) == [()]
    assert to_dnf(parse("!all()")) == []
    assert to_dnf(parse("has(a) && !has(a)")) == []
    assert to_dnf(parse("has(a) && has(a)")) == [(Has("a"),)]
    assert to_nnf(parse("!(k in {'a'})")) == NotIn("k", ("a",))
    assert label_keys(sel) == ["a", "b", "c", "d"]
    assert literals(parse("has(a) && !has(a) || x == 'y'")) == [Has("a"), Equals("x", "y")]


# ---- property tests: round trip and DNF equivalence on random ASTs

KEYS = ["a", "b", "app.kubernetes.io/name"]
VALS = ["", "x", "y", 'q"q']
key = st.sampled_from(KEYS)
val = st.sampled_from(VALS)
leaf = st.one_of(
    st.just(All()), st.just(Global()), key.map(Has),
    st.builds(Equals, key, val), st.builds(NotEquals, key, val),
    st.builds(lambda k, vs: In(k, tuple(sorted(set(vs)))), key, st.lists(val, max_size=3)),
    st.builds(lambda k, vs: NotIn(k, tuple(sorted(set(vs)))), key, st.lists(val, max_size=3)),
    st.builds(Contains, key, val), st.builds(StartsWith, key, val), st.builds(EndsWith, key, val),
)
tree = st.recursive(leaf, lambda inner: st.one_of(
    inner.map(Not),
    st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
    st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
), max_leaves=8)
label_sets = st.dictionaries(key, st.sampled_from(["x", "y", "xy", 'q"q', ""]), max_size=3)


@settings(max_examples=300, deadline=None)
@given(tree)
def test_round_trip(ast):
    assert parse(str(ast)) == ast


@settings(max_examples=300, deadline=None)
@given(tree, label_sets)
def test_dnf_equivalent(ast, labels):
    want = ast.evaluate(labels)
    dnf = to_dnf(ast)
    got = any(all(lit.evaluate(labels) for lit in conj) for conj in dnf)
    assert got == want
    assert to_nnf(ast).evaluate(labels) == want


@pytest.mark.parametrize("text", [
    "k inx {'a'}",            # 'in' is matched by prefix, then 'x' is an unexpected label
    "k == 'a' || ",           # dangling operator
    "has (a)",                # 'has' must be followed directly by '('
    "all ()",
    "k == 'a' k == 'b'",
    "k in {'a',,'b'}",
    "(",
    ")",
    "{'a'}",
    "k not {'a'}",
    "k starts 'a'",
])
def test_rejected_like_calico(text):
    with pytest.raises(SelectorError):
        parse(text)


def test_label_key_characters():
    sel = parse("a-b_c.d/e-F9 == 'x' && 9start == 'y' && -dash == 'z'")
    assert label_keys(sel) == ["-dash", "9start", "a-b_c.d/e-F9"]
    with pytest.raises(SelectorError) as ei:
        parse("a:b == 'x'")
    assert ei.value.position == 1
