//! Discovers the WGSL sources under `shaders/`, composes every variant of every kernel (each
//! choice of helper for each `#import` slot it reaches), parses and validates each with naga,
//! and generates one typed handle per kernel: its name, family, and per variant the helpers
//! chosen, the bindings with their kind, access and minimum size, the workgroup size and the
//! override constants. A kernel a call site names that does not exist fails to compile; a
//! WGSL error fails the build. Files under a `lib/` folder or `shaders/common/` are helpers
//! (pulled in with `#import NAME`); every other file is a kernel with one `main` entry.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[path = "src/gpu/compose.rs"]
mod compose;

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

/// The slot a helper's text says it serves (`#serves NAME`), if any.
fn serves(text: &str) -> Option<&str> {
    text.lines().find_map(|line| line.trim().strip_prefix("#serves ")).map(str::trim)
}

struct File {
    name: String,
    family: String,
    helper: bool,
    path: PathBuf,
    text: String,
}

/// One composed variant of a kernel, read by naga.
struct Variant {
    aliases: Vec<(String, String)>,
    bindings: Vec<(u32, u32, String)>,
    workgroup_size: Option<[u32; 3]>,
    overrides: Vec<String>,
    float_atomics: bool,
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let shaders = root.join("shaders");
    println!("cargo:rerun-if-changed=shaders");
    println!("cargo:rerun-if-changed=src/gpu/compose.rs");
    let mut paths = Vec::new();
    collect(&shaders, &mut paths);
    let mut files: Vec<File> = Vec::new();
    for path in paths {
        let relative = path.strip_prefix(&shaders).expect("below shaders/");
        let name = path.file_stem().expect("file name").to_string_lossy().to_string();
        if files.iter().any(|f| f.name == name) {
            panic!("two WGSL files are named {name}: names must be unique across shaders/");
        }
        let family = match relative.parent().and_then(|p| p.components().next()) {
            Some(first) => first.as_os_str().to_string_lossy().to_string(),
            None => String::new(),
        };
        let helper = family == "common" || relative.parent().is_some_and(|p| p.ends_with("lib"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        files.push(File { name, family, helper, path, text });
    }

    // Import slots with several helpers: the helpers that say `#serves SLOT`, and the helper
    // named SLOT where there is one (the default; otherwise the first by name).
    let mut slots: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files.iter().filter(|f| f.helper) {
        if let Some(slot) = serves(&file.text) {
            slots.entry(slot.to_string()).or_default().push(file.name.clone());
        }
    }
    let mut defaults: Vec<(String, String)> = Vec::new();
    for (slot, variants) in slots.iter_mut() {
        if files.iter().any(|f| f.helper && &f.name == slot) {
            variants.insert(0, slot.clone());
        } else {
            variants.sort();
        }
        defaults.push((slot.clone(), variants[0].clone()));
    }

    let helper_text = |name: &str| files.iter().find(|f| f.helper && f.name == name).map(|f| f.text.as_str());
    let mut out =
        String::from("/// Every WGSL file under `shaders/`, found by `build.rs`.\npub const SOURCES: &[Source] = &[\n");
    for file in &files {
        writeln!(
            out,
            "    Source {{ name: {:?}, family: {:?}, helper: {}, text: include_str!({:?}) }},",
            file.name,
            file.family,
            file.helper,
            file.path.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n\n");
    out.push_str("/// The helper each `#import` slot pulls in when no alias names another.\n");
    out.push_str("pub const SLOT_DEFAULTS: &[Alias] = &[\n");
    for (_, helper) in &defaults {
        writeln!(out, "    helper::{},", helper.to_uppercase()).unwrap();
    }
    out.push_str("];\n\n");

    out.push_str("/// The helpers that can stand in for an `#import` slot (`#serves SLOT`), as aliases.\n");
    out.push_str("pub mod helper {\n    use super::Alias;\n");
    for (slot, variants) in &slots {
        for helper in variants {
            writeln!(
                out,
                "    /// `#import {slot}` pulls in `{helper}.wgsl`.\n    pub const {}: Alias = Alias {{ slot: {slot:?}, helper: {helper:?} }};",
                helper.to_uppercase()
            )
            .unwrap();
        }
    }
    out.push_str("}\n\n");

    out.push_str("/// Every kernel under `shaders/`, by name: its variants and their interfaces, read by naga.\n");
    out.push_str("pub mod kernel {\n    use super::{Access, Binding, BindingKind, Kernel, KernelVariant};\n");
    let mut all = Vec::new();
    for file in files.iter().filter(|f| !f.helper) {
        let variants = variants(file, &slots, &defaults, &helper_text);
        let relative = file.path.strip_prefix(&shaders).expect("below shaders/").display().to_string();
        writeln!(
            out,
            "    /// `shaders/{relative}`.\n    pub const {}: Kernel = Kernel {{ name: {:?}, family: {:?}, variants: &[",
            file.name.to_uppercase(),
            file.name,
            file.family
        )
        .unwrap();
        for v in &variants {
            let aliases: Vec<String> =
                v.aliases.iter().map(|(_, helper)| format!("super::helper::{}", helper.to_uppercase())).collect();
            let bindings: Vec<String> = v
                .bindings
                .iter()
                .map(|(group, binding, kind)| format!("Binding {{ group: {group}, binding: {binding}, kind: {kind} }}"))
                .collect();
            writeln!(
                out,
                "        KernelVariant {{ aliases: &[{}], bindings: &[{}], workgroup_size: {:?}, overrides: &{:?}, float_atomics: {} }},",
                aliases.join(", "),
                bindings.join(", "),
                v.workgroup_size,
                v.overrides,
                v.float_atomics
            )
            .unwrap();
        }
        out.push_str("    ] };\n");
        all.push(file.name.to_uppercase());
    }
    let all: Vec<String> = all.iter().map(|n| format!("&{n}")).collect();
    writeln!(out, "    /// Every kernel, in file order.\n    pub const ALL: &[&Kernel] = &[{}];", all.join(", "))
        .unwrap();
    out.push_str("}\n");

    let target = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("shaders.rs");
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("writing {}: {e}", target.display()));
}

/// Every variant of `file`: each choice of helper for each slot its composition reaches.
fn variants<'s>(
    file: &'s File,
    slots: &BTreeMap<String, Vec<String>>,
    defaults: &[(String, String)],
    helper: &dyn Fn(&str) -> Option<&'s str>,
) -> Vec<Variant> {
    let mut pending: Vec<Vec<(String, String)>> = vec![Vec::new()];
    let mut done = Vec::new();
    while let Some(choice) = pending.pop() {
        let aliases: Vec<(&str, &str)> =
            choice.iter().chain(defaults.iter()).map(|(s, h)| (s.as_str(), h.as_str())).collect();
        let (source, chosen) =
            compose::compose_with(&file.name, &file.text, &aliases, helper).unwrap_or_else(|e| panic!("shaders: {e}"));
        let open = chosen
            .iter()
            .map(|(import, _)| import)
            .find(|import| slots.contains_key(*import) && !choice.iter().any(|(s, _)| s == *import));
        match open {
            Some(slot) => {
                for variant in &slots[slot] {
                    let mut next = choice.clone();
                    next.push((slot.clone(), variant.clone()));
                    pending.push(next);
                }
            }
            None => {
                let mut choice = choice;
                choice.sort();
                done.push(read(file, &source, choice));
            }
        }
    }
    done.sort_by(|a, b| a.aliases.cmp(&b.aliases));
    done
}

/// Parses and validates one composed module and reads its interface.
fn read(file: &File, source: &str, aliases: Vec<(String, String)>) -> Variant {
    let label = format!("{} {:?}", file.name, aliases.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>());
    let module =
        naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{label}: {}", e.emit_to_string(source)));
    let validator = |caps| naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
    // Without float atomics first: a variant that needs them says so.
    let float_atomics = validator(naga::valid::Capabilities::empty()).validate(&module).is_err();
    if float_atomics {
        if let Err(e) = validator(naga::valid::Capabilities::SHADER_FLOAT32_ATOMIC).validate(&module) {
            panic!("{label}: {}", e.emit_to_string(source));
        }
    }
    let entry = match module.entry_points.as_slice() {
        [entry] if entry.name == "main" && entry.stage == naga::ShaderStage::Compute => entry,
        _ => panic!("{label}: a kernel has exactly one entry point, `@compute fn main`"),
    };
    let workgroup_size = entry.workgroup_size_overrides.is_none().then_some(entry.workgroup_size);
    let overrides = module.overrides.iter().filter_map(|(_, o)| o.name.clone()).collect();
    let mut bindings: Vec<(u32, u32, String)> = module
        .global_variables
        .iter()
        .filter_map(|(_, global)| {
            let binding = global.binding.as_ref()?;
            let bytes = module.types[global.ty].inner.size(module.to_ctx());
            let kind = match global.space {
                naga::AddressSpace::Uniform => format!("BindingKind::Uniform {{ bytes: {bytes} }}"),
                naga::AddressSpace::Storage { access } => {
                    let access = if access.contains(naga::StorageAccess::STORE) { "Write" } else { "Read" };
                    format!("BindingKind::Storage {{ access: Access::{access}, min_bytes: {bytes} }}")
                }
                ref other => panic!("{label}: binding {} is in {other:?}: only buffers are bound", binding.binding),
            };
            Some((binding.group, binding.binding, kind))
        })
        .collect();
    bindings.sort();
    Variant { aliases, bindings, workgroup_size, overrides, float_atomics }
}
