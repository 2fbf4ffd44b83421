//! The fuzz targets' inputs, replayed on stable: every seed
//! (`fuzz/seeds/<target>/`) and every input that once crashed a target
//! (`fuzz/regressions/<target>/`, minimised with `cargo fuzz tmin`) goes
//! through the same function the fuzz target runs (`fuzz/src/checks.rs`,
//! compiled into this binary), so a fixed crash stays fixed in CI without
//! nightly or libFuzzer. See the "Fuzzing" section of the README.

use std::path::{Path, PathBuf};

use crate::fuzz_checks::{self, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted (none if it is missing).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Run every input of `fuzz/<kind>/` through its target; the inputs that
/// panicked, each with its path.
fn replay(kind: &str) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut failed = Vec::new();
    for (name, run) in TARGETS {
        for path in inputs(kind, name) {
            let data = std::fs::read(&path).expect("a readable fuzz input");
            count += 1;
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    (count, failed)
}

#[test]
fn fuzz_regressions_no_longer_crash() {
    let (_, failed) = replay("regressions");
    assert!(
        failed.is_empty(),
        "saved fuzz findings crash again: {failed:#?}"
    );
}

#[test]
fn fuzz_seeds_do_not_crash() {
    let (count, failed) = replay("seeds");
    assert!(count > 0, "no seeds found under {}", fuzz_dir().display());
    assert!(failed.is_empty(), "fuzz seeds crash: {failed:#?}");
}

#[test]
fn every_fuzz_target_has_seeds_and_every_input_directory_a_target() {
    for (name, _) in TARGETS {
        assert!(
            !inputs("seeds", name).is_empty(),
            "fuzz target `{name}` has no seeds in fuzz/seeds/{name}/"
        );
    }
    for kind in ["seeds", "regressions"] {
        let Ok(dirs) = std::fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for dir in dirs.filter_map(Result::ok) {
            let name = dir.file_name().to_string_lossy().into_owned();
            assert!(
                fuzz_checks::target(&name).is_some(),
                "fuzz/{kind}/{name}/ names no fuzz target; the targets are {:?}",
                TARGETS.iter().map(|(n, _)| *n).collect::<Vec<_>>()
            );
        }
    }
}
