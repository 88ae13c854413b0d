//! Running OCI images without a container engine. This crate's one job is the image: what a reference names
//! (`reference`), the manifests, indexes and configs that describe it read as untrusted input (`manifest`), its
//! layers unpacked into a root that nothing in them can escape (`unpack`), the user it runs as (`user`), a whole image from wherever its blobs
//! are (`image`; an OCI layout on disk is one such place, `layout`; a registry another, `registry`), everything
//! named by verified digests (`digest`). Pipeline steps and deployments run in such roots.

pub mod digest;
pub mod image;
pub mod layout;
pub mod manifest;
pub mod reference;
pub mod registry;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod unpack;
pub mod user;
