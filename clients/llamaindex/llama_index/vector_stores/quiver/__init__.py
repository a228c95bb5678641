"""LlamaIndex integration for Quiver: :class:`QuiverVectorStore`, a vector store over a
Quiver collection, and the translation of LlamaIndex metadata filters into Quiver's."""

from llama_index.vector_stores.quiver.base import QuiverVectorStore
from llama_index.vector_stores.quiver.filters import UnsupportedFilterError, to_quiver_filter

__all__ = ["QuiverVectorStore", "UnsupportedFilterError", "to_quiver_filter"]
