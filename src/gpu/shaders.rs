//! The WGSL sources, discovered under `shaders/` by `build.rs` and embedded in the binary:
//! one file per kernel in a folder per family (`center_loss/`, `nn/`, `bench/`), helpers in
//! the families' `lib/` folders and in `common/`, joined by a tiny `#import NAME` step
//! (each helper once, aliases chosen per device).

use crate::{Error, Result};

/// One embedded WGSL file.
#[derive(Clone, Copy, Debug)]
pub struct Source {
    /// The file stem, unique across `shaders/`: the kernel's or helper's name.
    pub name: &'static str,
    /// The folder below `shaders/` it sits in (`center_loss`, `nn`, `bench`, `common`).
    pub family: &'static str,
    /// Whether it is a helper pulled in by `#import` (under `lib/` or `common/`).
    pub helper: bool,
    /// The WGSL text.
    pub text: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/shaders.rs"));

/// Every kernel file (each holds one `main` entry point).
pub fn kernels() -> impl Iterator<Item = &'static Source> {
    SOURCES.iter().filter(|s| !s.helper)
}

/// Returns the kernel named `kernel` with its imports resolved. `aliases` maps an import
/// name to the helper that serves it (e.g. `("accum", "accum_cas")`).
pub fn compose(kernel: &str, aliases: &[(&str, &str)]) -> Result<String> {
    let source = lookup(kernel, false)?;
    let mut out = String::with_capacity(source.len() * 2);
    let mut seen = Vec::new();
    expand(kernel, source, aliases, &mut seen, &mut out)?;
    Ok(out)
}

fn lookup(name: &str, helper: bool) -> Result<&'static str> {
    SOURCES
        .iter()
        .find(|s| s.name == name && s.helper == helper)
        .map(|s| s.text)
        .ok_or_else(|| Error::Internal(format!("no WGSL {} named `{name}`", if helper { "helper" } else { "kernel" })))
}

fn expand(name: &str, source: &str, aliases: &[(&str, &str)], seen: &mut Vec<String>, out: &mut String) -> Result<()> {
    for line in source.lines() {
        match line.trim().strip_prefix("#import ") {
            Some(import) => {
                let import = import.trim();
                let target = aliases.iter().find(|(a, _)| *a == import).map_or(import, |(_, t)| *t);
                if seen.iter().any(|s| s == target) {
                    continue;
                }
                seen.push(target.to_string());
                let body = lookup(target, true)
                    .map_err(|_| Error::Internal(format!("`{name}` imports unknown `{import}`")))?;
                expand(target, body, aliases, seen, out)?;
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(())
}

/// Test helpers that hold a Rust value against its WGSL twin, read by naga: the one source
/// of a value shared by both sides is the WGSL file, and each subsystem's tests compare
/// its constants and `#[repr(C)]` uniform mirrors with it.
#[cfg(test)]
pub(crate) mod mirror {
    use naga::{Expression, Literal, TypeInner};

    /// The module of `kernel` composed with `aliases`, parsed by naga.
    pub fn module(kernel: &str, aliases: &[(&str, &str)]) -> naga::Module {
        let source = super::compose(kernel, aliases).unwrap();
        naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| panic!("{kernel}: {}", e.emit_to_string(&source)))
    }

    /// The value of the WGSL `const` (or the default of the `override`) `name`.
    pub fn constant(module: &naga::Module, name: &str) -> u64 {
        let named = |n: &Option<String>| n.as_deref() == Some(name);
        let init = module
            .constants
            .iter()
            .find(|(_, c)| named(&c.name))
            .map(|(_, c)| c.init)
            .or_else(|| module.overrides.iter().find(|(_, o)| named(&o.name)).and_then(|(_, o)| o.init))
            .unwrap_or_else(|| panic!("no WGSL constant named {name}"));
        match module.global_expressions[init] {
            Expression::Literal(Literal::U32(v)) => v as u64,
            Expression::Literal(Literal::I32(v)) => v as u64,
            Expression::Literal(Literal::AbstractInt(v)) => v as u64,
            ref other => panic!("WGSL constant {name} is {other:?}, not an integer literal"),
        }
    }

    /// Asserts that the group-0 bindings `kernel`'s module declares are those of its
    /// [`crate::gpu::KernelSpec`]: a uniform at binding 0 exactly when the spec has one,
    /// then its storage bindings 1.. with the same access.
    pub fn assert_bindings(spec: &crate::gpu::KernelSpec, aliases: &[(&str, &str)]) {
        use crate::gpu::Access;
        let module = module(spec.name, aliases);
        let mut wgsl: Vec<(u32, Option<Access>)> = module
            .global_variables
            .iter()
            .filter_map(|(_, g)| {
                let binding = g.binding.as_ref()?;
                assert_eq!(binding.group, 0, "{}: a binding outside group 0", spec.name);
                let access = match g.space {
                    naga::AddressSpace::Uniform => None,
                    naga::AddressSpace::Storage { access } if access.contains(naga::StorageAccess::STORE) => {
                        Some(Access::Write)
                    }
                    naga::AddressSpace::Storage { .. } => Some(Access::Read),
                    ref other => panic!("{}: binding {} in {other:?}", spec.name, binding.binding),
                };
                Some((binding.binding, access))
            })
            .collect();
        wgsl.sort_by_key(|(binding, _)| *binding);
        let mut rust: Vec<(u32, Option<Access>)> = spec.uniform_bytes.map(|_| (0, None)).into_iter().collect();
        rust.extend(spec.storage.iter().enumerate().map(|(i, a)| (i as u32 + 1, Some(*a))));
        assert_eq!(wgsl, rust, "{}: WGSL bindings (left) against its KernelSpec (right)", spec.name);
    }

    /// Asserts that the WGSL struct `name` has exactly the fields of `layout` (name and byte
    /// offset, in order) and its size: `layout` comes from [`super::layout!`].
    pub fn assert_struct(module: &naga::Module, name: &str, layout: (usize, &[(&str, usize)])) {
        let (size, fields) = layout;
        let (_, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no WGSL struct named {name}"));
        let TypeInner::Struct { members, span } = &ty.inner else { panic!("WGSL type {name} is not a struct") };
        let wgsl: Vec<(&str, usize)> =
            members.iter().map(|m| (m.name.as_deref().unwrap_or(""), m.offset as usize)).collect();
        assert_eq!(wgsl, fields, "{name}: WGSL fields (left) against the Rust mirror (right)");
        assert_eq!(*span as usize, size, "{name}: WGSL size against the Rust mirror's");
    }
}

/// `(size, [(field, byte offset), ...])` of a `#[repr(C)]` struct, for
/// `mirror::assert_struct`.
#[cfg(test)]
macro_rules! layout {
    ($t:ty { $($f:ident),* $(,)? }) => {
        (std::mem::size_of::<$t>(), &[$((stringify!($f), std::mem::offset_of!($t, $f))),*][..])
    };
}
#[cfg(test)]
pub(crate) use layout;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_resolve_once_and_follow_aliases() {
        let src = compose("center_forward", &[("accumulate", "accumulate_atomic"), ("accum", "accum_cas")]).unwrap();
        assert_eq!(src.matches("fn linear_workgroup").count(), 1);
        assert!(src.contains("atomicCompareExchangeWeak"));
        assert!(!src.contains("#import"));
        assert!(compose("no_such_kernel", &[]).is_err());
    }

    #[test]
    fn sources_are_discovered_by_family() {
        let family = |name: &str| SOURCES.iter().find(|s| s.name == name).map(|s| (s.family, s.helper));
        assert_eq!(family("center_forward"), Some(("center_loss", false)));
        assert_eq!(family("gemm_core"), Some(("nn", true)));
        assert_eq!(family("common"), Some(("common", true)));
        assert_eq!(family("bandwidth_copy"), Some(("bench", false)));
    }

    #[test]
    fn the_workgroup_size_is_the_one_in_common_wgsl() {
        let module = mirror::module("add", &[]);
        assert_eq!(mirror::constant(&module, "WORKGROUP_SIZE"), crate::gpu::WORKGROUP_SIZE as u64);
    }
}
