//! Conformance cases for [`HostDriver`](crate::HostDriver).
