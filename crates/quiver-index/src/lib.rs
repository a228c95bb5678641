//! quiver-index
