//! The inverse: what makes an unsustainable rate sustainable (more ports, or a shorter
//! hold), and the commands that apply it on each OS, with the facts sheet's caveats.

use std::fmt::Write as _;

use serde::Serialize;

use super::num;
use super::predict::Prediction;
use super::profile::{BindModel, ModelInput, Profile, TimeWaitSide, TwReuse};

/// The lowest port an advised range starts at: 1-1024 are privileged and listening
/// services live there. So at most 64511 ports (1025-65535) can be configured.
const LOWEST_PORT: u64 = 1025;
/// Windows 2003 MaxUserPort accepts 5000-65534.
const MAX_USER_PORT: u64 = 65534;

/// The smallest change that makes the predicted exhaustion go away.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inverse {
    /// Port slots the workload needs: ceil(R x hold), or the pool size.
    pub slots_needed: u64,
    /// Ports the configured range must hold for that: the slots (plus preexisting
    /// sockets) spread over destinations x sources for connect(), plus reserved ports.
    pub ports_needed: u64,
    /// The longest hold that sustains the rate: P_eff / R, seconds. It is TIME_WAIT, or
    /// the tcp_tw_reuse delay where reuse applies. None for a pool (nothing is held).
    pub max_hold_s: Option<f64>,
}

/// One thing to change: what it does, the command that does it (if there is one), and
/// what to watch out for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    /// What to change and what it achieves, with the numbers.
    pub what: String,
    /// A command that applies it, when the OS has one.
    pub command: Option<String>,
    /// What the change needs or costs (reboot, timestamps, colliding services...).
    pub caveat: Option<String>,
}

impl Advice {
    fn new(what: String, command: Option<String>, caveat: Option<&str>) -> Self {
        Advice {
            what,
            command,
            caveat: caveat.map(str::to_string),
        }
    }
}

/// ceil that forgives float noise (30 x 240 must stay 7200, not 7201).
fn ceil_count(x: f64) -> u64 {
    (x - 1e-9 * x.abs().max(1.0)).ceil().max(0.0) as u64
}

/// The hold a client port would have for this input: T, or the reuse delay.
fn client_hold(input: &ModelInput, prediction: &Prediction) -> f64 {
    if prediction.reuse_applies {
        input.tw_reuse_delay_s
    } else {
        input.time_wait_s
    }
}

/// What would make the predicted exhaustion go away; None when it does not exhaust (or
/// the rate is unknown, so nothing can be said).
pub fn inverse(input: &ModelInput, prediction: &Prediction) -> Option<Inverse> {
    if !prediction.exhausts {
        return None;
    }
    let client_rate = input
        .rate
        .filter(|_| input.pool == 0 && input.timewait_side == TimeWaitSide::Client);
    let slots_needed = if input.pool > 0 {
        u64::from(input.pool)
    } else if let Some(r) = client_rate {
        ceil_count(r * client_hold(input, prediction))
    } else {
        1
    };
    let spread = match input.bind {
        BindModel::PerDestination => {
            u64::from(input.destinations.max(1)) * u64::from(input.sources.max(1))
        }
        BindModel::WholeRange => 1,
    };
    let ports_needed =
        (slots_needed + u64::from(input.preexisting)).div_ceil(spread) + u64::from(input.reserved);
    Some(Inverse {
        slots_needed,
        ports_needed,
        max_hold_s: client_rate.map(|r| prediction.ports_effective as f64 / r),
    })
}

/// The changes that would apply [`Inverse`] on `input.profile`, as commands where the OS
/// has them, followed by the structural fixes (pooling, server closing first, ...).
pub fn advise(input: &ModelInput, prediction: &Prediction, inv: &Inverse) -> Vec<Advice> {
    let mut out = Vec::new();
    let n = inv.ports_needed;
    let ports_fit = port_advice(input, n, &mut out);

    if input.pool > 0 {
        out.push(Advice::new(
            format!(
                "Or keep the pool at or below {} connections, the usable port slots",
                prediction.ports_effective
            ),
            None,
            None,
        ));
        return out;
    }
    if let Some(max_hold) = inv.max_hold_s {
        hold_advice(input, prediction, max_hold, &mut out);
    }

    if input.bind == BindModel::WholeRange {
        out.push(Advice::new(
            "Let connect() choose the local port instead of bind() before connect(): a port is then shared by every destination (and, on Linux, tcp_tw_reuse can apply)".into(),
            None,
            Some("to pick a source address, bind(ip, 0) with IP_BIND_ADDRESS_NO_PORT (Linux 4.2+) keeps the port choice in connect()"),
        ));
    }
    if !ports_fit && input.bind == BindModel::PerDestination {
        let per_source = u64::from(input.ports) * u64::from(input.destinations.max(1));
        let sources = (inv.slots_needed + u64::from(input.preexisting)).div_ceil(per_source.max(1));
        out.push(Advice::new(
            format!("Spread the connections over {sources} source addresses: each one brings its own {} ports per destination", input.ports),
            None,
            None,
        ));
    }
    out.push(Advice::new(
        "Or reuse connections: a pool of N persistent connections holds N ports and puts nothing in TIME_WAIT (model it with --pool N)".into(),
        None,
        None,
    ));
    let server_tw = match input.rate {
        Some(r) => format!(
            "the server then holds about {} x {} s = {} sockets in TIME_WAIT",
            num(r),
            num(input.time_wait_s),
            num(r * input.time_wait_s)
        ),
        None => "the server then holds about R x T sockets in TIME_WAIT".into(),
    };
    out.push(Advice::new(
        "Or let the server close first: TIME_WAIT then sits on the server's port and costs the client none".into(),
        None,
        Some(&server_tw),
    ));
    out
}

/// Pushes the advice that gives the range `n` ports; returns whether that is possible.
fn port_advice(input: &ModelInput, n: u64, out: &mut Vec<Advice>) -> bool {
    let max_hi = if input.profile == Profile::Windows2003 {
        MAX_USER_PORT
    } else {
        65535
    };
    let most = max_hi + 1 - LOWEST_PORT;
    if n > most {
        out.push(Advice::new(
            format!("Ports alone cannot fix this: {n} ports would be needed, at most {most} ({LOWEST_PORT}-{max_hi}) can be configured"),
            None,
            Some("pool connections, add source addresses, or let the server close first"),
        ));
        return false;
    }
    let ends_at_top = |n: u64| 65536 - n;
    match input.profile {
        Profile::Windows2003 => {
            let v = (1024 + n).max(5000);
            out.push(Advice::new(
                format!("Raise MaxUserPort to {v}, so ports 1025-{v} give {} ports", v - 1024),
                Some(format!(r#"reg add "HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters" /v MaxUserPort /t REG_DWORD /d {v} /f"#)),
                Some("reboot needed; MaxUserPort accepts 5000-65534; services listening on ports in the new range may find them taken"),
            ));
        }
        Profile::Windows2008 => {
            let num = n.max(255);
            let start = ends_at_top(num);
            out.push(Advice::new(
                format!("Widen the dynamic port range to {num} ports, {start}-65535"),
                Some(format!("netsh int ipv4 set dynamicport tcp start={start} num={num}")),
                Some("num must be at least 255; IPv6 has its own range (netsh int ipv6 set dynamicport tcp ...); services listening in the new range may find their port taken"),
            ));
        }
        Profile::Linux => {
            // The kernel prefers LO and HI of different parity, i.e. an even count.
            let even = if n % 2 == 1 && n < most { n + 1 } else { n };
            let hi = input.port_range.map_or(65535, |r| u64::from(r.hi));
            let (lo, hi) = if hi + 1 >= LOWEST_PORT + even {
                (hi + 1 - even, hi)
            } else {
                (ends_at_top(even), 65535)
            };
            let mut caveat = String::from("not persistent: also put it in /etc/sysctl.d/");
            if lo < 32768 {
                caveat += "; ports below 32768 may collide with listening services (keep theirs out with net.ipv4.ip_local_reserved_ports)";
            }
            out.push(Advice::new(
                format!(
                    "Widen the ephemeral port range to {} ports, {lo}-{hi}",
                    hi + 1 - lo
                ),
                Some(format!(
                    r#"sysctl -w net.ipv4.ip_local_port_range="{lo} {hi}""#
                )),
                Some(&caveat),
            ));
        }
        Profile::Macos | Profile::Freebsd => {
            let first = ends_at_top(n);
            let cmd = if input.profile == Profile::Macos {
                format!("sysctl -w net.inet.ip.portrange.first={first}")
            } else {
                format!("sysctl net.inet.ip.portrange.first={first}")
            };
            out.push(Advice::new(
                format!("Widen the ephemeral port range to {n} ports, {first}-65535"),
                Some(cmd),
                Some("not persistent: also put it in /etc/sysctl.conf; services listening in the new range may find their port taken"),
            ));
        }
        Profile::Custom => {
            out.push(Advice::new(
                format!("Give the ephemeral port range at least {n} ports"),
                None,
                None,
            ));
        }
    }
    true
}

/// Pushes the advice that shortens the client's hold to at most `max_hold` seconds.
fn hold_advice(input: &ModelInput, prediction: &Prediction, max_hold: f64, out: &mut Vec<Advice>) {
    let reg = |name: &str, v: u64| {
        format!(
            r#"reg add "HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters" /v {name} /t REG_DWORD /d {v} /f"#
        )
    };
    match input.profile {
        Profile::Windows2003 | Profile::Windows2008 => {
            let secs = max_hold.floor() as u64;
            if secs >= 30 {
                let v = secs.min(240);
                out.push(Advice::new(
                    format!("Or lower TcpTimedWaitDelay to {v} s (TIME_WAIT at most {} s sustains the rate)", num(max_hold)),
                    Some(reg("TcpTimedWaitDelay", v)),
                    Some("reboot needed; accepted 30-240 s (some Microsoft pages say 30-300)"),
                ));
            } else {
                out.push(Advice::new(
                    format!("TcpTimedWaitDelay cannot go low enough: TIME_WAIT would have to be at most {} s, the minimum is 30 s", num(max_hold)),
                    None,
                    None,
                ));
            }
        }
        Profile::Linux => linux_hold_advice(input, prediction, max_hold, out),
        Profile::Macos | Profile::Freebsd => {
            // TIME_WAIT is 2 x MSL; net.inet.tcp.msl is in milliseconds.
            let msl_ms = (max_hold * 1000.0 / 2.0).floor() as u64;
            if msl_ms >= 1 {
                let w = if input.profile == Profile::Macos {
                    "-w "
                } else {
                    ""
                };
                out.push(Advice::new(
                    format!("Or shorten TIME_WAIT to {} s (2 x MSL) by setting the MSL to {msl_ms} ms", num(msl_ms as f64 * 2.0 / 1000.0)),
                    Some(format!("sysctl {w}net.inet.tcp.msl={msl_ms}")),
                    Some("not persistent; a short MSL weakens the protection against stray segments of old connections"),
                ));
            }
        }
        Profile::Custom => {
            out.push(Advice::new(
                format!(
                    "Or keep the hold (TIME_WAIT) at or below {} s",
                    num(max_hold)
                ),
                None,
                None,
            ));
        }
    }
}

fn linux_hold_advice(
    input: &ModelInput,
    prediction: &Prediction,
    max_hold: f64,
    out: &mut Vec<Advice>,
) {
    const REUSE_CAVEAT: &str = "needs TCP timestamps on both ends (net.ipv4.tcp_timestamps = 1) and applies to connect() only, not to bind() before connect()";
    if input.bind == BindModel::PerDestination {
        let delay_ms = (max_hold * 1000.0).floor() as u64;
        let need_delay = max_hold < input.tw_reuse_delay_s;
        let reuse_off = !prediction.reuse_applies;
        if reuse_off {
            let why = if input.tw_reuse == TwReuse::Loopback && !input.loopback {
                "tcp_tw_reuse = 2 only covers loopback"
            } else {
                "tcp_tw_reuse is off"
            };
            out.push(Advice::new(
                format!(
                    "Or let connect() reuse a TIME_WAIT port after the {} s tcp_tw_reuse delay instead of holding it {} s ({why})",
                    num(input.tw_reuse_delay_s),
                    num(input.time_wait_s),
                ),
                Some("sysctl -w net.ipv4.tcp_tw_reuse=1".into()),
                Some(REUSE_CAVEAT),
            ));
        }
        if need_delay {
            if delay_ms >= 1 {
                out.push(Advice::new(
                    format!(
                        "{} the tcp_tw_reuse delay to {delay_ms} ms (a hold of at most {} s sustains the rate)",
                        if reuse_off { "and lower" } else { "Or lower" },
                        num(max_hold)
                    ),
                    Some(format!("sysctl -w net.ipv4.tcp_tw_reuse_delay={delay_ms}")),
                    Some("Linux 6.14+; accepted 1-60000 ms"),
                ));
            } else {
                out.push(Advice::new(
                    format!("Even tcp_tw_reuse cannot help: the hold would have to be {} s, below its 1 ms minimum", num(max_hold)),
                    None,
                    None,
                ));
            }
        }
    }
    out.push(Advice::new(
        "Do not lower net.ipv4.tcp_fin_timeout: it bounds orphaned FIN_WAIT_2 sockets, not TIME_WAIT, which is fixed at 60 s on Linux".into(),
        None,
        None,
    ));
}

/// Renders advice as an indented list: what, then the command, then the caveat.
pub fn render_advice(advice: &[Advice]) -> String {
    let mut s = String::new();
    for a in advice {
        let _ = writeln!(s, "  - {}", a.what);
        if let Some(c) = &a.command {
            let _ = writeln!(s, "      {c}");
        }
        if let Some(c) = &a.caveat {
            let _ = writeln!(s, "      note: {c}");
        }
    }
    s
}

/// The prediction for `input` with the inverse and the advice that go with it, as `portlab
/// predict` and `portlab inspect --rate` show them.
pub fn analyse(input: &ModelInput) -> (Prediction, Option<Inverse>, Vec<Advice>) {
    let prediction = crate::model::predict(input);
    let inv = inverse(input, &prediction);
    let advice = inv
        .as_ref()
        .map(|i| advise(input, &prediction, i))
        .unwrap_or_default();
    (prediction, inv, advice)
}
