//! The integration tests: one binary, one module per feature, as in
//! ripgrep. Shared helpers live in `util`.

mod util;

mod check;
