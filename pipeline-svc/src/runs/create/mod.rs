//! CreateRun's rule: a checked request against the pipeline version it names, as the caller may read it, then
//! stored and launched. Each step refuses with the first [`Error`] it meets, in this order: the backend, the
//! pipeline version, the run's size, parameters, input bindings, output destinations, the creator's active runs.

mod inputs;
mod outputs;
mod parameters;
mod pipeline;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use highwind_common::{principal::Principal, validation::Violations};
use highwind_proto::pipeline::v1 as pb;
use uuid::Uuid;

use crate::{
    assets::{AssetFiles, PipelineIr, PipelineSource, ReadError},
    error::{Error, KfpRefusal},
    executor::Engine,
    runs::entities::{Backend, Binding, Destination, ImageMode, Run, State, now},
    store::RunRepository,
};

/// Longest display name, of a run or of an asset a run creates.
pub const MAX_DISPLAY_NAME: usize = 200;
/// Longest description, of a run or of an asset a run creates.
pub const MAX_DESCRIPTION: usize = 10_000;

/// A CreateRun request whose own fields were checked; what it asks of the pipeline is checked by [`create`].
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// `assets/{asset}/versions/{version-or-alias}`.
    pub pipeline_version: String,
    /// Empty: the run is named after its pipeline and the time it was created.
    pub display_name: String,
    /// Free text.
    pub description: String,
    /// Valid labels.
    pub labels: BTreeMap<String, String>,
    /// Where the run is asked to go.
    pub backend: Backend,
    /// Input parameters as given.
    pub parameters: HashMap<String, prost_types::Value>,
    /// Input bindings as given.
    pub input_bindings: Vec<pb::InputBinding>,
    /// Output destinations as given.
    pub output_destinations: Vec<pb::OutputDestination>,
    /// `UnboundOutputPolicy` as its proto number.
    pub unbound_output_policy: i32,
    /// Reuse cached task outputs.
    pub enable_caching: bool,
    /// Give tasks network access.
    pub allow_network: bool,
    /// Whether container steps run in their images; the executor's default when `None`.
    pub image_mode: Option<ImageMode>,
    /// The creator's idempotency key, if any.
    pub request_id: Option<String>,
    /// Check everything, store and launch nothing.
    pub validate_only: bool,
}

/// What [`create`] did.
#[derive(Debug, Clone)]
pub enum Created {
    /// The request would make this run (`validate_only`); nothing was stored.
    Checked(Run),
    /// The run stored for the request: the new one, launched, or the one an earlier request with the same
    /// `request_id` stored.
    Stored(Run),
}

/// What CreateRun reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Where runs are kept.
    pub store: &'a dyn RunRepository,
    /// Admits and launches runs.
    pub engine: &'a Engine,
    /// Pipeline IR, read as the caller.
    pub pipelines: &'a dyn PipelineSource,
    /// Bound asset versions and destination assets, resolved as the caller.
    pub assets: &'a dyn AssetFiles,
}

/// What the pipeline made of a request's parameters, bindings and destinations.
#[derive(Debug)]
struct Resolved {
    parameters: BTreeMap<String, serde_json::Value>,
    bindings: Vec<Binding>,
    destinations: Vec<Destination>,
}

/// CreateRun for `principal`: checks `request` against the pipeline version it names and, unless it is only
/// validated, stores the run with the IR it executes and launches it.
pub async fn create(context: Context<'_>, principal: &Principal, request: RunRequest) -> Result<Created, Error> {
    backend_takes(context.engine, &request)?;
    let ir = context.pipelines.ir(principal, &request.pipeline_version).await.map_err(|e| match e {
        ReadError::NotPipeline(_) => Error::Invalid(Violations::one("run.pipeline_version", e.to_string())),
        other => other.into(),
    })?;
    let (pipeline, description) = pipeline::runnable(&ir, context.engine.config()).await?;
    let parameters = parameters::cast(&description, &request.parameters)?;
    let bindings = inputs::bindings(context.assets, principal, &description, &request, &parameters).await?;
    let destinations =
        outputs::destinations(context.assets, principal, &pipeline, &description, &request.output_destinations).await?;
    let validate_only = request.validate_only;
    let image_mode = match request.backend {
        // KFP runs every step in its image.
        Backend::Kfp => ImageMode::Image,
        Backend::Local => request.image_mode.unwrap_or(context.engine.config().images.mode),
    };
    let mut run = new_run(principal, &ir, &description, request, Resolved { parameters, bindings, destinations });
    run.image_mode = Some(image_mode);
    // Taken before the run is stored, so concurrent creates cannot pass the limit together.
    let admission = context.engine.admit(principal.as_str())?;
    if validate_only {
        return Ok(Created::Checked(run));
    }
    let ir_text = String::from_utf8_lossy(&ir.content).into_owned();
    let stored = context.store.create(&run, &ir_text).await?;
    if stored.id == run.id {
        context.engine.launch(run, Arc::new(pipeline.spec), admission);
    }
    Ok(Created::Stored(stored))
}

/// Whether the backend asked for can take the run at all, before its pipeline is read.
fn backend_takes(engine: &Engine, request: &RunRequest) -> Result<(), Error> {
    match request.backend {
        Backend::Local => Ok(()),
        Backend::Kfp if !engine.runs_on(Backend::Kfp) => Err(Error::NotForKfp(KfpRefusal::NotConfigured)),
        Backend::Kfp if !request.output_destinations.is_empty() => {
            Err(Error::NotForKfp(KfpRefusal::OutputDestinations))
        }
        Backend::Kfp if request.image_mode == Some(ImageMode::Host) => Err(Error::NotForKfp(KfpRefusal::HostImageMode)),
        Backend::Kfp => Ok(()),
    }
}

/// The run `request` makes of pipeline version `ir`, PENDING, attempt 1.
fn new_run(
    principal: &Principal,
    ir: &PipelineIr,
    description: &pb::PipelineDescription,
    request: RunRequest,
    resolved: Resolved,
) -> Run {
    let time = now();
    let display_name = if request.display_name.is_empty() {
        format!("{} {}", description.pipeline_name, time.format("%Y-%m-%d %H:%M:%S"))
    } else {
        request.display_name
    };
    // The alias the caller named the version by, kept beside the exact version it resolved to.
    let pipeline_alias = if request.pipeline_version == ir.version {
        String::new()
    } else {
        request.pipeline_version.rsplit('/').next().unwrap_or_default().to_owned()
    };
    Run {
        id: Uuid::now_v7(),
        display_name,
        description: request.description,
        pipeline_alias,
        pipeline_version: ir.version.clone(),
        parameters: resolved.parameters,
        input_bindings: resolved.bindings,
        output_destinations: resolved.destinations,
        unbound_output_policy: request.unbound_output_policy,
        enable_caching: request.enable_caching,
        allow_network: request.allow_network,
        image_mode: request.image_mode,
        backend: request.backend,
        backend_run_id: String::new(),
        backend_attempt: 0,
        state: State::Pending,
        error: None,
        outputs: Default::default(),
        creator: principal.as_str().to_owned(),
        create_time: time,
        start_time: None,
        end_time: None,
        update_time: time,
        labels: request.labels,
        attempt: 1,
        sequence: 1,
        request_id: request.request_id,
        retry_request_id: None,
    }
}
