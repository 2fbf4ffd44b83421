//! The fuzz targets of casework (issue #7); see `checks.rs` and the
//! "Fuzzing" section of the README. Run them with `scripts/fuzz`.

mod checks;

pub use checks::*;
