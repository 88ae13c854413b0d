//! Finding the programs the platform runs (bubblewrap, the embedded registry) the way a shell would.

use std::path::PathBuf;

/// `name` in a directory of this process's `PATH`, if it is there as a file.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
