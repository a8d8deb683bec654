"""The NAS-Bench-201 cell search space.

A cell is a DAG on 4 nodes with 6 edges, in the benchmark's string order::

    edge:  0      1      2      3      4      5
           0→1    0→2    1→2    0→3    1→3    2→3

Node ``j`` is ``Σ_{i<j} op_{i→j}(node i)``; node 0 is the cell input, node 3 its output. Each edge carries one of
:data:`OPS`. The NB201 string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` lists node 1's inputs, then node 2's, then
node 3's (``~i`` is the source node).

:class:`Arch` is the immutable value type; it is a tuple of 6 op indices, so it can be passed to a compiled
network as data.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from typing import Iterator, Sequence

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""Candidate operations, in the index order used everywhere in ntkscore (the benchmark's order)."""

EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
"""(source, target) node of each of the 6 edges, in string order."""

NUM_EDGES = len(EDGES)
NUM_CELLS = len(OPS) ** NUM_EDGES  # 15625

_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")


@dataclass(frozen=True, order=True)
class Arch:
    """One NB201 cell: ``ops[e]`` is the index into :data:`OPS` of edge ``e`` (see :data:`EDGES`)."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        if len(ops) != NUM_EDGES:
            raise ValueError(f"an NB201 cell has {NUM_EDGES} edges, got {len(ops)} op indices: {ops!r}")
        for e, o in enumerate(ops):
            if not isinstance(o, int) or isinstance(o, bool) or not 0 <= o < len(OPS):
                raise ValueError(f"edge {e} has op index {o!r}; expected an int in 0..{len(OPS) - 1} ({', '.join(OPS)})")
        object.__setattr__(self, "ops", ops)

    # -- conversions ---------------------------------------------------------------------------------------------
    @classmethod
    def from_string(cls, text: str) -> "Arch":
        """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``; raise ``ValueError`` naming what is wrong."""
        return cls(parse_string(text))

    @classmethod
    def from_names(cls, names: Sequence[str]) -> "Arch":
        """Build from 6 op names in edge order."""
        if isinstance(names, str) or len(names) != NUM_EDGES:
            raise ValueError(f"expected {NUM_EDGES} op names in edge order, got {names!r}")
        return cls(tuple(_op_index(n, f"edge {e}") for e, n in enumerate(names)))

    @classmethod
    def from_index(cls, number: int) -> "Arch":
        """The ``number``-th cell of :func:`all_archs` (base-5 digits of the op indices; *not* the NB201 index)."""
        if not 0 <= number < NUM_CELLS:
            raise ValueError(f"cell number must be in 0..{NUM_CELLS - 1}, got {number}")
        digits = []
        for _ in range(NUM_EDGES):
            number, d = divmod(number, len(OPS))
            digits.append(d)
        return cls(tuple(reversed(digits)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(OPS[o] for o in self.ops)

    def to_string(self) -> str:
        """The NB201 string of this cell."""
        parts, e = [], 0
        for target in (1, 2, 3):
            tokens = [f"{OPS[self.ops[e + i]]}~{i}" for i in range(target)]
            e += target
            parts.append("|" + "|".join(tokens) + "|")
        return "+".join(parts)

    def __str__(self) -> str:
        return self.to_string()

    # -- structure -----------------------------------------------------------------------------------------------
    @property
    def is_dead(self) -> bool:
        """True when the cell output is identically zero (no input→output path avoids a ``none`` edge)."""
        return _node_expressions(self.ops)[3] is None

    def canonical_string(self) -> str:
        """The benchmark's isomorphism key (NB201 ``to_unique_str(consider_zero=True)``).

        Built bottom-up from the cell graph: a ``none`` edge, or any edge out of the zero node, is the zero term ``#``;
        ``skip_connect`` passes its source's expression through; any other op wraps it, ``(expr)@op``; a node is the
        ``+``-join of its sorted terms (so parallel paths commute). Edges that cannot reach the output never enter the
        key. Two cells share this key exactly when NAS-Bench-201 counts them as isomorphic (6466 classes).
        """
        nodes = {0: "0"}
        e = 0
        for target in (1, 2, 3):
            terms = []
            for source in range(target):
                op = OPS[self.ops[e]]
                e += 1
                if op == "none" or nodes[source] == "#":
                    terms.append("#")
                elif op == "skip_connect":
                    terms.append(nodes[source])
                else:
                    terms.append(f"({nodes[source]})@{op}")
            nodes[target] = "+".join(sorted(terms))
        return nodes[3]

    def canonical(self) -> "Arch":
        """The representative of this cell's isomorphism class: the smallest op tuple with the same key."""
        return _representatives()[self.canonical_string()]


def _op_index(name: str, where: str) -> int:
    try:
        return OPS.index(name)
    except ValueError:
        raise ValueError(f"unknown op {name!r} at {where}; expected one of {', '.join(OPS)}") from None


def parse_string(text: str) -> tuple[int, ...]:
    """Op indices of an NB201 string, validating every part of it."""
    if not isinstance(text, str):
        raise ValueError(f"an NB201 arch string must be a str, got {type(text).__name__}")
    s = text.strip()
    if not s:
        raise ValueError("empty arch string; expected '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'")
    nodes = s.split("+")
    if len(nodes) != 3:
        raise ValueError(f"arch string {text!r} has {len(nodes)} node groups separated by '+'; expected 3")
    ops: list[int] = []
    for target, group in enumerate(nodes, start=1):
        if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
            raise ValueError(f"node {target} group {group!r} in {text!r} must be enclosed in '|'")
        tokens = group[1:-1].split("|")
        if len(tokens) != target:
            raise ValueError(f"node {target} in {text!r} has {len(tokens)} input edges; expected {target}")
        for source, token in enumerate(tokens):
            m = _TOKEN.match(token)
            if m is None:
                raise ValueError(f"edge token {token!r} in {text!r} is not of the form 'op~source'")
            if int(m.group(2)) != source:
                raise ValueError(
                    f"edge token {token!r} of node {target} names source node {m.group(2)}; expected ~{source}"
                )
            ops.append(_op_index(m.group(1), f"edge {source}->{target}"))
    return tuple(ops)


def _node_expressions(ops: Sequence[int]) -> dict[int, frozenset | None]:
    """Functional expression of each node with zeros removed (``None`` = identically zero)."""
    nodes: dict[int, frozenset | None] = {0: frozenset({"in"})}
    e = 0
    for target in (1, 2, 3):
        terms = set()
        for source in range(target):
            op = OPS[ops[e]]
            e += 1
            if op != "none" and nodes[source] is not None:
                terms.add((op, nodes[source]))
        nodes[target] = frozenset(terms) if terms else None
    return nodes


def all_archs() -> Iterator[Arch]:
    """All 15625 cells, ops counting in base 5 (first edge most significant)."""
    for ops in itertools.product(range(len(OPS)), repeat=NUM_EDGES):
        yield Arch(ops)


@functools.lru_cache(maxsize=1)
def _representatives() -> dict[str, Arch]:
    reps: dict[str, Arch] = {}
    for arch in all_archs():  # increasing op tuples: the first seen is the smallest
        reps.setdefault(arch.canonical_string(), arch)
    return reps


def unique_archs() -> list[Arch]:
    """One representative per isomorphism class (6466 cells), in increasing op-tuple order."""
    return sorted(_representatives().values())


def as_arch(value: "Arch | str | Sequence[int]") -> Arch:
    """Coerce an ``Arch``, an NB201 string or a sequence of 6 op indices/names to an ``Arch``."""
    if isinstance(value, Arch):
        return value
    if isinstance(value, str):
        return Arch.from_string(value)
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"cannot read an architecture from {value!r}; give an NB201 string or 6 op indices") from None
    if items and all(isinstance(v, str) for v in items):
        return Arch.from_names(items)
    return Arch(items)
