//! A pool of servers on etcd. Servers register themselves and their devices under a lease they
//! keep alive (the keys vanish when a server dies); clients allocate devices with one etcd
//! transaction under a lease of their own (the allocation ends when the client exits or its
//! lease expires); servers accept sessions only for allocations that exist, and end sessions
//! whose allocation has gone (fencing).
//!
//! Keys, under `/rgpu/`:
//! * `servers/<id>`: [`ServerRecord`] (server lease)
//! * `secrets/<id>`: the server's access token (server lease; protect with etcd auth)
//! * `devices/<id>/<index>`: [`DeviceRecord`], refreshed every few seconds (server lease)
//! * `alloc/dev/<id>/<index>/<allocation>`: `shared` or `exclusive`, one key per allocation
//!   holding the device (client lease)
//! * `alloc/gen/<id>/<index>`: rewritten by every allocation that takes the device (no lease;
//!   the transaction compares its revision, which serialises the allocations of one device)
//! * `alloc/id/<allocation>`: [`AllocRecord`] (client lease)
//! * `alloc/user/<user>`: touched by every allocation of the user (serialises them, so that
//!   per-user quotas hold under races)
//! * `quota/<user>`: [`Quota`] (set by operators)

use anyhow::{anyhow, bail, Context, Result};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Root of every key.
pub const PREFIX: &str = "/rgpu/";

/// A server as registered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerRecord {
    /// Server id (unique in the pool).
    pub id: String,
    /// `host:port` clients reach its QUIC endpoint at.
    pub advertise: String,
    /// TLS server name.
    pub server_name: String,
    /// `sha256:<hex>` of its certificate (clients pin it).
    pub fingerprint: String,
    /// Host name.
    pub host: String,
    /// rgpu version.
    pub version: String,
    /// Unix time it registered.
    pub since: u64,
}

/// A device as registered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceRecord {
    /// Its server.
    pub server: String,
    /// Index in the server's list.
    pub index: u32,
    /// Name.
    pub name: String,
    /// `cpu` or `gpu`.
    pub kind: String,
    /// Memory in bytes.
    pub memory: u64,
    /// Free memory in bytes, where the server knows it.
    pub free: Option<u64>,
    /// Compute capability, e.g. `7.5`.
    pub cc: String,
    /// `shared` or `exclusive` (server policy).
    pub mode: String,
    /// Driver version the server reports.
    pub driver_version: i32,
    /// Sessions using it now.
    pub sessions: u32,
    /// How busy it is, in percent (GPUs: the driver's utilisation over its last sample period),
    /// where the server knows it.
    #[serde(default)]
    pub load: Option<u32>,
    /// UUID (`GPU-…`).
    pub uuid: String,
}

/// An allocation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AllocRecord {
    /// Allocation id.
    pub id: String,
    /// Who: user name.
    pub user: String,
    /// Who: host name.
    pub host: String,
    /// Who: process id of `rgpu run`.
    pub pid: u32,
    /// Unix time it was made.
    pub since: u64,
    /// The devices: (server id, index), in the order the program sees them.
    pub devices: Vec<(String, u32)>,
    /// Device memory each session may hold (bytes), if limited.
    pub memory_quota: Option<u64>,
    /// Whether the allocation holds its devices alone (otherwise other shared allocations may
    /// hold them too).
    #[serde(default)]
    pub exclusive: bool,
}

/// One allocation holding a device.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Holder {
    /// The allocation.
    pub allocation: String,
    /// Whether it holds the device alone.
    pub exclusive: bool,
}

/// What one user may hold at once.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct Quota {
    /// Devices.
    pub gpus: Option<u32>,
    /// Total memory of the devices.
    pub memory: Option<u64>,
}

/// An etcd endpoint list and credentials, from
/// `etcd://[user:password@]host:port[,host:port…]`, or `etcds://…?ca=FILE` for TLS (the CA
/// that signed etcd's certificate, PEM).
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryUrl {
    /// `http(s)://host:port` for each endpoint.
    pub endpoints: Vec<String>,
    /// etcd user and password (etcd auth).
    pub user: Option<(String, String)>,
    /// With TLS: the CA certificate file (PEM) to trust.
    pub ca: Option<std::path::PathBuf>,
}

impl std::str::FromStr for RegistryUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "`{s}`: a registry is etcd://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…], or etcds://…?ca=CA.pem for TLS"
            )
        };
        let (tls, rest) = if let Some(r) = s.strip_prefix("etcds://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("etcd://") {
            (false, r)
        } else {
            return Err(usage());
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut ca = None;
        for kv in query.split('&').filter(|q| !q.is_empty()) {
            match kv.split_once('=') {
                Some(("ca", path)) if !path.is_empty() => ca = Some(std::path::PathBuf::from(path)),
                _ => return Err(format!("`{s}`: unknown option `{kv}` (only ca=FILE)")),
            }
        }
        if tls != ca.is_some() {
            return Err(format!(
                "`{s}`: TLS (etcds://) needs ?ca=CA.pem, and only TLS takes it"
            ));
        }
        let (user, hosts) = match rest.rsplit_once('@') {
            Some((cred, hosts)) => {
                let (u, p) = cred
                    .split_once(':')
                    .ok_or_else(|| format!("`{s}`: credentials are USER:PASSWORD"))?;
                (Some((u.to_string(), p.to_string())), hosts)
            }
            None => (None, rest),
        };
        let scheme = if tls { "https" } else { "http" };
        let endpoints: Vec<String> = hosts
            .trim_end_matches('/')
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("{scheme}://{h}"))
            .collect();
        if endpoints.is_empty() || hosts.split(',').any(|h| !h.contains(':')) {
            return Err(format!("`{s}`: every endpoint is HOST:PORT"));
        }
        Ok(RegistryUrl {
            endpoints,
            user,
            ca,
        })
    }
}

/// Connects to one member of the registry that can serve (bounded in time): each endpoint in
/// turn, from a varying first one, and only a member that answers a linearizable read counts (one
/// cut off from its cluster's majority cannot). A client stays with its member; when a call
/// fails, its owner connects again and gets another member, so a dead member or a leader change
/// costs one reconnection.
pub async fn connect(url: &RegistryUrl) -> Result<Client> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5));
    if let Some((u, p)) = &url.user {
        opts = opts.with_user(u.clone(), p.clone());
    }
    if let Some(ca) = &url.ca {
        let pem = std::fs::read(ca)
            .with_context(|| format!("reading the registry's CA certificate {}", ca.display()))?;
        opts = opts.with_tls(
            etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(pem)),
        );
    }
    let n = url.endpoints.len();
    let first = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize)
        % n.max(1);
    let mut why = Vec::new();
    for k in 0..n {
        let ep = &url.endpoints[(first + k) % n];
        let attempt = async {
            let mut c = Client::connect([ep.clone()], Some(opts.clone())).await?;
            c.get(
                format!("{PREFIX}ping"),
                Some(GetOptions::new().with_keys_only()),
            )
            .await?;
            Ok::<_, etcd_client::Error>(c)
        };
        match tokio::time::timeout(Duration::from_secs(3), attempt).await {
            Ok(Ok(c)) => return Ok(c),
            Ok(Err(e)) => why.push(format!("{ep}: {e}")),
            Err(_) => why.push(format!("{ep}: no answer within 3 s")),
        }
    }
    Err(anyhow!(
        "cannot reach the registry at {} ({})",
        url.endpoints.join(","),
        why.join("; ")
    ))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn dev_key(server: &str, index: u32) -> String {
    format!("{PREFIX}devices/{server}/{index:04}")
}

fn alloc_dev_key(server: &str, index: u32, alloc: &str) -> String {
    format!("{PREFIX}alloc/dev/{server}/{index:04}/{alloc}")
}

fn alloc_gen_key(server: &str, index: u32) -> String {
    format!("{PREFIX}alloc/gen/{server}/{index:04}")
}

fn alloc_key(id: &str) -> String {
    format!("{PREFIX}alloc/id/{id}")
}

/// One consistent view of the pool.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Snapshot {
    /// etcd revision it was read at.
    pub revision: i64,
    /// Servers by id.
    pub servers: BTreeMap<String, ServerRecord>,
    /// Devices by (server, index).
    pub devices: BTreeMap<(String, u32), DeviceRecord>,
    /// Allocations by id.
    pub allocations: BTreeMap<String, AllocRecord>,
    /// The allocations holding each device.
    pub held: HashMap<(String, u32), Vec<Holder>>,
    /// Mod revision of each device's `alloc/gen` key.
    #[serde(skip)]
    pub gen_rev: HashMap<(String, u32), i64>,
    /// Per-user quotas.
    pub quotas: BTreeMap<String, Quota>,
    /// Mod revision of each user's `alloc/user/<user>` key.
    #[serde(skip)]
    pub user_rev: HashMap<String, i64>,
}

impl Snapshot {
    /// (devices, their total memory) that `user` holds now.
    pub fn held_by(&self, user: &str) -> (u32, u64) {
        let mut n = 0;
        let mut mem = 0;
        for a in self.allocations.values().filter(|a| a.user == user) {
            for d in &a.devices {
                n += 1;
                mem += self.devices.get(d).map_or(0, |r| r.memory);
            }
        }
        (n, mem)
    }
}

/// Reads the whole pool at one revision.
pub async fn snapshot(c: &mut Client) -> Result<Snapshot> {
    let r = c
        .get(PREFIX, Some(GetOptions::new().with_prefix()))
        .await
        .context("cannot reach the registry (reading the pool)")?;
    let mut s = Snapshot {
        revision: r.header().map(|h| h.revision()).unwrap_or(0),
        ..Default::default()
    };
    for kv in r.kvs() {
        let Ok(key) = kv.key_str() else { continue };
        let Some(rest) = key.strip_prefix(PREFIX) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["servers", _] => {
                if let Ok(v) = serde_json::from_slice::<ServerRecord>(kv.value()) {
                    s.servers.insert(v.id.clone(), v);
                }
            }
            ["devices", _, _] => {
                if let Ok(v) = serde_json::from_slice::<DeviceRecord>(kv.value()) {
                    s.devices.insert((v.server.clone(), v.index), v);
                }
            }
            ["alloc", "id", _] => {
                if let Ok(v) = serde_json::from_slice::<AllocRecord>(kv.value()) {
                    s.allocations.insert(v.id.clone(), v);
                }
            }
            ["quota", user] => {
                if let Ok(q) = serde_json::from_slice::<Quota>(kv.value()) {
                    s.quotas.insert(user.to_string(), q);
                }
            }
            ["alloc", "user", user] => {
                s.user_rev.insert(user.to_string(), kv.mod_revision());
            }
            ["alloc", "dev", server, index, id] => {
                if let Ok(i) = index.parse::<u32>() {
                    s.held
                        .entry((server.to_string(), i))
                        .or_default()
                        .push(Holder {
                            allocation: id.to_string(),
                            exclusive: kv.value() == b"exclusive",
                        });
                }
            }
            ["alloc", "gen", server, index] => {
                if let Ok(i) = index.parse::<u32>() {
                    s.gen_rev.insert((server.to_string(), i), kv.mod_revision());
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Servers

/// What a server publishes about itself.
#[derive(Clone)]
pub struct Registration {
    /// The server's record.
    pub server: ServerRecord,
    /// Its access token (readable with the pool's credentials only).
    pub token: String,
    /// Seconds the server's lease lasts without keep-alive.
    pub ttl: i64,
}

/// Keeps a server registered: grants a lease, publishes the server, its secret and its devices
/// (`devices()` is asked again every refresh), keeps the lease alive, and starts over (new lease)
/// whenever etcd was unreachable or restarted. Runs until dropped.
pub async fn keep_registered(
    url: RegistryUrl,
    reg: Registration,
    devices: impl Fn() -> Vec<DeviceRecord> + Send + 'static,
) {
    let mut logged_down = false;
    loop {
        match registered_once(&url, &reg, &devices).await {
            Ok(()) => {}
            Err(e) => {
                if !logged_down {
                    tracing::warn!("pool registry: {e:#}; retrying (sessions go on)");
                    logged_down = true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if logged_down {
            tracing::debug!("pool registry: reconnecting");
        }
    }
}

async fn registered_once(
    url: &RegistryUrl,
    reg: &Registration,
    devices: &(impl Fn() -> Vec<DeviceRecord> + Send),
) -> Result<()> {
    let mut c = connect(url).await?;
    let lease = c.lease_grant(reg.ttl, None).await?.id();
    let put = Some(PutOptions::new().with_lease(lease));
    let id = &reg.server.id;
    c.put(
        format!("{PREFIX}servers/{id}"),
        serde_json::to_vec(&reg.server)?,
        put.clone(),
    )
    .await?;
    c.put(
        format!("{PREFIX}secrets/{id}"),
        reg.token.clone(),
        put.clone(),
    )
    .await?;
    tracing::info!(
        "registered in the pool as `{id}` ({} , lease {lease:x})",
        url.endpoints.join(",")
    );
    let (mut keeper, mut acks) = c.lease_keep_alive(lease).await?;
    let every = Duration::from_millis((reg.ttl as u64 * 1000 / 3).max(300));
    loop {
        for d in devices() {
            c.put(dev_key(id, d.index), serde_json::to_vec(&d)?, put.clone())
                .await?;
        }
        keeper.keep_alive().await?;
        match tokio::time::timeout(every, acks.message()).await {
            Ok(Ok(Some(ack))) if ack.ttl() > 0 => {}
            Ok(Ok(Some(_))) => bail!("the server's lease expired"),
            Ok(Ok(None)) => bail!("the registry closed the lease stream"),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => bail!("no keep-alive answer from the registry"),
        }
        tokio::time::sleep(every).await;
    }
}

/// A session's claim checked against the registry: the allocation exists and holds, on server
/// `server`, the devices the session asks for.
pub async fn check_allocation(
    c: &mut Client,
    alloc: &str,
    server: &str,
    indices: &[usize],
) -> Result<AllocRecord, String> {
    let r = tokio::time::timeout(Duration::from_secs(3), c.get(alloc_key(alloc), None))
        .await
        .map_err(|_| {
            "the pool registry does not answer; new sessions cannot be checked".to_string()
        })?
        .map_err(|e| {
            format!("the pool registry is unreachable ({e}); new sessions cannot be checked")
        })?;
    let kv = r.kvs().first().ok_or_else(|| {
        format!("allocation {alloc} does not exist (released, or its client is gone)")
    })?;
    let rec: AllocRecord = serde_json::from_slice(kv.value())
        .map_err(|e| format!("allocation {alloc} is malformed: {e}"))?;
    for &i in indices {
        if !rec
            .devices
            .iter()
            .any(|(s, d)| s == server && *d as usize == i)
        {
            return Err(format!(
                "allocation {alloc} does not hold device {i} of server {server}"
            ));
        }
    }
    Ok(rec)
}

/// The ids of the allocations that exist now (one read), or `None` when the registry cannot be
/// asked (sessions then go on).
pub async fn live_allocations(c: &mut Client) -> Option<std::collections::HashSet<String>> {
    let prefix = alloc_key("");
    let r = tokio::time::timeout(
        Duration::from_secs(3),
        c.get(
            prefix.clone(),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        ),
    )
    .await
    .ok()?
    .ok()?;
    Some(
        r.kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok()?.strip_prefix(&prefix).map(str::to_string))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Clients

/// What a client asks for.
#[derive(Debug, Clone)]
pub struct Request {
    /// Number of devices.
    pub gpus: usize,
    /// Least total memory of each device.
    pub min_memory: u64,
    /// Least compute capability (major, minor).
    pub min_cc: (u32, u32),
    /// `pack` (best fit: least free memory that fits) or `spread` (most free memory).
    pub spread: bool,
    /// Device memory each session may hold.
    pub memory_quota: Option<u64>,
    /// All devices must come from one server (otherwise one server is preferred, and an
    /// allocation that fits on none spans several).
    pub same_server: bool,
    /// Hold the devices alone (`rgpu run`'s default). Otherwise the allocation shares devices
    /// with other shared allocations (idle devices first); devices whose server serves one
    /// session at a time are always held alone.
    pub exclusive: bool,
}

fn cc_of(s: &str) -> (u32, u32) {
    let (a, b) = s.split_once('.').unwrap_or((s, "0"));
    (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
}

/// Picks devices for `req` in `snap`. One server that has them all is preferred (the devices
/// can reach each other directly there), the best fit by free memory (`spread`: the most free
/// memory). Otherwise, unless `same_server`, the allocation spans servers: `pack` takes the
/// fewest servers (those with the most matching devices first), `spread` the devices with the
/// most free memory wherever they are. The result lists each server's devices together.
/// `Err` says why nothing fits.
pub fn choose(snap: &Snapshot, req: &Request) -> Result<Vec<(String, u32)>, String> {
    let mut by_server: BTreeMap<&str, Vec<&DeviceRecord>> = BTreeMap::new();
    let (mut total, mut free_now) = (0, 0);
    for (key, d) in &snap.devices {
        if !snap.servers.contains_key(&d.server) {
            continue;
        }
        total += 1;
        let holders = snap.held.get(key).map_or(&[][..], Vec::as_slice);
        if holders.is_empty() {
            free_now += 1;
        }
        let alone = req.exclusive || d.mode == "exclusive";
        if (alone && !holders.is_empty()) || holders.iter().any(|h| h.exclusive) {
            continue;
        }
        if d.memory < req.min_memory || cc_of(&d.cc) < req.min_cc {
            continue;
        }
        by_server.entry(&d.server).or_default().push(d);
    }
    let free = |d: &DeviceRecord| d.free.unwrap_or(d.memory);
    let sharing = |d: &DeviceRecord| {
        snap.held
            .get(&(d.server.clone(), d.index))
            .map_or(0, Vec::len)
    };
    for devs in by_server.values_mut() {
        // Idle devices first; then the best fit (or, with `spread`, the most free memory).
        devs.sort_by_key(|d| {
            (
                sharing(d),
                if req.spread {
                    u64::MAX - free(d)
                } else {
                    free(d)
                },
                d.index,
            )
        });
    }
    // (allocations already on the picked devices, their free memory, the pick)
    type Pick = (usize, u64, Vec<(String, u32)>);
    let mut best: Option<Pick> = None;
    for devs in by_server.values() {
        if devs.len() < req.gpus {
            continue;
        }
        let pick: Vec<&DeviceRecord> = devs[..req.gpus].to_vec();
        let shared: usize = pick.iter().map(|d| sharing(d)).sum();
        let score: u64 = pick.iter().map(|d| free(d)).sum();
        let better = match &best {
            None => true,
            Some((sh, s, _)) => {
                shared < *sh || (shared == *sh && if req.spread { score > *s } else { score < *s })
            }
        };
        if better {
            best = Some((
                shared,
                score,
                pick.iter().map(|d| (d.server.clone(), d.index)).collect(),
            ));
        }
    }
    if let Some((_, _, p)) = best {
        return Ok(p);
    }
    let matching: usize = by_server.values().map(Vec::len).sum();
    if !req.same_server && matching >= req.gpus {
        let mut picked: Vec<&DeviceRecord> = if req.spread {
            let mut all: Vec<&DeviceRecord> = by_server.values().flatten().copied().collect();
            all.sort_by_key(|d| {
                (
                    sharing(d),
                    std::cmp::Reverse(free(d)),
                    d.server.clone(),
                    d.index,
                )
            });
            all.truncate(req.gpus);
            all
        } else {
            let mut servers: Vec<&Vec<&DeviceRecord>> = by_server.values().collect();
            servers.sort_by_key(|v| std::cmp::Reverse(v.len()));
            servers
                .into_iter()
                .flatten()
                .copied()
                .take(req.gpus)
                .collect()
        };
        // Each server's devices together, servers in name order (the program's numbering).
        picked.sort_by(|a, b| {
            a.server
                .cmp(&b.server)
                .then(free(a).cmp(&free(b)))
                .then(a.index.cmp(&b.index))
        });
        return Ok(picked.iter().map(|d| (d.server.clone(), d.index)).collect());
    }
    let what = format!(
        "{} free device(s) matching (min memory {} MiB, min compute capability {}.{})",
        req.gpus,
        req.min_memory >> 20,
        req.min_cc.0,
        req.min_cc.1
    );
    Err(if req.same_server {
        format!("no server has {what}; the pool has {total} device(s), {free_now} free")
    } else {
        format!("the pool has fewer than {what}: {total} device(s), {free_now} free")
    })
}

/// Whether `user` may take `devices` on top of what it holds (its quota in `snap`).
pub fn within_quota(snap: &Snapshot, user: &str, devices: &[(String, u32)]) -> Result<(), String> {
    let Some(q) = snap.quotas.get(user) else {
        return Ok(());
    };
    let (n, mem) = snap.held_by(user);
    let add: u64 = devices
        .iter()
        .map(|d| snap.devices.get(d).map_or(0, |r| r.memory))
        .sum();
    if let Some(g) = q.gpus {
        if n + devices.len() as u32 > g {
            return Err(format!(
                "user {user} holds {n} device(s); {} more would pass the quota of {g}",
                devices.len()
            ));
        }
    }
    if let Some(m) = q.memory {
        if mem + add > m {
            return Err(format!(
                "user {user} holds devices with {} MiB; {} MiB more would pass the quota of {} MiB",
                mem >> 20,
                add >> 20,
                m >> 20
            ));
        }
    }
    Ok(())
}

/// Sets (or, with `None`, removes) `user`'s quota.
pub async fn set_quota(url: &RegistryUrl, user: &str, q: Option<Quota>) -> Result<()> {
    let mut c = connect(url).await?;
    let key = format!("{PREFIX}quota/{user}");
    match q {
        Some(q) => {
            c.put(key, serde_json::to_vec(&q)?, None).await?;
        }
        None => {
            c.delete(key, None).await?;
        }
    }
    Ok(())
}

/// A live allocation: its lease is kept alive until [`Allocation::release`] or drop of the task.
pub struct Allocation {
    /// The record as committed.
    pub record: AllocRecord,
    /// Where to connect: each server of the allocation (in the order of `record.devices`) with
    /// its access token.
    pub servers: Vec<(ServerRecord, String)>,
    lease: i64,
    client: Client,
    url: RegistryUrl,
    keeper: tokio::task::JoinHandle<()>,
}

impl Allocation {
    /// Ends the allocation now (revokes its lease: every key of it goes), through another
    /// member of the registry if the first does not answer.
    pub async fn release(mut self) {
        self.keeper.abort();
        let revoked =
            tokio::time::timeout(Duration::from_secs(2), self.client.lease_revoke(self.lease))
                .await;
        if !matches!(revoked, Ok(Ok(_))) {
            if let Ok(Ok(mut c)) =
                tokio::time::timeout(Duration::from_secs(6), connect(&self.url)).await
            {
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), c.lease_revoke(self.lease)).await;
            }
        }
    }
}

type KeepAlive = (etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream);

/// Keeps an allocation's lease alive every `every`. When its registry member stops answering, it
/// connects to another and keeps the same lease alive there (a lease belongs to the cluster), so
/// a dead member or a leader change does not end the allocation.
async fn keep_lease(url: RegistryUrl, lease: i64, first: KeepAlive, every: Duration) {
    let mut conn: Option<(Option<Client>, KeepAlive)> = Some((None, first));
    let mut warned = false;
    loop {
        let alive = match conn.as_mut() {
            Some((_, (keeper, acks))) => {
                keeper.keep_alive().await.is_ok()
                    && match tokio::time::timeout(every, acks.message()).await {
                        Ok(Ok(Some(ack))) if ack.ttl() > 0 => true,
                        Ok(Ok(Some(_))) => {
                            tracing::error!(
                                "allocation lease {lease:x} expired; its servers end its sessions"
                            );
                            return;
                        }
                        _ => false,
                    }
            }
            None => false,
        };
        if alive {
            warned = false;
        } else {
            conn = None;
            if let Ok(mut c) = connect(&url).await {
                if let Ok(ka) = c.lease_keep_alive(lease).await {
                    conn = Some((Some(c), ka));
                    continue;
                }
            }
            if !warned {
                tracing::warn!(
                    "allocation lease: the registry is unreachable; retrying (the allocation lasts as long as its lease)"
                );
                warned = true;
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Allocates devices for `req`, retrying until `wait` has passed: reads a snapshot, picks,
/// and commits the whole allocation in one transaction that succeeds only if none of the
/// devices was taken meanwhile and their servers are still registered. `ttl`: the client
/// lease's time to live (the allocation outlives a dead client by at most this).
pub async fn allocate(
    url: &RegistryUrl,
    req: &Request,
    wait: Duration,
    ttl: i64,
    who: (String, String, u32),
) -> Result<Allocation> {
    let mut c = connect(url).await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut said_waiting = false;
    loop {
        let snap = snapshot(&mut c).await?;
        let chosen = choose(&snap, req).and_then(|d| within_quota(&snap, &who.0, &d).map(|_| d));
        match chosen {
            Ok(devices) => {
                let lease = c.lease_grant(ttl, None).await?.id();
                let id = format!("{:016x}", lease as u64 ^ ((now() & 0xffff_ffff) << 16));
                let rec = AllocRecord {
                    id: id.clone(),
                    user: who.0.clone(),
                    host: who.1.clone(),
                    pid: who.2,
                    since: now(),
                    devices: devices.clone(),
                    memory_quota: req.memory_quota,
                    exclusive: req.exclusive,
                };
                let put = Some(PutOptions::new().with_lease(lease));
                let mut when = Vec::new();
                let mut ops = vec![TxnOp::put(
                    alloc_key(&id),
                    serde_json::to_vec(&rec)?,
                    put.clone(),
                )];
                // The user's allocations are serialised: a quota counted in this snapshot
                // still holds when the transaction commits.
                let user_key = format!("{PREFIX}alloc/user/{}", who.0);
                when.push(match snap.user_rev.get(&who.0) {
                    Some(&rev) => Compare::mod_revision(user_key.clone(), CompareOp::Equal, rev),
                    None => Compare::version(user_key.clone(), CompareOp::Equal, 0),
                });
                ops.push(TxnOp::put(user_key, id.clone(), None));
                for (s, i) in &devices {
                    // Nobody took the device since the snapshot (holders that left meanwhile
                    // only make room), and its server is still registered.
                    let gen = alloc_gen_key(s, *i);
                    when.push(match snap.gen_rev.get(&(s.clone(), *i)) {
                        Some(&rev) => Compare::mod_revision(gen.clone(), CompareOp::Equal, rev),
                        None => Compare::version(gen.clone(), CompareOp::Equal, 0),
                    });
                    when.push(Compare::version(
                        format!("{PREFIX}servers/{s}"),
                        CompareOp::Greater,
                        0,
                    ));
                    ops.push(TxnOp::put(gen, id.clone(), None));
                    let alone = req.exclusive
                        || snap
                            .devices
                            .get(&(s.clone(), *i))
                            .is_some_and(|d| d.mode == "exclusive");
                    ops.push(TxnOp::put(
                        alloc_dev_key(s, *i, &id),
                        if alone { "exclusive" } else { "shared" },
                        put.clone(),
                    ));
                }
                let committed = c
                    .txn(Txn::new().when(when).and_then(ops))
                    .await?
                    .succeeded();
                if committed {
                    let mut servers: Vec<(ServerRecord, String)> = Vec::new();
                    for (id, _) in &devices {
                        if servers.iter().any(|(s, _)| &s.id == id) {
                            continue;
                        }
                        let server = snap
                            .servers
                            .get(id)
                            .cloned()
                            .context("the server vanished")?;
                        let token = c
                            .get(format!("{PREFIX}secrets/{}", server.id), None)
                            .await?
                            .kvs()
                            .first()
                            .and_then(|kv| kv.value_str().ok().map(str::to_string))
                            .unwrap_or_default();
                        servers.push((server, token));
                    }
                    let keeper = tokio::spawn(keep_lease(
                        url.clone(),
                        lease,
                        c.lease_keep_alive(lease).await?,
                        Duration::from_millis((ttl as u64 * 1000 / 3).max(300)),
                    ));
                    return Ok(Allocation {
                        record: rec,
                        servers,
                        lease,
                        client: c,
                        url: url.clone(),
                        keeper,
                    });
                }
                // Someone was faster: try again at once with a fresh view.
                let _ = c.lease_revoke(lease).await;
            }
            Err(why) => {
                if tokio::time::Instant::now() >= deadline {
                    bail!("{why}");
                }
                if !said_waiting {
                    eprintln!("rgpu: {why}; waiting up to {wait:?}");
                    said_waiting = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Ends allocation `id` (operators): deletes its record and device claims. The server then ends
/// its sessions.
pub async fn release(url: &RegistryUrl, id: &str) -> Result<()> {
    let mut c = connect(url).await?;
    let snap = snapshot(&mut c).await?;
    let rec = snap
        .allocations
        .get(id)
        .with_context(|| format!("no allocation {id} in the pool"))?;
    let mut ops = vec![TxnOp::delete(alloc_key(id), None)];
    for (s, i) in &rec.devices {
        ops.push(TxnOp::delete(alloc_dev_key(s, *i, id), None));
    }
    c.txn(Txn::new().and_then(ops)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_urls_parse_with_and_without_credentials() {
        let u: RegistryUrl = "etcd://127.0.0.1:2379".parse().unwrap();
        assert_eq!(u.endpoints, vec!["http://127.0.0.1:2379"]);
        assert_eq!(u.user, None);
        let u: RegistryUrl = "etcd://pool:s3cret@a:1,b:2".parse().unwrap();
        assert_eq!(u.endpoints, vec!["http://a:1", "http://b:2"]);
        assert_eq!(u.user, Some(("pool".into(), "s3cret".into())));
        let u: RegistryUrl = "etcds://a:1?ca=/etc/ca.pem".parse().unwrap();
        assert_eq!(u.endpoints, vec!["https://a:1"]);
        assert_eq!(u.ca, Some("/etc/ca.pem".into()));
        assert!("etcds://a:1".parse::<RegistryUrl>().is_err());
        assert!("etcd://a:1?ca=x".parse::<RegistryUrl>().is_err());
        assert!("http://a:1".parse::<RegistryUrl>().is_err());
        assert!("etcd://a".parse::<RegistryUrl>().is_err());
    }

    fn dev(server: &str, index: u32, memory: u64, free: u64) -> DeviceRecord {
        DeviceRecord {
            server: server.into(),
            index,
            name: "d".into(),
            kind: "cpu".into(),
            memory,
            free: Some(free),
            cc: "7.5".into(),
            mode: "shared".into(),
            driver_version: 13000,
            sessions: 0,
            load: None,
            uuid: String::new(),
        }
    }

    #[test]
    fn shared_allocations_share_idle_devices_first_exclusive_ones_hold_alone() {
        let mut s = snap(
            vec![dev("a", 0, 8 << 30, 8 << 30), dev("a", 1, 8 << 30, 4 << 30)],
            &[],
        );
        let holds = |s: &mut Snapshot, i: u32, excl: bool| {
            s.held.entry(("a".into(), i)).or_default().push(Holder {
                allocation: format!("h{i}"),
                exclusive: excl,
            })
        };
        holds(&mut s, 1, false);
        // Device 1 is the better fit, but device 0 is idle.
        assert_eq!(
            choose(&s, &req(1, 0, false)).unwrap(),
            vec![("a".into(), 0)]
        );
        // Two shared: the held one is shared too.
        assert_eq!(choose(&s, &req(2, 0, false)).unwrap().len(), 2);
        let mut alone = req(2, 0, false);
        alone.exclusive = true;
        assert!(choose(&s, &alone).is_err());
        alone.gpus = 1;
        assert_eq!(choose(&s, &alone).unwrap(), vec![("a".into(), 0)]);
        // An exclusive holder keeps everyone out; a device whose server serves one session at
        // a time is never shared.
        holds(&mut s, 0, true);
        assert!(choose(&s, &req(2, 0, false)).is_err());
        let mut s = snap(vec![dev("a", 0, 8 << 30, 8 << 30)], &[]);
        s.devices.get_mut(&("a".into(), 0)).unwrap().mode = "exclusive".into();
        assert!(choose(&s, &req(1, 0, false)).is_ok());
        holds(&mut s, 0, false);
        assert!(choose(&s, &req(1, 0, false)).is_err());
    }

    fn snap(devs: Vec<DeviceRecord>, held: &[(&str, u32)]) -> Snapshot {
        let mut s = Snapshot::default();
        for d in devs {
            s.servers.insert(
                d.server.clone(),
                ServerRecord {
                    id: d.server.clone(),
                    advertise: String::new(),
                    server_name: String::new(),
                    fingerprint: String::new(),
                    host: String::new(),
                    version: String::new(),
                    since: 0,
                },
            );
            s.devices.insert((d.server.clone(), d.index), d);
        }
        for (srv, i) in held {
            s.held
                .entry((srv.to_string(), *i))
                .or_default()
                .push(Holder {
                    allocation: "x".into(),
                    exclusive: true,
                });
        }
        s
    }

    fn req(gpus: usize, min_memory: u64, spread: bool) -> Request {
        Request {
            gpus,
            min_memory,
            min_cc: (0, 0),
            spread,
            memory_quota: None,
            same_server: false,
            exclusive: false,
        }
    }

    #[test]
    fn choosing_packs_by_best_fit_spreads_on_request_and_skips_held_devices() {
        let s = snap(
            vec![
                dev("a", 0, 8 << 30, 8 << 30),
                dev("a", 1, 8 << 30, 2 << 30),
                dev("b", 0, 16 << 30, 16 << 30),
            ],
            &[],
        );
        assert_eq!(
            choose(&s, &req(1, 0, false)).unwrap(),
            vec![("a".into(), 1)]
        );
        assert_eq!(choose(&s, &req(1, 0, true)).unwrap(), vec![("b".into(), 0)]);
        assert_eq!(
            choose(&s, &req(1, 12 << 30, false)).unwrap(),
            vec![("b".into(), 0)]
        );
        // Two devices come from one server when one has them.
        let two = choose(&s, &req(2, 0, false)).unwrap();
        assert!(two.iter().all(|(srv, _)| srv == "a"), "{two:?}");
        // Three span servers (each server's devices together), unless asked not to.
        let three = choose(&s, &req(3, 0, false)).unwrap();
        assert_eq!(three.len(), 3);
        assert_eq!(
            three.iter().filter(|(srv, _)| srv == "a").count(),
            2,
            "{three:?}"
        );
        assert!(three.windows(2).all(|w| w[0].0 <= w[1].0), "{three:?}");
        let mut one = req(3, 0, false);
        one.same_server = true;
        let e = choose(&s, &one).unwrap_err();
        assert!(e.contains("no server has 3"), "{e}");
        assert!(choose(&s, &req(4, 0, false)).is_err());
        let s = snap(vec![dev("a", 0, 8 << 30, 8 << 30)], &[("a", 0)]);
        let e = choose(&s, &req(1, 0, false)).unwrap_err();
        assert!(e.contains("1 device(s), 0 free"), "{e}");
    }
}
