//! How a Highwind pipeline version reaches KFP: one KFP pipeline per pipeline asset, one KFP version per asset
//! version (and caching choice), uploaded once and found by name afterwards, so a second run, a second server or
//! a retry after a crash reuses what is there.

use serde_yaml::Value;

use super::client::{KfpClient, KfpError};

/// KFP's ids of an uploaded version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The pipeline.
    pub pipeline_id: String,
    /// The version.
    pub pipeline_version_id: String,
}

/// KFP names for `assets/{a}/versions/{n}`: the pipeline's and the version's.
pub fn names(pipeline_version: &str, caching: bool) -> (String, String) {
    let asset = pipeline_version.strip_prefix("assets/").unwrap_or(pipeline_version);
    let (asset, number) = asset.split_once("/versions/").unwrap_or((asset, ""));
    let pipeline = format!("highwind-{asset}");
    let suffix = if caching { "" } else { "-nocache" };
    (pipeline.clone(), format!("{pipeline}-v{number}{suffix}"))
}

/// Ensures KFP holds `ir` as version `pipeline_version` (`assets/{a}/versions/{n}`) with task caching on only if
/// `caching`; its ids.
pub async fn ensure_version(
    client: &KfpClient,
    pipeline_version: &str,
    display_name: &str,
    ir: &str,
    caching: bool,
) -> Result<Uploaded, KfpError> {
    let (pipeline_name, version_name) = names(pipeline_version, caching);
    let spec = if caching { ir.to_owned() } else { without_caching(ir)? };
    let description = format!("Highwind {pipeline_version}");
    let pipeline = match client.pipeline_by_name(&pipeline_name).await {
        Ok(pipeline) => pipeline,
        Err(KfpError::NotFound(_)) => {
            match client.upload_pipeline(&pipeline_name, display_name, &description, spec.as_bytes()).await {
                Ok(pipeline) => pipeline,
                // Another server uploaded it meanwhile.
                Err(KfpError::AlreadyExists(_)) => client.pipeline_by_name(&pipeline_name).await?,
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    if let Some(version) = client.version_by_name(&pipeline.pipeline_id, &version_name).await? {
        return Ok(Uploaded { pipeline_id: pipeline.pipeline_id, pipeline_version_id: version.pipeline_version_id });
    }
    let version = match client.upload_version(&pipeline.pipeline_id, &version_name, &description, spec.as_bytes()).await
    {
        Ok(version) => version,
        Err(KfpError::AlreadyExists(_)) => client
            .version_by_name(&pipeline.pipeline_id, &version_name)
            .await?
            .ok_or_else(|| KfpError::NotFound(format!("version {version_name} was reported to exist")))?,
        Err(e) => return Err(e),
    };
    Ok(Uploaded { pipeline_id: pipeline.pipeline_id, pipeline_version_id: version.pipeline_version_id })
}

/// `ir` with caching off on every task: KFP cannot turn caching off per run, so a run without caching runs a
/// version compiled that way (what the `kfp` SDK does to an inline spec).
pub fn without_caching(ir: &str) -> Result<String, KfpError> {
    let mut out = String::new();
    for document in serde_yaml::Deserializer::from_str(ir) {
        let mut value: Value = serde::Deserialize::deserialize(document)
            .map_err(|e| KfpError::Config(format!("the stored pipeline is not YAML: {e}")))?;
        disable_caching(&mut value);
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(&value).map_err(|e| KfpError::Config(e.to_string()))?);
    }
    Ok(out)
}

/// Sets `cachingOptions.enableCache: false` on every task of every DAG in `value`.
fn disable_caching(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            if let Some(Value::Mapping(tasks)) = map.get_mut("dag").and_then(|dag| dag.get_mut("tasks")) {
                for task in tasks.values_mut() {
                    if let Value::Mapping(task) = task {
                        let mut options = serde_yaml::Mapping::new();
                        options.insert("enableCache".into(), Value::Bool(false));
                        task.insert("cachingOptions".into(), Value::Mapping(options));
                    }
                }
            }
            for child in map.values_mut() {
                disable_caching(child);
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(disable_caching),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_asset_version_and_caching() {
        let (pipeline, version) = names("assets/abc/versions/3", true);
        assert_eq!((pipeline.as_str(), version.as_str()), ("highwind-abc", "highwind-abc-v3"));
        assert_eq!(names("assets/abc/versions/3", false).1, "highwind-abc-v3-nocache");
    }

    #[test]
    fn caching_is_turned_off_on_every_task_including_nested_dags() {
        let ir = "root:\n  dag:\n    tasks:\n      a:\n        cachingOptions:\n          enableCache: true\n      b: {}\ncomponents:\n  comp-x:\n    dag:\n      tasks:\n        c:\n          cachingOptions:\n            enableCache: true\n---\nplatforms: {}\n";
        let out = without_caching(ir).expect("rewrites");
        let documents: Vec<Value> = serde_yaml::Deserializer::from_str(&out)
            .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
            .collect();
        assert_eq!(documents.len(), 2);
        let enable = |path: &[&str]| {
            let mut v = &documents[0];
            for key in path {
                v = &v[*key];
            }
            v["cachingOptions"]["enableCache"].clone()
        };
        assert_eq!(enable(&["root", "dag", "tasks", "a"]), Value::Bool(false));
        assert_eq!(enable(&["root", "dag", "tasks", "b"]), Value::Bool(false));
        assert_eq!(enable(&["components", "comp-x", "dag", "tasks", "c"]), Value::Bool(false));
    }
}
