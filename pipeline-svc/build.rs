//! Builds the static first program of steps that run in their own image (`src/executor/sandbox/init.c`): an image
//! holds none of the host's libraries, so it must need none. It is built with the target's C compiler (`cc` finds
//! it, `CC` and cross targets included); where no static C library is installed the server is built without it and
//! steps run on the host, which the build says.

use std::{env, path::PathBuf};

fn main() {
    let source = "src/executor/sandbox/init.c";
    println!("cargo:rerun-if-changed={source}");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("task-init");
    let compiler = cc::Build::new().opt_level(2).warnings(true).cargo_metadata(false).get_compiler();
    let built = compiler.to_command().arg("-static").arg("-o").arg(&out).arg(source).status();
    if !built.is_ok_and(|status| status.success()) {
        println!(
            "cargo:warning=cannot link {source} statically (install the static C library, e.g. libc6-dev or \
             glibc-static): pipeline steps will run on the host, never in their images"
        );
        // An empty program: the executor sees it and never offers images.
        std::fs::write(&out, b"").expect("write OUT_DIR");
    }
}
