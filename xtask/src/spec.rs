//! Parser for `protocol/api/driver.api`, the one place where the forwarded driver API is declared.
//!
//! Grammar (one declaration per line, `#` starts a comment, a declaration may continue on
//! following lines that start with whitespace):
//!
//! ```text
//! auto   ID Msg [noinit] [async] sym[|sym…] (param, …)  # marshalled entirely by generated code
//! msg    ID Msg (field: ty, …) -> (field: ty, …)    # a wire message used by hand-written shim code
//! custom [noinit] [extra] sym[|sym…] (name: RustType, …)  # export calls crate::custom::<snake(sym)>;
//!                                                    # `extra`: declared outside cuda.h
//! ```
//!
//! `auto` parameter kinds: `i32 u32 i64 u64 usize f32 handle device dptr` (by value), `out T`
//! (pointer result), `out_str(len)`, `out_fixed(N)`, `in_bytes(len)`, `out_bytes(len)`, `in_cstr`.
//! `msg` field types: `i32 u32 i64 u64 f32 bool bytes string u64s i32s handle device dptr`.
//!
//! Three types say what a value means, for a client that spreads its devices over several
//! servers (it routes each call by them): `device` (a device ordinal, an `i32` on the wire),
//! `dptr` (a device address, `u64`) and `handle` (an opaque handle, `u64`).

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// By-value scalar: wire type is the Rust type (`usize` travels as `u64`).
    In(String),
    /// Opaque handle (a C pointer) passed by value; travels as `u64`.
    Handle,
    /// Pointer to a scalar or handle the call writes.
    Out(String),
    /// Like `Out`, but the caller may pass NULL (then nothing is written).
    OptOut(String),
    OutStr(String),
    OutFixed(usize),
    InBytes(String),
    OutBytes(String),
    InCstr,
}

#[derive(Debug, Clone)]
pub struct Auto {
    pub id: u32,
    pub msg: String,
    pub noinit: bool,
    /// Sent without waiting for a reply (errors surface at a later call); only for calls whose
    /// sole result is a CUresult that CUDA allows to report later.
    pub is_async: bool,
    pub symbols: Vec<String>,
    pub params: Vec<(String, Param)>,
}

#[derive(Debug, Clone)]
pub struct Msg {
    pub id: u32,
    pub msg: String,
    pub req: Vec<(String, String)>,
    pub rep: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Custom {
    pub noinit: bool,
    /// Declared outside cuda.h (e.g. cudaProfiler.h): exported and resolvable by name too.
    pub extra: bool,
    pub symbols: Vec<String>,
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct Spec {
    pub autos: Vec<Auto>,
    pub msgs: Vec<Msg>,
    pub customs: Vec<Custom>,
}

pub const MSG_TYPES: &[&str] = &[
    "u8", "u16", "i32", "u32", "i64", "u64", "f32", "bool", "bytes", "string", "u64s", "i32s",
    "handle", "device", "dptr",
];
const SCALARS: &[&str] = &[
    "u8", "u16", "i32", "u32", "i64", "u64", "usize", "f32", "device", "dptr",
];

fn split_params(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Returns (text before the first '(', text inside the balanced parentheses, rest).
fn paren(s: &str) -> Result<(&str, &str, &str)> {
    let open = s.find('(').context("expected '('")?;
    let mut depth = 0;
    for (i, c) in s[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    let close = open + i;
                    return Ok((&s[..open], &s[open + 1..close], &s[close + 1..]));
                }
            }
            _ => {}
        }
    }
    bail!("unbalanced parentheses")
}

fn arg_in(p: &str, kw: &str) -> Option<String> {
    p.strip_prefix(kw)
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.strip_suffix(')'))
        .map(|r| r.trim().to_string())
}

fn parse_param(p: &str) -> Result<(String, Param)> {
    let (name, ty) = p.split_once(':').context("parameter needs `name: kind`")?;
    let (name, ty) = (name.trim().to_string(), ty.trim());
    let param = if SCALARS.contains(&ty) {
        Param::In(ty.to_string())
    } else if ty == "handle" {
        Param::Handle
    } else if ty == "in_cstr" {
        Param::InCstr
    } else if let Some(t) = ty.strip_prefix("out ") {
        let t = t.trim();
        if !SCALARS.contains(&t) && t != "handle" {
            bail!("unknown out type `{t}`");
        }
        Param::Out(t.to_string())
    } else if let Some(t) = ty.strip_prefix("opt ") {
        let t = t.trim();
        if !SCALARS.contains(&t) && t != "handle" {
            bail!("unknown opt type `{t}`");
        }
        Param::OptOut(t.to_string())
    } else if let Some(a) = arg_in(ty, "out_str") {
        Param::OutStr(a)
    } else if let Some(a) = arg_in(ty, "out_fixed") {
        Param::OutFixed(a.parse().context("out_fixed(N) needs a number")?)
    } else if let Some(a) = arg_in(ty, "in_bytes") {
        Param::InBytes(a)
    } else if let Some(a) = arg_in(ty, "out_bytes") {
        Param::OutBytes(a)
    } else {
        bail!("unknown parameter kind `{ty}`")
    };
    Ok((name, param))
}

fn parse_fields(s: &str) -> Result<Vec<(String, String)>> {
    split_params(s)
        .iter()
        .map(|f| {
            let (n, t) = f.split_once(':').context("field needs `name: type`")?;
            let t = t.trim().to_string();
            if !MSG_TYPES.contains(&t.as_str()) {
                bail!("unknown field type `{t}`");
            }
            Ok((n.trim().to_string(), t))
        })
        .collect()
}

pub fn parse(text: &str) -> Result<Spec> {
    // join continuation lines
    let mut decls: Vec<(usize, String)> = Vec::new();
    for (no, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("");
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let last = decls
                .last_mut()
                .context("continuation line before any declaration")?;
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            decls.push((no + 1, line.trim().to_string()));
        }
    }
    let mut spec = Spec::default();
    for (no, d) in decls {
        parse_decl(&d, &mut spec).with_context(|| format!("driver.api line {no}: {d}"))?;
    }
    validate(&spec)?;
    Ok(spec)
}

fn parse_decl(d: &str, spec: &mut Spec) -> Result<()> {
    let (kw, rest) = d
        .split_once(char::is_whitespace)
        .context("empty declaration")?;
    match kw {
        "auto" => {
            let (head, params, tail) = paren(rest)?;
            if !tail.trim().is_empty() {
                bail!("unexpected text after parameters");
            }
            let mut words = head.split_whitespace();
            let id = parse_id(words.next())?;
            let msg = words.next().context("missing message name")?.to_string();
            let mut noinit = false;
            let mut is_async = false;
            let mut symbols = Vec::new();
            for w in words {
                if w == "noinit" {
                    noinit = true;
                } else if w == "async" {
                    is_async = true;
                } else {
                    symbols.extend(w.split('|').map(str::to_string));
                }
            }
            let params = split_params(params)
                .iter()
                .map(|p| parse_param(p))
                .collect::<Result<Vec<_>>>()?;
            if is_async
                && params.iter().any(|(_, p)| {
                    matches!(
                        p,
                        Param::Out(_)
                            | Param::OptOut(_)
                            | Param::OutStr(_)
                            | Param::OutFixed(_)
                            | Param::OutBytes(_)
                    )
                })
            {
                bail!("an async call cannot have results");
            }
            spec.autos.push(Auto {
                id,
                msg,
                noinit,
                is_async,
                symbols,
                params,
            });
        }
        "msg" => {
            let (head, req, tail) = paren(rest)?;
            let tail = tail.trim().strip_prefix("->").context("expected `->`")?;
            let (_, rep, tail2) = paren(tail)?;
            if !tail2.trim().is_empty() {
                bail!("unexpected text after reply fields");
            }
            let mut words = head.split_whitespace();
            let id = parse_id(words.next())?;
            let msg = words.next().context("missing message name")?.to_string();
            spec.msgs.push(Msg {
                id,
                msg,
                req: parse_fields(req)?,
                rep: parse_fields(rep)?,
            });
        }
        "custom" => {
            let (head, params, _) = paren(rest)?;
            let mut noinit = false;
            let mut extra = false;
            let mut symbols = Vec::new();
            for w in head.split_whitespace() {
                if w == "noinit" {
                    noinit = true;
                } else if w == "extra" {
                    extra = true;
                } else {
                    symbols.extend(w.split('|').map(str::to_string));
                }
            }
            let params = split_params(params)
                .iter()
                .map(|p| {
                    let (n, t) = p.split_once(':').context("parameter needs `name: Type`")?;
                    Ok((n.trim().to_string(), t.trim().to_string()))
                })
                .collect::<Result<Vec<_>>>()?;
            spec.customs.push(Custom {
                noinit,
                extra,
                symbols,
                params,
            });
        }
        other => bail!("unknown declaration `{other}`"),
    }
    Ok(())
}

fn parse_id(w: Option<&str>) -> Result<u32> {
    let w = w.context("missing id")?;
    let v = if let Some(h) = w.strip_prefix("0x") {
        u32::from_str_radix(h, 16)?
    } else {
        w.parse()?
    };
    if v == 0 {
        bail!("id 0 is reserved");
    }
    Ok(v)
}

fn validate(spec: &Spec) -> Result<()> {
    let mut ids = std::collections::BTreeMap::new();
    let mut names = std::collections::BTreeSet::new();
    let mut syms = std::collections::BTreeSet::new();
    let all = spec
        .autos
        .iter()
        .map(|a| (a.id, &a.msg))
        .chain(spec.msgs.iter().map(|m| (m.id, &m.msg)));
    for (id, name) in all {
        if let Some(prev) = ids.insert(id, name.clone()) {
            bail!("id {id} used by both {prev} and {name}");
        }
        if !names.insert(name.clone()) {
            bail!("message {name} declared twice");
        }
    }
    let symbols = spec
        .autos
        .iter()
        .flat_map(|a| a.symbols.iter())
        .chain(spec.customs.iter().flat_map(|c| c.symbols.iter()));
    for s in symbols {
        if !syms.insert(s.clone()) {
            bail!("symbol {s} declared twice");
        }
    }
    for a in &spec.autos {
        for (_, p) in &a.params {
            let len = match p {
                Param::OutStr(l) | Param::InBytes(l) | Param::OutBytes(l) => Some(l),
                _ => None,
            };
            if let Some(l) = len {
                if !a.params.iter().any(|(n, _)| n == l) {
                    bail!("{}: length parameter `{l}` does not exist", a.msg);
                }
            }
        }
    }
    Ok(())
}

pub fn snake(s: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
            let next_lower = i + 1 < chars.len() && chars[i + 1].is_ascii_lowercase();
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            let prev_digit = i > 0 && chars[i - 1].is_ascii_digit();
            if i > 0
                && (prev_lower || ((prev_upper || prev_digit) && next_lower))
                && !out.ends_with('_')
            {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_declaration_kind() {
        let s = parse(
            "auto 1 DeviceGet cuDeviceGet (device: out i32, ordinal: i32)\n\
             msg 2 MemAlloc (size: u64) -> (ptr: u64)\n\
             custom noinit cuGetProcAddress|cuGetProcAddress_v2 (symbol: *const c_char,\n  pfn: *mut *mut c_void)\n",
        )
        .unwrap();
        assert_eq!(
            s.autos[0].params[0],
            ("device".into(), Param::Out("i32".into()))
        );
        assert_eq!(s.msgs[0].rep, vec![("ptr".into(), "u64".into())]);
        assert!(s.customs[0].noinit);
        let a = parse("auto 3 Rec async cuEventRecord (event: handle, stream: handle)\n").unwrap();
        assert!(a.autos[0].is_async && !a.autos[0].noinit);
        assert!(parse("auto 3 G async cuDeviceGet (d: out i32, o: i32)\n").is_err());
        assert_eq!(s.customs[0].symbols.len(), 2);
        assert_eq!(s.customs[0].params.len(), 2);
    }

    #[test]
    fn rejects_duplicate_ids_and_bad_lengths() {
        assert!(parse("msg 1 A () -> ()\nmsg 1 B () -> ()\n").is_err());
        assert!(parse("auto 1 A cuA (p: in_bytes(n))\n").is_err());
        assert!(parse("auto 1 A cuA (p: pointer)\n").is_err());
    }

    #[test]
    fn snake_case() {
        assert_eq!(snake("cuDeviceGetUuid_v2"), "cu_device_get_uuid_v2");
        assert_eq!(snake("cuMemcpyHtoD_v2"), "cu_memcpy_hto_d_v2");
        assert_eq!(snake("cuCtxGetAPIVersion"), "cu_ctx_get_api_version");
        assert_eq!(snake("cuMemcpy2DAsync_v2"), "cu_memcpy2d_async_v2");
        assert_eq!(snake("MemsetD8Async"), "memset_d8_async");
    }
}
