//! What the emulator verifies in a client's request, written apart from any client's signing
//! code: client assertions, DPoP proofs (and the nonces they must carry), client
//! authentication at the FAPI and CIBA endpoints, and the JOSE helpers they share.

pub(crate) mod assertion;
pub(crate) mod client_auth;
pub(crate) mod dpop;
pub(crate) mod jose;
pub(crate) mod nonce;
