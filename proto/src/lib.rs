//! Highwind's v1 gRPC contracts.
//!
//! Every service's messages, its client (feature `client`) and server (feature `server`), and the encoded file
//! descriptor set of all of them for server reflection.

#![allow(missing_docs, clippy::all, missing_debug_implementations, unused_qualifications)]

/// Encoded `FileDescriptorSet` of every Highwind contract (and the well-known types they use).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/highwind_descriptor.bin"));

/// `highwind.access.v1`: the access each method declares, and the table of every method's verb.
pub mod access {
    pub mod v1 {
        tonic::include_proto!("highwind.access.v1");
    }
    pub use v1::Verb;

    include!(concat!(env!("OUT_DIR"), "/access_table.rs"));

    /// The methods of `services` with their verbs: (`package.Service`, `Method`, verb).
    pub fn methods_of<'a>(services: &'a [&str]) -> impl Iterator<Item = (&'static str, &'static str, Verb)> + 'a {
        METHOD_VERBS.iter().copied().filter(|(service, _, _)| services.contains(service))
    }
}

/// `highwind.asset.v1`: assets, versions, uploads and images.
pub mod asset {
    pub mod v1 {
        tonic::include_proto!("highwind.asset.v1");
    }
    /// Calls between services, never routed by the gateway.
    pub mod internal {
        pub mod v1 {
            tonic::include_proto!("highwind.asset.internal.v1");
        }
    }
}

/// Calls between the gateway and the services about the audit log, never routed by the gateway.
pub mod audit {
    pub mod internal {
        pub mod v1 {
            tonic::include_proto!("highwind.audit.internal.v1");
        }
    }
}

/// `highwind.usecase.v1`: use cases, members, links, releases and the marketplace.
pub mod usecase {
    pub mod v1 {
        tonic::include_proto!("highwind.usecase.v1");
    }
}

/// `highwind.pipeline.v1`: pipeline validation and runs.
pub mod pipeline {
    pub mod v1 {
        tonic::include_proto!("highwind.pipeline.v1");
    }
}

/// `highwind.deployment.v1`: use cases served, by pipeline-svc.
pub mod deployment {
    pub mod v1 {
        tonic::include_proto!("highwind.deployment.v1");
    }
}

/// `highwind.identity.v1`: API keys, served by the gateway.
pub mod identity {
    pub mod v1 {
        tonic::include_proto!("highwind.identity.v1");
    }
}

/// Services the gateway serves itself.
pub const GATEWAY_SERVICES: &[&str] = &["highwind.identity.v1.ApiKeyService", "highwind.identity.v1.AuditService"];

/// Fully qualified names of the public services behind the gateway, as reflection and health know them.
pub const PUBLIC_SERVICES: &[&str] = &[
    "highwind.asset.v1.AssetService",
    "highwind.asset.v1.UploadService",
    "highwind.asset.v1.ImageService",
    "highwind.usecase.v1.UseCaseService",
    "highwind.usecase.v1.MarketplaceService",
    "highwind.pipeline.v1.PipelineService",
    "highwind.pipeline.v1.ImageCacheService",
    "highwind.deployment.v1.DeploymentService",
];

/// A service process of the platform: its name in configuration, the port it listens on by default, and the
/// services it serves (public ones the gateway routes, internal ones only other services call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceProcess {
    /// `asset`, `usecase`, `pipeline`.
    pub name: &'static str,
    /// The default listening port.
    pub default_port: u16,
    /// Fully qualified names of the public services it serves.
    pub services: &'static [&'static str],
    /// Fully qualified names of the services only other platform services call; the gateway does not route them.
    pub internal_services: &'static [&'static str],
}

impl ServiceProcess {
    /// Every service it serves, public then internal.
    pub fn served(&self) -> Vec<&'static str> {
        self.services.iter().chain(self.internal_services).copied().collect()
    }
}

/// Served by each service that owns resources with an audit log (asset-svc, usecase-svc), asked by the gateway.
pub const AUDIT_ACCESS_SERVICE: &str = "highwind.audit.internal.v1.AuditAccessService";

/// asset-svc.
pub const ASSET_SERVICE: ServiceProcess = ServiceProcess {
    name: "asset",
    default_port: 50061,
    services: &["highwind.asset.v1.AssetService", "highwind.asset.v1.UploadService", "highwind.asset.v1.ImageService"],
    internal_services: &[
        "highwind.asset.internal.v1.GrantService",
        "highwind.asset.internal.v1.RunOutputService",
        "highwind.asset.internal.v1.RegistryService",
        AUDIT_ACCESS_SERVICE,
    ],
};

/// usecase-svc.
pub const USECASE_SERVICE: ServiceProcess = ServiceProcess {
    name: "usecase",
    default_port: 50062,
    services: &["highwind.usecase.v1.UseCaseService", "highwind.usecase.v1.MarketplaceService"],
    internal_services: &[AUDIT_ACCESS_SERVICE],
};

/// pipeline-svc.
pub const PIPELINE_SERVICE: ServiceProcess = ServiceProcess {
    name: "pipeline",
    default_port: 50063,
    services: &[
        "highwind.pipeline.v1.PipelineService",
        "highwind.pipeline.v1.ImageCacheService",
        "highwind.deployment.v1.DeploymentService",
    ],
    internal_services: &[],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routed_services_are_the_public_ones_and_every_one_declares_its_access() {
        let routed: Vec<&str> = [ASSET_SERVICE, USECASE_SERVICE, PIPELINE_SERVICE]
            .iter()
            .flat_map(|p| p.services.iter().copied())
            .collect();
        assert_eq!(routed, PUBLIC_SERVICES);
        let all: Vec<&str> = [ASSET_SERVICE, USECASE_SERVICE, PIPELINE_SERVICE]
            .iter()
            .flat_map(|p| p.served())
            .chain(GATEWAY_SERVICES.iter().copied())
            .collect();
        for service in &all {
            assert!(access::methods_of(&[service]).count() > 0, "{service} declares no methods");
        }
        let declared: std::collections::BTreeSet<&str> = access::METHOD_VERBS.iter().map(|(s, _, _)| *s).collect();
        assert_eq!(declared, all.into_iter().collect(), "every served service, and nothing else");
    }

    #[test]
    fn verbs_are_read_from_the_contract() {
        let verb_of = |service: &str, method: &str| {
            access::METHOD_VERBS.iter().find(|(s, m, _)| *s == service && *m == method).map(|(_, _, v)| *v)
        };
        assert_eq!(verb_of("highwind.asset.v1.AssetService", "GetAsset"), Some(access::Verb::Read));
        assert_eq!(verb_of("highwind.asset.v1.AssetService", "CollectGarbage"), Some(access::Verb::Administer));
        assert_eq!(verb_of("highwind.usecase.v1.UseCaseService", "CreateMember"), Some(access::Verb::ManageAccess));
        assert_eq!(verb_of("highwind.asset.v1.AssetService", "NoSuchMethod"), None);
    }
}
