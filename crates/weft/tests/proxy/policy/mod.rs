//! Policy end to end: AuthorizationPolicy (HTTP, TCP, CUSTOM) and
//! RequestAuthentication (JWT), through whole meshes under `weft up`.

mod authz;
mod jwt;
