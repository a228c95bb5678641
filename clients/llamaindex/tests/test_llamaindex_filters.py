"""LlamaIndex metadata filters in Quiver's language: the translation itself, then, on a
real server, that every supported operator and condition selects exactly the nodes
LlamaIndex's own reference evaluator (``build_metadata_filter_fn``) selects."""

from __future__ import annotations

import uuid
from typing import Any, Iterator

import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn
from quiver_client import Quiver

from llama_index.vector_stores.quiver import (
    QuiverVectorStore,
    UnsupportedFilterError,
    to_quiver_filter,
)

Op = FilterOperator


def _f(key: str, value: Any, op: FilterOperator = Op.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


def test_translation() -> None:
    def one(key: str, value: Any, op: FilterOperator) -> dict:
        return to_quiver_filter(MetadataFilters(filters=[_f(key, value, op)]))["must"][0]

    assert one("c", "red", Op.EQ) == {"key": "c", "match": "red"}
    assert one("n", 2.0, Op.EQ) == {"key": "n", "match": 2}
    assert one("w", 0.5, Op.EQ) == {"key": "w", "range": {"gte": 0.5, "lte": 0.5}}
    assert one("c", "red", Op.NE) == {"must_not": [{"key": "c", "match": "red"}]}
    assert one("n", 3, Op.GT) == {"key": "n", "range": {"gt": 3}}
    assert one("n", 3, Op.LTE) == {"key": "n", "range": {"lte": 3}}
    assert one("c", ["a", "b"], Op.IN) == {"key": "c", "any": ["a", "b"]}
    assert one("c", ["a", "b"], Op.NIN) == {"must_not": [{"key": "c", "any": ["a", "b"]}]}
    assert one("t", "x", Op.CONTAINS) == {"key": "t", "match": "x"}
    assert one("t", ["x", "y"], Op.ALL) == {
        "must": [{"key": "t", "match": "x"}, {"key": "t", "match": "y"}]}
    nested = MetadataFilters(
        filters=[_f("a", 1), MetadataFilters(filters=[_f("b", 2), _f("c", 3)],
                                             condition=FilterCondition.NOT)],
        condition=FilterCondition.OR)
    assert to_quiver_filter(nested) == {"should": [
        {"key": "a", "match": 1},
        {"must_not": [{"key": "b", "match": 2}, {"key": "c", "match": 3}]},
    ]}


@pytest.mark.parametrize(
    ("flt", "why"),
    [
        (_f("c", "re", Op.TEXT_MATCH), "TEXT_MATCH"),
        (_f("c", "re", Op.TEXT_MATCH_INSENSITIVE), "TEXT_MATCH_INSENSITIVE"),
        (_f("c", None, Op.IS_EMPTY), "None"),
        (_f("c", "a", Op.GT), "needs a number"),
        (_f("c", "a", Op.IN), "list"),
    ],
)
def test_unsupported_filters_are_refused(flt: MetadataFilter, why: str) -> None:
    with pytest.raises(UnsupportedFilterError, match=why):
        to_quiver_filter(MetadataFilters(filters=[flt]))


METADATA = {
    "n0": {"color": "red", "size": 1, "weight": 0.5, "tags": ["a", "b"]},
    "n1": {"color": "blue", "size": 2, "weight": 1.5, "tags": ["b"]},
    "n2": {"color": "green", "size": 3, "weight": 2.0, "tags": ["c"]},
    "n3": {"color": "red", "size": 4},
    "n4": {"size": 5.5, "weight": 0.5, "tags": []},
}

FILTERS = [
    [_f("color", "red")],
    [_f("size", 2)],
    [_f("weight", 0.5)],
    [_f("weight", 2.0)],
    [_f("color", "red", Op.NE)],
    [_f("size", 2, Op.GT)],
    [_f("size", 2, Op.GTE)],
    [_f("size", 5, Op.GT)],
    [_f("weight", 1.5, Op.LT)],
    [_f("weight", 1.5, Op.LTE)],
    [_f("color", ["red", "green"], Op.IN)],
    [_f("color", ["red", "green"], Op.NIN)],
    [_f("size", [1, 3], Op.IN)],
    [_f("weight", [0.5, 2.0], Op.IN)],
    [_f("tags", "b", Op.CONTAINS)],
    [_f("tags", ["a", "c"], Op.ANY)],
    [_f("tags", ["a", "b"], Op.ALL)],
    [_f("missing", 1)],
    [_f("color", "red"), _f("size", 2, Op.GT)],
]


@pytest.fixture(scope="module")
def store(client: Quiver) -> Iterator[QuiverVectorStore]:
    # One collection for every case here: they only read.
    name = f"li-filters-{uuid.uuid4().hex[:8]}"
    s = QuiverVectorStore(name, client)
    s.add([TextNode(id_=i, text=f"node {i}", metadata=m, embedding=[1.0, float(k), 0.5])
           for k, (i, m) in enumerate(METADATA.items())])
    yield s
    client.delete_collection(name)


def _reference(filters: MetadataFilters) -> set[str]:
    keep = build_metadata_filter_fn(lambda i: METADATA[i], filters)
    return {i for i in METADATA if keep(i)}


@pytest.mark.parametrize("condition", [FilterCondition.AND, FilterCondition.OR,
                                       FilterCondition.NOT])
@pytest.mark.parametrize("flts", FILTERS, ids=lambda fs: " ".join(
    f"{f.key}{f.operator.value}{f.value}" for f in fs))
def test_server_agrees_with_llamaindex(store: QuiverVectorStore, flts: list,
                                       condition: FilterCondition) -> None:
    filters = MetadataFilters(filters=flts, condition=condition)
    want = _reference(filters)
    assert {n.node_id for n in store.get_nodes(filters=filters)} == want
    result = store.query(VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0],
                                          similarity_top_k=10, filters=filters))
    assert set(result.ids) == want
