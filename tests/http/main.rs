//! The HTTP layer: tower service semantics, axum routers, a real hyper server, and the key and
//! tier extractors under arbitrary headers.

#[path = "../support/mod.rs"]
mod support;

mod http_axum;
mod http_e2e;
mod http_headers_fuzz;
mod http_integration;
mod http_service;
mod http_shares;
