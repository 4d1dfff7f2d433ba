//! `lab.clients = K` (`--lab-clients K`): K client namespaces in front of one server
//! namespace. The pure half: which K are accepted, which address client k gets, and which
//! plans the many-client lab can carry (checked before anything is set up, exit 2).
//!
//! Design (src/engine/clients.rs carries it out): the parent process makes the server
//! namespace and K client namespaces, each joined to the server by its own veth pair (a
//! point-to-point /32 on each end: the server is 198.18.0.2 on every pair, so every client
//! reaches it at that one address, and client k is 198.18.0.(10 + k)). The embedded server
//! and the server-side sampler run in the parent; client k is a child `portlab run --shard
//! k/K --start-at T` started inside client namespace k, writing OUT/client-k/, and the
//! parent merges the K results into OUT with `portlab merge`'s code.

use std::net::Ipv4Addr;

use super::lab::{LabError, Topology};
use super::{Plan, Target};

/// Most client namespaces one lab may have (each is a process and a veth pair).
pub const MAX_CLIENTS: u32 = 64;

/// The first client's last octet: client k is 198.18.0.(FIRST_OCTET + k).
const FIRST_OCTET: u8 = 10;

/// Client namespace k's address (k from 0).
pub fn client_addr(k: u32) -> Ipv4Addr {
    let k = u8::try_from(k.min(MAX_CLIENTS - 1)).unwrap_or(0);
    Ipv4Addr::new(198, 18, 0, FIRST_OCTET + k)
}

/// Checks `lab.clients` against the topology: 1..=[`MAX_CLIENTS`], and K > 1 only with
/// veth (an unset topology already became veth for K > 1). Returns K (1 when unset).
pub fn validate(clients: Option<u32>, topology: Topology) -> Result<u32, LabError> {
    let Some(k) = clients else { return Ok(1) };
    if !(1..=MAX_CLIENTS).contains(&k) {
        return Err(LabError::Invalid {
            key: "clients",
            value: k.to_string(),
            expected: format!(
                "accepted 1 to {MAX_CLIENTS} client namespaces (1 is the ordinary lab), e.g. 3"
            ),
        });
    }
    if k > 1 && topology != Topology::Veth {
        return Err(LabError::Invalid {
            key: "clients",
            value: k.to_string(),
            expected: "more than one client needs a namespace each, which topology = \
                       \"loopback\" (one namespace) cannot give: drop lab.topology \
                       (--lab-topology), or set it to \"veth\""
                .into(),
        });
    }
    Ok(k)
}

/// Refuses `lab.clients` without the lab (isolate = false), naming its flag.
pub fn needs_isolation(clients: Option<u32>) -> Result<(), LabError> {
    match clients {
        None => Ok(()),
        Some(k) => Err(LabError::Invalid {
            key: "clients",
            value: k.to_string(),
            expected: "client namespaces need the lab: set isolate = true in [lab] (or pass --lab)"
                .into(),
        }),
    }
}

/// K when the plan asks for more than one client namespace.
pub fn many(plan: &Plan) -> Option<u32> {
    plan.lab
        .as_ref()
        .filter(|l| l.isolate && l.clients > 1)
        .map(|l| l.clients)
}

/// What the many-client lab cannot carry, named by key and flag (exit 2 before anything is
/// set up): the parent shards the load itself, serves with the embedded server on one port,
/// and runs portlab's own client in each namespace.
pub fn check(plan: &Plan) -> Result<(), String> {
    let Some(k) = many(plan) else { return Ok(()) };
    let why = |what: &str| {
        format!("lab.clients = {k} (--lab-clients {k}) {what}; or drop lab.clients for one client")
    };
    if plan.load.shard.is_some() {
        return Err(why(
            "already splits the load into shards, one per client namespace: drop load.shard (--shard)",
        ));
    }
    if !plan.client.sources.is_empty() {
        return Err(why(
            "gives each client namespace its own address (198.18.0.10 + k): drop client.source (--source)",
        ));
    }
    if plan.client_exec.is_some() {
        return Err(why(
            "runs portlab's own client in each namespace: drop client.exec (--client-exec)",
        ));
    }
    match &plan.target {
        Target::External(_) => Err(why(
            "serves with the embedded server in the server namespace: drop target.address (--target) and target.exec (--target-exec)",
        )),
        Target::Embedded(cfg) if cfg.destinations > 1 => Err(why(
            "serves one port at one address: drop target.destinations (--destinations)",
        )),
        Target::Embedded(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_bounded_and_need_veth() {
        assert_eq!(validate(None, Topology::Loopback).unwrap(), 1);
        assert_eq!(validate(Some(1), Topology::Loopback).unwrap(), 1);
        assert_eq!(validate(Some(3), Topology::Veth).unwrap(), 3);
        assert_eq!(validate(Some(64), Topology::Veth).unwrap(), 64);
        for (k, topology, says) in [
            (0, Topology::Veth, "accepted 1 to 64"),
            (65, Topology::Veth, "accepted 1 to 64"),
            (2, Topology::Loopback, "veth"),
        ] {
            let e = validate(Some(k), topology).unwrap_err().to_string();
            assert!(
                e.contains("lab.clients") && e.contains("--lab-clients"),
                "{e}"
            );
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn each_client_has_its_own_address_beside_the_servers() {
        assert_eq!(client_addr(0), Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(client_addr(63), Ipv4Addr::new(198, 18, 0, 73));
        let all: std::collections::BTreeSet<_> = (0..MAX_CLIENTS).map(client_addr).collect();
        assert_eq!(all.len(), MAX_CLIENTS as usize);
        assert!(!all.contains(&Ipv4Addr::new(198, 18, 0, 2)));
    }
}

#[cfg(test)]
mod lab_tests {
    use super::super::lab::{LabConfig, Topology};

    #[test]
    fn more_than_one_client_implies_veth_and_needs_isolation() {
        let lab = |clients, topology: Option<&str>, isolate| LabConfig {
            isolate,
            clients: Some(clients),
            topology: topology.map(str::to_string),
            ..LabConfig::default()
        };
        let plan = lab(3, None, true).validate().unwrap();
        assert_eq!((plan.clients, plan.topology), (3, Topology::Veth));
        assert_eq!(
            lab(1, None, true).validate().unwrap().topology,
            Topology::Loopback
        );
        let e = lab(3, Some("loopback"), true)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("lab.clients = 3 (flag --lab-clients)"), "{e}");
        let e = lab(3, None, false).validate().unwrap_err().to_string();
        assert!(
            e.contains("lab.clients") && e.contains("isolate = true"),
            "{e}"
        );
    }
}
