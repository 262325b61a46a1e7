//! Conformance cases for [`Store`](crate::Store).
