//! Immutable, memory-mapped segments.
