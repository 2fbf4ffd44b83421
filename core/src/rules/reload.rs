//! Hot reload: swap in a new rule set atomically, or keep the old one.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::RuleSet;
use crate::diagnostic::{Diagnostics, SourceFile};

/// The rule set in force. Readers take a snapshot with
/// [`current`](Rules::current) and keep using it for the whole event even
/// if a reload happens meanwhile, so one event is never decided by two
/// versions.
#[derive(Debug)]
pub struct Rules {
    current: ArcSwap<RuleSet>,
}

impl Rules {
    pub fn new(set: RuleSet) -> Rules {
        Rules {
            current: ArcSwap::from_pointee(set),
        }
    }

    /// The rule set in force now.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.load_full()
    }

    /// Recompile with `files` (the whole list, as the configuration names
    /// them) and the current settings, directory, guards and calendars. A
    /// set that does not compile is refused with its diagnostics and the
    /// old one keeps running.
    pub fn reload(&self, files: &[SourceFile]) -> Result<(), Diagnostics> {
        let old = self.current();
        let i = &old.inputs;
        let set = RuleSet::compile(files, &i.def, &i.guards, &i.directory, &i.calendars)?;
        // Classifiers are trained with the pack; a reload of the rule
        // files keeps them.
        let set = match old.classifiers() {
            Some(c) => set.with_classifiers(c.clone()),
            None => set,
        };
        self.current.store(Arc::new(set));
        Ok(())
    }

    /// Replace one file (matched by path; added when new) and reload.
    pub fn reload_file(&self, file: SourceFile) -> Result<(), Diagnostics> {
        let mut files = self.current().inputs.files.clone();
        match files.iter_mut().find(|f| f.path == file.path) {
            Some(slot) => *slot = file,
            None => files.push(file),
        }
        self.reload(&files)
    }

    /// Swap in a rule set compiled elsewhere (a whole new configuration).
    pub fn replace(&self, set: RuleSet) {
        self.current.store(Arc::new(set));
    }
}
