//! The `#import` step, shared by `build.rs` (which composes every variant of every kernel to
//! read its interface with naga) and [`super::shaders::compose`] (which composes the one a
//! device builds). It depends on nothing but `std`.
//!
//! A line `#import NAME` pulls in the helper `NAME` once per module; an alias `(NAME,
//! HELPER)` makes it pull in `HELPER` instead. A helper that can stand in for `NAME` says
//! so on a line `#serves NAME`: the import `NAME` is then a slot with several variants, the
//! helper named `NAME` (or, where there is none, the first variant by name) its default.

/// Composes `kernel` (its text `source`), each import resolved through `aliases` and then
/// `helper` (a helper's text by name), each helper once. Returns the module's text and the
/// helper chosen for every import it pulled in, in order.
pub fn compose_with<'s>(
    kernel: &str,
    source: &'s str,
    aliases: &[(&str, &str)],
    helper: &dyn Fn(&str) -> Option<&'s str>,
) -> Result<(String, Vec<(String, String)>), String> {
    let mut out = String::with_capacity(source.len() * 2);
    let mut chosen = Vec::new();
    expand(kernel, source, aliases, helper, &mut chosen, &mut out)?;
    Ok((out, chosen))
}

fn expand<'s>(
    name: &str,
    source: &'s str,
    aliases: &[(&str, &str)],
    helper: &dyn Fn(&str) -> Option<&'s str>,
    chosen: &mut Vec<(String, String)>,
    out: &mut String,
) -> Result<(), String> {
    for line in source.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("#serves ") {
            continue;
        }
        match trimmed.strip_prefix("#import ") {
            Some(import) => {
                let import = import.trim();
                let target = aliases.iter().find(|(a, _)| *a == import).map_or(import, |(_, t)| *t);
                if chosen.iter().any(|(_, t)| t == target) {
                    continue;
                }
                chosen.push((import.to_string(), target.to_string()));
                let body = helper(target).ok_or_else(|| format!("`{name}` imports unknown `{target}`"))?;
                expand(target, body, aliases, helper, chosen, out)?;
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(())
}
