//! Route handlers, one module per resource.

pub mod collections;
pub mod documents;
pub mod health;
pub mod models;
pub mod query;
pub mod snapshots;
