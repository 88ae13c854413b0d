//! Running OCI images without a container engine. This crate's one job is the image: its layers unpacked into a
//! root that nothing in them can escape while unpacking (`unpack`), named by verified digests (`digest`). Pipeline
//! steps and deployments run in such roots.

pub mod digest;
pub mod unpack;
