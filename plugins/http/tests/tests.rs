//! The integration tests: one binary, one module per feature, against a
//! real HTTP server on loopback.

mod notify;
mod outbound;
mod server;
mod webhook;
