//! Durable file primitives: atomic replace, directory fsync, temp-file cleanup.
