//! Quiver's database and collections.
