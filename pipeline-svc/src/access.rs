//! The access rule of every method the pipeline service serves; a method missing here is denied.

use highwind_common::access::{AccessRules, Verb::*};

/// The pipeline service's declared methods.
pub fn rules() -> AccessRules {
    AccessRules::new(&[(
        "highwind.pipeline.v1.PipelineService",
        &[
            ("ValidatePipeline", Read),
            ("DescribePipeline", Read),
            ("CreateRun", Write),
            ("GetRun", Read),
            ("ListRuns", Read),
            ("WatchRun", Read),
            ("CancelRun", Write),
            ("RetryRun", Write),
            ("StreamTaskLogs", Read),
            ("ListLineage", Read),
        ],
    )])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use highwind_common::access::methods_of;

    #[test]
    fn every_served_method_has_exactly_one_rule() {
        let declared: BTreeSet<String> = super::rules().paths().map(str::to_owned).collect();
        let served: BTreeSet<String> = crate::SERVICE_NAMES
            .iter()
            .flat_map(|s| {
                methods_of(highwind_proto::FILE_DESCRIPTOR_SET, s).into_iter().map(move |m| format!("/{s}/{m}"))
            })
            .collect();
        assert!(!served.is_empty());
        assert_eq!(declared, served);
    }
}
