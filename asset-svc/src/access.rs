//! The access rule of every method the asset service serves; a method missing here is denied.

use highwind_common::access::{AccessRules, Verb::*};

/// The asset service's declared methods.
pub fn rules() -> AccessRules {
    AccessRules::new(&[
        (
            "highwind.asset.v1.AssetService",
            &[
                ("CreateAsset", Write),
                ("GetAsset", Read),
                ("ListAssets", Read),
                ("UpdateAsset", Write),
                ("DeleteAsset", Delete),
                ("UndeleteAsset", Delete),
                ("PurgeAsset", Delete),
                ("GetAssetVersion", Read),
                ("ListAssetVersions", Read),
                ("UpdateAssetVersion", Write),
                ("DeleteAssetVersion", Delete),
                ("UndeleteAssetVersion", Delete),
                ("SetVersionAlias", Write),
                ("DeleteVersionAlias", Write),
                ("CollectGarbage", Administer),
            ],
        ),
        (
            "highwind.asset.v1.UploadService",
            &[
                ("CreateUpload", Write),
                ("GetUpload", Read),
                ("WriteUpload", Write),
                ("WriteUploadChunk", Write),
                ("CommitUpload", Write),
                ("CancelUpload", Write),
                ("FindMissingBlobs", Read),
                ("ReadFile", Read),
            ],
        ),
        // The handler admits only usecase-svc's own identity.
        ("highwind.asset.internal.v1.GrantService", &[("ReplaceGrants", Administer)]),
        ("highwind.asset.internal.v1.RunOutputService", &[("CommitRunOutput", Write)]),
        // The gateway asks for the caller it authenticated; only its own identity reports pushes (the handler checks).
        (
            "highwind.asset.internal.v1.RegistryService",
            &[("AuthorizeRepository", Read), ("RepositoryPushed", Administer)],
        ),
        (
            "highwind.asset.v1.ImageService",
            &[("ListImages", Read), ("DeleteImageTag", Delete), ("GetPushCommands", Read)],
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
            &crate::served_names(),
        );
        assert_eq!(coverage, Ok(()));
    }
}
