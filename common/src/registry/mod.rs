//! Docker registry token auth, as CNCF distribution (2.8 and 3.x) verifies it offline: short-lived ES256 JWTs
//! whose `x5c` header carries a certificate the registry trusts (`keys`), granting actions on repositories
//! (`scope`). The gateway mints them for users at its token endpoint; services mint them for their own registry
//! calls.

pub mod keys;
pub mod scope;
