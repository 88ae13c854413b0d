//! ListLineage: from an asset version through the runs that produced it and the runs that read it, transitively.

use std::collections::{HashMap, HashSet, VecDeque};

use highwind_common::{principal::Principal, validation::Violations};
use highwind_proto::pipeline::v1 as pb;
use uuid::Uuid;

use super::{convert, runs::Runs};
use crate::{
    assets::is_version_name,
    error::Error,
    runs::entities::{Direction, LineageEdge},
};

/// Most runs one answer holds.
const MAX_RUNS: usize = 1000;
/// Deepest walk.
const MAX_DEPTH: i32 = 10;

fn artifact(edge: &LineageEdge) -> pb::LineageArtifact {
    pb::LineageArtifact {
        asset_version: edge.asset_version.clone(),
        port: edge.port.clone(),
        artifact_type: edge.artifact_type.clone(),
    }
}

/// ListLineage.
pub async fn list(
    runs: &Runs,
    principal: &Principal,
    request: pb::ListLineageRequest,
) -> Result<pb::ListLineageResponse, Error> {
    let mut violations = Violations::new();
    if !is_version_name(&request.asset_version) {
        violations.add("asset_version", "required: assets/{asset}/versions/{version-or-alias}");
    }
    let depth = if request.depth == 0 { 1 } else { request.depth };
    if !(1..=MAX_DEPTH).contains(&depth) {
        violations.add("depth", format!("between 1 and {MAX_DEPTH}"));
    }
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    let start = runs.assets.version(principal, &request.asset_version).await?.name;
    let direction = pb::LineageDirection::try_from(request.direction).unwrap_or(pb::LineageDirection::Unspecified);
    let (upstream, downstream) = match direction {
        pb::LineageDirection::Upstream => (true, false),
        pb::LineageDirection::Downstream => (false, true),
        _ => (true, true),
    };
    let mut walk = Walk { runs, principal, depth, found: HashMap::new(), truncated: false };
    if upstream {
        walk.from(&start, -1).await?;
    }
    if downstream {
        walk.from(&start, 1).await?;
    }
    let mut list: Vec<pb::LineageRun> = walk.found.into_values().collect();
    list.sort_by(|a, b| {
        (a.depth.abs(), a.depth, a.create_time.map(|t| (t.seconds, t.nanos)), &a.run).cmp(&(
            b.depth.abs(),
            b.depth,
            b.create_time.map(|t| (t.seconds, t.nanos)),
            &b.run,
        ))
    });
    Ok(pb::ListLineageResponse { asset_version: start, runs: list, truncated: walk.truncated })
}

/// Walks of the lineage graph, sharing the runs found (at most [`MAX_RUNS`]).
#[derive(Debug)]
struct Walk<'a> {
    runs: &'a Runs,
    principal: &'a Principal,
    depth: i32,
    found: HashMap<Uuid, pb::LineageRun>,
    truncated: bool,
}

impl Walk<'_> {
    /// Walks from version `start` breadth first, `depth` runs far: upstream (`sign` -1: versions → the runs that
    /// produced them → the versions those runs read) or downstream (`sign` 1: the reverse).
    async fn from(&mut self, start: &str, sign: i32) -> Result<(), Error> {
        let (reach, next) = if sign < 0 { (Direction::Out, Direction::In) } else { (Direction::In, Direction::Out) };
        let mut queue = VecDeque::from([(start.to_owned(), 0)]);
        let mut seen_versions = HashSet::from([start.to_owned()]);
        while let Some((version, distance)) = queue.pop_front() {
            if distance >= self.depth {
                continue;
            }
            for run_id in self.runs.store.runs_touching(&version, reach, MAX_RUNS).await? {
                if self.found.contains_key(&run_id) {
                    continue;
                }
                if self.found.len() >= MAX_RUNS {
                    self.truncated = true;
                    break;
                }
                let at = sign * (distance + 1);
                for version in self.visit(run_id, at, next).await? {
                    if seen_versions.insert(version.clone()) {
                        queue.push_back((version, distance + 1));
                    }
                }
            }
        }
        Ok(())
    }

    /// Records run `run_id`, `at` steps from the start (redacted unless the caller created it); the versions it
    /// touched in the `next` direction, where the walk goes on.
    async fn visit(&mut self, run_id: Uuid, at: i32, next: Direction) -> Result<Vec<String>, Error> {
        let Some(run) = self.runs.store.get(run_id).await? else { return Ok(Vec::new()) };
        if run.creator != self.principal.as_str() {
            let redacted =
                pb::LineageRun { run: format!("runs/{run_id}"), depth: at, redacted: true, ..Default::default() };
            self.found.insert(run_id, redacted);
            return Ok(Vec::new());
        }
        let edges = self.runs.store.lineage_of(run_id).await?;
        let onward = edges.iter().filter(|e| e.direction == next).map(|e| e.asset_version.clone()).collect();
        let summary = convert::run(&run, None);
        self.found.insert(
            run_id,
            pb::LineageRun {
                run: summary.name,
                pipeline_version: summary.pipeline_version,
                state: summary.state,
                creator: summary.creator,
                create_time: summary.create_time,
                inputs: edges.iter().filter(|e| e.direction == Direction::In).map(artifact).collect(),
                outputs: edges.iter().filter(|e| e.direction == Direction::Out).map(artifact).collect(),
                depth: at,
                redacted: false,
            },
        );
        Ok(onward)
    }
}
