//! One quota for all replicas.
