//! Keeps a component's replicas (a deployment's predictor, say) running: each replica slot starts its replica,
//! waits for its readiness path, and when the replica exits starts it again after a backoff that doubles with each
//! failure in a row (1 s up to 60 s; a replica that stayed up for a minute starts the count again). What it sees is
//! published as one condition in KServe's shape (`PredictorReady`: `True` once a replica is ready; `False` with
//! the reason otherwise: `Starting`, `NotReady`, `Exited`, `CrashLoopBackOff`, `CannotStart`), and calls go to the
//! ready replicas in turn.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use tokio::{net::UnixStream, sync::watch};

use super::replica::{Readiness, Replica, ReplicaSpec};
use crate::executor::{process::Exit, sandbox::Confinement};

/// Failures in a row after which the condition says `CrashLoopBackOff`, as Kubernetes does.
const CRASH_LOOP_AFTER: u32 = 3;

/// How a component's replicas are run and judged.
#[derive(Debug, Clone)]
pub struct Component {
    /// The condition's type: `PredictorReady` or `TransformerReady`.
    pub condition: &'static str,
    /// The replica every slot runs (its `id`, `dir` and `log` get the slot's number appended).
    pub replica: ReplicaSpec,
    /// How many replicas.
    pub replicas: u32,
    /// The readiness path, `/v2/health/ready` for servers of the Open Inference Protocol.
    pub ready_path: String,
    /// How long a replica may take to become ready before it is counted a failure and started again.
    pub startup_timeout: Duration,
    /// How often readiness is probed while starting.
    pub probe_every: Duration,
    /// The first backoff after a failure; it doubles up to `max_backoff`.
    pub backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
}

/// A condition as KServe reports one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `PredictorReady`, `TransformerReady`, …
    pub kind: &'static str,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// Why not, in one word (empty when it holds).
    pub reason: String,
    /// Why not, for people.
    pub message: String,
    /// When `status` last changed.
    pub transition_time: SystemTime,
}

/// A condition's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    /// It holds.
    True,
    /// It does not.
    False,
    /// Not known yet.
    Unknown,
}

/// What a component's replicas are doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentStatus {
    /// Replicas ready now.
    pub ready: u32,
    /// Replicas wanted.
    pub wanted: u32,
    /// The component's condition.
    pub condition: Condition,
    /// Times replicas were started again after exiting or failing to start.
    pub restarts: u32,
}

/// A running component; [`Supervisor::stop`] stops every replica (dropping it does too, without waiting).
#[derive(Debug)]
pub struct Supervisor {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    slots: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// The socket of each slot's replica while it is ready.
    ready: Mutex<Vec<Option<std::path::PathBuf>>>,
    next: AtomicUsize,
    status: watch::Sender<ComponentStatus>,
    /// What each slot last saw, for the condition: ready, or why not.
    seen: Mutex<Vec<SlotState>>,
    restarts: AtomicUsize,
}

#[derive(Debug, Clone)]
enum SlotState {
    Ready,
    NotReady { reason: &'static str, message: String },
}

impl Supervisor {
    /// Starts `component`'s replicas under `confinement`.
    pub fn start(confinement: Arc<Confinement>, component: Component) -> Self {
        let wanted = component.replicas.max(1);
        let condition = Condition {
            kind: component.condition,
            status: ConditionStatus::Unknown,
            reason: "Starting".to_owned(),
            message: "the replicas are starting".to_owned(),
            transition_time: SystemTime::now(),
        };
        let (status, _) = watch::channel(ComponentStatus { ready: 0, wanted, condition, restarts: 0 });
        let starting = SlotState::NotReady { reason: "Starting", message: "starting".to_owned() };
        let shared = Arc::new(Shared {
            ready: Mutex::new(vec![None; wanted as usize]),
            next: AtomicUsize::new(0),
            status,
            seen: Mutex::new(vec![starting; wanted as usize]),
            restarts: AtomicUsize::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let slots = (0..wanted as usize)
            .map(|slot| {
                let (shared, confinement, component, stopped) =
                    (shared.clone(), confinement.clone(), component.clone(), stopped.clone());
                tokio::spawn(async move { run_slot(slot, &shared, &confinement, &component, stopped).await })
            })
            .collect();
        Self { shared, stop, slots }
    }

    /// Follows the component's status.
    pub fn status(&self) -> watch::Receiver<ComponentStatus> {
        self.shared.status.subscribe()
    }

    /// A connection to a ready replica, each call the next one in turn; `None` when none is ready.
    pub async fn connect(&self) -> Option<UnixStream> {
        let sockets: Vec<std::path::PathBuf> = self.shared.ready.lock().ok()?.iter().flatten().cloned().collect();
        if sockets.is_empty() {
            return None;
        }
        let first = self.shared.next.fetch_add(1, Ordering::Relaxed);
        for offset in 0..sockets.len() {
            if let Ok(stream) = UnixStream::connect(&sockets[(first + offset) % sockets.len()]).await {
                return Some(stream);
            }
        }
        None
    }

    /// Stops every replica and waits for them to be gone.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for slot in self.slots.drain(..) {
            let _ = slot.await;
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// One replica slot, until stopped.
async fn run_slot(
    slot: usize,
    shared: &Shared,
    confinement: &Arc<Confinement>,
    component: &Component,
    mut stopped: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    loop {
        if *stopped.borrow() {
            return;
        }
        let mut spec = component.replica.clone();
        spec.id = format!("{}-{slot}", spec.id);
        spec.dir = spec.dir.join(slot.to_string());
        spec.log = spec.log.with_file_name(format!("{}.{slot}.log", log_stem(&spec.log)));
        let started_at = tokio::time::Instant::now();
        let (reason, message) = match Replica::start(confinement, spec).await {
            Err(why) => ("CannotStart", why),
            Ok(mut replica) => {
                let readiness = tokio::select! {
                    readiness = replica.until_ready(&component.ready_path, component.probe_every, component.startup_timeout) => readiness,
                    _ = stopped.changed() => { replica.stop().await; return; }
                };
                match readiness {
                    Readiness::Exited(exit) => ("Exited", exited(exit, "before it was ready")),
                    Readiness::TimedOut => {
                        replica.stop().await;
                        let seconds = component.startup_timeout.as_secs_f64();
                        ("NotReady", format!("{} did not answer 2xx within {seconds:.0} s", component.ready_path))
                    }
                    Readiness::Ready => {
                        let socket = replica.socket().to_path_buf();
                        set(shared, slot, SlotState::Ready, Some(socket));
                        let group = replica.group();
                        let ended = replica.wait();
                        tokio::pin!(ended);
                        let exit = tokio::select! {
                            exit = &mut ended => exit,
                            _ = stopped.changed() => {
                                crate::executor::process::kill_group(group);
                                let _ = ended.await;
                                set(shared, slot, SlotState::NotReady { reason: "Stopped", message: "stopped".into() }, None);
                                return;
                            }
                        };
                        ("Exited", exited(exit, "while serving"))
                    }
                }
            }
        };
        // A replica that served for a minute starts the count of failures in a row again.
        if started_at.elapsed() >= Duration::from_secs(60) {
            failures = 0;
        }
        failures += 1;
        shared.restarts.fetch_add(1, Ordering::Relaxed);
        let reason = if failures >= CRASH_LOOP_AFTER { "CrashLoopBackOff" } else { reason };
        set(shared, slot, SlotState::NotReady { reason, message }, None);
        let backoff = component.backoff.saturating_mul(1 << (failures - 1).min(16)).min(component.max_backoff);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stopped.changed() => return,
        }
    }
}

fn exited(exit: Exit, when: &str) -> String {
    match exit {
        Exit::Code(code) => format!("the server exited {when} with status {code}"),
        Exit::NotStarted => format!("the server could not be waited for {when}"),
    }
}

fn log_stem(log: &std::path::Path) -> String {
    log.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "replica".to_owned())
}

/// Records what slot `slot` sees and publishes the component's status when it changed.
fn set(shared: &Shared, slot: usize, state: SlotState, socket: Option<std::path::PathBuf>) {
    if let Ok(mut ready) = shared.ready.lock() {
        ready[slot] = socket;
    }
    let Ok(mut seen) = shared.seen.lock() else { return };
    seen[slot] = state;
    let ready = seen.iter().filter(|s| matches!(s, SlotState::Ready)).count() as u32;
    let restarts = u32::try_from(shared.restarts.load(Ordering::Relaxed)).unwrap_or(u32::MAX);
    shared.status.send_modify(|status| {
        let (value, reason, message) = if ready > 0 {
            (ConditionStatus::True, String::new(), String::new())
        } else {
            let why = seen.iter().find_map(|s| match s {
                SlotState::NotReady { reason, message } => Some((*reason, message.clone())),
                SlotState::Ready => None,
            });
            let (reason, message) = why.unwrap_or(("NotReady", String::new()));
            (ConditionStatus::False, reason.to_owned(), message)
        };
        if status.condition.status != value {
            status.condition.transition_time = SystemTime::now();
        }
        status.condition.status = value;
        status.condition.reason = reason;
        status.condition.message = message;
        status.ready = ready;
        status.restarts = restarts;
    });
}

#[cfg(test)]
mod tests;
