//! The access rule of every method the use-case service serves; a method missing here is denied.

use highwind_common::access::{AccessRules, Verb::*};

/// The use-case service's declared methods.
pub fn rules() -> AccessRules {
    AccessRules::new(&[
        (
            "highwind.usecase.v1.UseCaseService",
            &[
                ("CreateUseCase", Write),
                ("GetUseCase", Read),
                ("ListUseCases", Read),
                ("UpdateUseCase", Write),
                ("DeleteUseCase", Delete),
                ("UndeleteUseCase", Delete),
                ("CreateMember", ManageAccess),
                ("GetMember", Read),
                ("ListMembers", Read),
                ("UpdateMember", ManageAccess),
                ("DeleteMember", ManageAccess),
                ("CreateAssetLink", Write),
                ("GetAssetLink", Read),
                ("ListAssetLinks", Read),
                ("SwapAssetLink", Write),
                ("DeleteAssetLink", Write),
                ("CreateRelease", Write),
                ("GetRelease", Read),
                ("ListReleases", Read),
                ("DiffReleases", Read),
                ("PublishUseCase", ManageAccess),
                ("UnpublishUseCase", ManageAccess),
            ],
        ),
        (
            "highwind.usecase.v1.MarketplaceService",
            &[
                ("GetListing", Read),
                ("ListListings", Read),
                ("SearchListings", Read),
                ("AcquireListing", Write),
                ("GetEntitlement", Read),
                ("ListEntitlements", Read),
                ("ForkRelease", Write),
            ],
        ),
    ])
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
