#![no_main]
//! `email`: see `casework_fuzz::email` (fuzz/src/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| casework_fuzz::email(data));
