//! Imports the facts rgpu needs from a pinned CUDA `include/` directory: the names of every function
//! `cuda.h` declares (with `__CUDA_API_VERSION_INTERNAL`, so every versioned ABI symbol is visible) and,
//! from `cudaTypedefs.h`, the CUDA version at which each ABI variant became the default.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// Runs the C preprocessor over `cuda.h` and returns the sorted, de-duplicated function names.
pub fn function_names(include: &Path) -> Result<Vec<String>> {
    let header = include.join("cuda.h");
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-E", "-P", "-D__CUDA_API_VERSION_INTERNAL", "-x", "c"])
        .arg(&header)
        .output()
        .with_context(|| format!("running the C preprocessor on {}", header.display()))?;
    if !out.status.success() {
        bail!(
            "preprocessing {} failed: {}",
            header.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let toks = tokenize(&text);
    let mut names = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i] == "CUresult" {
            let mut j = i + 1;
            // skip `__attribute__((...))`
            while j < toks.len() && toks[j] == "__attribute__" {
                j += 1;
                let mut depth = 0i32;
                while j < toks.len() {
                    if toks[j] == "(" {
                        depth += 1;
                    } else if toks[j] == ")" {
                        depth -= 1;
                        if depth == 0 {
                            j += 1;
                            break;
                        }
                    }
                    j += 1;
                }
            }
            if j + 1 < toks.len() && toks[j].starts_with("cu") && toks[j + 1] == "(" {
                names.push(toks[j].to_string());
            }
        }
        i += 1;
    }
    names.sort();
    names.dedup();
    if names.len() < 400 {
        bail!(
            "found only {} functions in {}: not a CUDA 13 cuda.h?",
            names.len(),
            header.display()
        );
    }
    Ok(names)
}

fn tokenize(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphanumeric() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(&text[s..i]);
        } else if c == b'"' {
            let s = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            i += 1;
            out.push(&text[s..i.min(b.len())]);
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else {
            out.push(&text[i..i + 1]);
            i += 1;
        }
    }
    out
}

/// One `PFN_<name>_v<version>[_ptds|_ptsz]` typedef of `cudaTypedefs.h`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProcVersion {
    pub base: String,
    pub version: u32,
    /// "", "_ptds" or "_ptsz"
    pub stream: String,
}

pub fn proc_versions(include: &Path) -> Result<Vec<ProcVersion>> {
    let path = include.join("cudaTypedefs.h");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for part in text.split("(CUDAAPI *PFN_").skip(1) {
        let Some(end) = part.find(')') else { continue };
        let ident = &part[..end];
        let (rest, stream) = if let Some(r) = ident.strip_suffix("_ptds") {
            (r, "_ptds")
        } else if let Some(r) = ident.strip_suffix("_ptsz") {
            (r, "_ptsz")
        } else {
            (ident, "")
        };
        let Some(pos) = rest.rfind("_v") else {
            continue;
        };
        let Ok(version) = rest[pos + 2..].parse::<u32>() else {
            continue;
        };
        out.push(ProcVersion {
            base: rest[..pos].to_string(),
            version,
            stream: stream.to_string(),
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Members of a C enum in the preprocessed `cuda.h`, as `(name, value)` in declaration order.
pub fn enum_members(include: &Path, tag: &str) -> Result<Vec<(String, i64)>> {
    let header = include.join("cuda.h");
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-E", "-P", "-D__CUDA_API_VERSION_INTERNAL", "-x", "c"])
        .arg(&header)
        .output()
        .context("running the C preprocessor")?;
    let text = String::from_utf8(out.stdout)?;
    let toks = tokenize(&text);
    let start = toks
        .windows(3)
        .position(|w| w[0] == "enum" && w[1] == tag && w[2] == "{")
        .with_context(|| format!("enum {tag} not found in cuda.h"))?;
    let mut i = start + 3;
    let mut members: Vec<(String, i64)> = Vec::new();
    let mut next = 0i64;
    while i < toks.len() && toks[i] != "}" {
        let name = toks[i].to_string();
        i += 1;
        let mut value = next;
        if toks[i] == "=" {
            i += 1;
            let mut expr = Vec::new();
            while toks[i] != "," && toks[i] != "}" {
                expr.push(toks[i]);
                i += 1;
            }
            value = eval(&expr, &members)
                .with_context(|| format!("cannot evaluate {name} = {}", expr.join(" ")))?;
        }
        next = value + 1;
        members.push((name, value));
        if toks[i] == "," {
            i += 1;
        }
    }
    Ok(members)
}

fn eval(expr: &[&str], known: &[(String, i64)]) -> Option<i64> {
    let single = |t: &str| -> Option<i64> {
        if let Some(h) = t.strip_prefix("0x") {
            return i64::from_str_radix(h.trim_end_matches(['U', 'L', 'u', 'l']), 16).ok();
        }
        if let Ok(v) = t.trim_end_matches(['U', 'L', 'u', 'l']).parse::<i64>() {
            return Some(v);
        }
        known.iter().find(|(n, _)| n == t).map(|(_, v)| *v)
    };
    match expr {
        [t] => single(t),
        ["-", t] => single(t).map(|v| -v),
        [a, "<", "<", b] => Some(single(a)? << single(b)?),
        ["(", a, "<", "<", b, ")"] => Some(single(a)? << single(b)?),
        _ => None,
    }
}
