//! Handing a ready task to its work: a container task's attempts or an importer's download.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicI32},
};

use serde_json::Value;

use super::{Dispatched, Driver};
use crate::{
    executor::{
        cache,
        inside::Inside,
        launch::{self, RunInfo},
        register, run_dir, task_dir,
        work::{ContainerWork, Event, INVALID_ARGUMENT, Outcome, fetch_version, importer_version},
    },
    ir::spec::{CachingOptions, ComponentSpec, Container, Importer, RetryPolicy},
    runs::entities::{Failure, State, Values},
};

impl Driver {
    pub(super) fn run_info(&self, path: &str) -> RunInfo {
        let task = self.tasks.get(path);
        RunInfo {
            run_id: self.run.id.to_string(),
            run_name: self.run.display_name.clone(),
            task_name: path.to_owned(),
            task_uid: task.map(|t| t.uid.to_string()).unwrap_or_default(),
            run_root: run_dir(&self.shared.config, self.run.id),
            create_time: self.run.create_time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        }
    }

    pub(super) fn dispatch_container(
        &mut self,
        path: &str,
        component: &ComponentSpec,
        container: &Container,
        retry: &RetryPolicy,
        spec_caching: &CachingOptions,
        inputs: Values,
    ) {
        let Some(task) = self.tasks.get(path).cloned() else { return };
        let dir = task_dir(&self.shared.config, self.run.id, &task);
        // The work makes the task's directories, off the driver (see `work::fresh_attempt`).
        let inside = match self.executor.confinement {
            Some(_) => Inside::sandboxed(&self.shared.config.data_dir),
            None => Inside::host(),
        };
        let prepared = launch::prepare(component, container, &inputs, &dir, &self.run_info(path), &inside);
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(message) => {
                let failure = Failure::new(INVALID_ARGUMENT, "TASK_NOT_STARTED", message);
                self.end_task(path, State::Failed, "", Some(failure));
                return;
            }
        };
        let group = Arc::new(AtomicI32::new(0));
        let caching = self.run.enable_caching && spec_caching.enable_cache;
        let fingerprint = caching
            .then(|| cache::fingerprint(&task.component, &spec_caching.cache_key, component, container, &inputs));
        let work = ContainerWork {
            shared: self.shared.clone(),
            executor: self.executor.clone(),
            events: self.events.clone(),
            path: path.to_owned(),
            run_id: self.run.id.to_string(),
            uid: task.uid.to_string(),
            dir,
            image: container.image.clone(),
            env: container.env.iter().map(|e| (e.name.clone(), e.value.clone())).collect(),
            retry: retry.clone(),
            first_attempt: task.attempt.max(1),
            group: group.clone(),
            creator: self.run.creator.clone(),
            run_uuid: self.run.id,
            fingerprint,
            readable: inputs.artifacts.values().flatten().map(|a| PathBuf::from(&a.path)).collect(),
            network: self.run.allow_network,
            image_mode: self.run.image_mode.unwrap_or(self.shared.config.images.mode),
        };
        let handle = tokio::spawn(work.run(prepared));
        self.dispatched.insert(path.to_owned(), Dispatched { work: handle.abort_handle(), group });
    }

    pub(super) fn dispatch_importer(&mut self, path: &str, importer: &Importer, inputs: Values) {
        let Some(task) = self.tasks.get(path).cloned() else { return };
        // Bindings name the importer by its static path; inside a loop every iteration's importer takes it.
        let static_path = register::static_path(path);
        let binding =
            self.run.input_bindings.iter().find(|b| b.importer_task == static_path).map(|b| b.asset_version.clone());
        let uri = match (&importer.artifact_uri.constant, &importer.artifact_uri.runtime_parameter) {
            (Some(Value::String(uri)), _) => Some(uri.clone()),
            (_, Some(parameter)) => inputs.parameters.get(parameter).and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        let version = match binding {
            Some(version) => Ok(version),
            None => importer_version(uri.as_deref().unwrap_or_default()),
        };
        let shared = self.shared.clone();
        let events = self.events.clone();
        let run = self.run.clone();
        let importer = importer.clone();
        let path_owned = path.to_owned();
        let dir = task_dir(&self.shared.config, self.run.id, &task).join("artifact");
        let handle = tokio::spawn(async move {
            let _ = events.send(Event::Started {
                path: path_owned.clone(),
                attempt: task.attempt.max(1),
                message: String::new(),
                image: None,
            });
            let outcome = match version {
                Err(failure) => Outcome::from(failure),
                Ok(version) => {
                    match fetch_version(&shared, &run, &version, &dir, "artifact", &importer.type_schema, &path_owned)
                        .await
                    {
                        Ok(mut artifact) => {
                            artifact.metadata = importer.metadata.clone();
                            let mut outputs = Values::default();
                            outputs.artifacts.insert("artifact".into(), vec![artifact]);
                            Outcome {
                                state: State::Succeeded,
                                outputs,
                                error: None,
                                exit_code: None,
                                log_truncated: false,
                                cached_from: None,
                            }
                        }
                        Err(failure) => Outcome::from(failure),
                    }
                }
            };
            let _ = events.send(Event::Finished { path: path_owned, outcome });
        });
        self.dispatched
            .insert(path.to_owned(), Dispatched { work: handle.abort_handle(), group: Arc::new(AtomicI32::new(0)) });
    }
}
