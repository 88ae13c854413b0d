//! Telling a task stopped by one of its limits from one that failed on its own.

use std::{
    io::{Read, Seek, SeekFrom},
    path::Path,
};

use super::TaskLimits;

/// How much of the end of a log is searched for an allocation failure.
const TAIL_BYTES: u64 = 64 * 1024;

/// What allocators and runtimes print when an allocation is refused.
const OUT_OF_MEMORY: [&str; 5] =
    ["MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory", "memory allocation of"];

/// The reason and message for a task that exited with `code` because it reached one of `limits`, judged by the
/// signal the kernel sends (CPU time, file size) or by what the log's tail says of a refused allocation; `None`
/// when nothing points to a limit. Reads the log: call it off the async workers.
pub fn exceeded(code: i32, log: &Path, limits: &TaskLimits) -> Option<(&'static str, String)> {
    const SIGXCPU: i32 = 24;
    const SIGXFSZ: i32 = 25;
    match code - 128 {
        SIGXCPU => {
            return Some(("CPU_TIME_LIMIT", format!("the task used its CPU time limit of {} s", limits.cpu_seconds)));
        }
        SIGXFSZ => {
            return Some((
                "FILE_SIZE_LIMIT",
                format!("the task wrote a file over its limit of {} bytes", limits.file_bytes),
            ));
        }
        _ => {}
    }
    if code == 0 || limits.memory_bytes == 0 {
        return None;
    }
    let tail = tail_of(log)?;
    OUT_OF_MEMORY
        .iter()
        .any(|marker| tail.contains(marker))
        .then(|| ("MEMORY_LIMIT", format!("the task exceeded its memory limit of {} MiB", limits.memory_bytes >> 20)))
}

fn tail_of(log: &Path) -> Option<String> {
    let mut file = std::fs::File::open(log).ok()?;
    let length = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(TAIL_BYTES))).ok()?;
    let mut tail = Vec::new();
    file.take(TAIL_BYTES).read_to_end(&mut tail).ok()?;
    Some(String::from_utf8_lossy(&tail).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_and_allocation_failures_name_their_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        std::fs::write(&log, "Traceback (most recent call last):\nMemoryError\n").expect("log");
        let limits = TaskLimits::default();
        assert_eq!(exceeded(1, &log, &limits).map(|r| r.0), Some("MEMORY_LIMIT"));
        assert_eq!(exceeded(152, &log, &limits).map(|r| r.0), Some("CPU_TIME_LIMIT"));
        assert_eq!(exceeded(153, &log, &limits).map(|r| r.0), Some("FILE_SIZE_LIMIT"));
        std::fs::write(&log, "ValueError: bad input\n").expect("log");
        assert_eq!(exceeded(1, &log, &limits), None);
    }
}
