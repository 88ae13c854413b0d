//! Highwind's v1 gRPC contracts.
//!
//! Every service's messages, its client (feature `client`) and server (feature `server`), and the encoded file
//! descriptor set of all of them for server reflection.

#![allow(missing_docs, clippy::all, missing_debug_implementations, unused_qualifications)]

/// Encoded `FileDescriptorSet` of every Highwind contract (and the well-known types they use).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/highwind_descriptor.bin"));

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
];
