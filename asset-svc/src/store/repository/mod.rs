//! The asset repositories, written once: `pg.rs` and `sqlite.rs` each compile these files against their own
//! `Db`, `Pool`, `begin_write` and the hooks for what the dialects do differently (`BYTEWISE`, `FOR_UPDATE`,
//! `push_label_equals`, `lock_upload_opening`, `lock_blob_collection`, `insert_grants`).

mod assets;
mod content;
mod grants;
