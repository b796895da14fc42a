//! Which of the server's devices a session gets: the client's `RGPU_VISIBLE_DEVICES`, applied
//! to the server's list with `CUDA_VISIBLE_DEVICES` rules, and the per-device policy (shared by
//! any number of sessions, or exclusive: one session at a time, the others wait a configured
//! time and are then refused as "device unavailable").

use rgpu_protocol::wire::{DeviceLoad, REFUSED_BUSY};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Formats a UUID as `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (as nvidia-smi prints it).
pub fn uuid_string(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The server indices a client sees for `spec` (`None`: all). As with `CUDA_VISIBLE_DEVICES`,
/// entries are indices or UUIDs (a unique prefix, with or without `GPU-`), and the list ends at
/// the first entry that names no device or repeats one.
pub fn visible_indices(spec: Option<&str>, uuids: &[[u8; 16]]) -> Vec<usize> {
    let Some(spec) = spec else {
        return (0..uuids.len()).collect();
    };
    let names: Vec<String> = uuids.iter().map(uuid_string).collect();
    let mut out = vec![];
    for entry in spec.split(',').map(str::trim) {
        let found = if let Ok(i) = entry.parse::<usize>() {
            (i < uuids.len()).then_some(i)
        } else if entry.is_empty() {
            None
        } else {
            let want = entry.to_ascii_lowercase();
            let want = if want.starts_with("gpu-") {
                want
            } else {
                format!("gpu-{want}")
            };
            let hits: Vec<usize> = (0..names.len())
                .filter(|&i| names[i].to_ascii_lowercase().starts_with(&want))
                .collect();
            (hits.len() == 1).then(|| hits[0])
        };
        match found {
            Some(i) if !out.contains(&i) => out.push(i),
            _ => break,
        }
    }
    out
}

/// Server-wide use of each device.
#[derive(Default)]
pub struct Placement {
    inner: Mutex<Use>,
}

#[derive(Default)]
struct Use {
    /// Sessions per device.
    users: HashMap<usize, u32>,
    /// Exclusive devices held: device → session.
    held: HashMap<usize, u64>,
}

/// A session's hold on its devices; dropping it releases them.
pub struct Claim {
    placement: Arc<Placement>,
    devices: Vec<usize>,
    sid: u64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut u = self
            .placement
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for d in &self.devices {
            if let Some(n) = u.users.get_mut(d) {
                *n = n.saturating_sub(1);
            }
            if u.held.get(d) == Some(&self.sid) {
                u.held.remove(d);
            }
        }
    }
}

impl Placement {
    /// Sessions using device `d` now.
    pub fn users(&self, d: usize) -> u32 {
        let u = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        u.users.get(&d).copied().unwrap_or(0)
    }

    /// Claims `devices` for session `sid`; `exclusive(d)` says which are exclusive. Waits up
    /// to `wait` for exclusive devices held by other sessions, then refuses.
    pub async fn claim(
        self: &Arc<Self>,
        sid: u64,
        devices: &[usize],
        exclusive: impl Fn(usize) -> bool,
        wait: Duration,
    ) -> Result<(Claim, Vec<DeviceLoad>), String> {
        let t0 = Instant::now();
        loop {
            {
                let mut u = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                let busy = devices
                    .iter()
                    .find(|d| exclusive(**d) && u.held.contains_key(d));
                match busy {
                    Some(d) if t0.elapsed() >= wait => {
                        return Err(format!(
                            "{REFUSED_BUSY}device {d} is exclusive and in use by another session \
                             (waited {wait:?})"
                        ))
                    }
                    Some(_) => {}
                    None => {
                        let mut loads = vec![];
                        for &d in devices {
                            let n = u.users.entry(d).or_insert(0);
                            loads.push(DeviceLoad {
                                server_index: d as u32,
                                sessions: *n,
                                exclusive: exclusive(d),
                            });
                            *n += 1;
                            if exclusive(d) {
                                u.held.insert(d, sid);
                            }
                        }
                        let claim = Claim {
                            placement: self.clone(),
                            devices: devices.to_vec(),
                            sid,
                        };
                        return Ok((claim, loads));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<[u8; 16]> {
        vec![[0xab; 16], [0xcd; 16], [0xce; 16]]
    }

    #[test]
    fn visible_devices_follow_cuda_rules() {
        let u = ids();
        assert_eq!(visible_indices(None, &u), vec![0, 1, 2]);
        assert_eq!(visible_indices(Some(""), &u), Vec::<usize>::new());
        assert_eq!(visible_indices(Some("2,0"), &u), vec![2, 0]);
        // The list ends at an invalid or repeated entry.
        assert_eq!(visible_indices(Some("1,7,0"), &u), vec![1]);
        assert_eq!(visible_indices(Some("1,1,0"), &u), vec![1]);
        // UUIDs by unique prefix, with or without GPU-.
        assert_eq!(
            uuid_string(&u[0]),
            "GPU-abababab-abab-abab-abab-abababababab"
        );
        assert_eq!(visible_indices(Some("GPU-abab, 1"), &u), vec![0, 1]);
        assert_eq!(visible_indices(Some("cdcd"), &u), vec![1]);
        assert_eq!(
            visible_indices(Some("GPU-c"), &u),
            Vec::<usize>::new(),
            "ambiguous"
        );
    }

    #[tokio::test]
    async fn exclusive_devices_serve_one_session_at_a_time() {
        let p = Arc::new(Placement::default());
        let excl = |d: usize| d == 0;
        let (a, loads) = p.claim(1, &[0, 1], excl, Duration::ZERO).await.unwrap();
        assert_eq!(loads[0].sessions, 0);
        assert!(loads[0].exclusive && !loads[1].exclusive);
        // Device 1 is shared: another session gets it.
        let (b, loads) = p.claim(2, &[1], excl, Duration::ZERO).await.unwrap();
        assert_eq!(loads[0].sessions, 1);
        // Device 0 is taken: refused at once without a wait...
        let e = p.claim(3, &[0], excl, Duration::ZERO).await.err().unwrap();
        assert!(e.starts_with(REFUSED_BUSY), "{e}");
        // ...and granted to a waiting session once released.
        let p2 = p.clone();
        let waiter = tokio::spawn(async move {
            p2.claim(4, &[0], excl, Duration::from_secs(5))
                .await
                .is_ok()
        });
        tokio::time::sleep(Duration::from_millis(120)).await;
        drop(a);
        assert!(waiter.await.unwrap());
        drop(b);
        assert_eq!(p.users(1), 0);
    }
}
