"""The model endpoints: ``embed`` (text-embeddings-inference shape), ``embeddings``
(OpenAI shape), ``rerank``, and their errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quiver_client import (BadRequestError, PayloadTooLargeError, Quiver, Rank,
                           UnprocessableError)

from conftest import DIM, EMBEDDER, RERANKER


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def test_embed_shapes_dimensions_and_task(q: Quiver) -> None:
    one = q.embed("hello there", model=EMBEDDER)
    assert len(one) == 1 and len(one[0]) == DIM and norm(one[0]) == pytest.approx(1, abs=1e-5)
    many = q.embed(["hello there", "general kenobi"])  # the only embedder installed
    assert len(many) == 2 and many[0] == pytest.approx(one[0], abs=1e-6)
    short = q.embed("hello there", dimensions=8)
    assert len(short[0]) == 8 and norm(short[0]) == pytest.approx(1, abs=1e-5)
    as_query = q.embed("hello there", task="find greetings")  # BERT models take no instruction
    assert len(as_query[0]) == DIM


def test_openai_shape_matches_embed(q: Quiver) -> None:
    texts = ["alpha", "beta", "gamma"]
    assert np.allclose(q.embeddings(texts, model=EMBEDDER), q.embed(texts), atol=1e-6)
    assert len(q.embeddings("alpha", dimensions=16)[0]) == 16


def test_rerank(q: Quiver) -> None:
    texts = ["heat transfer", "supersonic flow", "boundary layers"]
    ranks = q.rerank("heat", texts, model=RERANKER)
    assert all(isinstance(r, Rank) for r in ranks)
    assert sorted(r.index for r in ranks) == [0, 1, 2]
    assert [r.score for r in ranks] == sorted((r.score for r in ranks), reverse=True)
    assert all(0 <= r.score <= 1 and r.text is None for r in ranks)
    with_text = q.rerank("heat", texts, return_text=True, instruction="judge relevance")
    assert all(r.text == texts[r.index] for r in with_text)
    raw = q.rerank("heat", texts, raw_scores=True)
    probs = {r.index: r.score for r in ranks}
    for r in raw:  # raw scores are the logits of the probabilities
        p = probs[r.index]
        assert r.score == pytest.approx(math.log(p / (1 - p)), abs=1e-3)


def test_model_errors(q: Quiver) -> None:
    with pytest.raises(UnprocessableError) as e:
        q.embed("x", model="nobody/nothing")
    assert e.value.code == "unprocessable" and "nobody/nothing" in e.value.message
    with pytest.raises(UnprocessableError):
        q.rerank("q", ["a"], model="nobody/nothing")
    with pytest.raises(BadRequestError, match="dimensions must be in 1..=32"):
        q.embed("x", dimensions=33)
    with pytest.raises(BadRequestError, match="inputs is empty"):
        q.embed([])
    with pytest.raises(BadRequestError, match="task must be non-empty"):
        q.embed("x", task=" ")
    with pytest.raises(PayloadTooLargeError, match="batch limit"):
        q.embeddings(["x"] * 1025)
    with pytest.raises(TypeError):
        q.embed([1, 2])  # type: ignore[list-item]


def test_models_lists_the_installed_models(q: Quiver) -> None:
    by_name = {m.name: m for m in q.models()}
    assert by_name[EMBEDDER].kind == "embedding" and by_name[EMBEDDER].dim == DIM
    assert by_name[RERANKER].kind == "reranking"
    assert all(m.bytes > 0 for m in by_name.values())
