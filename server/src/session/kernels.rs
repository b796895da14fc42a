//! Modules, functions and kernel launches on the CPU device: images are reduced to their PTX,
//! parsed and decoded once at load; `.global`/`.const` variables become session allocations;
//! launches run on the stream as a job that interprets the kernel over a snapshot of this
//! session's allocations only (so a kernel can never touch another client's memory).

use super::*;
use rgpu_protocol::image::{self, ImageError};
use rgpu_ptx::decode::{self, DecodeError};
use rgpu_ptx::ir::{Program, FUNC_WINDOW};
use rgpu_ptx::vm::{self, Fault, Launch};

pub(super) struct Module {
    pub(super) ctx: u64,
    prog: Arc<Program>,
    globals: HashMap<String, (u64, u64)>,
    ptx_version: i32,
    /// Initial contents of each global: (address, bytes). A context-independent module's globals
    /// start again from these in every new context (after a reset).
    init: Vec<(u64, Vec<u8>)>,
}

pub(super) struct Function {
    pub(super) module: u64,
    index: usize,
    max_dyn_smem: u32,
    cache_config: i32,
}

/// Parsed modules by SHA-256 of their image, shared by every session of this server, so that an
/// image is uploaded and parsed once. Bounded by the PTX bytes it holds.
struct ImageCache {
    map: HashMap<Vec<u8>, (Arc<rgpu_ptx::ast::Module>, usize)>,
    order: std::collections::VecDeque<Vec<u8>>,
    bytes: usize,
}

const IMAGE_CACHE_BYTES: usize = 512 << 20;

static IMAGES: std::sync::LazyLock<Mutex<ImageCache>> = std::sync::LazyLock::new(|| {
    Mutex::new(ImageCache {
        map: HashMap::new(),
        order: Default::default(),
        bytes: 0,
    })
});

fn cached_image(hash: &[u8]) -> Option<Arc<rgpu_ptx::ast::Module>> {
    let c = IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    c.map.get(hash).map(|e| e.0.clone())
}

fn cache_image(hash: Vec<u8>, ast: Arc<rgpu_ptx::ast::Module>, size: usize) {
    let mut c = IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    if c.map.contains_key(&hash) || size > IMAGE_CACHE_BYTES {
        return;
    }
    while c.bytes + size > IMAGE_CACHE_BYTES {
        let Some(old) = c.order.pop_front() else {
            break;
        };
        if let Some((_, n)) = c.map.remove(&old) {
            c.bytes -= n;
        }
    }
    c.bytes += size;
    c.order.push_back(hash.clone());
    c.map.insert(hash, (ast, size));
}

/// Shared memory a block may use by default and at most (sm_75).
const SMEM_DEFAULT: u32 = 48 * 1024;
const SMEM_OPTIN: u32 = 64 * 1024;

/// The session's allocations as the interpreter sees them.
struct Snapshot {
    regions: Vec<(u64, u64, Arc<crate::device::cpu::DevBuf>)>,
}

impl vm::Memory for Snapshot {
    fn region(&self, addr: u64) -> Option<(u64, u64, *mut u8)> {
        let i = self.regions.partition_point(|(b, _, _)| *b <= addr);
        let (b, n, buf) = self.regions.get(i.checked_sub(1)?)?;
        (addr - b < *n).then(|| (*b, *n, buf.as_ptr()))
    }
}

/// Threads per block a kernel accepts: its `.maxntid`/`.reqntid`, else the device's 1024.
fn max_threads(k: &rgpu_ptx::ir::Func) -> u32 {
    if k.max_threads > 0 {
        k.max_threads.min(1024)
    } else {
        1024
    }
}

fn fault_code(f: &Fault) -> CuError {
    match f {
        Fault::IllegalAddress { .. } => CuError::ILLEGAL_ADDRESS,
        Fault::Misaligned { .. } => CuError::MISALIGNED_ADDRESS,
        Fault::Assert(_) => CuError::ASSERT,
        Fault::StackOverflow { .. } => CuError::LAUNCH_OUT_OF_RESOURCES,
        _ => CuError::LAUNCH_FAILED,
    }
}

fn failed(error: CuError, log: String) -> CuResult<ModuleLoadRep> {
    tracing::info!("module load failed: {log}");
    Ok(ModuleLoadRep {
        module: 0,
        error: error.raw(),
        log,
    })
}

impl Session {
    /// Restores the initial contents of context-independent modules' globals (a new context
    /// starts from the initialisers, as on a GPU where the library is loaded into it afresh).
    pub(super) fn reinit_library_globals(&self, st: &State, device: i32) {
        for m in st.modules.values().filter(|m| m.ctx == 0) {
            for (addr, bytes) in &m.init {
                if st.allocs.get(addr).is_some_and(|a| a.device == device) {
                    if let Ok(r) = self.devices[device as usize].region(*addr, bytes.len() as u64) {
                        r.buf.write(r.offset, bytes);
                    }
                }
            }
        }
    }

    fn snapshot(&self, st: &State) -> Snapshot {
        let mut regions = Vec::with_capacity(st.allocs.len());
        for (&base, a) in &st.allocs {
            if let Ok(r) = self.devices[a.device as usize].region(base, 1) {
                regions.push((base, r.buf.len() as u64, r.buf));
            }
        }
        Snapshot { regions }
    }

    fn func<'a>(&self, st: &'a State, h: u64) -> CuResult<(&'a Function, &'a Module)> {
        let f = st.functions.get(&h).ok_or(CuError::INVALID_HANDLE)?;
        let m = st.modules.get(&f.module).ok_or(CuError::INVALID_HANDLE)?;
        Ok((f, m))
    }

    pub(super) fn k_module_load(&self, cx: &Cx, req: ModuleLoadReq) -> CuResult<ModuleLoadRep> {
        let limit = self.limits().modules;
        if self.st().modules.len() >= limit {
            return failed(
                CuError::OUT_OF_MEMORY,
                format!("this session already holds its limit of {limit} modules"),
            );
        }
        // A library is context-independent, and so is a module loaded with no context current
        // (cudart 13 loads its fatbin before making a context current): it belongs to the
        // session and survives context destruction and reset.
        let (dev, owner) = {
            let st = self.st();
            match self.ctx(&st, cx) {
                Ok(c) if !req.library => (c.device, cx.ctx),
                Ok(c) => (c.device, 0),
                Err(_) if req.library || cx.ctx == 0 => (0, 0),
                Err(e) => return Err(e),
            }
        };
        self.device(dev)?;
        let ast = if req.image.is_empty() {
            match cached_image(&req.hash) {
                Some(a) => a,
                None => {
                    return Ok(ModuleLoadRep {
                        module: 0,
                        error: image::NEED_IMAGE,
                        log: String::new(),
                    })
                }
            }
        } else {
            let ptx = match image::extract_ptx(&req.image) {
                Ok(p) => p,
                Err(e @ ImageError::NoPtx { .. }) => {
                    return failed(CuError::NO_BINARY_FOR_GPU, e.to_string())
                }
                Err(e) => return failed(CuError::INVALID_IMAGE, e.to_string()),
            };
            let ast = match rgpu_ptx::parser::parse(&ptx) {
                Ok(a) => Arc::new(a),
                Err(e) => return failed(CuError::INVALID_PTX, e.to_string()),
            };
            // The key is computed here from the bytes, never taken from the client.
            cache_image(image::content_hash(&req.image), ast.clone(), ptx.len());
            ast
        };
        let plans = match decode::plan_globals(&ast) {
            Ok(p) => p,
            Err(e) => return failed(CuError::INVALID_PTX, e.to_string()),
        };
        let device = self.devices[dev as usize].clone();
        // Allocate every global, then write initialisers with their relocations resolved.
        let mut addrs: HashMap<String, u64> = HashMap::new();
        let mut globals = HashMap::new();
        let mut owned = vec![];
        let release = |owned: &[u64]| {
            for b in owned {
                let _ = device.free(*b);
            }
        };
        for g in &plans {
            match device.alloc(g.size.max(1), self.ns()) {
                Ok(a) => {
                    owned.push(a);
                    addrs.insert(g.name.clone(), a);
                    globals.insert(g.name.clone(), (a, g.size));
                }
                Err(e) => {
                    release(&owned);
                    return Err(e);
                }
            }
        }
        let funcs: HashMap<&str, usize> = ast
            .functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.as_str(), i))
            .collect();
        let mut init = vec![];
        for g in &plans {
            let mut bytes = g.init.clone();
            for (off, sym, add, width) in &g.relocs {
                let target = if let Some(a) = addrs.get(sym) {
                    *a
                } else if let Some(i) = funcs.get(sym.as_str()) {
                    FUNC_WINDOW + *i as u64
                } else {
                    release(&owned);
                    return failed(
                        CuError::INVALID_PTX,
                        format!("initialiser of {} refers to unknown symbol {sym}", g.name),
                    );
                };
                let v = target.wrapping_add(*add as u64).to_le_bytes();
                let (o, w) = (*off as usize, (*width as usize).min(8));
                bytes[o..o + w].copy_from_slice(&v[..w]);
            }
            if g.size > 0 {
                init.push((addrs[&g.name], bytes.clone()));
                match device.region(addrs[&g.name], g.size) {
                    Ok(r) => r.buf.write(r.offset, &bytes),
                    Err(e) => {
                        release(&owned);
                        return Err(e);
                    }
                }
            }
        }
        let prog = match decode::decode(&ast, &addrs) {
            Ok(p) => p,
            Err(DecodeError { line, msg }) => {
                release(&owned);
                return failed(CuError::INVALID_PTX, format!("PTX line {line}: {msg}"));
            }
        };
        // CU_FUNC_ATTRIBUTE_PTX_VERSION is the virtual architecture the PTX targets (sm_75 -> 75),
        // not the PTX ISA version (CUB matches it against the architectures it was built for).
        let ptx_version = ast
            .target
            .iter()
            .find_map(|t| t.strip_prefix("sm_"))
            .and_then(|a| {
                a.trim_end_matches(|c: char| c.is_ascii_alphabetic())
                    .parse::<i32>()
                    .ok()
            })
            .unwrap_or(75);
        let h = new_handle(self.ns());
        let mut st = self.st();
        if owner != 0 && self.ctx(&st, cx).is_err() {
            release(&owned);
            return Err(CuError::INVALID_CONTEXT);
        }
        for a in owned {
            st.allocs.insert(
                a,
                Alloc {
                    ctx: owner,
                    device: dev,
                },
            );
        }
        st.modules.insert(
            h,
            Module {
                ctx: owner,
                prog: Arc::new(prog),
                globals,
                ptx_version,
                init,
            },
        );
        Ok(ModuleLoadRep {
            module: h,
            error: 0,
            log: String::new(),
        })
    }

    pub(super) fn k_module_unload(
        &self,
        _cx: &Cx,
        req: ModuleUnloadReq,
    ) -> CuResult<ModuleUnloadRep> {
        let mut st = self.st();
        let m = st
            .modules
            .remove(&req.module)
            .ok_or(CuError::INVALID_HANDLE)?;
        st.functions.retain(|_, f| f.module != req.module);
        for (base, _) in m.globals.values() {
            if let Some(a) = st.allocs.remove(base) {
                let _ = self.devices[a.device as usize].free(*base);
            }
        }
        Ok(ModuleUnloadRep {})
    }

    pub(super) fn k_module_get_function(
        &self,
        _cx: &Cx,
        req: ModuleGetFunctionReq,
    ) -> CuResult<ModuleGetFunctionRep> {
        let mut st = self.st();
        let m = st.modules.get(&req.module).ok_or(CuError::INVALID_HANDLE)?;
        let index = m
            .prog
            .funcs
            .iter()
            .position(|f| f.is_entry && f.name == req.name)
            .ok_or(CuError::NOT_FOUND)?;
        if let Some((h, _)) = st
            .functions
            .iter()
            .find(|(_, f)| f.module == req.module && f.index == index)
        {
            return Ok(ModuleGetFunctionRep { func: *h });
        }
        let h = new_handle(self.ns());
        st.functions.insert(
            h,
            Function {
                module: req.module,
                index,
                max_dyn_smem: SMEM_DEFAULT,
                cache_config: 0,
            },
        );
        Ok(ModuleGetFunctionRep { func: h })
    }

    pub(super) fn k_module_get_global(
        &self,
        _cx: &Cx,
        req: ModuleGetGlobalReq,
    ) -> CuResult<ModuleGetGlobalRep> {
        let st = self.st();
        let m = st.modules.get(&req.module).ok_or(CuError::INVALID_HANDLE)?;
        let (dptr, bytes) = *m.globals.get(&req.name).ok_or(CuError::NOT_FOUND)?;
        Ok(ModuleGetGlobalRep { dptr, bytes })
    }

    pub(super) fn k_func_get_attribute(
        &self,
        _cx: &Cx,
        req: FuncGetAttributeReq,
    ) -> CuResult<FuncGetAttributeRep> {
        let st = self.st();
        let (f, m) = self.func(&st, req.func)?;
        let k = &m.prog.funcs[f.index];
        let value = match req.attrib {
            0 => max_threads(k) as i32,                     // MAX_THREADS_PER_BLOCK
            1 => k.shared_bytes as i32,                     // SHARED_SIZE_BYTES
            2 => 0,                                         // CONST_SIZE_BYTES
            3 => k.local_size.min(i32::MAX as u64) as i32,  // LOCAL_SIZE_BYTES
            4 => (k.nregs + k.npreds).clamp(1, 255) as i32, // NUM_REGS
            5 => m.ptx_version,                             // PTX_VERSION
            6 => 75,                                        // BINARY_VERSION
            7 => 0,                                         // CACHE_MODE_CA
            8 => f.max_dyn_smem as i32,                     // MAX_DYNAMIC_SHARED_SIZE_BYTES
            9 => -1,                                        // PREFERRED_SHARED_MEMORY_CARVEOUT
            10..=17 => 0, // cluster attributes, device-node update, shared-memory mode
            _ => return Err(CuError::INVALID_VALUE),
        };
        Ok(FuncGetAttributeRep { value })
    }

    pub(super) fn k_func_set_attribute(
        &self,
        _cx: &Cx,
        req: FuncSetAttributeReq,
    ) -> CuResult<FuncSetAttributeRep> {
        let mut st = self.st();
        let static_smem = {
            let (f, m) = self.func(&st, req.func)?;
            m.prog.funcs[f.index].shared_bytes
        };
        let f = st.functions.get_mut(&req.func).expect("checked");
        match req.attrib {
            8 => {
                if req.value < 0 || req.value as u32 + static_smem > SMEM_OPTIN {
                    return Err(CuError::INVALID_VALUE);
                }
                f.max_dyn_smem = req.value as u32;
            }
            9 => {
                if !(-1..=100).contains(&req.value) {
                    return Err(CuError::INVALID_VALUE);
                }
            }
            10..=16 => {}
            _ => return Err(CuError::INVALID_VALUE),
        }
        Ok(FuncSetAttributeRep {})
    }

    pub(super) fn k_func_get_param_info(
        &self,
        _cx: &Cx,
        req: FuncGetParamInfoReq,
    ) -> CuResult<FuncGetParamInfoRep> {
        let st = self.st();
        let (f, m) = self.func(&st, req.func)?;
        let (off, size, _) = *m.prog.funcs[f.index]
            .kparams
            .get(req.index as usize)
            .ok_or(CuError::INVALID_VALUE)?;
        Ok(FuncGetParamInfoRep {
            offset: off as u64,
            size: size as u64,
        })
    }

    pub(super) fn k_func_get_param_count(
        &self,
        _cx: &Cx,
        req: FuncGetParamCountReq,
    ) -> CuResult<FuncGetParamCountRep> {
        let st = self.st();
        let (f, m) = self.func(&st, req.func)?;
        Ok(FuncGetParamCountRep {
            count: m.prog.funcs[f.index].kparams.len() as u64,
        })
    }

    pub(super) fn k_func_get_module(
        &self,
        _cx: &Cx,
        req: FuncGetModuleReq,
    ) -> CuResult<FuncGetModuleRep> {
        let st = self.st();
        let (f, _) = self.func(&st, req.func)?;
        Ok(FuncGetModuleRep { module: f.module })
    }

    pub(super) fn k_func_layout(&self, _cx: &Cx, req: FuncLayoutReq) -> CuResult<FuncLayoutRep> {
        let st = self.st();
        let (f, m) = self.func(&st, req.func)?;
        let k = &m.prog.funcs[f.index];
        Ok(FuncLayoutRep {
            offsets: k.kparams.iter().map(|p| p.0 as u64).collect(),
            sizes: k.kparams.iter().map(|p| p.1 as u64).collect(),
            total: k.kparam_size as u64,
            max_threads: max_threads(k),
            max_dyn_smem: f.max_dyn_smem,
        })
    }

    pub(super) fn k_func_set_cache_config(
        &self,
        _cx: &Cx,
        req: FuncSetCacheConfigReq,
    ) -> CuResult<FuncSetCacheConfigRep> {
        if !(0..=3).contains(&req.config) {
            return Err(CuError::INVALID_VALUE);
        }
        let mut st = self.st();
        self.func(&st, req.func)?;
        st.functions
            .get_mut(&req.func)
            .expect("checked")
            .cache_config = req.config;
        Ok(FuncSetCacheConfigRep {})
    }

    pub(super) fn k_func_name(&self, _cx: &Cx, req: FuncNameReq) -> CuResult<FuncNameRep> {
        let st = self.st();
        let (f, m) = self.func(&st, req.func)?;
        let _ = f.cache_config;
        Ok(FuncNameRep {
            name: m.prog.funcs[f.index].name.clone(),
        })
    }

    pub(super) fn k_occupancy(
        &self,
        _cx: &Cx,
        func: u64,
        block_size: i32,
        dyn_smem: u64,
    ) -> CuResult<i32> {
        let st = self.st();
        let (f, m) = self.func(&st, func)?;
        if block_size <= 0 || block_size > 1024 {
            return Err(CuError::INVALID_VALUE);
        }
        let smem = m.prog.funcs[f.index].shared_bytes as u64 + dyn_smem;
        if smem > SMEM_OPTIN as u64 {
            return Ok(0);
        }
        let warps = (block_size as u32).div_ceil(32);
        let by_threads = 32 / warps;
        let by_smem = (SMEM_OPTIN as u64)
            .checked_div(smem)
            .map_or(16, |v| v as u32);
        Ok(by_threads.min(by_smem).min(16) as i32)
    }

    pub(super) fn k_available_smem(
        &self,
        _cx: &Cx,
        req: OccupancyAvailableDynamicSMemReq,
    ) -> CuResult<OccupancyAvailableDynamicSMemRep> {
        let st = self.st();
        let (f, m) = self.func(&st, req.func)?;
        if req.num_blocks <= 0 || req.block_size <= 0 || req.block_size > 1024 {
            return Err(CuError::INVALID_VALUE);
        }
        let per_block = SMEM_OPTIN as u64 / req.num_blocks as u64;
        let avail = per_block
            .saturating_sub(m.prog.funcs[f.index].shared_bytes as u64)
            .min(f.max_dyn_smem as u64);
        Ok(OccupancyAvailableDynamicSMemRep {
            dynamic_smem: avail,
        })
    }

    pub(super) fn k_launch_kernel(
        &self,
        cx: &Cx,
        req: LaunchKernelReq,
    ) -> CuResult<LaunchKernelRep> {
        let grid = [req.grid_x, req.grid_y, req.grid_z];
        let block = [req.block_x, req.block_y, req.block_z];
        let (prog, index, snapshot, sticky, kparam_size, static_smem, max_dyn) = {
            let st = self.st();
            let ctx = self.ctx(&st, cx)?;
            let sticky = ctx.sticky.clone();
            let (f, m) = self.func(&st, req.func)?;
            if m.ctx != 0 && m.ctx != cx.ctx {
                return Err(CuError::INVALID_HANDLE);
            }
            let k = &m.prog.funcs[f.index];
            (
                m.prog.clone(),
                f.index,
                self.snapshot(&st),
                sticky,
                k.kparam_size,
                k.shared_bytes,
                f.max_dyn_smem,
            )
        };
        let threads = block.iter().map(|&b| b as u64).product::<u64>();
        let max_threads = {
            let st = self.st();
            let (f, m) = self.func(&st, req.func)?;
            max_threads(&m.prog.funcs[f.index]) as u64
        };
        if threads > max_threads {
            return Err(CuError::INVALID_VALUE);
        }
        if block.contains(&0)
            || grid.contains(&0)
            || block[0] > 1024
            || block[1] > 1024
            || block[2] > 64
            || threads > 1024
            || grid[0] > i32::MAX as u32
            || grid[1] > 65535
            || grid[2] > 65535
        {
            return Err(CuError::INVALID_VALUE);
        }
        if req.shared_mem > max_dyn
            || static_smem as u64 + req.shared_mem as u64 > SMEM_OPTIN as u64
        {
            return Err(CuError::INVALID_VALUE);
        }
        if req.params.len() != kparam_size as usize {
            return Err(CuError::INVALID_VALUE);
        }
        let notify = self.notify.clone();
        let name = prog.funcs[index].name.clone();
        let sid = self.id;
        let params = req.params;
        let dyn_smem = req.shared_mem;
        self.submit(
            cx,
            req.stream,
            Box::new(move || {
                if sticky.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                    return;
                }
                let l = Launch {
                    grid,
                    block,
                    dyn_smem,
                    params: &params,
                    workers: vm::default_workers(),
                };
                let out = vm::launch(&prog, index, &l, &snapshot);
                if !out.output.is_empty() {
                    notify(1, out.output);
                }
                if let Err(f) = out.result {
                    let code = fault_code(&f);
                    tracing::warn!("session {sid}: kernel {name} failed: {f}");
                    notify(
                        2,
                        format!("rgpu: kernel {name} failed: {f} ({code:?})\n").into_bytes(),
                    );
                    *sticky.lock().unwrap_or_else(|e| e.into_inner()) = Some(code);
                }
            }),
        )?;
        Ok(LaunchKernelRep {})
    }
}
