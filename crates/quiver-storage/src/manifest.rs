//! The collection manifest: live segments and the checkpoint LSN.
