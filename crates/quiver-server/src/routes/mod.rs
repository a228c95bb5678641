//! Route handlers, one module per resource.

pub mod collections;
pub mod console;
pub mod documents;
pub mod health;
pub mod installed;
pub mod models;
pub mod query;
pub mod snapshots;
