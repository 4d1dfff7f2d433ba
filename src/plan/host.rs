//! Checks of a resolved plan against this host, before any traffic: the source addresses are
//! this host's (or the lab's), and no worker count exceeds what the descriptor limit allows.
//! Unlike the rest of plan/ this reads the system (a bind, getrlimit), so it is its own step.

use super::{invalid, Plan, PlanError, Scenario};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The client's address in the lab's veth topology (lab/linux.rs sets it up).
const VETH_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

/// Refuses a source address the client could not bind and a worker count above the hard
/// RLIMIT_NOFILE. `given` is the scenario as written: only counts the user set are held
/// against the limit (the defaults adapt).
pub fn check_host(given: &Scenario, plan: &Plan) -> Result<(), PlanError> {
    check_sources(plan)?;
    let hard = crate::sys::nofile_limit().and_then(|l| l.hard);
    check_descriptors(given, hard)
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
        } else if let Err(e) = std::net::UdpSocket::bind(SocketAddr::new(ip, 0)) {
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
