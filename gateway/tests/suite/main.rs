//! The gateway's integration tests: one binary, so the platform and its helpers link once. Each module tests one
//! area through a whole `highwind standalone` on loopback (`support::Platform`).

#[macro_use]
mod support;

mod access_follows_use_cases;
mod access_matrix;
mod asset_access_matrix;
mod assets;
mod audit;
mod cli;
mod content;
mod crash;
mod deployments;
mod idempotency;
mod image_cache;
mod image_pull;
mod images;
mod isolation;
mod kfp;
mod kfp_parity;
mod known_failures;
mod lineage;
mod link_resolution;
mod list_bytes;
mod marketplace;
mod otel;
mod pipelines;
mod platform;
mod registry;
mod run_limits;
mod runs;
mod runs_left_behind;
mod sandbox;
mod steps_in_images;
mod tokens;
mod upload_quotas;
mod use_cases;
mod web;
