//! The integration tests: one binary, one module per feature, as in
//! ripgrep. Shared helpers live in `util`.

mod engine;
mod scenarios;
mod store;
mod util;

mod check;
