//! The integration tests: one binary, one module per feature, as in
//! ripgrep. Shared helpers live in `util`.

mod check;
mod console;
mod e2e;
mod engine;
mod eval;
// The fuzz targets' bodies, shared with fuzz/ (see fuzz/src/checks.rs).
#[path = "../fuzz/src/checks.rs"]
mod fuzz_checks;
mod fuzz_regressions;
mod http;
mod inbound;
mod mail_cli;
mod random_workflows;
mod reload;
mod rule_tests;
mod scenarios;
mod serve;
mod store;
mod util;
mod verify;
