//! The access rule of every method the asset service serves, as its contract declares them.

use highwind_common::access::AccessRules;

/// The access rules of every method this service serves: each rpc's `(highwind.access.v1.verb)`.
pub fn rules() -> AccessRules {
    AccessRules::declared_for(&highwind_proto::ASSET_SERVICE.served())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_served_method_has_exactly_one_rule() {
        let coverage = highwind_common::access::coverage(
            &super::rules(),
            highwind_proto::FILE_DESCRIPTOR_SET,
            &highwind_proto::ASSET_SERVICE.served(),
        );
        assert_eq!(coverage, Ok(()));
    }
}
