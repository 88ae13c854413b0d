//! The access rules of the services the gateway serves itself and routes, as their contracts declare them.

use highwind_common::access::AccessRules;
use highwind_proto::{ASSET_SERVICE, GATEWAY_SERVICES, PIPELINE_SERVICE, USECASE_SERVICE};

/// The gateway's own methods, as their contract declares them.
pub fn rules() -> AccessRules {
    AccessRules::declared_for(GATEWAY_SERVICES)
}

/// Every method reachable through the gateway: its own and every routed service's (the internal ones only as their
/// own services check them).
pub fn platform_rules() -> AccessRules {
    AccessRules::merged(&[
        rules(),
        AccessRules::declared_for(&ASSET_SERVICE.served()),
        AccessRules::declared_for(&USECASE_SERVICE.served()),
        AccessRules::declared_for(&PIPELINE_SERVICE.served()),
    ])
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_gateway_method_has_exactly_one_rule() {
        let coverage = highwind_common::access::coverage(
            &super::rules(),
            highwind_proto::FILE_DESCRIPTOR_SET,
            highwind_proto::GATEWAY_SERVICES,
        );
        assert_eq!(coverage, Ok(()));
    }
}
