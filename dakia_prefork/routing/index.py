"""The router index: which routers could match a request, found without trying them all.

Theory of operation
-------------------
Routers are tried in order and the first whose filter holds wins. Trying them one by one
costs ~0.15-0.3 µs each, so a gateway with 1,000 routers spends ~150 µs per request on
its last route. The index cuts that to a few lookups while leaving the decision to the
filters, in the same order:

1. At build time (once per config version), :mod:`.conditions` derives from each router's
   filter spec the *necessary* conditions on three dimensions — path (exact values and
   prefixes), host (exact values) and method (exact values). A router without a filter,
   or whose filter says nothing indexable about a dimension, is *unconstrained* there.
2. Router ``i`` is bit ``1 << i`` of a Python int used as a bit set. Each dimension gets
   an index answering "the routers this value may satisfy": the routers constrained to
   keys the value meets, plus every router unconstrained in the dimension.

   - Path (:class:`PathIndex`): a dict of exact paths, whose bit sets already include the
     prefixes of that path, then a radix tree (:class:`PrefixTree`) over the prefixes.
     Walking it visits only the branching nodes on the path's way down, and each node
     holds the union of the prefixes ending at or above it, precomputed.
   - Host, method (:class:`ValueIndex`): one dict lookup, with a default for other values.

   A dimension no router is constrained on is left out: it would select everything.
3. At route time the candidates are the AND of the dimensions' bit sets. They are visited
   lowest bit first — ascending router order — and each candidate's full filter decides;
   the first that holds wins. Routers not visited are exactly those a condition rules out,
   so the answer is the linear scan's.

Soundness rests on reading the request exactly as the compiled filter does: the same
attribute (``subject.path``, ``subject.host``, ``subject.method``, not normalised again
here) and the same operand text (:func:`.filters.operand_text`, which lower-cases host
operands as the compiler does), compared by the same operation (``==`` through a dict,
``str.startswith`` through the tree). An index may only say "maybe" too often (the filter
then says no), never "no" too often.

Cost: a route is one or two dict lookups, a tree walk (one step per branching node) and
a few big-int operations, then one filter per candidate — about 1 µs for 1,000 indexed
routers (``tools/bench_router.py``). Routers with nothing indexable (only ``$matches``,
``$or`` across dimensions, headers...) are candidates for every request, so they still
cost one filter each, in order. Memory is one bit set per exact key and tree node, each
as wide as the router count. :class:`~.router.GatewayRouter` scans instead when it has
few routers or the index would constrain nothing.
"""
from __future__ import annotations

from collections.abc import Sequence

from .conditions import HOST, METHOD, PATH, Alternatives, Conditions
from .subject import FilterSubject


class _Node:
    """A radix-tree node: the edge ``label`` that leads to it, keyed by its first char."""

    __slots__ = ("label", "children", "own", "through")

    def __init__(self, label: str) -> None:
        self.label = label
        self.children: dict[str, _Node] = {}
        self.own = 0       # routers whose prefix is exactly this node's key
        self.through = 0   # routers whose prefix is this key or one of its prefixes


class PrefixTree:
    """Maps a string to the union of the bit sets of every inserted prefix of it.

    Add every prefix, :meth:`freeze`, then :meth:`lookup`. A compressed (radix) tree: each
    inserted key ends at a node, edges carry whole substrings, so a lookup costs one dict
    lookup and one ``startswith`` per branching node on the way, not one per character.
    """

    __slots__ = ("_root", "_frozen")

    def __init__(self) -> None:
        self._root = _Node("")
        self._frozen = False

    def add(self, prefix: str, bits: int) -> None:
        if self._frozen:
            raise RuntimeError("PrefixTree.add after freeze")
        node, pos = self._root, 0
        while pos < len(prefix):
            child = node.children.get(prefix[pos])
            if child is None:
                child = node.children[prefix[pos]] = _Node(prefix[pos:])
                node, pos = child, len(prefix)
                break
            common = _common_length(child.label, prefix, pos)
            if common < len(child.label):
                # Split the edge: node → middle (the shared part) → child (the rest).
                middle = _Node(child.label[:common])
                child.label = child.label[common:]
                middle.children[child.label[0]] = child
                node.children[prefix[pos]] = middle
                child = middle
            node, pos = child, pos + common
        node.own |= bits

    def freeze(self) -> None:
        """Precompute every node's ``through``; the tree takes no more prefixes."""
        stack = [(self._root, 0)]
        while stack:
            node, inherited = stack.pop()
            node.through = inherited | node.own
            stack.extend((child, node.through) for child in node.children.values())
        self._frozen = True

    def lookup(self, value: str) -> int:
        """The union of the bit sets of every added prefix of ``value``."""
        node, pos, end = self._root, 0, len(value)
        while pos < end:
            child = node.children.get(value[pos])
            if child is None or not value.startswith(child.label, pos):
                break
            node, pos = child, pos + len(child.label)
        return node.through


class PathIndex:
    """Path → the routers whose path conditions it meets (plus the unconstrained ones)."""

    __slots__ = ("_exact", "_tree")

    def __init__(self, constrained: Sequence[tuple[int, Alternatives]], unconstrained: int
                 ) -> None:
        self._tree = PrefixTree()
        self._tree.add("", unconstrained)
        exact: dict[str, int] = {}
        for bit, alternatives in constrained:
            for prefix in alternatives.prefixes:
                self._tree.add(prefix, bit)
            for value in alternatives.exact:
                exact[value] = exact.get(value, 0) | bit
        self._tree.freeze()
        self._exact = {value: bits | self._tree.lookup(value) for value, bits in exact.items()}

    def lookup(self, path: str) -> int:
        bits = self._exact.get(path)
        return self._tree.lookup(path) if bits is None else bits


class ValueIndex:
    """Exact value → the routers that accept it (plus the unconstrained ones)."""

    __slots__ = ("_bits", "_default")

    def __init__(self, constrained: Sequence[tuple[int, Alternatives]], unconstrained: int
                 ) -> None:
        if any(alternatives.prefixes for _, alternatives in constrained):
            raise ValueError("ValueIndex takes exact values only")
        self._default = unconstrained
        bits: dict[str, int] = {}
        for bit, alternatives in constrained:
            for value in alternatives.exact:
                bits[value] = bits.get(value, unconstrained) | bit
        self._bits = bits

    def lookup(self, value: str) -> int:
        return self._bits.get(value, self._default)


class RouteIndex:
    """The candidate routers of a request, as a bit set (bit ``i`` is router ``i``).

    Built from each router's conditions (None for a router without a filter). ``indexed``
    is False when no router is constrained on any dimension: every router is then a
    candidate, and a plain scan is cheaper.
    """

    __slots__ = ("_all", "_path", "_host", "_method")

    def __init__(self, conditions: Sequence[Conditions | None]) -> None:
        self._all = (1 << len(conditions)) - 1
        self._path: PathIndex | None = None
        self._host: ValueIndex | None = None
        self._method: ValueIndex | None = None
        for dimension in (PATH, HOST, METHOD):
            constrained = [(1 << i, c[dimension]) for i, c in enumerate(conditions)
                           if c is not None and dimension in c]
            if not constrained:
                continue
            unconstrained = self._all
            for bit, _ in constrained:
                unconstrained &= ~bit
            if dimension == PATH:
                self._path = PathIndex(constrained, unconstrained)
            elif dimension == HOST:
                self._host = ValueIndex(constrained, unconstrained)
            else:
                self._method = ValueIndex(constrained, unconstrained)

    @property
    def indexed(self) -> bool:
        return self._path is not None or self._host is not None or self._method is not None

    def candidates(self, subject: FilterSubject) -> int:
        bits = self._all if self._path is None else self._path.lookup(subject.path)
        if self._host is not None:
            bits &= self._host.lookup(subject.host)
        if self._method is not None:
            bits &= self._method.lookup(subject.method)
        return bits


def _common_length(label: str, text: str, start: int) -> int:
    """How many leading characters ``label`` shares with ``text[start:]``."""
    limit = min(len(label), len(text) - start)
    length = 0
    while length < limit and label[length] == text[start + length]:
        length += 1
    return length
