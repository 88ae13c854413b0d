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
        (
            "highwind.asset.v1.ImageService",
            &[("ListImages", Read), ("DeleteImageTag", Delete), ("GetPushCommands", Read)],
        ),
    ])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use highwind_common::access::methods_of;

    #[test]
    fn every_served_method_has_exactly_one_rule() {
        let rules = super::rules();
        let declared: BTreeSet<String> = rules.paths().map(str::to_owned).collect();
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
