//! The network checks of `orrery doctor`: the HTTP face and the metrics listener, the
//! federation ports, and whether the federation's members (and bootstrap addresses) answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use orrery_protocol::NodeId;

use super::Report;
use crate::config::{Config, DEFAULT_METRICS_LISTEN, DEFAULT_WEB_LISTEN};
use crate::home::Home;

/// Most federation addresses probed (members and bootstrap entries).
const MAX_TARGETS: usize = 64;

/// A listener of the node that answers HTTP.
struct Listener<'a> {
    name: &'static str,
    key: &'static str,
    listen: SocketAddr,
    default: SocketAddr,
    addr_file: std::path::PathBuf,
    path: &'a str,
    expect: &'a str,
}

pub(super) fn check_http(
    home: &Home,
    config: &Config,
    running: bool,
    timeout: Duration,
    r: &mut Report,
) {
    let l = Listener {
        name: "http face",
        key: "[web] listen",
        listen: config.web.listen,
        default: DEFAULT_WEB_LISTEN,
        addr_file: home.web_addr(),
        path: "/",
        expect: "Orrery node",
    };
    check_listener(&l, running, timeout, r);
}

pub(super) fn check_metrics(
    home: &Home,
    config: &Config,
    running: bool,
    timeout: Duration,
    r: &mut Report,
) {
    if !config.metrics.enabled {
        r.ok("metrics", "disabled ([metrics] enabled = false)".into());
        return;
    }
    let l = Listener {
        name: "metrics",
        key: "[metrics] listen",
        listen: config.metrics.listen,
        default: DEFAULT_METRICS_LISTEN,
        addr_file: home.metrics_addr(),
        path: "/metrics",
        expect: "# EOF",
    };
    check_listener(&l, running, timeout, r);
}

fn check_listener(l: &Listener<'_>, running: bool, timeout: Duration, r: &mut Report) {
    if !running {
        match probe_bind_tcp(l.listen) {
            Ok(()) => r.ok(l.name, format!("{} is free", l.listen)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && l.listen == l.default => r.warn(
                l.name,
                format!("{} is taken by another process", l.listen),
                format!(
                    "the node will serve on a free port instead (written to {}); set {} to choose one",
                    file_name(&l.addr_file),
                    l.key
                ),
            ),
            Err(e) => r.fail(l.name, format!("{}: {e}", l.listen), bind_fix(&e, l.listen, l.key)),
        }
        return;
    }
    let Some(addr) = std::fs::read_to_string(&l.addr_file)
        .ok()
        .and_then(|s| s.trim().parse::<SocketAddr>().ok())
    else {
        r.fail(
            l.name,
            format!(
                "the node runs but wrote no address to {}",
                l.addr_file.display()
            ),
            "restart the node; its log says why the listener did not start",
        );
        return;
    };
    let url = format!("http://{}{}", reachable(addr), l.path);
    match http_get(&url, timeout) {
        Ok(body) if body.contains(l.expect) => {
            if l.listen.port() != 0 && addr != l.listen {
                r.warn(
                    l.name,
                    format!("answers at {url}, not at the configured {}", l.listen),
                    format!(
                        "{} was taken when the node started; free it or set {}",
                        l.listen, l.key
                    ),
                );
            } else {
                r.ok(l.name, format!("answers at {url}"));
            }
        }
        Ok(_) => r.fail(
            l.name,
            format!("{url} answers, but not as an Orrery node"),
            format!(
                "another program holds {addr}: stop it, or set {} and restart the node",
                l.key
            ),
        ),
        Err(e) => r.fail(
            l.name,
            format!("the node runs but {url} does not answer: {e}"),
            "look at the node's log (ORRERY_LOG=info) and restart it",
        ),
    }
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Binds `addr` (TCP) and releases it at once.
fn probe_bind_tcp(addr: SocketAddr) -> std::io::Result<()> {
    TcpListener::bind(addr).map(drop)
}

/// What to do about a listener that cannot bind.
fn bind_fix(e: &std::io::Error, addr: SocketAddr, key: &str) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => format!(
            "stop the process that holds port {port} (`ss -ltnup 'sport = :{port}'` names it) or set {key} in orrery.toml to a free port",
            port = addr.port()
        ),
        ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine: set {key} to one of its addresses (0.0.0.0 for all)",
            addr.ip()
        ),
        ErrorKind::PermissionDenied => format!(
            "ports below 1024 need privileges: use a port above 1023 in {key}, or grant CAP_NET_BIND_SERVICE"
        ),
        _ => format!("check {key} in orrery.toml"),
    }
}

/// An address to connect to for a listening address (the unspecified address is reached on
/// loopback).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

fn http_get(url: &str, timeout: Duration) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    response
        .body_mut()
        .with_config()
        .limit(4 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| e.to_string())
}

/// HTTPS: the node's own TLS listener (certificate, key, port), or a proxy named by
/// `public_url`, or plain HTTP only.
pub(super) fn check_https(home: &Home, config: &Config, running: bool, r: &mut Report) {
    use std::os::unix::fs::PermissionsExt;
    let Some(tls) = config.web.tls(home.root()) else {
        match &config.web.public_url {
            Some(url) if url.starts_with("https://") => {
                r.ok("https", format!("behind a proxy at {url}"));
            }
            _ if config.web.listen.ip().is_loopback() => {
                r.ok("https", "not needed: HTTP on loopback only".into());
            }
            _ => r.warn(
                "https",
                format!("plain HTTP on {}", config.web.listen),
                "put a TLS proxy in front (deploy/nginx/orrery.conf) and set [web] public_url, or set [web] tls_listen, tls_cert and tls_key",
            ),
        }
        return;
    };
    if let Err(e) = orrery_web::TlsIdentity::load(&tls.cert, &tls.key) {
        r.fail(
            "https",
            e.to_string(),
            "point [web] tls_cert at the PEM certificate chain and tls_key at its own private key",
        );
        return;
    }
    if let Ok(meta) = std::fs::metadata(&tls.key)
        && meta.permissions().mode() & 0o004 != 0
    {
        r.warn(
            "https",
            format!("{} is readable by every user", tls.key.display()),
            format!("chmod 600 {}", tls.key.display()),
        );
        return;
    }
    let shown = tls.cert.display();
    if running {
        let addr = std::fs::read_to_string(home.https_addr())
            .ok()
            .and_then(|s| s.trim().parse::<SocketAddr>().ok());
        match addr.map(|a| TcpStream::connect_timeout(&reachable(a), Duration::from_secs(2))) {
            Some(Ok(_)) => r.ok("https", format!("serving with {shown}")),
            _ => r.fail(
                "https",
                "the node runs but its HTTPS listener does not answer".into(),
                "look at the node's log (ORRERY_LOG=info) and restart it",
            ),
        }
        return;
    }
    match probe_bind_tcp(tls.listen) {
        Ok(()) => r.ok(
            "https",
            format!("{} is free; {shown} and its key match", tls.listen),
        ),
        Err(e) => r.fail(
            "https",
            format!("{}: {e}", tls.listen),
            bind_fix(&e, tls.listen, "[web] tls_listen"),
        ),
    }
}

/// The transport, host and port of a multiaddr such as `/ip4/1.2.3.4/tcp/4100/p2p/…` or
/// `/dns4/node.example.org/udp/4100/quic-v1`.
fn endpoint(multiaddr: &str) -> Option<(&'static str, String, u16)> {
    let mut parts = multiaddr.split('/').skip(1);
    let host = match (parts.next()?, parts.next()?) {
        ("ip4" | "dns" | "dns4" | "dns6", h) => h.to_owned(),
        ("ip6", h) => format!("[{h}]"),
        _ => return None,
    };
    let transport = match parts.next()? {
        "tcp" => "tcp",
        "udp" => "udp",
        _ => return None,
    };
    let port = parts.next()?.parse().ok()?;
    Some((transport, host, port))
}

pub(super) fn check_p2p(config: &Config, running: bool, r: &mut Report) {
    for ma in &config.network.listen {
        let Some((transport, host, port)) = endpoint(ma) else {
            r.warn(
                "federation port",
                format!("{ma}: not an ip4/ip6 TCP or UDP address"),
                "check [network] listen",
            );
            continue;
        };
        let Ok(addr) = format!("{host}:{port}").parse::<SocketAddr>() else {
            r.fail(
                "federation port",
                format!("{ma}: listen addresses must be IP addresses"),
                "set [network] listen to /ip4/<address>/tcp/<port> (and /udp/<port>/quic-v1)",
            );
            continue;
        };
        if port == 0 {
            r.ok("federation port", format!("{ma}: a free port is picked"));
        } else if running {
            if transport == "udp" {
                r.ok("federation port", format!("{ma}: held by the running node"));
            } else {
                match TcpStream::connect_timeout(&reachable(addr), Duration::from_secs(2)) {
                    Ok(_) => r.ok("federation port", format!("{ma}: the running node listens")),
                    Err(e) => r.fail(
                        "federation port",
                        format!("{ma}: the running node does not answer: {e}"),
                        "look at the node's log (ORRERY_LOG=info) and restart it",
                    ),
                }
            }
        } else {
            let bound = if transport == "tcp" {
                probe_bind_tcp(addr)
            } else {
                std::net::UdpSocket::bind(addr).map(drop)
            };
            match bound {
                Ok(()) => r.ok("federation port", format!("{ma}: free")),
                Err(e) => r.fail(
                    "federation port",
                    format!("{ma}: {e}"),
                    bind_fix(&e, addr, "[network] listen"),
                ),
            }
        }
    }
}

/// A federation member (or bootstrap address) and where it may be reached.
struct Target {
    name: String,
    addrs: Vec<(String, u16)>,
}

pub(super) fn check_federation(
    home: &Home,
    config: &Config,
    schema_current: bool,
    timeout: Duration,
    r: &mut Report,
) {
    let mut targets: Vec<Target> = config
        .network
        .bootstrap
        .iter()
        .map(|ma| Target {
            name: format!("bootstrap {ma}"),
            addrs: tcp_endpoints([ma.as_str()]),
        })
        .collect();
    let mut in_federation = false;
    if schema_current {
        match members(home) {
            Ok((federation, members)) => {
                in_federation = federation;
                targets.extend(members);
            }
            Err(e) => r.warn(
                "federation",
                format!("the member list could not be read: {e}"),
                "run `orrery doctor` again when the node is idle",
            ),
        }
    }
    targets.truncate(MAX_TARGETS);
    if targets.is_empty() {
        if in_federation {
            r.ok("federation", "the only member so far".into());
        } else {
            r.ok("federation", "not in a federation yet".into());
        }
        return;
    }
    let answers: Vec<bool> = std::thread::scope(|s| {
        let probes: Vec<_> = targets
            .iter()
            .map(|t| s.spawn(move || t.addrs.iter().any(|(h, p)| connects(h, *p, timeout))))
            .collect();
        probes
            .into_iter()
            .map(|p| p.join().unwrap_or(false))
            .collect()
    });
    let silent: Vec<&str> = targets
        .iter()
        .zip(&answers)
        .filter(|(_, ok)| !**ok)
        .map(|(t, _)| t.name.as_str())
        .collect();
    let fix = "check that those nodes run, that their [network] listen ports are open in the firewalls between, and that the addresses they advertise are reachable from here";
    if silent.is_empty() {
        r.ok(
            "federation",
            format!("{} of {} reachable over TCP", targets.len(), targets.len()),
        );
    } else if silent.len() == targets.len() {
        r.fail(
            "federation",
            format!("nothing reachable: {}", silent.join(", ")),
            fix,
        );
    } else {
        r.warn(
            "federation",
            format!(
                "{} of {} unreachable: {}",
                silent.len(),
                targets.len(),
                silent.join(", ")
            ),
            fix,
        );
    }
}

/// Whether this node is in a federation, and the other members with their known addresses.
fn members(home: &Home) -> Result<(bool, Vec<Target>), crate::store::StoreError> {
    let me = crate::home::read_key(&home.node_key())
        .ok()
        .map(|k| NodeId(k.public()));
    let store = crate::store::Store::open(&home.database())?;
    let Some(membership) = store.membership()? else {
        return Ok((false, Vec::new()));
    };
    let addrs = store.peer_addrs()?;
    let targets = membership
        .members()
        .into_iter()
        .filter(|(n, _)| Some(*n) != me)
        .map(|(node, name)| {
            let known = addrs
                .iter()
                .find(|(n, _)| *n == node)
                .map(|(_, a)| tcp_endpoints(a.iter().map(String::as_str)))
                .unwrap_or_default();
            Target {
                name: format!("{name} ({})", node.short()),
                addrs: known,
            }
        })
        .collect();
    Ok((true, targets))
}

fn tcp_endpoints<'a>(multiaddrs: impl IntoIterator<Item = &'a str>) -> Vec<(String, u16)> {
    multiaddrs
        .into_iter()
        .filter_map(endpoint)
        .filter(|(t, _, _)| *t == "tcp")
        .map(|(_, h, p)| (h, p))
        .take(8)
        .collect()
}

fn connects(host: &str, port: u16, timeout: Duration) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    addrs
        .take(4)
        .any(|a| TcpStream::connect_timeout(&reachable(a), timeout).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiaddrs_give_their_endpoints() {
        assert_eq!(
            endpoint("/ip4/10.1.2.3/tcp/4100/p2p/12D3KooW"),
            Some(("tcp", "10.1.2.3".into(), 4100))
        );
        assert_eq!(
            endpoint("/ip6/::1/udp/4100/quic-v1"),
            Some(("udp", "[::1]".into(), 4100))
        );
        assert_eq!(
            endpoint("/dns4/node-1.orrery/tcp/4100"),
            Some(("tcp", "node-1.orrery".into(), 4100))
        );
        assert_eq!(endpoint("/unix/tmp/sock"), None);
        assert_eq!(endpoint("garbage"), None);
    }
}
