//! The access rules of the services the gateway serves itself; a method missing here is denied.

use highwind_common::access::{
    AccessRules,
    Verb::{Delete, Read, Write},
};

/// The gateway's own declared methods.
pub fn rules() -> AccessRules {
    AccessRules::new(&[
        (
            "highwind.identity.v1.ApiKeyService",
            &[("CreateApiKey", Write), ("ListApiKeys", Read), ("DeleteApiKey", Delete)],
        ),
        ("highwind.identity.v1.AuditService", &[("ListAuditEvents", Read)]),
    ])
}

/// Every method reachable through the gateway: its own and every routed service's.
pub fn platform_rules() -> AccessRules {
    AccessRules::merged(&[
        rules(),
        asset_svc::access::rules(),
        usecase_svc::access::rules(),
        pipeline_svc::access::rules(),
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
