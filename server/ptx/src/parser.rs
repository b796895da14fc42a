//! PTX text → syntax tree.
//!
//! A hand-written, byte-level lexer feeds a recursive-descent parser with a small lookahead
//! buffer. Both are total: any input yields either a [`Module`] or a [`ParseError`] carrying the
//! 1-based line of the problem; nothing here indexes without a bounds check, and nesting depth is
//! capped so hostile input cannot exhaust the stack.
//!
//! Skipped on the way: `//` and `/* */` comments, `.loc` and `.file` lines, `@@DWARF` lines,
//! `.pragma "…";`, `.section … { … }` blocks and per-function performance directives
//! (`.maxntid`, `.reqntid`, `.minnctapersm`, …).
//!
//! A forward declaration of a function (a header ending in `;`) followed by its definition yields
//! one [`Function`]: the definition replaces the declaration in place. A declaration after a
//! definition is ignored; two definitions of one name are an error.
//!
//! Representation notes: a `.vN` variable or parameter (`.global .v4 .f32 x[2]`) gets an extra
//! innermost dimension `N` and, without `.align`, the vector's natural alignment; `.ptr`, state
//! spaces and `.attribute(…)` qualifiers are dropped. A decimal float operand becomes
//! [`Operand::F64`] (the bits of the f64 value); `-` before an `0f`/`0d` literal flips its sign bit.
//! A missing `;` is reported on the line of the statement it should end; an unclosed `{` on the
//! line of the brace.
//!
//! Not supported (reported as errors): `.branchtargets`/`.calltargets` tables, texture/surface
//! declarations (`.tex`, `.texref`, …) and tensor-map style addresses (`[%rd1, {%r1, %r2}]`),
//! vector register declarations (`.reg .v4 .f32 %v`), `mask(sym)` initialisers, `.alias`.

use std::collections::{HashMap, VecDeque};

use crate::ast::{
    Function, Init, Instruction, Module, Operand, ParseError, RegName, Space, Statement, Type,
    Variable,
};

/// Parses PTX text into a [`Module`].
pub fn parse(text: &str) -> Result<Module, ParseError> {
    Parser::new(text).module()
}

/// Deepest nesting accepted for `{ … }` blocks, initialiser braces and operand lists.
const MAX_DEPTH: u32 = 64;

/// Performance-tuning directives allowed between a function's parameter list and its body; each
/// is followed by zero or more comma-separated integers.
const PERF_DIRECTIVES: &[&str] = &[
    ".maxntid",
    ".reqntid",
    ".minnctapersm",
    ".maxnctapersm",
    ".maxnreg",
    ".maxclusterrank",
    ".noreturn",
    ".explicitcluster",
    ".reqnctapercluster",
    ".blocksareclusters",
    ".abi_preserve",
    ".abi_preserve_control",
];

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Identifier, directive (`.reg`), register (`%r1`, `%tid.x`) or dotted opcode
    /// (`ld.global.v4.f32`, `mbarrier.try_wait.shared::cta.b64`).
    Ident,
    /// Integer literal (decimal, hex, octal, binary; `U` suffix allowed).
    Int(u64),
    /// `0fXXXXXXXX`.
    F32(u32),
    /// `0dXXXXXXXXXXXXXXXX`.
    F64(u64),
    /// Decimal floating-point literal (`1.5`, `2e10`).
    Float(f64),
    /// `"…"` (text includes the quotes).
    Str,
    /// Single punctuation character.
    Punct(u8),
    /// End of input.
    Eof,
    /// A lexical error; the message is in `Lexer::err`.
    Error,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    line: u32,
}

impl Token<'_> {
    fn is_punct(&self, c: u8) -> bool {
        self.kind == Kind::Punct(c)
    }

    fn is_ident(&self, s: &str) -> bool {
        self.kind == Kind::Ident && self.text == s
    }

    /// An identifier that is not a directive (does not start with `.`).
    fn is_name(&self) -> bool {
        self.kind == Kind::Ident && !self.text.starts_with('.')
    }

    /// A directive (`.reg`, `.u32`, …).
    fn is_directive(&self) -> bool {
        self.kind == Kind::Ident && self.text.starts_with('.')
    }

    fn describe(&self) -> String {
        match self.kind {
            Kind::Eof => "end of input".to_string(),
            _ => format!("'{}'", self.text),
        }
    }
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: u32,
    /// Set once an error token has been produced; later calls return `Eof`.
    err: Option<ParseError>,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            src,
            bytes: src.as_bytes(),
            pos: 0,
            line: 1,
            err: None,
        }
    }

    fn at(&self, i: usize) -> u8 {
        self.bytes.get(i).copied().unwrap_or(0)
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.src.get(start..end).unwrap_or("")
    }

    fn error(&mut self, line: u32, msg: String) -> Token<'a> {
        if self.err.is_none() {
            self.err = Some(ParseError { line, msg });
        }
        self.pos = self.bytes.len();
        Token {
            kind: Kind::Error,
            text: "",
            line,
        }
    }

    /// Advances to the end of the current line (the newline itself is left in place).
    fn skip_line(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos] != b'\n' {
            self.pos += 1;
        }
    }

    /// Skips whitespace and comments. Returns an error token for an unterminated block comment.
    fn skip_trivia(&mut self) -> Option<Token<'a>> {
        loop {
            let c = self.at(self.pos);
            match c {
                b'\n' => {
                    self.line = self.line.saturating_add(1);
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | 0x0b | 0x0c => self.pos += 1,
                b'/' if self.at(self.pos + 1) == b'/' => self.skip_line(),
                b'/' if self.at(self.pos + 1) == b'*' => {
                    let start_line = self.line;
                    self.pos += 2;
                    loop {
                        if self.pos >= self.bytes.len() {
                            return Some(
                                self.error(start_line, "unterminated '/*' comment".to_string()),
                            );
                        }
                        let b = self.bytes[self.pos];
                        if b == b'*' && self.at(self.pos + 1) == b'/' {
                            self.pos += 2;
                            break;
                        }
                        if b == b'\n' {
                            self.line = self.line.saturating_add(1);
                        }
                        self.pos += 1;
                    }
                }
                // `@@DWARF …` lines (old-style debug info).
                b'@' if self.at(self.pos + 1) == b'@' => self.skip_line(),
                _ => return None,
            }
        }
    }

    fn next(&mut self) -> Token<'a> {
        loop {
            if self.err.is_some() {
                return Token {
                    kind: Kind::Eof,
                    text: "",
                    line: self.line,
                };
            }
            if let Some(t) = self.skip_trivia() {
                return t;
            }
            let line = self.line;
            let start = self.pos;
            let Some(&c) = self.bytes.get(start) else {
                return Token {
                    kind: Kind::Eof,
                    text: "",
                    line,
                };
            };
            let ident_start = c.is_ascii_alphabetic()
                || c == b'_'
                || c == b'$'
                || ((c == b'.' || c == b'%') && is_ident_char(self.at(start + 1)));
            if ident_start {
                self.pos += 1;
                self.scan_ident_rest();
                let text = self.slice(start, self.pos);
                if text == ".loc" || text == ".file" {
                    self.skip_line();
                    continue;
                }
                return Token {
                    kind: Kind::Ident,
                    text,
                    line,
                };
            }
            if c.is_ascii_digit() {
                return self.number(start, line);
            }
            if c == b'"' {
                self.pos += 1;
                loop {
                    match self.bytes.get(self.pos) {
                        None => {
                            return self.error(line, "unterminated string literal".to_string());
                        }
                        Some(b'"') => {
                            self.pos += 1;
                            break;
                        }
                        Some(b'\\') => {
                            if self.at(self.pos + 1) == b'\n' {
                                self.line = self.line.saturating_add(1);
                            }
                            self.pos += 2;
                        }
                        Some(b'\n') => {
                            return self.error(line, "unterminated string literal".to_string());
                        }
                        Some(_) => self.pos += 1,
                    }
                }
                let end = self.pos.min(self.bytes.len());
                return Token {
                    kind: Kind::Str,
                    text: self.slice(start, end),
                    line,
                };
            }
            if b",;:{}[]()<>+-!@|=".contains(&c) {
                self.pos += 1;
                return Token {
                    kind: Kind::Punct(c),
                    text: self.slice(start, start + 1),
                    line,
                };
            }
            let shown = if c.is_ascii_graphic() {
                format!("'{}'", c as char)
            } else {
                format!("byte 0x{c:02x}")
            };
            return self.error(line, format!("unexpected character {shown}"));
        }
    }

    /// Continues an identifier: `[A-Za-z0-9_$]`, plus `.` or `::` when followed by such a
    /// character (so `ld.global.nc.v4.f32`, `%tid.x` and `mbarrier.arrive.shared::cta.b64` are
    /// single tokens).
    fn scan_ident_rest(&mut self) {
        loop {
            let c = self.at(self.pos);
            if is_ident_char(c) {
                self.pos += 1;
            } else if c == b'.' && is_ident_char(self.at(self.pos + 1)) {
                self.pos += 2;
            } else if c == b':'
                && self.at(self.pos + 1) == b':'
                && is_ident_char(self.at(self.pos + 2))
            {
                self.pos += 3;
            } else {
                break;
            }
        }
    }

    fn number(&mut self, start: usize, line: u32) -> Token<'a> {
        let c1 = self.at(start + 1);
        let kind = if self.at(start) == b'0' && matches!(c1, b'f' | b'F' | b'd' | b'D') {
            self.pos = start + 2;
            let digits_start = self.pos;
            while self.at(self.pos).is_ascii_hexdigit() {
                self.pos += 1;
            }
            let digits = self.slice(digits_start, self.pos);
            let want = if matches!(c1, b'f' | b'F') { 8 } else { 16 };
            if digits.len() != want {
                self.scan_ident_rest();
                let text = self.slice(start, self.pos);
                return self.error(
                    line,
                    format!("bad float literal '{text}': expected {want} hex digits"),
                );
            }
            let Ok(bits) = u64::from_str_radix(digits, 16) else {
                return self.error(line, format!("bad float literal '0{}{digits}'", c1 as char));
            };
            if want == 8 {
                Kind::F32(bits as u32)
            } else {
                Kind::F64(bits)
            }
        } else if self.at(start) == b'0' && matches!(c1, b'x' | b'X' | b'b' | b'B') {
            let radix = if matches!(c1, b'x' | b'X') { 16 } else { 2 };
            self.pos = start + 2;
            let digits_start = self.pos;
            while self.at(self.pos).is_ascii_hexdigit() {
                self.pos += 1;
            }
            let digits = self.slice(digits_start, self.pos);
            match u64::from_str_radix(digits, radix) {
                Ok(v) if !digits.is_empty() => {
                    if self.at(self.pos) == b'U' {
                        self.pos += 1;
                    }
                    Kind::Int(v)
                }
                _ => {
                    self.scan_ident_rest();
                    let text = self.slice(start, self.pos);
                    return self.error(line, format!("bad integer literal '{text}'"));
                }
            }
        } else {
            while self.at(self.pos).is_ascii_digit() {
                self.pos += 1;
            }
            let int_end = self.pos;
            let mut is_float = false;
            if self.at(self.pos) == b'.' && self.at(self.pos + 1).is_ascii_digit() {
                is_float = true;
                self.pos += 1;
                while self.at(self.pos).is_ascii_digit() {
                    self.pos += 1;
                }
            }
            if matches!(self.at(self.pos), b'e' | b'E') {
                let mut p = self.pos + 1;
                if matches!(self.at(p), b'+' | b'-') {
                    p += 1;
                }
                if self.at(p).is_ascii_digit() {
                    is_float = true;
                    while self.at(p).is_ascii_digit() {
                        p += 1;
                    }
                    self.pos = p;
                }
            }
            if is_float {
                let text = self.slice(start, self.pos);
                match text.parse::<f64>() {
                    Ok(v) => Kind::Float(v),
                    Err(_) => return self.error(line, format!("bad float literal '{text}'")),
                }
            } else {
                let digits = self.slice(start, int_end);
                let radix = if digits.len() > 1 && digits.starts_with('0') {
                    8
                } else {
                    10
                };
                let digits = if radix == 8 { &digits[1..] } else { digits };
                match u64::from_str_radix(digits, radix) {
                    Ok(v) => {
                        if self.at(self.pos) == b'U' {
                            self.pos += 1;
                        }
                        Kind::Int(v)
                    }
                    Err(_) => {
                        let text = self.slice(start, int_end);
                        return self.error(
                            line,
                            format!("bad integer literal '{text}' (out of range or bad digit)"),
                        );
                    }
                }
            }
        };
        if is_ident_char(self.at(self.pos)) || self.at(self.pos) == b'.' {
            self.scan_ident_rest();
            let text = self.slice(start, self.pos);
            return self.error(line, format!("bad numeric literal '{text}'"));
        }
        Token {
            kind,
            text: self.slice(start, self.pos),
            line,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

type PResult<T> = Result<T, ParseError>;

struct Parser<'a> {
    lx: Lexer<'a>,
    ahead: VecDeque<Token<'a>>,
    /// Line of the last consumed token.
    prev_line: u32,
}

/// Linkage flags collected before a declaration.
#[derive(Default, Clone, Copy)]
struct Linkage {
    is_extern: bool,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            lx: Lexer::new(text),
            ahead: VecDeque::with_capacity(4),
            prev_line: 1,
        }
    }

    // --- token plumbing -----------------------------------------------------------------------

    fn peek_at(&mut self, n: usize) -> Token<'a> {
        while self.ahead.len() <= n {
            let t = self.lx.next();
            self.ahead.push_back(t);
        }
        self.ahead.get(n).copied().unwrap_or(Token {
            kind: Kind::Eof,
            text: "",
            line: self.lx.line,
        })
    }

    fn peek(&mut self) -> Token<'a> {
        self.peek_at(0)
    }

    fn bump(&mut self) -> Token<'a> {
        let t = self.peek();
        if !matches!(t.kind, Kind::Eof | Kind::Error) {
            self.ahead.pop_front();
            self.prev_line = t.line;
        }
        t
    }

    /// The error to report when `tok` is not what `expected` describes. A lexical error token
    /// reports the lexer's own message instead.
    fn unexpected(&mut self, tok: Token<'a>, expected: &str) -> ParseError {
        if tok.kind == Kind::Error {
            if let Some(e) = self.lx.err.clone() {
                return e;
            }
        }
        // At end of input, point at the last real token rather than past the end.
        let line = if tok.kind == Kind::Eof {
            self.prev_line
        } else {
            tok.line
        };
        ParseError {
            line,
            msg: format!("expected {expected}, found {}", tok.describe()),
        }
    }

    fn err<T>(&self, line: u32, msg: impl Into<String>) -> PResult<T> {
        Err(ParseError {
            line,
            msg: msg.into(),
        })
    }

    fn expect_punct(&mut self, c: u8, what: &str) -> PResult<Token<'a>> {
        let t = self.peek();
        if t.is_punct(c) {
            Ok(self.bump())
        } else {
            Err(self.unexpected(t, what))
        }
    }

    /// Expects the `;` ending a statement. A missing one is reported on the line of the last
    /// token of the statement.
    fn expect_semi(&mut self, what: &str) -> PResult<()> {
        let t = self.peek();
        if t.is_punct(b';') {
            self.bump();
            return Ok(());
        }
        if t.kind == Kind::Error {
            return Err(self.unexpected(t, "';'"));
        }
        self.err(
            self.prev_line,
            format!(
                "missing ';' after {what} (found {} on line {})",
                t.describe(),
                t.line
            ),
        )
    }

    fn expect_name(&mut self, what: &str) -> PResult<Token<'a>> {
        let t = self.peek();
        if t.is_name() {
            Ok(self.bump())
        } else {
            Err(self.unexpected(t, what))
        }
    }

    fn expect_int(&mut self, what: &str) -> PResult<u64> {
        let t = self.peek();
        if let Kind::Int(v) = t.kind {
            self.bump();
            Ok(v)
        } else {
            Err(self.unexpected(t, what))
        }
    }

    fn expect_u32(&mut self, what: &str) -> PResult<u32> {
        let t = self.peek();
        let v = self.expect_int(what)?;
        u32::try_from(v).or_else(|_| self.err(t.line, format!("{what} {v} is out of range")))
    }

    // --- module scope -------------------------------------------------------------------------

    fn module(mut self) -> PResult<Module> {
        let mut m = Module {
            address_size: 64,
            ..Module::default()
        };
        let mut fn_index: HashMap<String, usize> = HashMap::new();
        loop {
            let t = self.peek();
            match t.kind {
                Kind::Eof => break,
                Kind::Ident if t.is_directive() => {}
                Kind::Punct(b'}') => return self.err(t.line, "unmatched '}'"),
                _ => return Err(self.unexpected(t, "a directive at module scope")),
            }
            match t.text {
                ".version" => {
                    self.bump();
                    let v = self.peek();
                    if !matches!(v.kind, Kind::Float(_) | Kind::Int(_)) {
                        return Err(self.unexpected(v, "a version number after .version"));
                    }
                    self.bump();
                    m.version = v.text.to_string();
                }
                ".target" => {
                    self.bump();
                    loop {
                        let n = self.expect_name("a target name after .target")?;
                        m.target.push(n.text.to_string());
                        if self.peek().is_punct(b',') {
                            self.bump();
                        } else {
                            break;
                        }
                    }
                }
                ".address_size" => {
                    self.bump();
                    let v = self.expect_u32("an address size")?;
                    if v != 32 && v != 64 {
                        return self.err(self.prev_line, format!("bad .address_size {v}"));
                    }
                    m.address_size = v;
                }
                ".pragma" => self.pragma()?,
                ".section" => self.skip_section()?,
                _ => {
                    let line = t.line;
                    let mut link = Linkage::default();
                    loop {
                        let t = self.peek();
                        match t.text {
                            ".visible" | ".weak" | ".common" if t.kind == Kind::Ident => {
                                self.bump();
                            }
                            ".extern" if t.kind == Kind::Ident => {
                                self.bump();
                                link.is_extern = true;
                            }
                            _ => break,
                        }
                    }
                    let t = self.peek();
                    if !t.is_directive() {
                        return Err(self.unexpected(t, "a declaration after linkage directives"));
                    }
                    match t.text {
                        ".entry" | ".func" => {
                            let f = self.function(link, line)?;
                            match fn_index.get(&f.name).copied() {
                                None => {
                                    fn_index.insert(f.name.clone(), m.functions.len());
                                    m.functions.push(f);
                                }
                                Some(i) => {
                                    let Some(old) = m.functions.get_mut(i) else {
                                        return self.err(line, "internal error: function index");
                                    };
                                    if f.body.is_some() {
                                        if old.body.is_some() {
                                            return self.err(
                                                f.line,
                                                format!(
                                                    "function '{}' is defined twice (first on \
                                                     line {})",
                                                    f.name, old.line
                                                ),
                                            );
                                        }
                                        *old = f;
                                    }
                                }
                            }
                        }
                        ".global" | ".const" | ".shared" | ".local" => {
                            let space = space_of(t.text).unwrap_or(Space::Global);
                            self.bump();
                            self.var_decl(space, link.is_extern, line, &mut m.globals)?;
                        }
                        _ => {
                            return self.err(t.line, format!("unknown directive '{}'", t.text));
                        }
                    }
                }
            }
        }
        Ok(m)
    }

    /// `.pragma "…";` (the `.pragma` token is next).
    fn pragma(&mut self) -> PResult<()> {
        self.bump();
        loop {
            let t = self.peek();
            if t.kind != Kind::Str {
                return Err(self.unexpected(t, "a string after .pragma"));
            }
            self.bump();
            if self.peek().is_punct(b',') {
                self.bump();
            } else {
                break;
            }
        }
        self.expect_semi(".pragma")
    }

    /// `.section name { … }` with balanced braces (the `.section` token is next).
    fn skip_section(&mut self) -> PResult<()> {
        self.bump();
        let t = self.peek();
        if t.kind != Kind::Ident {
            return Err(self.unexpected(t, "a section name"));
        }
        self.bump();
        let open = self.expect_punct(b'{', "'{' after .section name")?;
        let mut depth = 1u32;
        loop {
            let t = self.bump();
            match t.kind {
                Kind::Punct(b'{') => depth += 1,
                Kind::Punct(b'}') => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Kind::Eof => {
                    return self.err(
                        open.line,
                        "unclosed '{' of .section: unexpected end of input",
                    )
                }
                Kind::Error => return Err(self.unexpected(t, "section contents")),
                _ => {}
            }
        }
    }

    // --- variables ----------------------------------------------------------------------------

    /// Parses `[.align N] [.vN] .type name[dims] [= init] {, name…};` after the state space.
    fn var_decl(
        &mut self,
        space: Space,
        is_extern: bool,
        line: u32,
        out: &mut Vec<Variable>,
    ) -> PResult<()> {
        let (ty, align, vec) = self.var_qualifiers(false)?;
        loop {
            let name = self.expect_name("a variable name")?;
            let mut dims = self.dims()?;
            let mut align = align;
            if vec > 1 {
                dims.push(u64::from(vec));
                if align.is_none() {
                    align = Some(vec.saturating_mul(ty.size()));
                }
            }
            let mut init = Vec::new();
            if self.peek().is_punct(b'=') {
                self.bump();
                self.init_item(&mut init, 0)?;
            }
            out.push(Variable {
                space,
                name: name.text.to_string(),
                ty,
                align,
                dims,
                is_extern,
                init,
                line,
            });
            if self.peek().is_punct(b',') {
                self.bump();
            } else {
                break;
            }
        }
        self.expect_semi("variable declaration")
    }

    /// Qualifiers before a variable or parameter name: `.align N`, `.vN`, the type, and (for
    /// parameters) `.ptr` and a state space. Returns (type, align, vector width).
    fn var_qualifiers(&mut self, param: bool) -> PResult<(Type, Option<u32>, u32)> {
        let mut ty = None;
        let mut align = None;
        let mut vec = 1u32;
        loop {
            let t = self.peek();
            if !t.is_directive() {
                break;
            }
            let suffix = t.text.get(1..).unwrap_or("");
            match t.text {
                ".align" => {
                    self.bump();
                    let a = self.expect_u32("an alignment after .align")?;
                    if a == 0 || !a.is_power_of_two() {
                        return self.err(t.line, format!("bad alignment {a}"));
                    }
                    align = Some(a);
                }
                ".attribute" => {
                    self.bump();
                    self.expect_punct(b'(', "'(' after .attribute")?;
                    loop {
                        let t = self.bump();
                        match t.kind {
                            Kind::Punct(b')') => break,
                            Kind::Ident | Kind::Punct(b',') => {}
                            _ => return Err(self.unexpected(t, "')' closing .attribute")),
                        }
                    }
                }
                ".v2" | ".v4" | ".v8" => {
                    self.bump();
                    vec = if t.text == ".v2" {
                        2
                    } else if t.text == ".v4" {
                        4
                    } else {
                        8
                    };
                }
                ".ptr" | ".global" | ".shared" | ".const" | ".local" if param => {
                    self.bump();
                }
                _ => {
                    let Some(tt) = Type::from_suffix(suffix) else {
                        return self.err(t.line, format!("unknown type '{}'", t.text));
                    };
                    if ty.is_some() {
                        return self
                            .err(t.line, format!("second type '{}' in declaration", t.text));
                    }
                    self.bump();
                    ty = Some(tt);
                }
            }
        }
        match ty {
            Some(ty) => Ok((ty, align, vec)),
            None => {
                let t = self.peek();
                Err(self.unexpected(t, "a type in declaration"))
            }
        }
    }

    /// `[N]…` array dimensions (`[]` → 0).
    fn dims(&mut self) -> PResult<Vec<u64>> {
        let mut dims = Vec::new();
        while self.peek().is_punct(b'[') {
            self.bump();
            if self.peek().is_punct(b']') {
                self.bump();
                dims.push(0);
                continue;
            }
            let n = self.expect_int("an array dimension")?;
            self.expect_punct(b']', "']' closing array dimension")?;
            dims.push(n);
        }
        Ok(dims)
    }

    /// One initialiser element or brace list (flattened into `out`).
    fn init_item(&mut self, out: &mut Vec<Init>, depth: u32) -> PResult<()> {
        let t = self.peek();
        if t.is_punct(b'{') {
            if depth >= MAX_DEPTH {
                return self.err(t.line, "initialiser nested too deeply");
            }
            self.bump();
            if self.peek().is_punct(b'}') {
                self.bump();
                return Ok(());
            }
            loop {
                self.init_item(out, depth + 1)?;
                let t = self.peek();
                if t.is_punct(b',') {
                    self.bump();
                } else if t.is_punct(b'}') {
                    self.bump();
                    return Ok(());
                } else {
                    return Err(self.unexpected(t, "',' or '}' in initialiser"));
                }
            }
        }
        let neg = if t.is_punct(b'-') {
            self.bump();
            true
        } else {
            false
        };
        let t = self.peek();
        let item = match t.kind {
            Kind::Int(v) => Init::Int(if neg { v.wrapping_neg() } else { v }),
            Kind::Float(f) => Init::Float(if neg { -f } else { f }),
            Kind::F32(b) => Init::FloatBits(u64::from(if neg { b ^ 0x8000_0000 } else { b })),
            Kind::F64(b) => Init::FloatBits(if neg { b ^ (1 << 63) } else { b }),
            Kind::Ident if t.is_name() && !neg && !t.text.starts_with('%') => {
                self.bump();
                let name = if t.text == "generic" && self.peek().is_punct(b'(') {
                    self.bump();
                    let n = self.expect_name("a symbol inside generic(…)")?;
                    self.expect_punct(b')', "')' closing generic(…)")?;
                    n.text
                } else {
                    t.text
                };
                let offset = self.symbol_offset()?;
                out.push(Init::Symbol(name.to_string(), offset));
                return Ok(());
            }
            _ => return Err(self.unexpected(t, "an initialiser value")),
        };
        self.bump();
        out.push(item);
        Ok(())
    }

    /// Optional `+N`, `-N` or `+-N` after a symbol.
    fn symbol_offset(&mut self) -> PResult<i64> {
        let t = self.peek();
        let mut neg = false;
        if t.is_punct(b'+') {
            self.bump();
            if self.peek().is_punct(b'-') {
                self.bump();
                neg = true;
            }
        } else if t.is_punct(b'-') {
            self.bump();
            neg = true;
        } else {
            return Ok(0);
        }
        let v = self.expect_int("an integer offset")? as i64;
        Ok(if neg { v.wrapping_neg() } else { v })
    }

    // --- functions ----------------------------------------------------------------------------

    fn function(&mut self, link: Linkage, line: u32) -> PResult<Function> {
        let kw = self.bump();
        let is_entry = kw.text == ".entry";
        let mut returns = Vec::new();
        if self.peek().is_punct(b'(') {
            if is_entry {
                let t = self.peek();
                return self.err(t.line, "a .entry cannot have return parameters");
            }
            returns = self.param_list()?;
        }
        let name = self.expect_name("a function name")?;
        let params = if self.peek().is_punct(b'(') {
            self.param_list()?
        } else {
            Vec::new()
        };
        // Performance directives (`.maxntid`/`.reqntid` are kept: they bound the block size).
        let mut max_threads = 0u32;
        loop {
            let t = self.peek();
            if t.is_ident(".pragma") {
                self.pragma()?;
                continue;
            }
            if !(t.kind == Kind::Ident && PERF_DIRECTIVES.contains(&t.text)) {
                break;
            }
            self.bump();
            let mut dims = vec![];
            if let Kind::Int(v) = self.peek().kind {
                self.bump();
                dims.push(v);
                while self.peek().is_punct(b',') {
                    self.bump();
                    dims.push(self.expect_int(&format!("an integer after '{},'", t.text))?);
                }
            }
            if matches!(t.text, ".maxntid" | ".reqntid") && !dims.is_empty() {
                let n = dims.iter().fold(1u64, |a, &d| a.saturating_mul(d.max(1)));
                max_threads = n.min(u32::MAX as u64) as u32;
            }
        }
        let t = self.peek();
        let body = if t.is_punct(b';') {
            self.bump();
            None
        } else if t.is_punct(b'{') {
            self.bump();
            Some(self.statements(t.line, 1)?)
        } else {
            return Err(self.unexpected(t, "'{' or ';' after function header"));
        };
        Ok(Function {
            name: name.text.to_string(),
            is_entry,
            is_extern: link.is_extern && body.is_none(),
            returns,
            params,
            body,
            line,
            max_threads,
        })
    }

    /// `( param, … )`.
    fn param_list(&mut self) -> PResult<Vec<Variable>> {
        self.expect_punct(b'(', "'('")?;
        let mut out = Vec::new();
        if self.peek().is_punct(b')') {
            self.bump();
            return Ok(out);
        }
        loop {
            let t = self.peek();
            let space = match t.text {
                ".param" if t.kind == Kind::Ident => Space::Param,
                ".reg" if t.kind == Kind::Ident => Space::Reg,
                _ => return Err(self.unexpected(t, "'.param' or '.reg' in parameter list")),
            };
            self.bump();
            let (ty, align, vec) = self.var_qualifiers(true)?;
            let name = self.expect_name("a parameter name")?;
            let mut dims = self.dims()?;
            let mut align = align;
            if vec > 1 {
                dims.push(u64::from(vec));
                if align.is_none() {
                    align = Some(vec.saturating_mul(ty.size()));
                }
            }
            out.push(Variable {
                space,
                name: name.text.to_string(),
                ty,
                align,
                dims,
                is_extern: false,
                init: Vec::new(),
                line: t.line,
            });
            let t = self.peek();
            if t.is_punct(b',') {
                self.bump();
            } else if t.is_punct(b')') {
                self.bump();
                return Ok(out);
            } else {
                return Err(self.unexpected(t, "',' or ')' in parameter list"));
            }
        }
    }

    // --- bodies -------------------------------------------------------------------------------

    /// Statements up to and including the `}` closing a block opened on `open_line`.
    fn statements(&mut self, open_line: u32, depth: u32) -> PResult<Vec<Statement>> {
        let mut out = Vec::new();
        loop {
            let t = self.peek();
            match t.kind {
                Kind::Eof => {
                    return self.err(
                        open_line,
                        "unclosed '{' (unexpected end of input before its '}')",
                    );
                }
                Kind::Error => return Err(self.unexpected(t, "a statement")),
                Kind::Punct(b'}') => {
                    self.bump();
                    return Ok(out);
                }
                Kind::Punct(b'{') => {
                    if depth >= MAX_DEPTH {
                        return self.err(t.line, "blocks nested too deeply");
                    }
                    self.bump();
                    out.push(Statement::Block(self.statements(t.line, depth + 1)?));
                }
                Kind::Punct(b';') => {
                    self.bump();
                }
                Kind::Punct(b'@') => out.push(Statement::Instr(self.instruction()?)),
                Kind::Ident if t.is_directive() => match t.text {
                    ".reg" => {
                        self.bump();
                        out.push(self.reg_decl()?);
                    }
                    // Inline asm writes `.reg.b32 f;` without a space.
                    d if d.starts_with(".reg.") => {
                        self.bump();
                        out.push(self.reg_decl_typed(&d[4..], t.line)?);
                    }
                    ".local" | ".shared" | ".param" | ".global" | ".const" => {
                        let space = space_of(t.text).unwrap_or(Space::Local);
                        self.bump();
                        let mut vars = Vec::new();
                        self.var_decl(space, false, t.line, &mut vars)?;
                        out.extend(vars.into_iter().map(Statement::Var));
                    }
                    ".extern" => {
                        self.bump();
                        let s = self.peek();
                        let Some(space) = space_of(s.text).filter(|_| s.is_directive()) else {
                            return Err(self.unexpected(s, "a state space after .extern"));
                        };
                        self.bump();
                        let mut vars = Vec::new();
                        self.var_decl(space, true, t.line, &mut vars)?;
                        out.extend(vars.into_iter().map(Statement::Var));
                    }
                    ".pragma" => self.pragma()?,
                    ".entry" | ".func" | ".visible" | ".weak" | ".common" | ".version"
                    | ".target" | ".address_size" | ".section" => {
                        return self.err(
                            open_line,
                            format!(
                                "unclosed '{{' (module-scope '{}' found on line {} before its \
                                 '}}')",
                                t.text, t.line
                            ),
                        );
                    }
                    _ => return self.err(t.line, format!("unknown directive '{}'", t.text)),
                },
                Kind::Ident if self.peek_at(1).is_punct(b':') => {
                    if self.peek_at(2).is_ident(".callprototype") {
                        out.push(self.prototype()?);
                    } else {
                        self.bump();
                        self.bump();
                        out.push(Statement::Label(t.text.to_string()));
                    }
                }
                Kind::Ident => out.push(Statement::Instr(self.instruction()?)),
                _ => return Err(self.unexpected(t, "a statement")),
            }
        }
    }

    /// `.reg [.vN] .ty names;` (after `.reg`).
    fn reg_decl(&mut self) -> PResult<Statement> {
        let t = self.peek();
        if matches!(t.text, ".v2" | ".v4" | ".v8") && t.kind == Kind::Ident {
            return self.err(t.line, "vector register declarations are not supported");
        }
        if !t.is_directive() {
            return Err(self.unexpected(t, "a type after .reg"));
        }
        self.bump();
        self.reg_decl_typed(t.text, t.line)
    }

    /// The rest of a register declaration once its type (`.b32`) is known.
    fn reg_decl_typed(&mut self, ty_text: &str, line: u32) -> PResult<Statement> {
        let Some(ty) = Type::from_suffix(ty_text.get(1..).unwrap_or("")) else {
            return self.err(line, format!("unknown type '{ty_text}'"));
        };
        let mut names = Vec::new();
        loop {
            let n = self.expect_name("a register name")?;
            if self.peek().is_punct(b'<') {
                self.bump();
                let count = self.expect_u32("a register count")?;
                self.expect_punct(b'>', "'>' closing register range")?;
                names.push(RegName::Range(n.text.to_string(), count));
            } else {
                names.push(RegName::Single(n.text.to_string()));
            }
            if self.peek().is_punct(b',') {
                self.bump();
            } else {
                break;
            }
        }
        self.expect_semi("register declaration")?;
        Ok(Statement::Reg { ty, names })
    }

    /// `name : .callprototype …;`
    fn prototype(&mut self) -> PResult<Statement> {
        let name = self.bump();
        self.bump(); // ':'
        self.bump(); // .callprototype
        let mut parens = 0u32;
        loop {
            let t = self.peek();
            match t.kind {
                Kind::Punct(b';') if parens == 0 => {
                    self.bump();
                    return Ok(Statement::Prototype(name.text.to_string()));
                }
                Kind::Punct(b'(') => parens += 1,
                Kind::Punct(b')') => {
                    if parens == 0 {
                        return self.err(t.line, "unmatched ')' in .callprototype");
                    }
                    parens -= 1;
                }
                Kind::Punct(b'{') | Kind::Punct(b'}') | Kind::Eof | Kind::Error => {
                    self.expect_semi(".callprototype")?;
                }
                _ => {}
            }
            self.bump();
        }
    }

    fn instruction(&mut self) -> PResult<Instruction> {
        let first = self.peek();
        let line = first.line;
        let mut guard = None;
        if first.is_punct(b'@') {
            self.bump();
            let neg = if self.peek().is_punct(b'!') {
                self.bump();
                true
            } else {
                false
            };
            let p = self.expect_name("a predicate register after '@'")?;
            guard = Some((p.text.to_string(), neg));
        }
        let op = self.peek();
        if !op.is_name() || op.text.starts_with('%') {
            return Err(self.unexpected(op, "an instruction opcode"));
        }
        self.bump();
        let mut parts = op.text.split('.');
        let opcode = parts.next().unwrap_or("").to_string();
        let mods: Vec<String> = parts.map(str::to_string).collect();
        let mut operands = Vec::new();
        if !self.peek().is_punct(b';') {
            loop {
                operands.push(self.operand(0)?);
                let t = self.peek();
                if t.is_punct(b',') {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        self.expect_semi(&format!("instruction '{}'", op.text))?;
        Ok(Instruction {
            guard,
            op: opcode,
            mods,
            operands,
            line,
        })
    }

    fn operand(&mut self, depth: u32) -> PResult<Operand> {
        let t = self.peek();
        if depth >= MAX_DEPTH {
            return self.err(t.line, "operand nested too deeply");
        }
        match t.kind {
            Kind::Punct(b'{') => {
                self.bump();
                let items = self.operand_seq(b'}', depth, "vector operand")?;
                if items.is_empty() {
                    return self.err(t.line, "empty vector operand");
                }
                Ok(Operand::Vector(items))
            }
            Kind::Punct(b'(') => {
                self.bump();
                Ok(Operand::List(self.operand_seq(
                    b')',
                    depth,
                    "operand list",
                )?))
            }
            Kind::Punct(b'[') => {
                self.bump();
                self.address()
            }
            Kind::Punct(b'!') => {
                self.bump();
                let p = self.expect_name("a predicate after '!'")?;
                Ok(Operand::Not(p.text.to_string()))
            }
            Kind::Punct(b'-') => {
                self.bump();
                let t = self.peek();
                let op = match t.kind {
                    Kind::Int(v) => Operand::Imm(v.wrapping_neg()),
                    Kind::F32(b) => Operand::F32(b ^ 0x8000_0000),
                    Kind::F64(b) => Operand::F64(b ^ (1 << 63)),
                    Kind::Float(f) => Operand::F64((-f).to_bits()),
                    Kind::Ident if t.is_name() => Operand::Neg(Box::new(self.name_operand(t)?)),
                    _ => return Err(self.unexpected(t, "an operand after '-'")),
                };
                if !matches!(op, Operand::Neg(_)) {
                    self.bump();
                }
                Ok(op)
            }
            Kind::Int(v) => {
                self.bump();
                Ok(Operand::Imm(v))
            }
            Kind::F32(b) => {
                self.bump();
                Ok(Operand::F32(b))
            }
            Kind::F64(b) => {
                self.bump();
                Ok(Operand::F64(b))
            }
            Kind::Float(f) => {
                self.bump();
                Ok(Operand::F64(f.to_bits()))
            }
            Kind::Ident if t.is_name() => {
                let op = self.name_operand(t)?;
                if self.peek().is_punct(b'|') {
                    self.bump();
                    let b = self.expect_name("a register after '|'")?;
                    let a = match op {
                        Operand::Reg(a) | Operand::Symbol(a) => a,
                        _ => String::new(),
                    };
                    return Ok(Operand::Pair(a, b.text.to_string()));
                }
                Ok(op)
            }
            _ => Err(self.unexpected(t, "an operand")),
        }
    }

    /// A register or symbol operand (the token `t` is next and is a name).
    fn name_operand(&mut self, t: Token<'a>) -> PResult<Operand> {
        if t.text.starts_with('%') {
            self.bump();
            return Ok(Operand::Reg(t.text.to_string()));
        }
        if t.text.contains('.') {
            // Symbols never contain dots; this is most likely the next instruction.
            return self.err(
                self.prev_line,
                format!("unexpected '{}' on line {} (missing ';'?)", t.text, t.line),
            );
        }
        self.bump();
        Ok(Operand::Symbol(t.text.to_string()))
    }

    /// Comma-separated operands up to `close` (the opening bracket is consumed).
    fn operand_seq(&mut self, close: u8, depth: u32, what: &str) -> PResult<Vec<Operand>> {
        let mut items = Vec::new();
        if self.peek().is_punct(close) {
            self.bump();
            return Ok(items);
        }
        loop {
            items.push(self.operand(depth + 1)?);
            let t = self.peek();
            if t.is_punct(b',') {
                self.bump();
            } else if t.is_punct(close) {
                self.bump();
                return Ok(items);
            } else {
                let expected = format!("',' or '{}' in {what}", close as char);
                return Err(self.unexpected(t, &expected));
            }
        }
    }

    /// `[base]`, `[base+off]`, `[base+-off]`, `[base-off]`, `[imm]` (after `[`). Texture and
    /// surface operands (`[tex, {x, y}]`, `[tex, sampler, {x}]`) come back as an
    /// `Operand::List` whose first element is the address, so that such instructions parse and
    /// are rejected by name (with their line) when the module is decoded.
    fn address(&mut self) -> PResult<Operand> {
        let t = self.peek();
        let (base, offset) = if t.is_name() {
            self.bump();
            (t.text.to_string(), self.symbol_offset()?)
        } else {
            let neg = if t.is_punct(b'-') {
                self.bump();
                true
            } else {
                false
            };
            let v = self.expect_int("a register, symbol or integer address")? as i64;
            (String::new(), if neg { v.wrapping_neg() } else { v })
        };
        if self.peek().is_punct(b',') {
            self.bump();
            let mut items = vec![Operand::Address { base, offset }];
            items.extend(self.operand_seq(b']', 1, "texture or surface operand")?);
            return Ok(Operand::List(items));
        }
        self.expect_punct(b']', "']' closing address")?;
        Ok(Operand::Address { base, offset })
    }
}

fn space_of(s: &str) -> Option<Space> {
    Some(match s {
        ".reg" => Space::Reg,
        ".global" => Space::Global,
        ".shared" => Space::Shared,
        ".local" => Space::Local,
        ".const" => Space::Const,
        ".param" => Space::Param,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Module {
        match parse(text) {
            Ok(m) => m,
            Err(e) => panic!("parse failed: {e}\n--- input ---\n{text}"),
        }
    }

    fn err(text: &str) -> ParseError {
        match parse(text) {
            Ok(m) => panic!("parse unexpectedly succeeded: {m:#?}\n--- input ---\n{text}"),
            Err(e) => e,
        }
    }

    /// Wraps body text in a minimal entry and returns its statements.
    fn body(text: &str) -> Vec<Statement> {
        let src =
            format!(".version 9.5\n.target sm_75\n.address_size 64\n.entry k()\n{{\n{text}\n}}\n");
        let m = ok(&src);
        m.functions
            .into_iter()
            .next()
            .and_then(|f| f.body)
            .expect("entry with a body")
    }

    /// All instructions of a statement list, blocks included, in order.
    fn instrs(stmts: &[Statement]) -> Vec<Instruction> {
        let mut out = Vec::new();
        for s in stmts {
            match s {
                Statement::Instr(i) => out.push(i.clone()),
                Statement::Block(b) => out.extend(instrs(b)),
                _ => {}
            }
        }
        out
    }

    fn one(text: &str) -> Instruction {
        let v = instrs(&body(text));
        assert_eq!(v.len(), 1, "expected one instruction in {text:?}: {v:#?}");
        v.into_iter().next().expect("one instruction")
    }

    fn reg(s: &str) -> Operand {
        Operand::Reg(s.to_string())
    }

    fn sym(s: &str) -> Operand {
        Operand::Symbol(s.to_string())
    }

    fn addr(base: &str, offset: i64) -> Operand {
        Operand::Address {
            base: base.to_string(),
            offset,
        }
    }

    const HEADER: &str = ".version 9.5\n.target sm_75\n.address_size 64\n";

    #[test]
    fn inline_asm_reg_without_space() {
        let m = parse(
            ".version 9.5\n.target sm_75\n.address_size 64\n.visible .entry k()\n{\n{.reg.b32 f;\n .reg.b16 r;\n mov.b32 f, 1;\n}\nret;\n}\n",
        )
        .unwrap();
        let body = m.functions[0].body.as_ref().unwrap();
        let Statement::Block(b) = &body[0] else {
            panic!("{body:?}")
        };
        assert!(matches!(&b[0], Statement::Reg { ty: Type::B32, .. }));
        assert!(matches!(&b[1], Statement::Reg { ty: Type::B16, .. }));
    }

    #[test]
    fn header_directives() {
        let m = ok(".version 8.7\n.target sm_75, texmode_independent, debug\n.address_size 32\n");
        assert_eq!(m.version, "8.7");
        assert_eq!(m.target, vec!["sm_75", "texmode_independent", "debug"]);
        assert_eq!(m.address_size, 32);
        assert!(m.globals.is_empty() && m.functions.is_empty());
        let m = ok(".version 9.5\n.target sm_90a\n");
        assert_eq!(m.address_size, 64, "default address size");
        assert_eq!(m.target, vec!["sm_90a"]);
        assert_eq!(ok("").address_size, 64);
    }

    #[test]
    fn module_variables() {
        let m = ok(&format!(
            "{HEADER}\
.global .align 4 .u32 gcount;
.visible .global .align 4 .b8 gtab[16] = {{0, 0, 128, 63, 205, 204, 204, 61}};
.const .align 4 .b32 ctab[2][3] = {{{{1, 2, 3}}, {{4, -5, 0x10}}}};
.global .align 8 .u64 gptr = generic(gcount);
.global .align 8 .u64 tab[3] = {{f1, gtab+8, generic(gtab)+4}};
.global .align 8 .f64 dval = 0d40091EB851EB851F;
.global .f32 fval = 0f3F800000;
.global .f64 dec = -1.5;
.global .s32 neg = -7;
.weak .global .align 1 .b8 $str$1[6] = {{110, 32, 62, 32, 48}};
.common .global .u16 com;
.extern .shared .align 16 .b8 dyn[];
.visible .shared .align 4 .f32 sm[4][8];
.visible .global .attribute(.managed) .align 4 .u32 mval;
.global .v4 .f32 vec4 = {{1.0, 2.0, 3.0, 4.0}};
.global .u8 a, b = 3;
"
        ));
        let g = |n: &str| {
            m.globals
                .iter()
                .find(|v| v.name == n)
                .unwrap_or_else(|| panic!("global {n}"))
                .clone()
        };
        let v = g("gcount");
        assert_eq!(
            (v.space, v.ty, v.align, v.is_extern),
            (Space::Global, Type::U32, Some(4), false)
        );
        assert!(v.dims.is_empty() && v.init.is_empty());
        assert_eq!(v.line, 4);
        let v = g("gtab");
        assert_eq!(v.dims, vec![16]);
        assert_eq!(v.init.len(), 8);
        assert_eq!(v.init[2], Init::Int(128));
        let v = g("ctab");
        assert_eq!((v.space, v.ty), (Space::Const, Type::B32));
        assert_eq!(v.dims, vec![2, 3]);
        assert_eq!(
            v.init,
            vec![
                Init::Int(1),
                Init::Int(2),
                Init::Int(3),
                Init::Int(4),
                Init::Int((-5i64) as u64),
                Init::Int(16)
            ]
        );
        assert_eq!(g("gptr").init, vec![Init::Symbol("gcount".into(), 0)]);
        assert_eq!(
            g("tab").init,
            vec![
                Init::Symbol("f1".into(), 0),
                Init::Symbol("gtab".into(), 8),
                Init::Symbol("gtab".into(), 4)
            ]
        );
        assert_eq!(g("dval").init, vec![Init::FloatBits(0x4009_1EB8_51EB_851F)]);
        assert_eq!(g("fval").init, vec![Init::FloatBits(0x3F80_0000)]);
        assert_eq!(g("fval").align, None);
        assert_eq!(g("dec").init, vec![Init::Float(-1.5)]);
        assert_eq!(g("neg").init, vec![Init::Int((-7i64) as u64)]);
        assert_eq!(g("$str$1").init.len(), 5);
        assert_eq!(g("com").ty, Type::U16);
        let v = g("dyn");
        assert_eq!(
            (v.space, v.is_extern, v.align),
            (Space::Shared, true, Some(16))
        );
        assert_eq!(v.dims, vec![0]);
        assert_eq!(g("sm").dims, vec![4, 8]);
        assert_eq!(g("mval").ty, Type::U32);
        let v = g("vec4");
        assert_eq!(
            (v.ty, v.align, v.dims.clone()),
            (Type::F32, Some(16), vec![4])
        );
        assert_eq!(
            v.init,
            vec![
                Init::Float(1.0),
                Init::Float(2.0),
                Init::Float(3.0),
                Init::Float(4.0)
            ]
        );
        assert_eq!(g("a").init, vec![]);
        assert_eq!(g("b").init, vec![Init::Int(3)]);
        assert_eq!(m.globals.len(), 17);
    }

    #[test]
    fn functions_and_params() {
        let m = ok(&format!(
            "{HEADER}
.extern .func  (.param .b32 func_retval0) vprintf
(
\t.param .b64 vprintf_param_0,
\t.param .b64 vprintf_param_1
)
;
.extern .func __assertfail
(
\t.param .b64 __assertfail_param_0
)
.noreturn;
.func  (.param .align 4 .b8 func_retval0[8]) _Z2mk1Si(
\t.param .align 8 .b8 _Z2mk1Si_param_0[16],
\t.param .b32 _Z2mk1Si_param_1
)
{{
\tret;
}}
.visible .entry _Z4vaddPKfS0_Pfi(
\t.param .u64 .ptr .global .align 4 _Z4vaddPKfS0_Pfi_param_0,
\t.param .u64 .ptr .align 16 _Z4vaddPKfS0_Pfi_param_1,
\t.param .u64 _Z4vaddPKfS0_Pfi_param_2,
\t.param .u32 _Z4vaddPKfS0_Pfi_param_3
)
.maxntid 256, 1, 1
.minnctapersm 2
.maxnreg 32
{{
\tret;
}}
.weak .entry w()
.reqntid 32
.maxclusterrank 4
.explicitcluster
.reqnctapercluster 2, 1, 1
{{
\texit;
}}
.func f0 {{ ret; }}
.func (.reg .b32 r) oldstyle(.reg .b32 a)
{{
\tret;
}}
"
        ));
        assert_eq!(m.functions.len(), 7);
        let f = &m.functions[0];
        assert_eq!(f.name, "vprintf");
        assert!(f.is_extern && !f.is_entry && f.body.is_none());
        assert_eq!(f.returns.len(), 1);
        assert_eq!(f.returns[0].name, "func_retval0");
        assert_eq!(f.params.len(), 2);
        assert_eq!(f.params[1].ty, Type::B64);
        assert_eq!(f.line, 5);
        let f = &m.functions[1];
        assert_eq!(
            (f.name.as_str(), f.is_extern, f.params.len()),
            ("__assertfail", true, 1)
        );
        assert!(f.returns.is_empty());
        let f = &m.functions[2];
        assert_eq!(f.name, "_Z2mk1Si");
        assert!(!f.is_extern && f.body.is_some());
        assert_eq!(f.returns[0].dims, vec![8]);
        assert_eq!(f.returns[0].align, Some(4));
        assert_eq!(f.params[0].dims, vec![16]);
        assert_eq!(f.params[0].align, Some(8));
        assert_eq!(f.params[0].space, Space::Param);
        let f = &m.functions[3];
        assert_eq!(f.name, "_Z4vaddPKfS0_Pfi");
        assert!(f.is_entry);
        assert_eq!(f.params.len(), 4);
        assert_eq!(f.params[0].ty, Type::U64);
        assert_eq!(f.params[0].align, Some(4));
        assert_eq!(f.params[1].align, Some(16));
        assert_eq!(f.params[3].ty, Type::U32);
        assert_eq!(f.params[3].name, "_Z4vaddPKfS0_Pfi_param_3");
        assert_eq!(m.functions[4].name, "w");
        assert!(m.functions[4].params.is_empty());
        assert_eq!(instrs(m.functions[4].body.as_ref().unwrap())[0].op, "exit");
        assert_eq!(m.functions[5].name, "f0");
        let f = &m.functions[6];
        assert_eq!(f.returns[0].space, Space::Reg);
        assert_eq!(f.params[0].space, Space::Reg);
    }

    #[test]
    fn forward_declaration_merges_with_definition() {
        let m = ok(&format!(
            "{HEADER}
.func  (.param .b64 func_retval0) pw
(
\t.param .b64 pw_param_0
)
;
.entry k() {{ ret; }}
.func  (.param .b64 func_retval0) pw(
\t.param .b64 pw_param_0
)
{{
\tret;
}}
.func  (.param .b64 func_retval0) pw(.param .b64 x);
"
        ));
        assert_eq!(m.functions.len(), 2);
        assert_eq!(m.functions[0].name, "pw");
        assert!(m.functions[0].body.is_some());
        assert_eq!(m.functions[0].line, 11);
        let e = err(&format!(
            "{HEADER}.func f() {{ ret; }}\n.func f() {{ ret; }}\n"
        ));
        assert_eq!(e.line, 5);
        assert!(e.msg.contains("defined twice"), "{e}");
    }

    #[test]
    fn body_declarations() {
        let b = body(
            "\t.local .align 16 .b8 \t__local_depot0[256];
\t.reg .b64 \t%SP;
\t.reg .pred \t%p<6>;
\t.reg .b32 \t%a, %b;
\t.reg .b32 temp_param_reg;
\t.reg .f16x2 %hh<3>;
\t// demoted variable
\t.shared .align 4 .b8 _ZZ2k2P1SiE2sm[1024];
\t.param .align 8 .b8 param0[16];
\t.param .b32 retval0;",
        );
        assert_eq!(b.len(), 9);
        match &b[0] {
            Statement::Var(v) => {
                assert_eq!((v.space, v.ty, v.align), (Space::Local, Type::B8, Some(16)));
                assert_eq!(v.name, "__local_depot0");
                assert_eq!(v.dims, vec![256]);
                assert_eq!(v.line, 6);
            }
            s => panic!("{s:?}"),
        }
        assert_eq!(
            b[1],
            Statement::Reg {
                ty: Type::B64,
                names: vec![RegName::Single("%SP".into())]
            }
        );
        assert_eq!(
            b[2],
            Statement::Reg {
                ty: Type::Pred,
                names: vec![RegName::Range("%p".into(), 6)]
            }
        );
        assert_eq!(
            b[3],
            Statement::Reg {
                ty: Type::B32,
                names: vec![RegName::Single("%a".into()), RegName::Single("%b".into())]
            }
        );
        assert_eq!(
            b[4],
            Statement::Reg {
                ty: Type::B32,
                names: vec![RegName::Single("temp_param_reg".into())]
            }
        );
        assert!(matches!(
            &b[5],
            Statement::Reg {
                ty: Type::F16x2,
                ..
            }
        ));
        assert!(matches!(&b[6], Statement::Var(v) if v.space == Space::Shared && v.dims == [1024]));
        assert!(
            matches!(&b[7], Statement::Var(v) if v.space == Space::Param && v.align == Some(8))
        );
        assert!(matches!(&b[8], Statement::Var(v) if v.name == "retval0" && v.ty == Type::B32));
    }

    #[test]
    fn labels_blocks_and_prototypes() {
        let b = body(
            "$L__BB0_2:
\tbra.uni \t$L__BB0_2;
$L__func_end0:
\t{ // callseq 0, 0
\t.reg .b32 temp_param_reg;
\t.param .b32 param0;
\tst.param.b32 \t[param0+0], %r1;
\t.param .b32 retval0;
\tprototype_0 : .callprototype (.param .b32 _) _ (.param .b32 _);
\tcall (retval0), 
\t%rd8, 
\t(
\tparam0
\t)
\t, prototype_0;
\tld.param.b32 \t%r2, [retval0+0];
\t{
\t.reg .b32 %temp; 
\tmov.b64 \t{%temp, %r1}, %fd1;
\t}
\t} // callseq 0
lbl: ret;",
        );
        assert_eq!(b[0], Statement::Label("$L__BB0_2".into()));
        assert_eq!(b[2], Statement::Label("$L__func_end0".into()));
        let Statement::Block(blk) = &b[3] else {
            panic!("{:?}", b[3])
        };
        assert!(blk.contains(&Statement::Prototype("prototype_0".into())));
        assert!(matches!(blk.last(), Some(Statement::Block(_))));
        let call = instrs(blk).into_iter().find(|i| i.op == "call").unwrap();
        assert_eq!(
            call.operands,
            vec![
                Operand::List(vec![sym("retval0")]),
                reg("%rd8"),
                Operand::List(vec![sym("param0")]),
                sym("prototype_0")
            ]
        );
        assert_eq!(call.line, 15);
        assert_eq!(b[4], Statement::Label("lbl".into()));
        assert!(matches!(&b[5], Statement::Instr(i) if i.op == "ret"));
    }

    #[test]
    fn opcodes_and_modifiers() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "ld.global.nc.v4.f32 {%f1, %f2, %f3, %f4}, [%rd1];",
                "ld",
                &["global", "nc", "v4", "f32"],
            ),
            ("cvt.rn.f32.s32 %f1, %r1;", "cvt", &["rn", "f32", "s32"]),
            ("setp.ge.s32 %p1, %r1, %r2;", "setp", &["ge", "s32"]),
            ("mad.lo.s32 %r1, %r2, %r3, %r4;", "mad", &["lo", "s32"]),
            ("mul.wide.s32 %rd5, %r1, 4;", "mul", &["wide", "s32"]),
            (
                "shfl.sync.down.b32 %r13|%p1, %r9, %r11, %r10, %r12;",
                "shfl",
                &["sync", "down", "b32"],
            ),
            (
                "atom.global.add.f32 %f5, [%rd5], %f1;",
                "atom",
                &["global", "add", "f32"],
            ),
            ("bar.sync 0;", "bar", &["sync"]),
            ("call.uni _Z1fv, ();", "call", &["uni"]),
            ("bra.uni $L__BB0_1;", "bra", &["uni"]),
            ("ret;", "ret", &[]),
            ("exit;", "exit", &[]),
            (
                "cp.async.ca.shared.global [%r19], [%rd6], 4, 4;",
                "cp",
                &["async", "ca", "shared", "global"],
            ),
            ("cp.async.wait_group 0;", "cp", &["async", "wait_group"]),
            (
                "fence.proxy.async::generic.acquire.sync_restrict::shared::cluster.cluster;",
                "fence",
                &[
                    "proxy",
                    "async::generic",
                    "acquire",
                    "sync_restrict::shared::cluster",
                    "cluster",
                ],
            ),
            (
                "mbarrier.try_wait.shared::cta.b64 P_OUT, [%r21], %rd8;",
                "mbarrier",
                &["try_wait", "shared::cta", "b64"],
            ),
            (
                "ld.global.nc.L1::no_allocate.L2::128B.v4.u32 {%r1,%r2,%r3,%r4}, [%rd1];",
                "ld",
                &["global", "nc", "L1::no_allocate", "L2::128B", "v4", "u32"],
            ),
            (
                // Tensor-map addresses parse as operand lists (the decoder rejects the opcode).
                "cp.async.bulk.tensor.2d.shared::cluster.global.tile [%r1], [%rd1, {%r2}];",
                "cp",
                &[
                    "async",
                    "bulk",
                    "tensor",
                    "2d",
                    "shared::cluster",
                    "global",
                    "tile",
                ],
            ),
        ];
        for (text, op, mods) in cases {
            let i = one(text);
            assert_eq!(i.op, *op, "{text}");
            assert_eq!(i.mods, mods.to_vec(), "{text}");
            assert_eq!(i.guard, None);
        }
    }

    #[test]
    fn guards() {
        let i = one("@%p1 bra \t$L__BB0_2;");
        assert_eq!(i.guard, Some(("%p1".into(), false)));
        assert_eq!(i.operands, vec![sym("$L__BB0_2")]);
        let i = one("@!%p2 st.global.u32 [%rd1], %r1;");
        assert_eq!(i.guard, Some(("%p2".into(), true)));
        let i = one("@p add.f64 %fd1, %fd1, r0;");
        assert_eq!(i.guard, Some(("p".into(), false)));
        assert_eq!(i.operands[2], sym("r0"));
    }

    #[test]
    fn register_operands() {
        let specials = [
            "%tid.x",
            "%tid.y",
            "%tid.z",
            "%ntid.x",
            "%ntid.y",
            "%ctaid.z",
            "%nctaid.x",
            "%laneid",
            "%warpid",
            "%clock",
            "%clock64",
            "%globaltimer",
            "%lanemask_lt",
            "%dynamic_smem_size",
            "%envreg3",
            "%cluster_ctarank",
            "%SP",
            "%SPL",
        ];
        for s in specials {
            let i = one(&format!("mov.u32 %r1, {s};"));
            assert_eq!(i.operands, vec![reg("%r1"), reg(s)]);
        }
    }

    #[test]
    fn immediates() {
        let cases: &[(&str, Operand)] = &[
            ("42", Operand::Imm(42)),
            ("-1", Operand::Imm(u64::MAX)),
            ("-2147483648", Operand::Imm((-2147483648i64) as u64)),
            ("4611686018427387904", Operand::Imm(4611686018427387904)),
            ("18446744073709551615", Operand::Imm(u64::MAX)),
            ("0x7fffFFFF", Operand::Imm(0x7fff_ffff)),
            ("0X10", Operand::Imm(16)),
            ("017", Operand::Imm(15)),
            ("0", Operand::Imm(0)),
            ("0b1011", Operand::Imm(11)),
            ("0B1", Operand::Imm(1)),
            ("7U", Operand::Imm(7)),
            ("0xFFU", Operand::Imm(255)),
            ("0f3F800000", Operand::F32(0x3F80_0000)),
            ("0F7f800000", Operand::F32(0x7F80_0000)),
            ("-0f3F800000", Operand::F32(0xBF80_0000)),
            ("0d3FF0000000000000", Operand::F64(0x3FF0_0000_0000_0000)),
            ("0DFFF8000000000000", Operand::F64(0xFFF8_0000_0000_0000)),
            ("1.5", Operand::F64(1.5f64.to_bits())),
            ("-2.25", Operand::F64((-2.25f64).to_bits())),
            ("1e3", Operand::F64(1000f64.to_bits())),
            ("2.5E-1", Operand::F64(0.25f64.to_bits())),
        ];
        for (text, want) in cases {
            let i = one(&format!("mov.b32 %r1, {text};"));
            assert_eq!(i.operands, vec![reg("%r1"), want.clone()], "{text}");
        }
    }

    #[test]
    fn addresses() {
        let cases: &[(&str, Operand)] = &[
            ("[%rd1]", addr("%rd1", 0)),
            ("[%rd1+8]", addr("%rd1", 8)),
            ("[%rd1+-8]", addr("%rd1", -8)),
            ("[%rd1-8]", addr("%rd1", -8)),
            ("[ %rd1 + 0x10 ]", addr("%rd1", 16)),
            ("[sym]", addr("sym", 0)),
            ("[sym+4]", addr("sym", 4)),
            ("[param0+0]", addr("param0", 0)),
            (
                "[_Z4vaddPKfS0_Pfi_param_3]",
                addr("_Z4vaddPKfS0_Pfi_param_3", 0),
            ),
            ("[0x1000]", addr("", 0x1000)),
            ("[-4]", addr("", -4)),
        ];
        for (text, want) in cases {
            let i = one(&format!("ld.u32 %r1, {text};"));
            assert_eq!(i.operands, vec![reg("%r1"), want.clone()], "{text}");
        }
        let i = one("st.global.v2.u32 [%rd8], {%r17, %r18};");
        assert_eq!(
            i.operands,
            vec![
                addr("%rd8", 0),
                Operand::Vector(vec![reg("%r17"), reg("%r18")])
            ]
        );
    }

    #[test]
    fn texture_operands_parse_as_lists() {
        let i = one("tex.1d.v4.f32.s32 {%f1, %f2, %f3, %f4}, [%rd2, {%r1}];");
        assert_eq!(i.op, "tex");
        assert_eq!(
            i.operands[1],
            Operand::List(vec![addr("%rd2", 0), Operand::Vector(vec![reg("%r1")])])
        );
        let i = one("tex.2d.v4.f32.f32 {%f1, %f2, %f3, %f4}, [tex0, smp, {%f5, %f6}];");
        assert_eq!(
            i.operands[1],
            Operand::List(vec![
                addr("tex0", 0),
                sym("smp"),
                Operand::Vector(vec![reg("%f5"), reg("%f6")])
            ])
        );
    }

    #[test]
    fn composite_operands() {
        let i = one("mov.b64 {%r1, _}, %fd1;");
        assert_eq!(i.operands[0], Operand::Vector(vec![reg("%r1"), sym("_")]));
        let i = one("mov.b64 %fd1, {%r1, 0};");
        assert_eq!(
            i.operands[1],
            Operand::Vector(vec![reg("%r1"), Operand::Imm(0)])
        );
        let i = one("shfl.sync.down.b32 \t%r14|%p8, %r9, 1, 31, -1;");
        assert_eq!(
            i.operands,
            vec![
                Operand::Pair("%r14".into(), "%p8".into()),
                reg("%r9"),
                Operand::Imm(1),
                Operand::Imm(31),
                Operand::Imm(u64::MAX)
            ]
        );
        let i = one("setp.lt.s32 %p1|%p2, %r1, %r2;");
        assert_eq!(i.operands[0], Operand::Pair("%p1".into(), "%p2".into()));
        let i = one("selp.b32 %r1, 1, 0, !%p3;");
        assert_eq!(i.operands[3], Operand::Not("%p3".into()));
        let i = one("call.uni (retval0), \n_Z2mk1Si, \n(\nparam0, \nparam1\n);");
        assert_eq!(
            i.operands,
            vec![
                Operand::List(vec![sym("retval0")]),
                sym("_Z2mk1Si"),
                Operand::List(vec![sym("param0"), sym("param1")])
            ]
        );
        let i = one("call.uni _Z1fv, ();");
        assert_eq!(i.operands, vec![sym("_Z1fv"), Operand::List(vec![])]);
        let i = one("call.uni \n__assertfail, \n(\nparam0\n);");
        assert_eq!(i.operands.len(), 2);
        let i = one("mov.u64 %rd1, __local_depot0;");
        assert_eq!(i.operands[1], sym("__local_depot0"));
        let i = one("neg.s32 %r1, -%r2;");
        assert_eq!(i.operands[1], Operand::Neg(Box::new(reg("%r2"))));
    }

    #[test]
    fn skipped_constructs() {
        let m = ok(&format!(
            "//
// Generated by NVIDIA NVVM Compiler
//
/* block
   comment */ {HEADER}
@@DWARF .section .debug_abbrev, \"\", @progbits
.pragma \"nounroll\";
\t.file\t1 \"/tmp/a.cu\", 1700000000, 1234
.entry k( /* inline */ .param .u32 n)
{{
\t.loc\t1 14 0
\t.loc\t2 439 9, function_name $L__info_string0, inlined_at 1 21 3
\t.pragma \"nounroll\";
\tret; // trailing
}}
\t.section\t.debug_str
\t{{
$L__info_string0:
.b8 95,90,78,51,48,95,73,78,84,69,82,78,65,76,95,0
\t{{ nested }}
\t}}
\t.section .debug_info {{ .b32 1906 .b32 .debug_abbrev .b64 $L__tmp18 }}
.global .u32 after;
"
        ));
        assert_eq!(m.version, "9.5");
        assert_eq!(m.functions.len(), 1);
        assert_eq!(m.functions[0].params.len(), 1);
        let b = m.functions[0].body.as_ref().unwrap();
        assert_eq!(b.len(), 1);
        let Statement::Instr(i) = &b[0] else { panic!() };
        assert_eq!((i.op.as_str(), i.line), ("ret", 17));
        assert_eq!(m.globals.len(), 1);
        assert_eq!(m.globals[0].line, 26);
    }

    #[test]
    fn instruction_lines_and_crlf() {
        let src =
            format!("{HEADER}.entry k()\r\n{{\r\n\tmov.u32 %r1, %tid.x;\r\n\r\n\tret;\r\n}}\r\n");
        let m = ok(&src);
        let v = instrs(m.functions[0].body.as_ref().unwrap());
        assert_eq!(v[0].line, 6);
        assert_eq!(v[1].line, 8);
        assert_eq!(m.functions[0].line, 4);
    }

    #[test]
    fn inline_asm_shapes() {
        let b = body(
            "\t// begin inline asm
\t{add.f16 %rs1,%rs2,%rs3;
}
\t// end inline asm
\t{  .reg .u32 lo;  .reg .u32 hi;  .reg .pred p;  mov.b64 {lo, hi}, %fd62;  shfl.sync.up.b32 lo|p, lo, %r315, %r316, %r317;  @p add.f64 %fd201, %fd201, r0;}
\tmbarrier.arrive.shared::cta.b64                             %rd8,  [%r21], %r23;    // 2. ",
        );
        assert_eq!(b.len(), 3);
        let v = instrs(&b);
        assert_eq!(v.len(), 5);
        assert_eq!(v[2].operands[0], Operand::Pair("lo".into(), "p".into()));
    }

    fn line_of(src: &str) -> u32 {
        err(src).line
    }

    #[test]
    fn errors_report_lines() {
        // Missing ';' is reported on the line of the unterminated statement.
        let e = err(&format!(
            "{HEADER}.entry k()\n{{\n\tadd.s32 %r1, %r2, %r3\n\tadd.s32 %r1, %r2, %r3;\n}}\n"
        ));
        assert_eq!(e.line, 6, "{e}");
        assert!(e.msg.contains("';'"), "{e}");
        let e = err(&format!(
            "{HEADER}.entry k()\n{{\n\tret\n\tadd.s32 %r1, %r2, %r3;\n}}\n"
        ));
        assert_eq!(e.line, 6, "{e}");
        assert_eq!(
            line_of(&format!("{HEADER}.global .u32 x\n.global .u32 y;\n")),
            4
        );
        assert_eq!(
            line_of(&format!(
                "{HEADER}.entry k()\n{{\n\t.reg .b32 %r<3>\n\tret;\n}}\n"
            )),
            6
        );
        // Unknown directives.
        let e = err(&format!("{HEADER}.bogus 3;\n"));
        assert_eq!(e.line, 4);
        assert!(e.msg.contains("unknown directive '.bogus'"), "{e}");
        let e = err(&format!("{HEADER}.entry k()\n{{\n\n\t.frob x;\n}}\n"));
        assert_eq!(e.line, 7);
        assert!(e.msg.contains(".frob"), "{e}");
        let e = err(&format!("{HEADER}.visible .tex .u64 t;\n"));
        assert_eq!(e.line, 4);
        // Unbalanced braces.
        let e = err(&format!("{HEADER}.entry k()\n{{\n\tret;\n"));
        assert_eq!(e.line, 5, "{e}");
        assert!(e.msg.contains("unclosed"), "{e}");
        let e = err(&format!("{HEADER}.entry k()\n{{\n\t{{\n\tret;\n}}\n"));
        assert_eq!(e.line, 5, "{e}");
        let e = err(&format!(
            "{HEADER}.entry k()\n{{\n\tret;\n\n.visible .entry j()\n{{\n\tret;\n}}\n"
        ));
        assert_eq!(e.line, 5, "{e}");
        assert!(
            e.msg.contains("unclosed") && e.msg.contains("line 8"),
            "{e}"
        );
        let e = err(&format!("{HEADER}.entry k()\n{{\n\tret;\n}}\n}}\n"));
        assert_eq!(e.line, 8, "{e}");
        assert!(e.msg.contains("unmatched"), "{e}");
        assert_eq!(
            line_of(&format!("{HEADER}\n.section .debug_str {{\n .b8 1\n")),
            5
        );
        // Bad literals.
        for (lit, frag) in [
            ("0f3F80", "hex digits"),
            ("0d3FF0", "hex digits"),
            ("0x", "bad integer"),
            ("0xZZ", "bad integer"),
            ("0b102", "bad integer"),
            ("09", "bad integer"),
            ("99999999999999999999", "bad integer"),
            ("12abc", "bad numeric"),
            ("1.5.3", "bad numeric"),
        ] {
            let e = err(&format!(
                "{HEADER}.entry k()\n{{\n\n\tmov.u32 %r1, {lit};\n}}\n"
            ));
            assert_eq!(e.line, 7, "{lit}: {e}");
            assert!(e.msg.contains(frag), "{lit}: {e}");
        }
        // Unknown types.
        let e = err(&format!("{HEADER}.global .u33 x;\n"));
        assert!(e.msg.contains("unknown type '.u33'"), "{e}");
        assert_eq!(e.line, 4);
        let e = err(&format!("{HEADER}.entry k()\n{{\n\t.reg .q32 %r<3>;\n}}\n"));
        assert_eq!((e.line, e.msg.contains("unknown type")), (6, true), "{e}");
        let e = err(&format!(
            "{HEADER}.entry k(\n\t.param .x64 p\n)\n{{ ret; }}\n"
        ));
        assert_eq!(e.line, 5, "{e}");
        // Lexical errors.
        let e = err(&format!("{HEADER}\n\n/* never closed\n\n"));
        assert_eq!(e.line, 6);
        let e = err(&format!("{HEADER}.pragma \"open;\n"));
        assert_eq!(e.line, 4);
        let e = err(&format!("{HEADER}.entry k()\n{{\n\tmov.u32 %r1, #3;\n}}\n"));
        assert_eq!((e.line, e.msg.contains("'#'")), (6, true), "{e}");
        let e = err(&format!(
            "{HEADER}.entry k()\n{{\n\tmov.u32 %r1, \u{e9};\n}}\n"
        ));
        assert_eq!(e.line, 6);
        // Earlier syntax errors win over later lexical ones.
        let e = err(&format!("{HEADER}.global .u33 x;\n#\n"));
        assert_eq!(e.line, 4);
        // Misc.
        assert_eq!(
            line_of(&format!(
                "{HEADER}.entry k()\n{{\n\tld.u32 %r1, [%rd1+%r2];\n}}\n"
            )),
            6
        );
        assert_eq!(
            line_of(&format!(
                "{HEADER}.entry k()\n{{\n\tmov.u32 %r1, {{}};\n}}\n"
            )),
            6
        );
        assert_eq!(line_of(&format!("{HEADER}.entry k()\n{{\n\t@ ;\n}}\n")), 6);
        assert_eq!(
            line_of(&format!("{HEADER}.entry k()\n{{\n\t@%p1 %r1;\n}}\n")),
            6
        );
        assert_eq!(line_of(&format!("{HEADER}.address_size 48\n")), 4);
        assert_eq!(line_of(&format!("{HEADER}.global .align 3 .u32 x;\n")), 4);
        assert_eq!(line_of(&format!("{HEADER}.global .u32 x = ;\n")), 4);
        assert_eq!(
            line_of(&format!("{HEADER}.global .u32 x[4] = {{1, 2\n;\n")),
            5
        );
        assert_eq!(
            line_of(&format!(
                "{HEADER}.entry k(.param .u32 a .param .u32 b) {{ ret; }}\n"
            )),
            4
        );
        assert_eq!(
            line_of(&format!("{HEADER}.entry (.param .b32 r) k() {{ ret; }}\n")),
            4
        );
        assert_eq!(line_of(&format!("{HEADER}.func f()\n\n")), 4);
        assert_eq!(line_of(&format!("{HEADER}\nk:\n")), 5);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "{".repeat(100_000);
        assert!(parse(&format!("{HEADER}.entry k() {deep}")).is_err());
        assert!(parse(&format!("{HEADER}.global .u32 x[1] = {deep}")).is_err());
        let parens = "(".repeat(100_000);
        assert!(parse(&format!("{HEADER}.entry k() {{ call f, {parens} }}")).is_err());
        let vecs = "{".repeat(100_000);
        assert!(parse(&format!("{HEADER}.entry k() {{ mov.b64 %rd1, {vecs} }}")).is_err());
        // Moderate nesting is fine.
        let ok_blocks = format!("{}ret;{}", "{".repeat(20), "}".repeat(20));
        ok(&format!("{HEADER}.entry k() {{ {ok_blocks} }}"));
    }

    const SAMPLE: &str = "//
.version 9.5
.target sm_75
.address_size 64

.extern .func  (.param .b32 func_retval0) vprintf
(
\t.param .b64 vprintf_param_0,
\t.param .b64 vprintf_param_1
)
;
.global .align 4 .b8 gtab[16] = {0, 0, 128, 63, 0, 0, 32, 64};
.global .align 8 .u64 gptr = generic(gtab);
.extern .shared .align 16 .b8 dyn[];
.global .align 1 .b8 $str[4] = {104, 105, 10};

.visible .entry _Z4vaddPKfS0_Pfi(
\t.param .u64 _Z4vaddPKfS0_Pfi_param_0,
\t.param .u32 _Z4vaddPKfS0_Pfi_param_3
)
.maxntid 256, 1, 1
{
\t.local .align 16 .b8 \t__local_depot3[16];
\t.reg .pred \t%p<2>;
\t.reg .f32 \t%f<4>;
\t.reg .b64 \t%rd<11>;
\t.loc\t1 21 3
\tld.param.u64 \t%rd1, [_Z4vaddPKfS0_Pfi_param_0];
\tmov.u32 \t%r3, %ctaid.x;
\tsetp.ge.s32 \t%p1, %r1, %r2;
\t@%p1 bra \t$L__BB2_2;
\tld.global.nc.v4.f32 {%f1, %f2, %f3, %f4}, [%rd8+-16];
\tshfl.sync.down.b32 \t%r13|%p1, %r9, %r11, %r10, %r12;
\tmov.f32 %f1, 0f3F800000;
\tmov.f64 %fd1, 0d3FF0000000000000;
\t{ // callseq 2, 0
\t.reg .b32 temp_param_reg;
\t.param .b64 param0;
\tst.param.b64 \t[param0+0], %rd11;
\t.param .b32 retval0;
\tcall.uni (retval0), 
\tvprintf, 
\t(
\tparam0
\t);
\tld.param.b32 \t%r19, [retval0+0];
\t} // callseq 2
$L__BB2_2:
\tret;
}
";

    #[test]
    fn sample_parses() {
        let m = ok(SAMPLE);
        assert_eq!(m.functions.len(), 2);
        assert_eq!(m.globals.len(), 4);
        let k = &m.functions[1];
        assert_eq!(k.params.len(), 2);
        assert_eq!(instrs(k.body.as_ref().unwrap()).len(), 12);
    }

    /// Deterministic xorshift64* generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn truncations_never_panic() {
        let bytes = SAMPLE.as_bytes();
        for cut in 0..=bytes.len() {
            let text = String::from_utf8_lossy(&bytes[..cut]);
            let _ = parse(&text);
            let text = String::from_utf8_lossy(&bytes[cut..]);
            let _ = parse(&text);
        }
        assert!(parse(SAMPLE).is_ok());
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // Raw random bytes.
        for _ in 0..2000 {
            let len = rng.below(200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
        // Random soup of PTX-ish fragments.
        const FRAGS: &[&str] = &[
            ".version 9.5\n",
            ".target sm_75",
            ".entry",
            ".func",
            ".global",
            ".shared",
            ".reg",
            ".param",
            ".local",
            ".align",
            "4",
            " ",
            "\n",
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            "<",
            ">",
            ";",
            ",",
            ":",
            "+",
            "-",
            "!",
            "@",
            "|",
            "=",
            ".b32",
            ".u64",
            ".f32",
            ".pred",
            "%r1",
            "%p<3>",
            "%tid.x",
            "_",
            "$L__BB0_1",
            "ld.global.f32",
            "bra.uni",
            "call.uni",
            "ret",
            "0f3F800000",
            "0d3FF0000000000000",
            "0x1F",
            "-1",
            "1.5",
            "\"s\"",
            "//c\n",
            "/*",
            "*/",
            ".section",
            ".debug_str",
            ".loc 1 2 3\n",
            ".pragma",
            ".callprototype",
            "generic",
            ".extern",
            ".visible",
            ".maxntid",
            "x",
            "@@DWARF x\n",
            "0b",
            "09",
            "::",
            ".",
        ];
        for _ in 0..3000 {
            let n = rng.below(60);
            let mut s = String::new();
            for _ in 0..n {
                s.push_str(FRAGS[rng.below(FRAGS.len())]);
                if rng.below(3) == 0 {
                    s.push(' ');
                }
            }
            let _ = parse(&s);
        }
        // Random mutations of a valid module.
        let base = SAMPLE.as_bytes();
        for _ in 0..1500 {
            let mut b = base.to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len());
                match rng.below(3) {
                    0 => {
                        b.remove(at.min(b.len().saturating_sub(1)));
                    }
                    1 => b.insert(at, FRAGS[rng.below(FRAGS.len())].as_bytes()[0]),
                    _ => {
                        if let Some(x) = b.get_mut(at) {
                            *x = rng.next() as u8;
                        }
                    }
                }
            }
            let _ = parse(&String::from_utf8_lossy(&b));
        }
    }

    #[test]
    fn large_input_is_linear() {
        let mut src = String::from(HEADER);
        for k in 0..200 {
            src.push_str(&format!(
                ".visible .entry k{k}(\n\t.param .u64 p\n)\n{{\n\t.reg .b32 %r<100>;\n"
            ));
            for j in 0..100 {
                src.push_str(&format!("\tmad.lo.s32 \t%r{j}, %r{j}, %r1, 0x{j:x};\n\t@%p1 bra $L__BB{k}_{j};\n$L__BB{k}_{j}:\n"));
            }
            src.push_str("\tret;\n}\n");
        }
        let m = ok(&src);
        assert_eq!(m.functions.len(), 200);
        assert_eq!(instrs(m.functions[199].body.as_ref().unwrap()).len(), 201);
    }
}
