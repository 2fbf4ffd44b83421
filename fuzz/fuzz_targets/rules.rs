#![no_main]
//! `rules`: see `casework_fuzz::rules` (fuzz/src/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| casework_fuzz::rules(data));
