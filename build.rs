//! Discovers the WGSL sources under `shaders/` and embeds them: one table entry per file,
//! named by its file stem. Files under a `lib/` folder or `shaders/common/` are helpers
//! (pulled in with `#import NAME`); every other file is a kernel with one `main` entry.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "wgsl") {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let shaders = root.join("shaders");
    println!("cargo:rerun-if-changed=shaders");
    let mut files = Vec::new();
    collect(&shaders, &mut files);
    let mut table =
        String::from("/// Every WGSL file under `shaders/`, found by `build.rs`.\npub const SOURCES: &[Source] = &[\n");
    let mut names: Vec<String> = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&shaders).expect("below shaders/");
        let name = path.file_stem().expect("file name").to_string_lossy().to_string();
        if names.contains(&name) {
            panic!("two WGSL files are named {name}: names must be unique across shaders/");
        }
        names.push(name.clone());
        let family = match relative.parent().and_then(|p| p.components().next()) {
            Some(first) => first.as_os_str().to_string_lossy().to_string(),
            None => String::new(),
        };
        let helper = family == "common" || relative.parent().is_some_and(|p| p.ends_with("lib"));
        writeln!(
            table,
            "    Source {{ name: {name:?}, family: {family:?}, helper: {helper}, text: include_str!({:?}) }},",
            path.display().to_string()
        )
        .unwrap();
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("shaders.rs");
    std::fs::write(&out, table).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
