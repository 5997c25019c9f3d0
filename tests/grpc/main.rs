//! gRPC: a real tonic server (tonic-health's ready-made service, or small hand-written services,
//! so no `protoc`) behind the layer and a real tonic client on 127.0.0.1; the trailers path of
//! the layer in process on paused time; the outbound coordinator on a tonic `Channel`; and
//! arbitrary metadata bytes through the gRPC extractors and classifier.

#[path = "../support/mod.rs"]
mod support;

mod client;
mod fuzz;
mod server;
mod stub;
mod trailers;
