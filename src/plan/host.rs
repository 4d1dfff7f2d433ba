//! Checks of a resolved plan against this host, before any traffic: the source addresses are
//! this host's (or the lab's), and no worker count exceeds what the descriptor limit allows.
//! Unlike the rest of plan/ this reads the system (a bind, getrlimit), so it is its own step.

use super::{invalid, Plan, PlanError, Scenario};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The client's address in the lab's veth topology (lab/linux.rs sets it up).
const VETH_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

/// Refuses a source address the client could not bind and a worker count above the hard
/// RLIMIT_NOFILE (the lab's own check, that its namespaces can be made, is
/// [`crate::lab::check_host`], which calls this). `given` is the scenario as written: only counts the user set are held
/// against the limit (the defaults adapt).
pub fn check_host(given: &Scenario, plan: &Plan) -> Result<(), PlanError> {
    check_target_address(plan)?;
    check_sources(plan)?;
    if let Some(r) = plan.client.local_port_range {
        // Linux only (resolve refused it elsewhere); the release names the kernel.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        check_local_port_range(r, release.trim())?;
    }
    let hard = crate::sys::nofile_limit().and_then(|l| l.hard);
    check_descriptors(given, hard)
}

/// An external target must resolve to an address with a port, as the run will resolve it
/// ('', `1.5`, `127.0.0.1` without a port are refused).
fn check_target_address(plan: &Plan) -> Result<(), PlanError> {
    let super::Target::External(address) = &plan.target else {
        return Ok(());
    };
    let resolved = std::net::ToSocketAddrs::to_socket_addrs(address.as_str())
        .map_err(|e| e.to_string())
        .and_then(|mut a| a.next().ok_or_else(|| "no address".to_string()));
    match resolved {
        Ok(_) => Ok(()),
        Err(e) => Err(invalid(
            "target.address",
            "--target",
            format!("'{address}' cannot be resolved: {e}; write HOST:PORT, e.g. 127.0.0.1:8080"),
        )),
    }
}

fn check_sources(plan: &Plan) -> Result<(), PlanError> {
    let veth = plan
        .lab
        .as_ref()
        .is_some_and(|l| l.topology == super::lab::Topology::Veth);
    for &ip in &plan.client.sources {
        if plan.isolated() {
            if !(ip.is_loopback() || (veth && ip == VETH_CLIENT)) {
                return Err(invalid(
                    "client.source",
                    "--source",
                    format!(
                        "{ip} is not an address inside the lab: use 127.0.0.x{}",
                        if veth { " or 198.18.0.1 (veth)" } else { "" }
                    ),
                ));
            }
        } else if let Err(e) = bind_probe(ip) {
            return Err(invalid(
                "client.source",
                "--source",
                format!(
                    "{ip} is not an address of this host (binding it: {e}); use one that `ip addr` lists, e.g. 127.0.0.2"
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `ip` is an address of this host: it can be bound (a UDP socket, no traffic). Valid
/// in a namespace whose loopback is up (with lo down, Linux lets any address be bound).
pub fn bind_probe(ip: std::net::IpAddr) -> std::io::Result<()> {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).map(drop)
}

/// The first kernel with IP_LOCAL_PORT_RANGE.
const LOCAL_PORT_RANGE_SINCE: (u32, u32) = (6, 3);

/// `release` as uname gives it ("6.18.44-generic"): refused below 6.3 or when unreadable.
fn check_local_port_range(r: super::PortRange, release: &str) -> Result<(), PlanError> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    let version = match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => Some((major, minor)),
        _ => None,
    };
    match version {
        Some(v) if v >= LOCAL_PORT_RANGE_SINCE => Ok(()),
        _ => Err(invalid(
            "client.local_port_range",
            "--local-port-range",
            format!(
                "{r} needs IP_LOCAL_PORT_RANGE (Linux {}.{}+), but this kernel is {}: drop it, or set the range system-wide (the lab's --lab-port-range does it in a private namespace)",
                LOCAL_PORT_RANGE_SINCE.0,
                LOCAL_PORT_RANGE_SINCE.1,
                if release.is_empty() { "unknown" } else { release }
            ),
        )),
    }
}

fn check_descriptors(given: &Scenario, hard: Option<u64>) -> Result<(), PlanError> {
    let Some(hard) = hard else {
        return Ok(());
    };
    for (v, key, flag) in [
        (
            given.load.max_in_flight,
            "load.max_in_flight",
            "--max-in-flight",
        ),
        (given.load.concurrency, "load.concurrency", "--concurrency"),
        (given.client.pool, "client.pool", "--pool"),
    ] {
        if let Some(v) = v.filter(|v| u64::from(*v) > hard) {
            return Err(invalid(
                key,
                flag,
                format!(
                    "{v} connections need {v} descriptors, but this process may hold at most {hard} (hard RLIMIT_NOFILE): accepted 1 to {hard}; lower it or raise the limit"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> (Scenario, Plan) {
        let s: Scenario = toml::from_str(text).unwrap();
        let p = Plan::resolve(&s).unwrap();
        (s, p)
    }

    #[test]
    fn sources_must_be_local() {
        let (_, p) = plan("[client]\nsource = [\"127.0.0.2\"]");
        check_sources(&p).unwrap();
        // TEST-NET-1 (RFC 5737) is never assigned to a host.
        let (_, p) = plan("[client]\nsource = [\"192.0.2.1\"]");
        let e = check_sources(&p).unwrap_err().to_string();
        assert!(
            e.contains("client.source") && e.contains("--source") && e.contains("192.0.2.1"),
            "{e}"
        );
        // In the lab only the lab's addresses.
        let (_, p) = plan("[client]\nsource = [\"198.18.0.1\"]\n[lab]\nisolate = true");
        let e = check_sources(&p).unwrap_err().to_string();
        assert!(e.contains("inside the lab"), "{e}");
        let (_, p) =
            plan("[client]\nsource = [\"198.18.0.1\"]\n[lab]\nisolate = true\ntopology = \"veth\"");
        check_sources(&p).unwrap();
    }

    #[test]
    fn local_port_range_needs_linux_6_3() {
        let r = super::super::PortRange::new(40000, 40009).unwrap();
        for ok in ["6.3.0", "6.18.44-fc-v669", "7.0"] {
            check_local_port_range(r, ok).unwrap();
        }
        for old in ["6.2.16", "5.15.0-91-generic", "4.19", ""] {
            let e = check_local_port_range(r, old).unwrap_err().to_string();
            assert!(
                e.contains("client.local_port_range")
                    && e.contains("--local-port-range")
                    && e.contains("6.3+"),
                "{old}: {e}"
            );
        }
    }

    #[test]
    fn workers_bounded_by_the_descriptor_limit() {
        let (s, _) = plan("[load]\nrate = \"max\"\nconcurrency = 500");
        let e = check_descriptors(&s, Some(64)).unwrap_err().to_string();
        assert!(
            e.contains("load.concurrency") && e.contains("--concurrency") && e.contains("1 to 64"),
            "{e}"
        );
        check_descriptors(&s, Some(4096)).unwrap();
        check_descriptors(&s, None).unwrap();
        // An unset max_in_flight (default 1024) is not held against a low limit.
        let (s, _) = plan("[load]\nrate = 10");
        check_descriptors(&s, Some(64)).unwrap();
    }
}
