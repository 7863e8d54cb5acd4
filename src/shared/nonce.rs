//! The newest DPoP nonce of each upstream origin, shared by every replica.
