"""A small builder for the server's filter language, producing its plain dicts.

A filter is ``{"must": [...], "should": [...], "must_not": [...]}``; each list holds
conditions or nested groups of the same shape (crates/quiver-core/src/filter.rs):

    >>> from quiver_client.filters import Field, must, must_not
    >>> must(Field("year").gte(1960), Field("tag").any(["a", "b"])) | must_not(Field("lang").eq("de"))
    {'must': [{'key': 'year', 'range': {'gte': 1960}}, {'key': 'tag', 'any': ['a', 'b']}], 'must_not': [{'key': 'lang', 'match': 'de'}]}

Groups are dicts, so ``|`` joins groups with different lists; :func:`combine` also
merges lists of the same name. ``match`` and ``any`` take strings, integers and
booleans; ``range`` takes numbers.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

__all__ = ["Field", "must", "should", "must_not", "combine"]

Condition = dict[str, Any]


class Field:
    """Conditions on metadata key ``key`` (dots reach into nested objects)."""

    def __init__(self, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("a field key must be a non-empty string")
        self.key = key

    def __repr__(self) -> str:
        return f"Field({self.key!r})"

    def eq(self, value: str | int | bool) -> Condition:
        """The value equals ``value`` (for an array: one element does)."""
        return {"key": self.key, "match": value}

    def ne(self, value: str | int | bool) -> Condition:
        """The value is not ``value``: a nested ``must_not`` group."""
        return {"must_not": [self.eq(value)]}

    def any(self, values: Iterable[str | int | bool]) -> Condition:
        """The value equals one of ``values``."""
        return {"key": self.key, "any": list(values)}

    def none_of(self, values: Iterable[str | int | bool]) -> Condition:
        return {"must_not": [self.any(values)]}

    def range(self, *, gt: float | None = None, gte: float | None = None,
              lt: float | None = None, lte: float | None = None) -> Condition:
        """The value is a number inside the given bounds."""
        bounds = {k: v for k, v in (("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte))
                  if v is not None}
        if not bounds:
            raise ValueError("a range needs at least one bound")
        return {"key": self.key, "range": bounds}

    def gt(self, v: float) -> Condition:
        return self.range(gt=v)

    def gte(self, v: float) -> Condition:
        return self.range(gte=v)

    def lt(self, v: float) -> Condition:
        return self.range(lt=v)

    def lte(self, v: float) -> Condition:
        return self.range(lte=v)

    def between(self, low: float, high: float) -> Condition:
        """``low <= value <= high``."""
        return self.range(gte=low, lte=high)


def _conditions(conds: tuple[Any, ...]) -> list[Condition]:
    # Accept must(a, b) and must([a, b]) alike.
    if len(conds) == 1 and isinstance(conds[0], (list, tuple)):
        conds = tuple(conds[0])
    for c in conds:
        if not isinstance(c, Mapping):
            raise TypeError(f"a condition must be a dict, got {type(c).__name__}")
    return [dict(c) for c in conds]


def must(*conditions: Any) -> Condition:
    """Every condition holds."""
    return {"must": _conditions(conditions)}


def should(*conditions: Any) -> Condition:
    """At least one condition holds."""
    return {"should": _conditions(conditions)}


def must_not(*conditions: Any) -> Condition:
    """No condition holds."""
    return {"must_not": _conditions(conditions)}


def combine(*groups: Mapping[str, Any]) -> Condition:
    """One group holding every list of ``groups`` (lists of the same name joined)."""
    out: dict[str, list[Any]] = {}
    for g in groups:
        for k, v in g.items():
            if k not in ("must", "should", "must_not"):
                raise ValueError(f"combine takes groups, not conditions (key {k!r})")
            out.setdefault(k, []).extend(v)
    return out
