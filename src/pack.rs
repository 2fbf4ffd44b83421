//! The default pack (`rules/` in the repository), embedded in the binary.
//!
//! Its files keep the paths they have in the repository
//! (`rules/casework.yaml`, `rules/route.rhai`), so diagnostics about the
//! embedded pack read the same as about the files on disk. Add any new
//! file of `rules/` that the pack loads to [`FILES`].

use casework_core::config::{CheckReport, LoadedConfig, MemoryReader};
use casework_core::diagnostic::Diagnostics;

/// The pack's root configuration file.
pub const ROOT: &str = "rules/casework.yaml";

/// Every file of the pack, by its repository path.
pub const FILES: &[(&str, &str)] = &[
    (
        "rules/casework.yaml",
        include_str!("../rules/casework.yaml"),
    ),
    (
        "rules/workflow.yaml",
        include_str!("../rules/workflow.yaml"),
    ),
    (
        "rules/directory.yaml",
        include_str!("../rules/directory.yaml"),
    ),
    (
        "rules/calendars.yaml",
        include_str!("../rules/calendars.yaml"),
    ),
    ("rules/plugins.yaml", include_str!("../rules/plugins.yaml")),
    ("rules/route.rhai", include_str!("../rules/route.rhai")),
    ("rules/urgency.rhai", include_str!("../rules/urgency.rhai")),
    ("rules/promise.rhai", include_str!("../rules/promise.rhai")),
    (
        "rules/examples/topic.en.yaml",
        include_str!("../rules/examples/topic.en.yaml"),
    ),
    (
        "rules/examples/topic.ja.yaml",
        include_str!("../rules/examples/topic.ja.yaml"),
    ),
    (
        "rules/examples/tone.en.yaml",
        include_str!("../rules/examples/tone.en.yaml"),
    ),
    (
        "rules/examples/tone.ja.yaml",
        include_str!("../rules/examples/tone.ja.yaml"),
    ),
    (
        "rules/examples/topic.en.more.yaml",
        include_str!("../rules/examples/topic.en.more.yaml"),
    ),
    (
        "rules/examples/topic.ja.more.yaml",
        include_str!("../rules/examples/topic.ja.more.yaml"),
    ),
    (
        "rules/examples/topic.chat.yaml",
        include_str!("../rules/examples/topic.chat.yaml"),
    ),
    (
        "rules/examples/tone.en.more.yaml",
        include_str!("../rules/examples/tone.en.more.yaml"),
    ),
    (
        "rules/examples/tone.ja.more.yaml",
        include_str!("../rules/examples/tone.ja.more.yaml"),
    ),
];

/// A reader serving the embedded files.
pub fn reader() -> MemoryReader {
    MemoryReader::new(FILES.iter().copied())
}

/// Load and check the embedded pack.
pub fn load() -> Result<LoadedConfig, Diagnostics> {
    check().into_result()
}

/// Check the embedded pack with the built-in plugin kinds, keeping every
/// diagnostic and file read.
pub fn check() -> CheckReport {
    crate::check_config(None, &crate::plugins::Registry::builtin())
}
