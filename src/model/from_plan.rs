//! The model's inputs from a run's plan and the settings in force (the lab's, read back, or
//! the host's). Pure: no I/O, so the same plan and settings always give the same prediction.

use super::host::host_input;
use super::host::{reserved_in, setting};
use super::profile::{BindModel, ModelInput, PortSpec, TimeWaitSide};
use crate::plan::sysctl::{RESERVED_PORTS, TIMESTAMPS};
use crate::plan::PortRange;
use crate::plan::{BindMode, CloseMode, Plan, Rate};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// What the model needs from `plan`, run against `target`, with `settings` (sysctl name ->
/// value, as `lab::read_settings` gives them; empty where they cannot be read).
pub fn input_for(
    plan: &Plan,
    settings: &BTreeMap<String, String>,
    target: SocketAddr,
) -> ModelInput {
    let mut input = host_input(settings);
    input.rate = match plan.lab_rate() {
        Rate::PerSecond(r) => Some(r),
        Rate::Max => None,
    };
    input.timewait_side = plan.client.close.into();
    input.pool = plan.client.pool;
    input.bind = match plan.client.bind {
        BindMode::Auto | BindMode::NoPort => BindModel::PerDestination,
        BindMode::AnyPort | BindMode::Range(..) => BindModel::WholeRange,
    };
    if let BindMode::Range(lo, hi) = plan.client.bind {
        // portlab binds these ports itself: they are the whole range, nothing reserved.
        if let Ok(range) = PortRange::new(lo, hi) {
            if let Ok(i) = input.clone().with_ports(PortSpec::Range(range), 0) {
                input = i;
            }
        }
    }
    // A per-socket range: the kernel picks from its overlap with the system's range (and
    // from the system's range alone when they do not overlap).
    if let (Some(own), Some(system)) = (plan.client.local_port_range, input.port_range) {
        let (lo, hi) = (own.lo.max(system.lo), own.hi.min(system.hi));
        if let Ok(range) = PortRange::new(lo, hi) {
            let reserved =
                setting(settings, RESERVED_PORTS.name).map_or(0, |l| reserved_in(l, range));
            if let Ok(i) = input.clone().with_ports(PortSpec::Range(range), reserved) {
                input = i;
            }
        }
    }
    // Linux only (tcp_twsk_unique without a port search); timestamps are on by default.
    input.explicit_bind_reuse_addr = cfg!(target_os = "linux")
        && plan.client.reuse_addr
        && matches!(plan.client.bind, BindMode::Range(..));
    input.timestamps = setting(settings, TIMESTAMPS.name) != Some("0");
    input.sources = u32::try_from(plan.client.sources.len())
        .unwrap_or(u32::MAX)
        .max(1);
    input.destinations = plan.destinations();
    input.loopback = target.ip().is_loopback();
    input
}

/// Who keeps TIME_WAIT for a close mode (run's `client.close`, predict's and inspect's
/// `--close`): a non-zero linger closes first like active.
impl From<CloseMode> for TimeWaitSide {
    fn from(c: CloseMode) -> Self {
        match c {
            CloseMode::Active | CloseMode::Linger(_) => TimeWaitSide::Client,
            CloseMode::Passive => TimeWaitSide::Server,
            CloseMode::Reset => TimeWaitSide::Nobody,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::predict;
    use crate::model::TwReuse;
    use crate::plan::Scenario;

    fn plan(toml_text: &str) -> Plan {
        Plan::resolve(&toml::from_str::<Scenario>(toml_text).unwrap()).unwrap()
    }

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lab_settings_and_plan_give_ports_over_rate() {
        // 250 ports, no reuse, 125/s active close -> first error at 2 s.
        let p = plan("[load]\nrate = 125");
        let s = settings(&[
            ("net.ipv4.ip_local_port_range", "40000 40249"),
            ("net.ipv4.tcp_tw_reuse", "0"),
        ]);
        let pred = predict(&input_for(&p, &s, "127.0.0.1:39999".parse().unwrap()));
        assert!(pred.exhausts);
        assert_eq!(pred.first_error_s, Some(2.0));
    }

    #[test]
    fn host_input_maps_every_linux_setting() {
        // 40000-40999 with 10 reserved inside (and 5 outside) -> 990 usable; reuse 1 after
        // 250 ms; 5000 buckets. Absent settings keep the profile's defaults.
        let s = settings(&[
            ("net.ipv4.ip_local_port_range", "40000\t40999"),
            ("net.ipv4.ip_local_reserved_ports", "39995-40009"),
            ("net.ipv4.tcp_tw_reuse", "1"),
            ("net.ipv4.tcp_tw_reuse_delay", "250"),
            ("net.ipv4.tcp_max_tw_buckets", "5000"),
        ]);
        let i = host_input(&s);
        assert_eq!(i.port_range, Some(PortRange::new(40000, 40999).unwrap()));
        assert_eq!((i.reserved, i.ports), (10, 990));
        assert_eq!(i.tw_reuse, TwReuse::On);
        assert_eq!(i.tw_reuse_delay_s, 0.25);
        assert_eq!(i.max_tw_buckets, Some(5000));
        assert_eq!(i.rate, None);
        let d = host_input(&BTreeMap::new());
        assert_eq!(
            d,
            ModelInput::from_profile(crate::model::host::host_profile())
        );
    }

    #[test]
    fn reserved_ports_inside_the_range_are_not_usable() {
        assert_eq!(
            reserved_in(
                "40000-40009,50000,40100",
                PortRange::new(40000, 40199).unwrap()
            ),
            11
        );
    }

    #[test]
    fn reuse_addr_with_an_explicit_bind_never_exhausts_unless_timestamps_are_off() {
        // Measured in the lab: 300 bound ports at 200/s, tcp_tw_reuse 0: no error with
        // SO_REUSEADDR (TWRecycled), EADDRNOTAVAIL at connect after 1.5 s without timestamps.
        let p =
            plan("[load]\nrate = 200\n[client]\nreuse_addr = true\nbind = \"range=40000-40299\"");
        let target = "127.0.0.1:39999".parse().unwrap();
        let on = settings(&[("net.ipv4.tcp_tw_reuse", "0")]);
        let pred = predict(&input_for(&p, &on, target));
        assert!(!pred.exhausts, "{}", pred.explanation);
        assert_eq!(pred.steady_timewait, Some(300.0));
        let off = settings(&[
            ("net.ipv4.tcp_tw_reuse", "0"),
            ("net.ipv4.tcp_timestamps", "0"),
        ]);
        assert_eq!(
            predict(&input_for(&p, &off, target)).first_error_s,
            Some(1.5)
        );
    }

    #[test]
    fn bind_range_is_its_own_port_count_and_ignores_tw_reuse() {
        // quickstart: range=20000-20299 at 100/s on a host with tw_reuse 2 -> 3 s.
        let p = plan("[load]\nrate = 100\n[client]\nbind = \"range=20000-20299\"");
        let s = settings(&[("net.ipv4.tcp_tw_reuse", "2")]);
        let pred = predict(&input_for(&p, &s, "127.0.0.1:8080".parse().unwrap()));
        assert_eq!(pred.first_error_s, Some(3.0));
    }
}
