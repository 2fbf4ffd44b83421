#![no_main]
//! `config`: see `casework_fuzz::config` (fuzz/src/checks.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| casework_fuzz::config(data));
