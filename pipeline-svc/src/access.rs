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
    #[test]
    fn every_served_method_has_exactly_one_rule() {
        let coverage = highwind_common::access::coverage(
            &super::rules(),
            highwind_proto::FILE_DESCRIPTOR_SET,
            &crate::SERVICE_NAMES,
        );
        assert_eq!(coverage, Ok(()));
    }
}
