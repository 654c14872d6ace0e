//! Embeds every `schemas/*.toml` of the repository (the streams built into the binary), so a
//! stream is added by adding its file: `embedded()` lists whatever the folder holds.
//!
//! Self-contained on purpose (the same few lines in etl-schema, etl-transform and
//! etl-warehouse): a shared helper crate as build-dependency would be a stub in the Docker
//! image's cargo-chef dependency layer. A folder that cannot be read embeds nothing.

use std::path::Path;

fn main() {
    // The manifest dir of this run, not of the build that compiled this script: a script binary
    // reused from a checkout at another path (a shared CARGO_TARGET_DIR) must read this one.
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    let dir = Path::new(&manifest).join("../../schemas");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = String::from("&[\n");
    for name in files {
        let path = dir.join(&name);
        println!("cargo:rerun-if-changed={}", path.display());
        out.push_str(&format!(
            "    (\"schemas/{name}\", include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push(']');
    let target = Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()))
        .join("embedded_schemas.rs");
    if let Err(e) = std::fs::write(&target, out) {
        panic!("cannot write {}: {e}", target.display());
    }
}
