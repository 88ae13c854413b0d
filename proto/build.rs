//! Compiles `highwind/**/*.proto` with protox (no `protoc` needed), writes the encoded descriptor set that server
//! reflection serves (custom options included), and writes the access table: every method of every Highwind
//! service with the `(highwind.access.v1.verb)` its contract declares. A method without one fails the build, so
//! the table cannot drift from the contract.

use std::{
    env,
    error::Error,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let mut files = Vec::new();
    collect_protos(&root.join("highwind"), &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed=highwind");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_source_info(true).include_imports(true).open_files(&files)?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("highwind_descriptor.bin"), compiler.encode_file_descriptor_set())?;
    fs::write(out_dir.join("access_table.rs"), access_table(&compiler.descriptor_pool())?)?;

    tonic_prost_build::configure()
        .build_client(env::var_os("CARGO_FEATURE_CLIENT").is_some())
        .build_server(env::var_os("CARGO_FEATURE_SERVER").is_some())
        .generate_default_stubs(true)
        // File content travels as `Bytes`, handed on without copies.
        .bytes(".")
        .emit_rerun_if_changed(false)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

/// `METHOD_VERBS`: (`package.Service`, `Method`, verb) for every method of every `highwind.` service.
fn access_table(pool: &prost_reflect::DescriptorPool) -> Result<String, Box<dyn Error>> {
    let verb = pool.get_extension_by_name("highwind.access.v1.verb").ok_or("highwind.access.v1.verb is not defined")?;
    let mut table = String::from(
        "/// Every method of every Highwind service with the access its contract declares: (`package.Service`, \
         `Method`, verb).\npub const METHOD_VERBS: &[(&str, &str, Verb)] = &[\n",
    );
    let mut services: Vec<_> = pool.services().filter(|s| s.full_name().starts_with("highwind.")).collect();
    services.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    for service in services {
        for method in service.methods() {
            let options = method.options();
            let declared = options.has_extension(&verb).then(|| options.get_extension(&verb).as_enum_number());
            let name = match declared.flatten() {
                Some(1) => "Read",
                Some(2) => "Write",
                Some(3) => "Delete",
                Some(4) => "ManageAccess",
                Some(5) => "Administer",
                _ => {
                    return Err(format!(
                        "{}/{} declares no access: add `option (highwind.access.v1.verb) = VERB_…;` to the rpc",
                        service.full_name(),
                        method.name()
                    )
                    .into());
                }
            };
            writeln!(table, "    (\"{}\", \"{}\", Verb::{name}),", service.full_name(), method.name())?;
        }
    }
    table.push_str("];\n");
    Ok(table)
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
