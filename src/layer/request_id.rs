//! Request ids for requests that come without an `x-request-id`: a UUID (version 8, RFC 9562)
//! from a random per-process prefix and a counter, made without a system call or a lock.
//! tower-http's `MakeRequestUuid` asks the kernel for 16 random bytes for every request
//! (`getrandom`), which was the one system call per request that a bare hyper proxy does not
//! make. Ids stay unique: the counter never repeats within a process, and the 60 random bits
//! of the prefix tell processes (replicas, restarts) apart.

use http::{HeaderValue, Request};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use tower_http::request_id::{MakeRequestId, RequestId};

/// Makes the id of each request that has none.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MakeRequestIds;

/// The random half of every id this process makes.
static PREFIX: LazyLock<u64> = LazyLock::new(rand::random);
/// How many ids this process made.
static NEXT: AtomicU64 = AtomicU64::new(0);

impl MakeRequestId for MakeRequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Some(RequestId::new(id_value(*PREFIX, n)))
    }
}

/// The UUID of the `n`th id of the process with `prefix`: the prefix in the first 64 bits, the
/// counter in the last 64 (less the version and variant bits `new_v8` sets).
fn id_value(prefix: u64, n: u64) -> HeaderValue {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&prefix.to_be_bytes());
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v8(bytes)
        .hyphenated()
        .encode_lower(&mut text);
    // The text is the value's own buffer, shared by reference count: tower-http clones the
    // value into the request's extensions and the answer, and a copied `Bytes` would be moved
    // to a shared buffer (one more allocation) at its first clone.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
        .expect("a UUID is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_8_uuids_that_differ_per_request_and_per_process() {
        let mut make = MakeRequestIds;
        let req = Request::new(());
        let a = make.make_request_id(&req).unwrap();
        let b = make.make_request_id(&req).unwrap();
        let (a, b) = (
            a.header_value().to_str().unwrap(),
            b.header_value().to_str().unwrap(),
        );
        assert_ne!(a, b);
        for id in [a, b] {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 8, "{id}");
            assert_eq!(id.len(), 36);
        }
        // The counter's low bits are kept: ids n and n+1 of one process differ, and so do the
        // same n of two processes.
        assert_ne!(id_value(1, 7), id_value(1, 8));
        assert_ne!(id_value(1, 7), id_value(2, 7));
    }
}
