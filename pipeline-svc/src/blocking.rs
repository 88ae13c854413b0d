//! CPU-heavy request work (parsing, validating and describing IR) on the blocking pool, given up with its call.
//!
//! tonic drops a handler's future when the call's deadline passes or its client resets the stream; work on the
//! blocking pool cannot be dropped, so it is told through a flag it checks between its steps, and each step is
//! bounded by the IR's limits (bytes, depth, nodes), so nothing keeps burning long after the caller left.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use crate::error::Error;

/// Set once the call that asked for the work is gone.
#[derive(Debug, Clone, Default)]
pub struct Abandoned(Arc<AtomicBool>);

impl Abandoned {
    /// Whether the caller is gone, so the rest of the work is wasted.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Sets the flag when the handler's future is dropped, whether it finished or not.
struct SetOnDrop(Abandoned);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `work` on the blocking pool and waits for it; `work` should return early once its flag is set, with
/// [`Error::Abandoned`] when it has nothing to answer.
pub async fn run<T: Send + 'static>(work: impl FnOnce(&Abandoned) -> T + Send + 'static) -> Result<T, Error> {
    let abandoned = Abandoned::default();
    let _guard = SetOnDrop(abandoned.clone());
    Ok(tokio::task::spawn_blocking(move || work(&abandoned)).await?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn dropping_the_call_tells_the_work_to_stop() {
        let (started, on_start) = tokio::sync::oneshot::channel();
        let (stopped, on_stop) = std::sync::mpsc::channel();
        let call = tokio::spawn(run(move |abandoned| {
            let _ = started.send(());
            while !abandoned.is_set() {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = stopped.send(());
        }));
        on_start.await.expect("the work started");
        call.abort();
        tokio::task::spawn_blocking(move || on_stop.recv().expect("the work saw the flag and returned"))
            .await
            .expect("joined");
    }

    #[tokio::test]
    async fn finished_work_answers() {
        assert!(!run(|abandoned| abandoned.is_set()).await.expect("ran"), "the call is still there");
    }
}
