//! ListLineage: from an asset version through the runs that produced it and the runs that read it, transitively.

use std::collections::{HashMap, HashSet, VecDeque};

use highwind_common::{principal::Principal, status, validation::Violations};
use highwind_proto::pipeline::v1 as pb;
use tonic::Status;
use uuid::Uuid;

use super::{
    convert, read_error,
    runs::{Runs, is_version_name},
};
use crate::runs::model::{Direction, LineageEdge};

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
) -> Result<pb::ListLineageResponse, Status> {
    let mut violations = Violations::new();
    if !is_version_name(&request.asset_version) {
        violations.add("asset_version", "required: assets/{asset}/versions/{version-or-alias}");
    }
    let depth = if request.depth == 0 { 1 } else { request.depth };
    if !(1..=MAX_DEPTH).contains(&depth) {
        violations.add("depth", format!("between 1 and {MAX_DEPTH}"));
    }
    if !violations.is_empty() {
        return Err(status::invalid_argument(&violations));
    }
    let start = runs.assets.version(principal, &request.asset_version).await.map_err(read_error)?.name;
    let direction = pb::LineageDirection::try_from(request.direction).unwrap_or(pb::LineageDirection::Unspecified);
    let (upstream, downstream) = match direction {
        pb::LineageDirection::Upstream => (true, false),
        pb::LineageDirection::Downstream => (false, true),
        _ => (true, true),
    };
    let mut found: HashMap<Uuid, pb::LineageRun> = HashMap::new();
    let mut truncated = false;
    for (walk, sign) in [(upstream, -1), (downstream, 1)] {
        if !walk {
            continue;
        }
        // Upstream: versions → the runs that produced them → the versions those runs read. Downstream: the reverse.
        let (reach, next) = if sign < 0 { (Direction::Out, Direction::In) } else { (Direction::In, Direction::Out) };
        let mut queue = VecDeque::from([(start.clone(), 0)]);
        let mut seen_versions = HashSet::from([start.clone()]);
        while let Some((version, distance)) = queue.pop_front() {
            if distance >= depth {
                continue;
            }
            let store_err = |e: crate::store::StoreError| status::internal(&e);
            for run_id in runs.store.runs_touching(&version, reach, MAX_RUNS).await.map_err(store_err)? {
                if found.contains_key(&run_id) {
                    continue;
                }
                if found.len() >= MAX_RUNS {
                    truncated = true;
                    break;
                }
                let at = sign * (distance + 1);
                let Some(run) = runs.store.get(run_id).await.map_err(store_err)? else { continue };
                if run.creator != principal.as_str() {
                    found.insert(
                        run_id,
                        pb::LineageRun {
                            run: format!("runs/{run_id}"),
                            depth: at,
                            redacted: true,
                            ..Default::default()
                        },
                    );
                    continue;
                }
                let edges = runs.store.lineage_of(run_id).await.map_err(store_err)?;
                for edge in edges.iter().filter(|e| e.direction == next) {
                    if seen_versions.insert(edge.asset_version.clone()) {
                        queue.push_back((edge.asset_version.clone(), distance + 1));
                    }
                }
                let summary = convert::run(&run, None);
                found.insert(
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
            }
        }
    }
    let mut list: Vec<pb::LineageRun> = found.into_values().collect();
    list.sort_by(|a, b| {
        (a.depth.abs(), a.depth, a.create_time.map(|t| (t.seconds, t.nanos)), &a.run).cmp(&(
            b.depth.abs(),
            b.depth,
            b.create_time.map(|t| (t.seconds, t.nanos)),
            &b.run,
        ))
    });
    Ok(pb::ListLineageResponse { asset_version: start, runs: list, truncated })
}
