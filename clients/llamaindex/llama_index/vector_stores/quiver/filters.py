"""LlamaIndex ``MetadataFilters`` translated into Quiver's filter language.

Quiver's filters (see the README's Filters) are groups of ``must`` / ``should`` /
``must_not`` conditions; a condition is ``match`` (equal to a string, integer or
boolean), ``any`` (equal to one of several) or ``range`` (numeric bounds), or a nested
group. A condition on an array field holds when it holds for one of its elements.

| LlamaIndex | Quiver |
| --- | --- |
| ``EQ`` | ``match``; a float with a fraction as a closed ``range`` |
| ``NE`` | a group ``must_not`` the ``EQ`` condition (a missing field counts as unequal) |
| ``GT``, ``GTE``, ``LT``, ``LTE`` | ``range`` (numbers only) |
| ``IN``, ``ANY`` | ``any`` |
| ``NIN`` | a group ``must_not`` the ``any`` condition |
| ``CONTAINS`` | ``match`` (the field is an array holding the value) |
| ``ALL`` | a group ``must`` one ``match`` per value |
| condition ``AND`` / ``OR`` / ``NOT`` | ``must`` / ``should`` / ``must_not`` (NOT: none holds) |

``TEXT_MATCH``, ``TEXT_MATCH_INSENSITIVE`` and ``IS_EMPTY`` have no Quiver equivalent and
raise :class:`UnsupportedFilterError`, as do values of a type the operator cannot take.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

__all__ = ["UnsupportedFilterError", "to_quiver_filter"]


class UnsupportedFilterError(ValueError):
    """A LlamaIndex filter that Quiver's filter language cannot express."""


_RANGE = {
    FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt",
    FilterOperator.LTE: "lte",
}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _equals(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, float):
        if value.is_integer():
            # Quiver matches integers against floats of the same value.
            return {"key": key, "match": int(value)}
        # `match` takes no fractions; a closed range is equality for them.
        return {"key": key, "range": {"gte": value, "lte": value}}
    if isinstance(value, (str, int)):
        return {"key": key, "match": value}
    raise UnsupportedFilterError(
        f"filter on {key!r}: cannot compare with {value!r} ({type(value).__name__})"
    )


def _one_of(key: str, values: Any) -> dict[str, Any]:
    if not isinstance(values, list):
        raise UnsupportedFilterError(f"filter on {key!r}: expected a list of values")
    plain = [v for v in values if not (isinstance(v, float) and not v.is_integer())]
    fractions = [v for v in values if v not in plain]
    if not fractions:
        return {"key": key, "any": [_equals(key, v)["match"] for v in plain]}
    # Fractions cannot go into `any`: one equality per value, any of which may hold.
    return {"should": [_equals(key, v) for v in values]}


def _condition(f: MetadataFilter) -> dict[str, Any]:
    key, op, value = f.key, f.operator, f.value
    if value is None:
        raise UnsupportedFilterError(f"filter on {key!r}: a value of None is not supported")
    if op == FilterOperator.EQ or op == FilterOperator.CONTAINS:
        return _equals(key, value)
    if op == FilterOperator.NE:
        return {"must_not": [_equals(key, value)]}
    if op in _RANGE:
        if not _is_number(value):
            raise UnsupportedFilterError(
                f"filter on {key!r}: {op.name} needs a number, got {value!r}"
            )
        return {"key": key, "range": {_RANGE[op]: value}}
    if op == FilterOperator.IN or op == FilterOperator.ANY:
        return _one_of(key, value)
    if op == FilterOperator.NIN:
        return {"must_not": [_one_of(key, value)]}
    if op == FilterOperator.ALL:
        if not isinstance(value, list):
            raise UnsupportedFilterError(f"filter on {key!r}: ALL needs a list of values")
        return {"must": [_equals(key, v) for v in value]}
    raise UnsupportedFilterError(
        f"filter on {key!r}: operator {op.name} ({op.value!r}) is not supported by Quiver"
    )


def to_quiver_filter(filters: MetadataFilters) -> dict[str, Any]:
    """The Quiver filter for ``filters`` (nested ``MetadataFilters`` included)."""
    conditions = [
        to_quiver_filter(f) if isinstance(f, MetadataFilters) else _condition(f)
        for f in filters.filters
    ]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return {"must": conditions}
    if condition == FilterCondition.OR:
        return {"should": conditions}
    if condition == FilterCondition.NOT:
        return {"must_not": conditions}
    raise UnsupportedFilterError(f"filter condition {condition!r} is not supported")
