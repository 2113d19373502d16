//! Cross-crate and real-peer interop tests.
