"""LangChain integration for Quiver: a vector store over a Quiver collection
(:class:`QuiverVectorStore`) and embeddings computed by a Quiver server
(:class:`QuiverEmbeddings`)."""

from .embeddings import QuiverEmbeddings
from .vectorstores import QuiverVectorStore, SearchMode

__version__ = "0.1.0"

__all__ = ["QuiverVectorStore", "QuiverEmbeddings", "SearchMode", "__version__"]
