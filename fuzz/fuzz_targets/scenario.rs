#![no_main]
//! `scenario`: see `casework_fuzz::scenario` (fuzz/src/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| casework_fuzz::scenario(data));
