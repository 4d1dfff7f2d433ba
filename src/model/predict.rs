//! [`predict`]: whether and when the ports run out, and what the steady state looks like.

use serde::Serialize;

use super::num;
use super::profile::{BindModel, ModelInput, TimeWaitSide, TwReuse};

/// What the model predicts for one [`ModelInput`]. Times are seconds, rates per second.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Prediction {
    /// Whether the client runs out of ports (iff R x hold > P_eff). False when the rate is
    /// unknown: then only the capacity figures are given.
    pub exhausts: bool,
    /// When the first port-exhaustion error comes: P_eff / R (None if it never does, or
    /// the rate is unknown).
    pub first_error_s: Option<f64>,
    /// The highest rate the ports sustain: P_eff / hold. None when ports do not limit the
    /// rate (the server closes first, connections are reset, or a pool is used).
    pub sustainable_rate: Option<f64>,
    /// `sustainable_rate` divided by the destinations the load is spread over.
    pub sustainable_rate_per_destination: Option<f64>,
    /// Ports kept busy in steady state by closed connections on `timewait_side`:
    /// min(R x hold, P_eff) on the client, R x T on the server (capped by max_tw_buckets).
    /// None when the rate is unknown.
    pub steady_timewait: Option<f64>,
    /// Upper bound of the TIME_WAIT socket count a kernel counter would show. Equal to
    /// `steady_timewait` except where tcp_tw_reuse applies: a reusable socket still sits
    /// in TIME_WAIT until its port is taken again or T ends, so up to min(R x T, P_eff).
    pub steady_timewait_max: Option<f64>,
    /// Where TIME_WAIT sits in steady state: client, server, or none (reset, pool).
    pub timewait_side: TimeWaitSide,
    /// With passive close, the distinct client 4-tuples the client's allocator cycles
    /// through (a server's TIME_WAIT holds at most one socket each): floor(P / 2) per
    /// destination and source with Linux's connect(); None where the model does not know the
    /// allocator (another OS, bind before connect) or the client keeps TIME_WAIT itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_tuples: Option<f64>,
    /// Connections per second that still succeed once exhausted: P_eff / hold.
    pub post_exhaustion_rate: Option<f64>,
    /// Demand over supply of client ports: R x hold / P_eff, or pool / P_eff; > 1 means it
    /// runs out. None when unknown (no rate) or no port is free at all.
    pub margin: Option<f64>,
    /// P_eff: the port slots available to this workload (ports x destinations x sources
    /// for connect(), ports alone for bind before connect, minus preexisting sockets).
    pub ports_effective: u64,
    /// Sockets that already held ports toward the destination when the run began (from the
    /// input): they count in TIME_WAIT figures measured during the run.
    /// Always set by [`predict`]; None only in a summary written before the field existed
    /// (which is re-rendered without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preexisting: Option<u64>,
    /// How long a closed connection keeps its client port unusable: T, or the
    /// tcp_tw_reuse delay where reuse applies; 0 when the client keeps no TIME_WAIT.
    pub hold_s: f64,
    /// Whether tcp_tw_reuse shortens the client's hold for this workload.
    pub reuse_applies: bool,
    /// The error the client sees when the ports run out, e.g. EADDRNOTAVAIL.
    pub exhaustion_error: std::borrow::Cow<'static, str>,
    /// One or two plain sentences saying why, with the numbers and units.
    pub explanation: String,
}

/// Whether tcp_tw_reuse shortens the client's hold.
///
/// tcp_tw_reuse is consulted only by connect()'s own port search (`__inet_hash_connect`)
/// and only for the socket that is in TIME_WAIT, i.e. the client after an active close.
/// bind(0) before connect() (`BindModel::WholeRange`) goes through the bind-conflict check,
/// where a TIME_WAIT socket blocks its port (unless both sockets set SO_REUSEADDR, which
/// the model does not cover), so reuse does not apply there. 1 applies to every
/// destination, 2 to loopback only. TCP timestamps are assumed on (the Linux default).
fn reuse_applies(input: &ModelInput) -> bool {
    input.timewait_side == TimeWaitSide::Client
        && input.bind == BindModel::PerDestination
        && match input.tw_reuse {
            TwReuse::Off => false,
            TwReuse::On => true,
            TwReuse::Loopback => input.loopback,
        }
}

/// Port slots before preexisting sockets: connect() shares a local port across
/// destinations and source addresses (exhaustion is per 4-tuple prefix), bind(0) does not
/// (it binds the wildcard address, so one range serves every destination and source).
fn capacity(input: &ModelInput) -> u64 {
    let ports = u64::from(input.ports);
    match input.bind {
        BindModel::PerDestination => {
            ports * u64::from(input.destinations.max(1)) * u64::from(input.sources.max(1))
        }
        BindModel::WholeRange => ports,
    }
}

/// "3976 usable ports", "28232 ports x 2 destinations = 56464 port slots, minus 10
/// already held = 56454", and so on.
fn supply_phrase(input: &ModelInput, p_eff: u64) -> String {
    let cap = capacity(input);
    let mut s = match input.bind {
        BindModel::PerDestination if cap != u64::from(input.ports) => {
            let mut f = format!("{} ports", input.ports);
            if input.destinations > 1 {
                f += &format!(" x {} destinations", input.destinations);
            }
            if input.sources > 1 {
                f += &format!(" x {} source addresses", input.sources);
            }
            format!("{f} = {cap} port slots")
        }
        BindModel::WholeRange if input.destinations > 1 || input.sources > 1 => format!(
            "{} usable ports, shared by every destination because the port is bound before connect()",
            input.ports
        ),
        _ => format!("{} usable ports", input.ports),
    };
    if input.preexisting > 0 {
        s += &format!(", minus {} already held = {p_eff}", input.preexisting);
    }
    s
}

/// Predicts exhaustion for `input` (which should have passed [`ModelInput::validate`];
/// other values give no panic, just odd figures).
pub fn predict(input: &ModelInput) -> Prediction {
    let p_eff = capacity(input).saturating_sub(u64::from(input.preexisting));
    let p = p_eff as f64;
    let reuse = reuse_applies(input);
    let error = if input.explicit_bind_reuse_addr {
        // bind() succeeds on a TIME_WAIT port; connect() finds the 4-tuple taken.
        "EADDRNOTAVAIL"
    } else {
        input.profile.exhaustion_error(input.bind)
    };
    let supply = supply_phrase(input, p_eff);
    let per_dest = |r: f64| r / f64::from(input.destinations.max(1));
    let mut out = Prediction {
        exhausts: false,
        first_error_s: None,
        sustainable_rate: None,
        sustainable_rate_per_destination: None,
        steady_timewait: Some(0.0),
        steady_timewait_max: Some(0.0),
        timewait_side: input.timewait_side,
        client_tuples: None,
        post_exhaustion_rate: None,
        margin: Some(0.0),
        ports_effective: p_eff,
        preexisting: Some(u64::from(input.preexisting)),
        hold_s: 0.0,
        reuse_applies: reuse,
        exhaustion_error: error.into(),
        explanation: String::new(),
    };

    if p_eff == 0 {
        no_port(&supply, &mut out);
        return out;
    }
    if input.pool > 0 {
        pooled(input, &supply, &mut out);
        return out;
    }
    match input.timewait_side {
        TimeWaitSide::Nobody => {
            out.explanation = "Connections end with a reset (SO_LINGER 0): neither side keeps TIME_WAIT and each port is free again as soon as its connection ends, so the ports never run out.".into();
        }
        TimeWaitSide::Server => server_side(input, &mut out),
        TimeWaitSide::Client if input.explicit_bind_reuse_addr && input.timestamps => {
            reuse_addr_takeover(input, p, &supply, &mut out);
        }
        TimeWaitSide::Client => client(input, p, reuse, &supply, &mut out),
    }
    out.sustainable_rate_per_destination = out.sustainable_rate.map(per_dest);
    out
}

/// No port is free at all: the first connection fails.
fn no_port(supply: &str, out: &mut Prediction) {
    out.exhausts = true;
    out.first_error_s = Some(0.0);
    out.margin = None;
    out.sustainable_rate = Some(0.0);
    out.post_exhaustion_rate = Some(0.0);
    out.explanation = format!(
        "No port is free ({supply}), so the very first connection fails with {}.",
        out.exhaustion_error
    );
}

/// A pool of persistent connections: it needs one port each and never closes them, so it
/// runs out only when the pool is larger than the ports.
fn pooled(input: &ModelInput, supply: &str, out: &mut Prediction) {
    let (n, p_eff, error) = (
        input.pool,
        out.ports_effective,
        out.exhaustion_error.clone(),
    );
    let p = p_eff as f64;
    out.timewait_side = TimeWaitSide::Nobody;
    out.margin = Some(f64::from(n) / p);
    out.exhausts = u64::from(n) > p_eff;
    out.explanation = if out.exhausts {
        out.first_error_s = input.rate.map(|r| p / r);
        let when = match input.rate {
            Some(r) => format!(
                " (at the latest after {p_eff} / {} conn/s = {} s, as the pool fills)",
                num(r),
                num(p / r)
            ),
            None => String::new(),
        };
        format!(
            "A pool of {n} persistent connections needs {n} ports but there are only {supply}: connection {} fails with {error}{when}.",
            p_eff + 1
        )
    } else {
        format!(
            "A pool of {n} persistent connections holds {n} of the {supply} and never closes them, so nothing enters TIME_WAIT and the ports never run out."
        )
    };
}

/// The server closes first: TIME_WAIT sits on the server, one socket per distinct client
/// 4-tuple, and costs the client no port.
fn server_side(input: &ModelInput, out: &mut Prediction) {
    let t = input.time_wait_s;
    // The server's TIME_WAIT is on its own port; tcp_tw_reuse is a connect() matter
    // and does not shorten it. max_tw_buckets caps it only when the server is this
    // host (loopback); a remote server's limit is not known here.
    let cap = input
        .max_tw_buckets
        .filter(|_| input.loopback)
        .map_or(f64::INFINITY, |b| b as f64);
    // It holds one socket per distinct client 4-tuple: a SYN on a 4-tuple the server
    // holds in TIME_WAIT takes that socket over. The client's ports are free again as
    // soon as each connection ends, and Linux's connect() tries ports of the range's
    // low parity first, moving on from the last one taken: it cycles through those
    // floor(P / 2) ports (per destination and source) and never needs the others.
    let tuples = server_tuples(input);
    out.client_tuples = tuples;
    let steady = input.rate.map(|r| {
        let reached = tuples.map_or(r * t, |n| tuples_reached(n, r * t));
        reached.min(cap)
    });
    out.steady_timewait = steady;
    out.steady_timewait_max = steady;
    let held = match (steady, input.rate, tuples) {
        (Some(s), Some(r), Some(n)) if s < (r * t).min(cap) => format!(
            " (about {} sockets at steady state: not {} x {} s = {}, because the client reuses at most {} distinct ports toward it, the ports of one parity that connect() cycles through, and a SYN takes over the server's TIME_WAIT of the same 4-tuple)",
            num(s), num(r), num(t), num(r * t), num(n)
        ),
        (Some(s), _, _) => format!(" (about {} sockets at steady state)", num(s)),
        _ => String::new(),
    };
    out.explanation = format!(
        "The server closes first, so TIME_WAIT sits on the server{held} and costs the client no port: each client port is free again as soon as its connection ends, so the ports never run out."
    );
}

/// Each connect() from an explicitly bound SO_REUSEADDR port replaces the TIME_WAIT socket
/// of its 4-tuple (timestamps on): ports stay in TIME_WAIT (up to P of them) but never
/// block.
fn reuse_addr_takeover(input: &ModelInput, p: f64, supply: &str, out: &mut Prediction) {
    let steady = input.rate.map(|r| (r * input.time_wait_s).min(p));
    out.steady_timewait = steady;
    out.steady_timewait_max = steady;
    out.explanation = format!(
        "The client binds its own ports ({supply}) with SO_REUSEADDR and TCP timestamps are on, so connect() takes over the TIME_WAIT socket of the same 4-tuple at once (TWRecycled), whatever tcp_tw_reuse says: the ports never run out, and up to {} sockets sit in TIME_WAIT.",
        num(steady.unwrap_or(p))
    );
}

/// The distinct client 4-tuples a server can hold in TIME_WAIT when the client's ports are
/// free again at once (passive close): with Linux's connect() choosing ports, the range's
/// low parity, floor(P / 2) per destination and source; None (not modelled) otherwise.
fn server_tuples(input: &ModelInput) -> Option<f64> {
    use super::profile::Profile;
    (input.bind == BindModel::PerDestination && input.profile == Profile::Linux).then(|| {
        let per = f64::from(input.ports / 2);
        per * f64::from(input.destinations.max(1)) * f64::from(input.sources.max(1))
    })
}

/// Mean step of Linux's connect() from one port choice to the next, in ports of one parity:
/// the next search starts 1 + U{0..7} of them further on (`__inet_hash_connect` adds a small
/// random increment since 5.18; the mean is 4.5).
const CONNECT_STEP: f64 = 4.5;

/// Distinct 4-tuples among `connections` made over `tuples` of them with Linux's connect():
/// each lap around the ring of one parity visits a slot with probability 1 / 4.5, so after
/// n x 4.5 / N laps a fraction (1 - 1 / 4.5)^laps is still unvisited; never more than the
/// connections. Measured: 2,331 and 2,340 server TIME_WAIT sockets after 4,000 connections
/// over 6,000 ports (3,000 of one parity); this gives 2,334.
pub fn tuples_reached(tuples: f64, connections: f64) -> f64 {
    if tuples <= 0.0 || connections <= 0.0 {
        return 0.0;
    }
    let laps = connections * CONNECT_STEP / tuples;
    (tuples * (1.0 - (1.0 - 1.0 / CONNECT_STEP).powf(laps))).min(connections)
}

/// The spread of [`tuples_reached`] from run to run: each of the `tuples` is missed with
/// probability p = (1 - 1/step)^laps independently enough that the count missed is about
/// binomial, so its standard deviation is sqrt(N p (1 - p)) (100 tuples after 200
/// connections: p = 0.10, 3.1 tuples, 3.4% of the 90 reached; a 5% tolerance is 1.5 of
/// them, which a quiet run missed once in eight).
pub fn tuples_reached_sd(tuples: f64, connections: f64) -> f64 {
    if tuples <= 0.0 || connections <= 0.0 {
        return 0.0;
    }
    let laps = connections * CONNECT_STEP / tuples;
    let p = (1.0 - 1.0 / CONNECT_STEP).powf(laps);
    (tuples * p * (1.0 - p)).sqrt()
}

/// How long a closed connection holds its port, in words: `hold` seconds of TIME_WAIT, or
/// the tcp_tw_reuse delay where `reuse` applies (the model's explanation and watch's).
pub fn hold_phrase(input: &ModelInput, hold: f64, reuse: bool) -> String {
    if reuse {
        format!(
            "{} s (tcp_tw_reuse = {} lets connect() take a TIME_WAIT port {} s after close)",
            num(hold),
            input.tw_reuse.value(),
            num(hold)
        )
    } else {
        format!("{} s of TIME_WAIT", num(hold))
    }
}

/// The one case that can exhaust: one connection per request, client closes first.
fn client(input: &ModelInput, p: f64, reuse: bool, supply: &str, out: &mut Prediction) {
    let t = input.time_wait_s;
    let hold = if reuse { input.tw_reuse_delay_s } else { t };
    let hold_phrase = hold_phrase(input, hold, reuse);
    out.hold_s = hold;
    let sustainable = p / hold;
    out.sustainable_rate = Some(sustainable);

    let Some(r) = input.rate else {
        out.steady_timewait = None;
        out.steady_timewait_max = None;
        out.margin = None;
        out.explanation = format!(
            "No rate given, so only capacity figures: {supply}, each held {hold_phrase} after close, sustain at most {} conn/s.",
            num(sustainable)
        );
        return;
    };

    let demand = r * hold;
    // Closes past tcp_max_tw_buckets skip TIME_WAIT, so a cap below P_eff always leaves a
    // port free; a cap at or above P_eff changes nothing.
    let bucket_cap = input.max_tw_buckets.map(|b| b as f64).filter(|&b| b < p);
    let limit = bucket_cap.unwrap_or(p);
    out.steady_timewait = Some(demand.min(limit));
    out.steady_timewait_max = Some(if reuse {
        (r * t).min(limit)
    } else {
        demand.min(limit)
    });
    // Demand over supply; with a cap below P_eff the demand itself is capped (margin < 1).
    out.margin = Some(bucket_cap.map_or(demand, |b| demand.min(b)) / p);

    out.explanation = if let Some(b) = bucket_cap.filter(|&b| demand > b) {
        format!(
            "{} conn/s each holding a port for {hold_phrase} would need {} ports, but tcp_max_tw_buckets = {} is below the {supply}: closes past the cap skip TIME_WAIT, so the ports never run out and TIME_WAIT stays at {}.",
            num(r), num(demand), num(b), num(b)
        )
    } else if demand > p {
        let first = p / r;
        out.exhausts = true;
        out.first_error_s = Some(first);
        out.post_exhaustion_rate = Some(sustainable);
        format!(
            "{} conn/s each holding a port for {hold_phrase} need {} ports, but there are only {supply}, so the first {} comes after {} / {} conn/s = {} s. After that only {} / {} s = {} conn/s succeed.",
            num(r), num(demand), out.exhaustion_error, num(p), num(r), num(first), num(p), num(hold), num(sustainable)
        )
    } else {
        format!(
            "{} conn/s each holding a port for {hold_phrase} keep {} ports busy, within the {supply} (margin {}), so the ports never run out; up to {} conn/s would be sustainable.",
            num(r), num(demand), num(demand / p), num(sustainable)
        )
    };
}
