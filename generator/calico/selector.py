"""Calico's selector language: tokenizer, parser, AST, evaluation, canonical text, DNF.

Follows libcalico-go lib/selector (tokenizer.go, parser.go, ast.go):
- precedence `||` < `&&` < `!`; leading `!`s collapse (`!!x` is `x`);
- terms: has(k), all(), global(), k == 'v', k != 'v', k in {...}, k not in {...},
  k contains 'x', k starts with 'x', k ends with 'x', parenthesised expressions;
- label keys are runs of [a-zA-Z0-9_./-]; strings are '...' or "..." with no escapes;
- only space and tab are whitespace; an empty selector is all();
- after a label the tokenizer looks for an operator keyword by prefix (`in`, `not in`,
  `contains`, `starts with`, `ends with`), exactly like Calico;
- set literals are sorted and de-duplicated (Calico's StringSet) and may end with a comma.

Evaluation on absent labels: `!=`, `not in` and `!has` match; the rest do not.
global() evaluates to true as a plain label test (as in Calico); its meaning "not in a
namespace" applies where it is used as a namespaceSelector (see generator/calico/felix.py).

`str(node)` prints Calico's canonical text (And/Or parenthesised, double quotes unless the value
contains one), which parses back to an equal AST.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

WHITESPACE = " \t"
_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-")


class SelectorError(ValueError):
    """A selector that Calico would reject. position is a 0-based index into the text."""

    def __init__(self, message: str, position: int, text: str = ""):
        super().__init__(message)
        self.message = message
        self.position = position
        self.text = text

    def __str__(self) -> str:
        return f"{self.message} at position {self.position}"

    def caret(self) -> str:
        """Two lines: the selector, then a caret under the offending character."""
        return f"{self.text}\n{' ' * self.position}^"

    def describe(self) -> str:
        """One line for UserError messages: message, position and the text around it."""
        near = self.text[self.position:self.position + 20]
        where = f" near {near!r}" if near else " at end of selector"
        return f"invalid selector {self.text!r}: {self.message} at position {self.position}{where}"


# --------------------------------------------------------------------------- AST

class Node:
    """Base of every selector AST node."""
    __slots__ = ()

    def evaluate(self, labels: dict) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


def _quote(value: str) -> str:
    q = "'" if '"' in value else '"'
    return f"{q}{value}{q}"


@dataclass(frozen=True, slots=True)
class All(Node):
    def evaluate(self, labels: dict) -> bool:
        return True

    def __str__(self) -> str:
        return "all()"


@dataclass(frozen=True, slots=True)
class Global(Node):
    def evaluate(self, labels: dict) -> bool:
        return True

    def __str__(self) -> str:
        return "global()"


@dataclass(frozen=True, slots=True)
class Has(Node):
    key: str

    def evaluate(self, labels: dict) -> bool:
        return self.key in labels

    def __str__(self) -> str:
        return f"has({self.key})"


@dataclass(frozen=True, slots=True)
class Equals(Node):
    key: str
    value: str

    def evaluate(self, labels: dict) -> bool:
        return labels.get(self.key) == self.value

    def __str__(self) -> str:
        return f"{self.key} == {_quote(self.value)}"


@dataclass(frozen=True, slots=True)
class NotEquals(Node):
    key: str
    value: str

    def evaluate(self, labels: dict) -> bool:
        v = labels.get(self.key)
        return v is None or v != self.value

    def __str__(self) -> str:
        return f"{self.key} != {_quote(self.value)}"


@dataclass(frozen=True, slots=True)
class In(Node):
    key: str
    values: tuple[str, ...]   # sorted, unique

    def evaluate(self, labels: dict) -> bool:
        v = labels.get(self.key)
        return v is not None and v in self.values

    def __str__(self) -> str:
        return f"{self.key} in {{{', '.join(_quote(v) for v in self.values)}}}"


@dataclass(frozen=True, slots=True)
class NotIn(Node):
    key: str
    values: tuple[str, ...]

    def evaluate(self, labels: dict) -> bool:
        v = labels.get(self.key)
        return v is None or v not in self.values

    def __str__(self) -> str:
        return f"{self.key} not in {{{', '.join(_quote(v) for v in self.values)}}}"


@dataclass(frozen=True, slots=True)
class Contains(Node):
    key: str
    value: str

    def evaluate(self, labels: dict) -> bool:
        v = labels.get(self.key)
        return v is not None and self.value in v

    def __str__(self) -> str:
        return f"{self.key} contains {_quote(self.value)}"


@dataclass(frozen=True, slots=True)
class StartsWith(Node):
    key: str
    value: str

    def evaluate(self, labels: dict) -> bool:
        v = labels.get(self.key)
        return v is not None and v.startswith(self.value)

    def __str__(self) -> str:
        return f"{self.key} starts with {_quote(self.value)}"


@dataclass(frozen=True, slots=True)
class EndsWith(Node):
    key: str
    value: str

    def evaluate(self, labels: dict) -> bool:
        v = labels.get(self.key)
        return v is not None and v.endswith(self.value)

    def __str__(self) -> str:
        return f"{self.key} ends with {_quote(self.value)}"


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Node

    def evaluate(self, labels: dict) -> bool:
        return not self.operand.evaluate(labels)

    def __str__(self) -> str:
        # "!!x" would re-parse to x (Calico collapses leading !s), so keep the parentheses.
        if isinstance(self.operand, Not):
            return f"!({self.operand})"
        return f"!{self.operand}"


@dataclass(frozen=True, slots=True)
class And(Node):
    operands: tuple[Node, ...]

    def evaluate(self, labels: dict) -> bool:
        for op in self.operands:
            if not op.evaluate(labels):
                return False
        return True

    def __str__(self) -> str:
        return "(" + " && ".join(str(o) for o in self.operands) + ")"


@dataclass(frozen=True, slots=True)
class Or(Node):
    operands: tuple[Node, ...]

    def evaluate(self, labels: dict) -> bool:
        for op in self.operands:
            if op.evaluate(labels):
                return True
        return False

    def __str__(self) -> str:
        return "(" + " || ".join(str(o) for o in self.operands) + ")"


Selector = Node   # the public name for a parsed selector (the root node)
LEAF_TYPES = (All, Global, Has, Equals, NotEquals, In, NotIn, Contains, StartsWith, EndsWith)


# --------------------------------------------------------------------------- tokenizer

# token kinds
LABEL, STRING, LBRACE, RBRACE, COMMA, EQ, NE, IN, NOT, NOTIN, CONTAINS, STARTS, ENDS, \
    ALL, HAS, LPAREN, RPAREN, AND, OR, GLOBAL, EOF = range(21)

_KIND_TEXT = {LABEL: "label", STRING: "string", LBRACE: "'{'", RBRACE: "'}'", COMMA: "','",
              EQ: "'=='", NE: "'!='", IN: "'in'", NOT: "'!'", NOTIN: "'not in'",
              CONTAINS: "'contains'", STARTS: "'starts with'", ENDS: "'ends with'",
              ALL: "'all()'", HAS: "'has()'", LPAREN: "'('", RPAREN: "')'", AND: "'&&'",
              OR: "'||'", GLOBAL: "'global()'", EOF: "end of selector"}

_SIMPLE = {"(": LPAREN, ")": RPAREN, "{": LBRACE, "}": RBRACE, ",": COMMA}


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in WHITESPACE:
        i += 1
    return i


def _ident_end(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _IDENT_CHARS:
        i += 1
    return i


def tokenize(text: str) -> list[tuple[int, str | None, int]]:
    """List of (kind, value, position); the last token is EOF."""
    toks: list[tuple[int, str | None, int]] = []
    i = 0
    n = len(text)
    while True:
        i = _skip_ws(text, i)
        if i >= n:
            toks.append((EOF, None, n))
            return toks
        c = text[i]
        last = toks[-1][0] if toks else None
        if c in _SIMPLE:
            toks.append((_SIMPLE[c], None, i))
            i += 1
        elif c in "\"'":
            end = text.find(c, i + 1)
            if end < 0:
                raise SelectorError("unterminated string", i, text)
            toks.append((STRING, text[i + 1:end], i))
            i = end + 1
        elif c == "=":
            if text.startswith("==", i):
                toks.append((EQ, None, i))
                i += 2
            else:
                raise SelectorError("expected '=='", i, text)
        elif c == "!":
            if text.startswith("!=", i):
                toks.append((NE, None, i))
                i += 2
            else:
                toks.append((NOT, None, i))
                i += 1
        elif c == "&":
            if text.startswith("&&", i):
                toks.append((AND, None, i))
                i += 2
            else:
                raise SelectorError("expected '&&'", i, text)
        elif c == "|":
            if text.startswith("||", i):
                toks.append((OR, None, i))
                i += 2
            else:
                raise SelectorError("expected '||'", i, text)
        elif last == LABEL:
            i = _operator(text, i, toks)
        elif text.startswith("has(", i):
            j = _skip_ws(text, i + 4)
            end = _ident_end(text, j)
            if end == j:
                raise SelectorError("no label name in has( expression", j, text)
            k = _skip_ws(text, end)
            if k >= n or text[k] != ")":
                raise SelectorError("no closing ')' after has(", k, text)
            toks.append((HAS, text[j:end], i))
            i = k + 1
        elif text.startswith("all(", i) or text.startswith("global(", i):
            word = "all(" if text.startswith("all(", i) else "global("
            k = _skip_ws(text, i + len(word))
            if k >= n or text[k] != ")":
                raise SelectorError(f"no closing ')' after {word}", k, text)
            toks.append((ALL if word == "all(" else GLOBAL, None, i))
            i = k + 1
        else:
            end = _ident_end(text, i)
            if end == i:
                raise SelectorError(f"unexpected character {c!r}", i, text)
            toks.append((LABEL, text[i:end], i))
            i = end


def _operator(text: str, i: int, toks: list) -> int:
    """After a label Calico only accepts an operator keyword (matched by prefix)."""
    label = toks[-1][1]
    err = SelectorError(f"unexpected characters after label {label!r}, expected an operator",
                        i, text)
    if text.startswith("contains", i):
        toks.append((CONTAINS, None, i))
        return i + len("contains")
    for word, kind in (("starts", STARTS), ("ends", ENDS)):
        if text.startswith(word, i):
            j = _skip_ws(text, i + len(word))
            if not text.startswith("with", j):
                raise err
            toks.append((kind, None, i))
            return j + 4
    if text.startswith("not", i):
        j = _skip_ws(text, i + 3)
        if not text.startswith("in", j):
            raise err
        toks.append((NOTIN, None, i))
        return j + 2
    if text.startswith("in", i):
        toks.append((IN, None, i))
        return i + 2
    raise err


# --------------------------------------------------------------------------- parser

class _Parser:
    __slots__ = ("toks", "pos", "text")

    def __init__(self, text: str):
        self.text = text
        self.toks = tokenize(text)
        self.pos = 0

    def error(self, message: str, tok=None) -> SelectorError:
        tok = tok or self.toks[self.pos]
        return SelectorError(message, tok[2], self.text)

    def parse(self) -> Node:
        if self.toks[0][0] == EOF:
            return All()
        node = self.parse_or()
        tok = self.toks[self.pos]
        if tok[0] != EOF:
            raise self.error(f"unexpected {_KIND_TEXT[tok[0]]} after a complete expression")
        return node

    def parse_or(self) -> Node:
        nodes = [self.parse_and()]
        while self.toks[self.pos][0] == OR:
            self.pos += 1
            nodes.append(self.parse_and())
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def parse_and(self) -> Node:
        nodes = [self.parse_op()]
        while self.toks[self.pos][0] == AND:
            self.pos += 1
            nodes.append(self.parse_op())
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def parse_op(self) -> Node:
        toks = self.toks
        negated = False
        while toks[self.pos][0] == NOT:
            negated = not negated
            self.pos += 1
        tok = toks[self.pos]
        kind = tok[0]
        if kind == HAS:
            node: Node = Has(tok[1])
            self.pos += 1
        elif kind == ALL:
            node = All()
            self.pos += 1
        elif kind == GLOBAL:
            node = Global()
            self.pos += 1
        elif kind == LABEL:
            node = self.parse_label_op(tok)
        elif kind == LPAREN:
            self.pos += 1
            node = self.parse_or()
            if toks[self.pos][0] != RPAREN:
                raise self.error(f"expected ')', found {_KIND_TEXT[toks[self.pos][0]]}")
            self.pos += 1
        else:
            raise self.error(f"unexpected {_KIND_TEXT[kind]}, expected a selector term")
        return Not(node) if negated else node

    def parse_label_op(self, label_tok) -> Node:
        key = label_tok[1]
        op = self.toks[self.pos + 1]
        if op[0] == EOF:
            raise self.error(f"unexpected end of selector after label {key!r}", op)
        self.pos += 2
        if op[0] in (EQ, NE, CONTAINS, STARTS, ENDS):
            val = self.toks[self.pos]
            if val[0] != STRING:
                raise self.error(f"expected a quoted string after {_KIND_TEXT[op[0]]}", val)
            self.pos += 1
            cls = {EQ: Equals, NE: NotEquals, CONTAINS: Contains, STARTS: StartsWith,
                   ENDS: EndsWith}[op[0]]
            return cls(key, val[1])
        if op[0] in (IN, NOTIN):
            if self.toks[self.pos][0] != LBRACE:
                raise self.error(f"expected a set literal '{{...}}' after {_KIND_TEXT[op[0]]}")
            self.pos += 1
            values = []
            while self.toks[self.pos][0] == STRING:
                values.append(self.toks[self.pos][1])
                self.pos += 1
                if self.toks[self.pos][0] != COMMA:
                    break
                self.pos += 1
            if self.toks[self.pos][0] != RBRACE:
                raise self.error(f"expected '}}', found {_KIND_TEXT[self.toks[self.pos][0]]}")
            self.pos += 1
            vals = tuple(sorted(set(values)))
            return In(key, vals) if op[0] == IN else NotIn(key, vals)
        raise self.error(f"expected an operator after label {key!r}, found {_KIND_TEXT[op[0]]}",
                         op)


@lru_cache(maxsize=65536)
def parse(text: str | None) -> Node:
    """Parse a Calico selector (None or empty -> all()). Raises SelectorError."""
    if text is None:
        return All()
    if not isinstance(text, str):
        raise SelectorError(f"selector must be a string, not {type(text).__name__}", 0, str(text))
    _check_depth(text)
    try:
        return _Parser(text).parse()
    except RecursionError:  # belt and braces: _check_depth should have refused it
        raise SelectorError("selector nested too deeply (not supported)", 0, text) from None


MAX_DEPTH = 150


def _check_depth(text: str) -> None:
    """Refuse absurd nesting up front. Calico's Go parser has no limit, but this recursive parser
    (and every walk over the tree) would hit Python's recursion limit near 330 levels and crash
    with a traceback; no real selector nests deeper than a handful. The tree's depth is bounded
    by the open parentheses plus the run of prefix '!' in front of the current term."""
    parens = run = 0
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote, run = ch, 0
        elif ch == "(":
            parens += 1
        elif ch == ")":
            parens, run = max(parens - 1, 0), 0
        elif ch == "!" and text[i + 1:i + 2] != "=":
            run += 1
        elif ch not in WHITESPACE:
            run = 0
        if parens + run > MAX_DEPTH:
            raise SelectorError(f"selector nested more than {MAX_DEPTH} levels deep "
                                "(not supported)", i, text)


def validate(text: str) -> None:
    parse(text)


def canonical(text: str | None) -> str:
    """Calico's canonical text of a selector."""
    return str(parse(text))


# --------------------------------------------------------------------------- helpers

_NEGATE = {Equals: NotEquals, NotEquals: Equals, In: NotIn, NotIn: In}


def negate(node: Node) -> Node:
    """Negation pushed one level: ==/!= and in/not in swap (same absent-label meaning)."""
    t = type(node)
    if t in _NEGATE:
        return _NEGATE[t](*(getattr(node, f) for f in node.__dataclass_fields__))
    if t is Not:
        return node.operand
    return Not(node)


def to_nnf(node: Node) -> Node:
    """Negation normal form: `!` only directly above has/contains/starts/ends/all/global."""
    t = type(node)
    if t is And:
        return And(tuple(to_nnf(o) for o in node.operands))
    if t is Or:
        return Or(tuple(to_nnf(o) for o in node.operands))
    if t is not Not:
        return node
    inner = node.operand
    ti = type(inner)
    if ti is Not:
        return to_nnf(inner.operand)
    if ti is And:
        return Or(tuple(to_nnf(Not(o)) for o in inner.operands))
    if ti is Or:
        return And(tuple(to_nnf(Not(o)) for o in inner.operands))
    return negate(inner)


class DNFTooLarge(ValueError):
    """to_dnf would produce more conjunctions than the given limit."""


def _is_false(lit: Node) -> bool:
    return type(lit) is Not and type(lit.operand) is All


def to_dnf(node: Node, limit: int = 4096) -> list[tuple[Node, ...]]:
    """Disjunctive normal form: a list of conjunctions of literals (leaves or Not(leaf)).

    [] means the selector matches nothing; [()] means it matches everything. all() is dropped
    from conjunctions; conjunctions that contain a literal and its negation are dropped;
    duplicates are removed (order kept, so output is deterministic).
    """
    def walk(n: Node) -> list[tuple[Node, ...]]:
        t = type(n)
        if t is Or:
            out: list[tuple[Node, ...]] = []
            for o in n.operands:
                out.extend(walk(o))
                if len(out) > limit:
                    raise DNFTooLarge(f"selector expands to more than {limit} terms")
            return out
        if t is And:
            acc: list[tuple[Node, ...]] = [()]
            for o in n.operands:
                part = walk(o)
                acc = [a + p for a in acc for p in part]
                if len(acc) > limit:
                    raise DNFTooLarge(f"selector expands to more than {limit} terms")
            return acc
        if t is All:
            return [()]
        if _is_false(n):
            return []
        return [(n,)]

    out: list[tuple[Node, ...]] = []
    seen: set[tuple[Node, ...]] = set()
    for conj in walk(to_nnf(node)):
        lits: list[Node] = []
        have: set[Node] = set()
        for lit in conj:
            if lit not in have:
                have.add(lit)
                lits.append(lit)
        if any(negate(lit) in have for lit in lits):
            continue   # x && !x
        key = tuple(lits)
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def literals(node: Node) -> list[Node]:
    """The leaf terms of a selector (negations not pushed), unique, in text order."""
    out: list[Node] = []
    seen: set[Node] = set()

    def walk(n: Node) -> None:
        t = type(n)
        if t is And or t is Or:
            for o in n.operands:
                walk(o)
        elif t is Not:
            walk(n.operand)
        elif n not in seen:
            seen.add(n)
            out.append(n)

    walk(node)
    return out


def label_keys(node: Node) -> list[str]:
    """Sorted label keys a selector reads."""
    return sorted({lit.key for lit in literals(node) if hasattr(lit, "key")})


def uses_global(node: Node) -> bool:
    return any(type(lit) is Global for lit in literals(node))


def is_all(node: Node) -> bool:
    """True when the selector matches every label set (syntactically all())."""
    return type(node) is All


def prefixed(node: Node, prefix: str) -> Node:
    """Every label key prefixed (libcalico-go PrefixVisitor), e.g. 'pcns.' for namespaces."""
    t = type(node)
    if t is And or t is Or:
        return t(tuple(prefixed(o, prefix) for o in node.operands))
    if t is Not:
        return Not(prefixed(node.operand, prefix))
    if t in (All, Global):
        return node
    if t in (In, NotIn):
        return t(prefix + node.key, node.values)
    if t is Has:
        return Has(prefix + node.key)
    return t(prefix + node.key, node.value)


def pinned(node: Node) -> dict[str, frozenset]:
    """{key: the values it must have for the selector to match}, for every key a conjunct pins
    (`key == 'v'` or `key in {...}`, at the top or in nested ANDs). Lets callers evaluate a
    selector only on the endpoints that can match (e.g. one namespace out of thousands)."""
    out: dict[str, frozenset] = {}
    todo = [node]
    while todo:
        op = todo.pop()
        t = type(op)
        if t is And:
            todo.extend(op.operands)
        elif t is Equals or t is In:
            vals = frozenset((op.value,) if t is Equals else op.values)
            out[op.key] = out[op.key] & vals if op.key in out else vals
    return out


def pinned_values(node: Node, key: str) -> frozenset | None:
    """The values `key` must have for the selector to match (see pinned); None: not pinned."""
    return pinned(node).get(key)
