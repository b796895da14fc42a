//! Connection files: what a client needs to reach and trust a server (address, pinned
//! certificate fingerprint, access token). Written by `rgpu server`, owner-readable only.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Errors reading or writing a connection file.
#[derive(Debug, thiserror::Error)]
pub enum ConnFileError {
    /// I/O failure.
    #[error("connection file {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid JSON or missing fields.
    #[error("connection file {path} is malformed: {source}")]
    Parse {
        /// File path.
        path: String,
        /// Cause.
        source: serde_json::Error,
    },
    /// A field has an unusable value.
    #[error("connection file {path}: {what}")]
    Invalid {
        /// File path.
        path: String,
        /// What is wrong.
        what: String,
    },
}

/// Contents of a connection file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionFile {
    /// `host:port` of the server's QUIC endpoint.
    pub address: String,
    /// TLS server name in the certificate.
    pub server_name: String,
    /// `sha256:<hex>` of the server certificate (DER); empty in insecure mode.
    #[serde(default)]
    pub fingerprint: String,
    /// Access token presented in the handshake.
    #[serde(default)]
    pub token: String,
    /// Skip certificate pinning (only when the server was started with `--insecure`).
    #[serde(default)]
    pub insecure: bool,
    /// The server's Unix socket, for clients on the same machine (`host`): calls skip QUIC and
    /// TLS there; the socket is owner-only and the token is still checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_socket: Option<String>,
    /// Host name of the machine whose `local_socket` this is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Which of the server's devices the client uses (`CUDA_VISIBLE_DEVICES` syntax); when set,
    /// it replaces the client's `RGPU_VISIBLE_DEVICES` for this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_devices: Option<String>,
}

impl ConnectionFile {
    /// Reads and validates a connection file.
    pub fn read(path: &Path) -> Result<Self, ConnFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConnFileError::Io {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConnFileError::Parse { source, .. } => ConnFileError::Parse { path: p, source },
            ConnFileError::Invalid { what, .. } => ConnFileError::Invalid { path: p, what },
            other => other,
        })
    }

    /// Parses and validates connection-file text.
    pub fn parse(text: &str) -> Result<Self, ConnFileError> {
        let cf: ConnectionFile =
            serde_json::from_str(text).map_err(|source| ConnFileError::Parse {
                path: String::new(),
                source,
            })?;
        cf.validate()?;
        Ok(cf)
    }

    /// Checks that the fields are usable.
    pub fn validate(&self) -> Result<(), ConnFileError> {
        let cf = self;
        let invalid = |what: &str| ConnFileError::Invalid {
            path: String::new(),
            what: what.into(),
        };
        if cf.address.parse::<std::net::SocketAddr>().is_err()
            && !cf
                .address
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        {
            return Err(invalid("`address` must be host:port"));
        }
        if !cf.insecure {
            let hex = cf.fingerprint.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    "`fingerprint` must be sha256:<64 hex digits> (or set \"insecure\": true)",
                ));
            }
            if cf.token.is_empty() {
                return Err(invalid("`token` is empty"));
            }
        }
        Ok(())
    }

    /// Writes the file with owner-only permissions (0600).
    pub fn write(&self, path: &Path) -> Result<(), ConnFileError> {
        let p = path.display().to_string();
        let io = |source| ConnFileError::Io {
            path: p.clone(),
            source,
        };
        let text = serde_json::to_string_pretty(self).expect("serialisable") + "\n";
        crate::transport::write_private(path, text.as_bytes()).map_err(io)
    }
}

/// Most servers one client may use at once (a handle's top byte names its server).
pub const MAX_SERVERS: usize = 64;

/// The servers of a client that spreads its devices over several of them (`rgpu run --registry`
/// writes one when an allocation spans servers): `{"servers": [connection file, …]}`. The
/// program sees the devices of the first server first, then those of the second, and so on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSet {
    /// One entry per server, each a complete connection file.
    pub servers: Vec<ConnectionFile>,
}

impl ServerSet {
    /// Reads a connection file or a server set (a plain connection file is a set of one).
    pub fn read(path: &Path) -> Result<Vec<ConnectionFile>, ConnFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConnFileError::Io {
            path: p.clone(),
            source,
        })?;
        let with_path = |e: ConnFileError| match e {
            ConnFileError::Parse { source, .. } => ConnFileError::Parse {
                path: p.clone(),
                source,
            },
            ConnFileError::Invalid { what, .. } => ConnFileError::Invalid {
                path: p.clone(),
                what,
            },
            other => other,
        };
        let is_set = serde_json::from_str::<serde_json::Value>(&text)
            .map(|v| v.get("servers").is_some())
            .unwrap_or(false);
        if !is_set {
            return ConnectionFile::parse(&text)
                .map(|c| vec![c])
                .map_err(with_path);
        }
        let set: ServerSet = serde_json::from_str(&text).map_err(|source| {
            with_path(ConnFileError::Parse {
                path: String::new(),
                source,
            })
        })?;
        if set.servers.is_empty() || set.servers.len() > MAX_SERVERS {
            return Err(with_path(ConnFileError::Invalid {
                path: String::new(),
                what: format!("`servers` must list 1 to {MAX_SERVERS} servers"),
            }));
        }
        for (i, c) in set.servers.iter().enumerate() {
            c.validate().map_err(|e| match e {
                ConnFileError::Invalid { what, .. } => ConnFileError::Invalid {
                    path: p.clone(),
                    what: format!("server {i}: {what}"),
                },
                other => other,
            })?;
        }
        Ok(set.servers)
    }

    /// Writes the set with owner-only permissions (0600).
    pub fn write(&self, path: &Path) -> Result<(), ConnFileError> {
        let text = serde_json::to_string_pretty(self).expect("serialisable") + "\n";
        crate::transport::write_private(path, text.as_bytes()).map_err(|source| ConnFileError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> ConnectionFile {
        ConnectionFile {
            address: "127.0.0.1:7600".into(),
            server_name: "rgpu-server".into(),
            fingerprint: format!("sha256:{}", "ab".repeat(32)),
            token: "t0k3n".into(),
            insecure: false,
            local_socket: None,
            host: String::new(),
            visible_devices: None,
        }
    }

    #[test]
    fn round_trip_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("conn.json");
        good().write(&p).unwrap();
        assert_eq!(ConnectionFile::read(&p).unwrap(), good());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn server_sets() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.json");
        good().write(&one).unwrap();
        assert_eq!(ServerSet::read(&one).unwrap(), vec![good()]);
        let mut second = good();
        second.address = "10.0.0.2:7600".into();
        second.visible_devices = Some("1".into());
        let set = ServerSet {
            servers: vec![good(), second.clone()],
        };
        let p = dir.path().join("set.json");
        set.write(&p).unwrap();
        assert_eq!(ServerSet::read(&p).unwrap(), vec![good(), second]);
        std::fs::write(&p, r#"{"servers": []}"#).unwrap();
        assert!(ServerSet::read(&p).is_err());
        let mut bad = good();
        bad.token.clear();
        ServerSet {
            servers: vec![good(), bad],
        }
        .write(&p)
        .unwrap();
        let e = ServerSet::read(&p).unwrap_err().to_string();
        assert!(e.contains("server 1") && e.contains("token"), "{e}");
    }

    #[test]
    fn rejects_bad_files() {
        assert!(ConnectionFile::parse("{").is_err());
        assert!(ConnectionFile::parse("[]").is_err());
        let mut c = good();
        c.fingerprint = "md5:00".into();
        assert!(ConnectionFile::parse(&serde_json::to_string(&c).unwrap()).is_err());
        let mut c = good();
        c.address = "nowhere".into();
        assert!(ConnectionFile::parse(&serde_json::to_string(&c).unwrap()).is_err());
        let mut c = good();
        c.token.clear();
        assert!(ConnectionFile::parse(&serde_json::to_string(&c).unwrap()).is_err());
        let mut c = good();
        c.insecure = true;
        c.fingerprint.clear();
        c.token.clear();
        assert!(ConnectionFile::parse(&serde_json::to_string(&c).unwrap()).is_ok());
    }
}
