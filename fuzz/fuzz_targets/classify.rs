#![no_main]
//! `classify`: see `casework_fuzz::classify` (fuzz/src/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| casework_fuzz::classify(data));
