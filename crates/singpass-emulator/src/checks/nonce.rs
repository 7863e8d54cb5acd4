//! The FAPI server's DPoP nonces (RFC 9449 sections 8 and 9): whether proofs must carry one,
//! the current nonce, and the previous one, still accepted after a rotation so that requests
//! already under way when the nonce changed do not fail.

use std::sync::Mutex;

use crate::errors::Rejection;
use crate::signing::random_id;
use crate::state::lock;

/// Shared by PAR, token and userinfo (one server, one nonce).
#[derive(Debug)]
pub(crate) struct DpopNonces {
    inner: Mutex<NonceState>,
}

#[derive(Debug)]
struct NonceState {
    required: bool,
    current: String,
    /// The nonce before the latest rotation; accepted until the next one.
    previous: Option<String>,
}

impl Default for DpopNonces {
    fn default() -> Self {
        DpopNonces {
            inner: Mutex::new(NonceState {
                required: false,
                current: random_id(),
                previous: None,
            }),
        }
    }
}

impl DpopNonces {
    pub(crate) fn require(&self, on: bool) {
        lock(&self.inner).required = on;
    }

    /// A new current nonce; the old one becomes the previous (and the one before is
    /// forgotten).
    pub(crate) fn rotate(&self) {
        let mut nonces = lock(&self.inner);
        let fresh = random_id();
        let old = std::mem::replace(&mut nonces.current, fresh);
        nonces.previous = Some(old);
    }

    /// The nonce every FAPI answer hands out, while nonces are required.
    pub(crate) fn to_hand_out(&self) -> Option<String> {
        let nonces = lock(&self.inner);
        nonces.required.then(|| nonces.current.clone())
    }

    /// Checks a verified proof's `nonce` claim: while nonces are required it must be the
    /// current or the previous one, else `use_dpop_nonce`. While they are not, any `nonce`
    /// is ignored (a client may still hold one from earlier).
    pub(crate) fn check(&self, claim: Option<&serde_json::Value>) -> Result<(), Rejection> {
        let nonces = lock(&self.inner);
        if !nonces.required {
            return Ok(());
        }
        let accepted = claim
            .and_then(serde_json::Value::as_str)
            .is_some_and(|nonce| {
                nonce == nonces.current || nonces.previous.as_deref() == Some(nonce)
            });
        if accepted {
            Ok(())
        } else {
            Err(Rejection::use_dpop_nonce())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn current_and_previous_nonces_are_accepted_only_while_required() {
        let nonces = DpopNonces::default();
        assert_eq!(nonces.check(None), Ok(()));
        assert_eq!(nonces.to_hand_out(), None);
        nonces.require(true);
        let first = nonces.to_hand_out().expect("a nonce");
        assert!(nonces.check(None).is_err());
        assert!(nonces.check(Some(&Value::from("other"))).is_err());
        assert!(nonces.check(Some(&Value::from(7))).is_err());
        assert_eq!(nonces.check(Some(&Value::from(first.as_str()))), Ok(()));

        nonces.rotate();
        let second = nonces.to_hand_out().expect("a nonce");
        assert_ne!(first, second);
        assert_eq!(nonces.check(Some(&Value::from(first.as_str()))), Ok(()));
        nonces.rotate();
        assert!(nonces.check(Some(&Value::from(first.as_str()))).is_err());
        assert_eq!(nonces.check(Some(&Value::from(second.as_str()))), Ok(()));
        nonces.require(false);
        assert_eq!(nonces.check(None), Ok(()));
    }
}
