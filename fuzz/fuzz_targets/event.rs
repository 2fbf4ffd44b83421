#![no_main]
//! `event`: see `casework_fuzz::event` (fuzz/src/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| casework_fuzz::event(data));
