"""MongoDB-style event filters (W&B's dialect), compiled once into small matchers.

Semantics, as in MongoDB:

- Implicit equality (``{"alias": "prod"}``) and an implicit ``$and`` of the keys of
  one object; ``$and``/``$or``/``$nor``/``$not`` take filters, ``$not`` inside a field
  takes operators. An empty ``$and`` matches everything (W&B stores an empty filter
  as ``{"$or": [{"$and": []}]}``); an empty ``$or``/``$nor`` is refused.
- On a list field an operator matches when any element matches; ``$eq`` (and
  ``$in``) also when the whole list equals the operand; ``$ne``/``$nin`` match when
  no element matches. ``$all`` needs every operand present, ``$size`` the length.
- Type bracketing: numbers compare only with numbers (a bool is not a number),
  strings with strings; a mismatch does not match and never raises.
- ``{"field": null}`` matches a missing field too; ``$exists`` sees null as present.
- ``$regex`` (with optional ``$options`` of ``i``, ``m``, ``s``) uses RE2: linear
  time, no backreferences or lookaround. ``$contains`` is a substring test.
- ``metadata.<path>`` walks nested objects (a numeric segment indexes a list); an
  exact key containing dots wins over the nested walk.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import re2

from app.errors import FilterError
from app.serialization import dumps

__all__ = [
    "FIELDS",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_PATTERN_CHARS",
    "MISSING",
    "RUN_FIELDS",
    "CompiledFilter",
    "compile_filter",
    "metadata_value",
]

FIELDS: Final = ("alias", "aliases", "tag", "tags", "type", "version", "collection", "author")
MAX_DEPTH: Final = 32
MAX_NODES: Final = 1000
MAX_PATTERN_CHARS: Final = 1000

_METADATA_PREFIX = "metadata."
_FIELD_SET = frozenset(FIELDS)
# Run filters (issue 14): the fields of a run; `display_name` is what the SDK writes for
# RunEvent.name; `config.<path>` walks the run's config as `metadata.<path>` does.
RUN_FIELDS: Final = (
    "display_name", "name", "id", "user", "username", "tags", "state", "entity", "project"
)  # fmt: skip
_RUN_FIELD_SET = frozenset(RUN_FIELDS)
_CONFIG_PREFIX = "config."
_LOGICAL_LISTS = frozenset({"$and", "$or", "$nor"})
_FIELD_OPERATORS = frozenset(
    {
        "$eq", "$ne", "$in", "$nin", "$regex", "$options", "$contains", "$exists",
        "$gt", "$gte", "$lt", "$lte", "$all", "$size", "$not",
    }
)  # fmt: skip
_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}

Doc = Mapping[str, Any]

# Hot-path loops below are written out (noqa: SIM110): any()/all() over a generator
# costs a generator object per call, measurable at 100k events/s.


class _Missing:
    """The value of an absent field."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.never_capture = True
_UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED


def _walk(value: Any, segments: Sequence[str]) -> Any:
    for segment in segments:
        if type(value) is dict:
            value = value.get(segment, MISSING)
            if value is MISSING:
                return MISSING
        elif type(value) is list and segment.isdigit():
            index = int(segment)
            if index >= len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def metadata_value(metadata: Mapping[str, Any], key: str) -> Any:
    """The value at a metadata key or dotted path, or MISSING."""
    if key in metadata:
        return metadata[key]
    return _walk(metadata, key.split("."))


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float


def _same(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return a is b
    if (ta is int or ta is float) and (tb is int or tb is float):
        return bool(a == b)
    if ta is not tb:
        return False
    if ta is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _show(value: Any) -> str:
    if value is MISSING:
        return "missing"
    try:
        text = dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _scalar_equals(x: Any) -> Callable[[Any], bool]:
    if type(x) is str:
        return lambda e: e == x
    if type(x) is bool:
        return lambda e: e is x
    if x is None:
        return lambda e: e is None
    if _is_number(x):
        return lambda e: (type(e) is int or type(e) is float) and e == x
    return lambda e: _same(e, x)


class _Op:
    """One operator applied to one field value (MISSING when absent)."""

    __slots__ = ("name", "operand")

    def __init__(self, name: str, operand: Any) -> None:
        self.name = name
        self.operand = operand

    def test(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} {_show(self.operand)}"


class _AnyElement(_Op):
    """Matches a scalar, or a list when any element matches."""

    __slots__ = ("_scalar",)

    def __init__(self, name: str, operand: Any, scalar: Callable[[Any], bool]) -> None:
        super().__init__(name, operand)
        self._scalar = scalar

    def test(self, value: Any) -> bool:
        scalar = self._scalar
        if type(value) is list:
            for element in value:  # noqa: SIM110
                if scalar(element):
                    return True
            return False
        if value is MISSING:
            return False
        return scalar(value)


class _Eq(_Op):
    """``$eq``: equal, or a list with an equal element or equal as a whole."""

    __slots__ = ("_scalar", "_whole")

    def __init__(self, operand: Any, name: str = "$eq") -> None:
        super().__init__(name, operand)
        self._scalar = _scalar_equals(operand)
        self._whole = type(operand) is list

    def test(self, value: Any) -> bool:
        if value is MISSING:
            return self.operand is None
        if type(value) is list:
            if self._whole and _same(value, self.operand):
                return True
            scalar = self._scalar
            for element in value:  # noqa: SIM110
                if scalar(element):
                    return True
            return False
        return self._scalar(value)


class _In(_Op):
    """``$in``: equal to any operand (list fields: any element, or the whole list)."""

    __slots__ = ("_false", "_lists", "_none", "_numbers", "_others", "_strings", "_true")

    def __init__(self, operand: list[Any], name: str = "$in") -> None:
        super().__init__(name, operand)
        self._strings = frozenset(x for x in operand if type(x) is str)
        self._numbers = frozenset(x for x in operand if _is_number(x))
        self._true = any(x is True for x in operand)
        self._false = any(x is False for x in operand)
        self._none = any(x is None for x in operand)
        self._others = tuple(x for x in operand if isinstance(x, list | dict))
        self._lists = tuple(x for x in operand if type(x) is list)

    def _scalar(self, element: Any) -> bool:
        kind = type(element)
        if kind is str:
            return element in self._strings
        if kind is int or kind is float:
            return element in self._numbers
        if kind is bool:
            return self._true if element else self._false
        if element is None:
            return self._none
        return any(_same(element, other) for other in self._others)

    def test(self, value: Any) -> bool:
        if value is MISSING:
            return self._none
        if type(value) is list:
            # Most $in operands hold no lists: skip building the generator then.
            if self._lists and any(_same(value, x) for x in self._lists):
                return True
            for element in value:  # noqa: SIM110
                if self._scalar(element):
                    return True
            return False
        return self._scalar(value)


class _Negate(_Op):
    """``$ne``, ``$nin`` and field-level ``$not``: none of the inner operators holds."""

    __slots__ = ("_inner",)

    def __init__(self, name: str, operand: Any, inner: Sequence[_Op]) -> None:
        super().__init__(name, operand)
        self._inner = tuple(inner)

    def test(self, value: Any) -> bool:
        for op in self._inner:  # noqa: SIM110
            if not op.test(value):
                return True
        return False


class _Exists(_Op):
    """``$exists``: the field is present (null counts as present)."""

    __slots__ = ()

    def test(self, value: Any) -> bool:
        return (value is not MISSING) is self.operand


class _All(_Op):
    """``$all``: every operand is matched by ``$eq``."""

    __slots__ = ("_eqs",)

    def __init__(self, operand: list[Any]) -> None:
        super().__init__("$all", operand)
        self._eqs = tuple(_Eq(x) for x in operand)

    def test(self, value: Any) -> bool:
        if not self._eqs:
            return False
        return all(eq.test(value) for eq in self._eqs)


class _Size(_Op):
    """``$size``: a list of exactly that length."""

    __slots__ = ()

    def test(self, value: Any) -> bool:
        return type(value) is list and len(value) == self.operand


class _Node:
    """A compiled filter clause."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        # Reasons name clauses the way automation errors do: "filter.$or.0.alias".
        self.path = f"filter.{path}" if path else "filter"

    def match(self, doc: Doc) -> bool:
        raise NotImplementedError

    def explain(self, doc: Doc, out: list[str]) -> None:
        """Append why this clause does not match `doc`."""
        raise NotImplementedError


class _True(_Node):
    """Matches everything (an empty ``$and``)."""

    __slots__ = ()

    def match(self, doc: Doc) -> bool:
        return True

    def explain(self, doc: Doc, out: list[str]) -> None:
        return None


class _Field(_Node):
    """Operators on one field; all must hold."""

    __slots__ = ("_tests", "field", "key", "name", "ops", "segments")

    def __init__(self, path: str, field: str, ops: Sequence[_Op]) -> None:
        super().__init__(path)
        self.field = field
        if field.startswith(_METADATA_PREFIX) or field.startswith(_CONFIG_PREFIX):
            self.name, _, key = field.partition(".")
            self.key: str | None = key
            self.segments: tuple[str, ...] = tuple(key.split("."))
        else:
            self.name = field
            self.key = None
            self.segments = ()
        self.ops = tuple(ops)
        self._tests = tuple(op.test for op in self.ops)

    def value(self, doc: Doc) -> Any:
        value = doc.get(self.name, MISSING)
        key = self.key
        if key is None:
            return value
        if type(value) is not dict:
            return MISSING
        if key in value:
            return value[key]
        return _walk(value, self.segments)

    def match(self, doc: Doc) -> bool:
        value = self.value(doc)
        for test in self._tests:  # noqa: SIM110
            if not test(value):
                return False
        return True

    def explain(self, doc: Doc, out: list[str]) -> None:
        value = self.value(doc)
        for op in self.ops:
            if not op.test(value):
                out.append(
                    f"{self.path}: {self.field} is {_show(value)}, which fails {op.describe()}"
                )


class _And(_Node):
    """Every clause matches."""

    __slots__ = ("_matches", "children")

    def __init__(self, path: str, children: Sequence[_Node]) -> None:
        super().__init__(path)
        self.children = tuple(children)
        self._matches = tuple(child.match for child in self.children)

    def match(self, doc: Doc) -> bool:
        for matches in self._matches:  # noqa: SIM110
            if not matches(doc):
                return False
        return True

    def explain(self, doc: Doc, out: list[str]) -> None:
        for child in self.children:
            if not child.match(doc):
                child.explain(doc, out)


class _Or(_Node):
    """At least one clause matches."""

    __slots__ = ("_matches", "children")

    def __init__(self, path: str, children: Sequence[_Node]) -> None:
        super().__init__(path)
        self.children = tuple(children)
        self._matches = tuple(child.match for child in self.children)

    def match(self, doc: Doc) -> bool:
        for matches in self._matches:  # noqa: SIM110
            if matches(doc):
                return True
        return False

    def explain(self, doc: Doc, out: list[str]) -> None:
        out.append(f"{self.path}: none of the {len(self.children)} alternatives matched")
        for child in self.children:
            child.explain(doc, out)


class _Nor(_Node):
    """No clause matches."""

    __slots__ = ("_matches", "children")

    def __init__(self, path: str, children: Sequence[_Node]) -> None:
        super().__init__(path)
        self.children = tuple(children)
        self._matches = tuple(child.match for child in self.children)

    def match(self, doc: Doc) -> bool:
        for matches in self._matches:  # noqa: SIM110
            if matches(doc):
                return False
        return True

    def explain(self, doc: Doc, out: list[str]) -> None:
        for child in self.children:
            if child.match(doc):
                out.append(f"{child.path}: matched, but $nor requires that it does not")


class _Not(_Node):
    """The inner filter does not match."""

    __slots__ = ("child",)

    def __init__(self, path: str, child: _Node) -> None:
        super().__init__(path)
        self.child = child

    def match(self, doc: Doc) -> bool:
        return not self.child.match(doc)

    def explain(self, doc: Doc, out: list[str]) -> None:
        out.append(f"{self.path}: the negated filter matched")


def _always(doc: Doc) -> bool:
    return True


class CompiledFilter:
    """A filter compiled once; `matches(doc)` is the hot path."""

    __slots__ = ("_root", "matches", "spec")

    def __init__(self, spec: Mapping[str, Any] | None, root: _Node | None) -> None:
        self.spec = spec
        self._root = root
        self.matches: Callable[[Doc], bool] = _always if root is None else root.match

    @property
    def is_empty(self) -> bool:
        """True when the filter matches everything in scope."""
        return self._root is None

    def explain(self, doc: Doc) -> list[str]:
        """Why `doc` does not match (empty when it matches)."""
        root = self._root
        if root is None or root.match(doc):
            return []
        out: list[str] = []
        root.explain(doc, out)
        return out


class _Budget:
    """Counts nodes while compiling so an enormous filter is refused."""

    __slots__ = ("nodes", "run")

    def __init__(self, *, run: bool = False) -> None:
        self.nodes = 0
        # Whether the filter is a run filter (RUN_FIELDS) rather than an event filter.
        self.run = run

    def spend(self, path: str, count: int = 1) -> None:
        self.nodes += count
        if self.nodes > MAX_NODES:
            raise FilterError(path, f"filter is too large (more than {MAX_NODES} nodes)")


def _join(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def _check_depth(path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise FilterError(path, f"filter is nested too deeply (more than {MAX_DEPTH} levels)")


def _check_value(value: Any, path: str, depth: int, budget: _Budget) -> None:
    _check_depth(path, depth)
    budget.spend(path)
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(path, f"{value} is not a finite number")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_value(item, _join(path, i), depth + 1, budget)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FilterError(path, f"object keys must be strings, not {key!r}")
            _check_value(item, _join(path, key), depth + 1, budget)
        return
    raise FilterError(path, f"unsupported value of type {type(value).__name__}")


def _plain(value: Any) -> Any:
    # YAML may hand us tuples; filters compare against JSON shapes only.
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _compile_regex(pattern: str, options: str, path: str) -> Callable[[Any], bool]:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise FilterError(path, f"pattern is {len(pattern)} characters, over {MAX_PATTERN_CHARS}")
    flags = "".join(sorted(set(options)))
    try:
        compiled = re2.compile(f"(?{flags}){pattern}" if flags else pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        raise FilterError(
            path, f"pattern {pattern!r} refused by RE2 (no backreferences or lookaround): {detail}"
        ) from None
    raw = getattr(compiled, "_regexp", None)
    if raw is None or not hasattr(raw, "Match"):  # pragma: no cover - other re2 builds
        return lambda e: type(e) is str and compiled.search(e) is not None
    match = raw.Match
    anchor = _UNANCHORED

    def search(element: Any) -> bool:
        if type(element) is not str:
            return False
        data = element.encode("utf-8", "surrogatepass")
        return bool(match(anchor, data, 0, len(data))[0][0] >= 0)

    return search


def _list_operand(op: str, operand: Any, path: str, depth: int, budget: _Budget) -> list[Any]:
    if not isinstance(operand, list | tuple):
        raise FilterError(path, f"{op} needs a list, got {_show(operand)}")
    _check_value(operand, path, depth, budget)
    return [_plain(v) for v in operand]


def _compile_op(
    op: str, operand: Any, spec: Mapping[str, Any], path: str, depth: int, budget: _Budget
) -> _Op:
    if op in ("$eq", "$ne"):
        _check_value(operand, path, depth, budget)
        eq = _Eq(_plain(operand))
        return eq if op == "$eq" else _Negate("$ne", eq.operand, (eq,))
    if op in ("$in", "$nin"):
        values = _list_operand(op, operand, path, depth, budget)
        inside = _In(values)
        return inside if op == "$in" else _Negate("$nin", values, (inside,))
    if op in _COMPARE:
        budget.spend(path)
        if not (isinstance(operand, str) or _is_number(operand)):
            raise FilterError(path, f"{op} needs a number or a string, got {_show(operand)}")
        if isinstance(operand, float) and not math.isfinite(operand):
            raise FilterError(path, f"{operand} is not a finite number")
        return _comparison(op, operand)
    if op == "$regex":
        budget.spend(path)
        options = spec.get("$options", "")
        if not isinstance(operand, str):
            raise FilterError(path, f"$regex needs a string pattern, got {_show(operand)}")
        if not isinstance(options, str) or set(options) - set("ims"):
            raise FilterError(_join(path[: path.rfind(".")], "$options"), "only i, m, s allowed")
        name = f"$regex(?{options})" if options else "$regex"
        return _AnyElement(name, operand, _compile_regex(operand, options, path))
    if op == "$contains":
        budget.spend(path)
        if not isinstance(operand, str):
            raise FilterError(path, f"$contains needs a string, got {_show(operand)}")
        sub = operand
        return _AnyElement("$contains", sub, lambda e: type(e) is str and sub in e)
    if op == "$exists":
        budget.spend(path)
        if not isinstance(operand, bool):
            raise FilterError(path, f"$exists needs true or false, got {_show(operand)}")
        return _Exists("$exists", operand)
    if op == "$all":
        return _All(_list_operand(op, operand, path, depth, budget))
    if op == "$size":
        budget.spend(path)
        if type(operand) is not int or operand < 0:
            raise FilterError(path, f"$size needs a non-negative integer, got {_show(operand)}")
        return _Size("$size", operand)
    if op == "$not":
        if not (
            isinstance(operand, Mapping) and operand and all(k.startswith("$") for k in operand)
        ):
            raise FilterError(path, 'field-level $not needs operators, e.g. {"$not": {"$eq": "x"}}')
        inner = _compile_ops(operand, path, depth + 1, budget)
        return _Negate("$not", _plain(operand), inner)
    if op in _LOGICAL_LISTS:
        raise FilterError(path, f"{op} goes at the top level of a filter, not inside a field")
    raise FilterError(path, f"unknown operator {op}")


def _comparison(op: str, operand: Any) -> _Op:
    compare = _COMPARE[op]
    if isinstance(operand, str):
        return _AnyElement(op, operand, lambda e: type(e) is str and compare(e, operand))
    return _AnyElement(
        op, operand, lambda e: (type(e) is int or type(e) is float) and compare(e, operand)
    )


def _compile_ops(spec: Mapping[str, Any], path: str, depth: int, budget: _Budget) -> list[_Op]:
    _check_depth(path, depth)
    if "$options" in spec and "$regex" not in spec:
        raise FilterError(_join(path, "$options"), "$options needs $regex beside it")
    ops = [
        _compile_op(op, operand, spec, _join(path, op), depth, budget)
        for op, operand in spec.items()
        if op != "$options"
    ]
    return ops


def _field_name(name: str, path: str, budget: _Budget) -> str:
    if budget.run:
        if name in _RUN_FIELD_SET or (
            name.startswith(_CONFIG_PREFIX) and all(name[len(_CONFIG_PREFIX) :].split("."))
        ):
            return name
        known = ", ".join(RUN_FIELDS)
        raise FilterError(path, f"unknown run field {name!r}; fields are {known}, config.<key>")
    if name in _FIELD_SET:
        return name
    if name.startswith(_METADATA_PREFIX) and all(name[len(_METADATA_PREFIX) :].split(".")):
        return name
    known = ", ".join(FIELDS)
    raise FilterError(path, f"unknown field {name!r}; fields are {known}, metadata.<key>")


def _compile_field(name: str, value: Any, path: str, depth: int, budget: _Budget) -> _Node:
    field = _field_name(name, path, budget)
    budget.spend(path)
    if isinstance(value, Mapping) and any(str(k).startswith("$") for k in value):
        if not all(isinstance(k, str) and k.startswith("$") for k in value):
            raise FilterError(path, "mixes operators ($...) with plain keys")
        ops = _compile_ops(value, path, depth + 1, budget)
    else:
        _check_value(value, path, depth + 1, budget)
        ops = [_Eq(_plain(value))]
    return _Field(path, field, ops)


def _compile_list(op: str, value: Any, path: str, depth: int, budget: _Budget) -> _Node:
    if not isinstance(value, list | tuple):
        raise FilterError(path, f"{op} needs a list of filters")
    if not value:
        if op == "$and":
            return _True(path)
        raise FilterError(path, f"{op} needs at least one filter")
    children = [
        _compile_doc(item, _join(path, i), depth + 1, budget) for i, item in enumerate(value)
    ]
    if op == "$nor":
        return _Nor(path, children)
    if len(children) == 1:
        return children[0]
    return _And(path, children) if op == "$and" else _Or(path, children)


def _compile_doc(spec: Any, path: str, depth: int, budget: _Budget) -> _Node:
    _check_depth(path, depth)
    if not isinstance(spec, Mapping):
        raise FilterError(path, f"a filter must be an object, got {_show(spec)}")
    budget.spend(path)
    clauses: list[_Node] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise FilterError(path, f"keys must be strings, not {key!r}")
        sub = _join(path, key)
        if key in _LOGICAL_LISTS:
            clauses.append(_compile_list(key, value, sub, depth + 1, budget))
        elif key == "$not":
            clauses.append(_Not(sub, _compile_doc(value, sub, depth + 1, budget)))
        elif key in _FIELD_OPERATORS:
            raise FilterError(sub, f'{key} needs a field, e.g. {{"alias": {{"{key}": ...}}}}')
        elif key.startswith("$"):
            raise FilterError(sub, f"unknown operator {key}")
        else:
            clauses.append(_compile_field(key, value, sub, depth + 1, budget))
    if not clauses:
        return _True(path)
    if len(clauses) == 1:
        return clauses[0]
    return _And(path, clauses)


def compile_filter(spec: Mapping[str, Any] | None, *, run: bool = False) -> CompiledFilter:
    """Compile a filter once; raises FilterError(path, reason) for any problem.

    ``run``: a run filter (fields RUN_FIELDS and ``config.<path>``), not an event filter.
    """
    if spec is None:
        return CompiledFilter(None, None)
    root = _compile_doc(spec, "", 0, _Budget(run=run))
    return CompiledFilter(spec, None if isinstance(root, _True) else root)
