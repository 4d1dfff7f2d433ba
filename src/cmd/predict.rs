//! `portlab predict`: every model input as a flag, and the command that prints the
//! prediction and the inverse advice.

use anyhow::Context as _;
use serde::Serialize;

use crate::model::inverse::{Advice, Inverse};
use crate::model::predict::Prediction;
use crate::model::profile::{BindModel, ModelInput, PortSpec, Profile, TwReuse};
use crate::model::ModelError;
use crate::plan::PortRange;

use crate::plan::CloseMode;

use crate::report::Format;

/// Flags of `portlab predict`: the model's inputs. Profile defaults fill what is not given.
#[derive(Debug, Clone, clap::Args)]
pub struct PredictArgs {
    /// OS whose defaults are used: linux, windows-2003, windows-2008 (and later), macos,
    /// freebsd, or custom (no defaults: give --ports/--port-range and --time-wait).
    #[arg(long, value_name = "NAME", default_value = "linux")]
    pub profile: Profile,

    /// New connections (or requests) per second, e.g. 30 or 1800/min. Without it only the
    /// capacity figures are given.
    #[arg(long, value_name = "R", value_parser = parse_rate, allow_negative_numbers = true)]
    pub rate: Option<f64>,

    /// Number of ephemeral ports, instead of the profile's range.
    #[arg(long, value_name = "N", conflicts_with = "port_range", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub ports: Option<u32>,

    /// Ephemeral port range LO-HI (inclusive), instead of the profile's, e.g. 1025-5000.
    #[arg(long, value_name = "LO-HI")]
    pub port_range: Option<PortRange>,

    /// Ports of the range that are reserved and never picked (ip_local_reserved_ports), in
    /// the kernel's syntax as `run --lab-reserved-ports` takes it, e.g. 1000-1010,2000; only
    /// the ports inside the range count.
    #[arg(long, value_name = "LIST", conflicts_with = "reserved")]
    pub reserved_ports: Option<String>,

    /// How many ports of the range are reserved (older spelling; --reserved-ports LIST is
    /// the one run and inspect share).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub reserved: u32,

    /// How long TIME_WAIT lasts, e.g. 240s, 4m or 30 (seconds). Default: the profile's
    /// (linux 60s, windows 240s, macos 30s, freebsd 60s); TcpTimedWaitDelay on Windows.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_s, allow_hyphen_values = true)]
    pub time_wait: Option<f64>,

    /// Linux tcp_tw_reuse: 0 off, 1 on, 2 loopback only (linux default 2). Where it
    /// applies (client closing first, connect() choosing the port) a port is reusable
    /// after --tw-reuse-delay instead of TIME_WAIT.
    #[arg(long, value_name = "0|1|2")]
    pub tw_reuse: Option<TwReuse>,

    /// Linux tcp_tw_reuse_delay (6.14+), e.g. 1s or 250ms (a bare number is seconds);
    /// 1 ms to 60 s, default 1s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_s, allow_hyphen_values = true)]
    pub tw_reuse_delay: Option<f64>,

    /// Linux tcp_max_tw_buckets: TIME_WAIT cannot exceed it; closes past it skip
    /// TIME_WAIT. Default: no limit.
    #[arg(long, value_name = "N")]
    pub max_tw_buckets: Option<u64>,

    /// Who closes first: active (the client, which keeps TIME_WAIT), passive (the server
    /// does) or reset (SO_LINGER 0, no TIME_WAIT).
    #[arg(long, value_name = "MODE", value_parser = crate::plan::values::close_flag(), default_value = "active")]
    pub close: CloseMode,

    /// Persistent connections: 0 = a new connection per request; N > 0 = N connections
    /// reused, holding N ports and no TIME_WAIT.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub pool: u32,

    /// How the local port is chosen, as `run --bind` takes it: auto or no-port (the port is
    /// chosen at connect(); the range serves each destination and source address), any-port
    /// (bind(0) before connect(); one range shared by all destinations) or range=LO-HI
    /// (ports LO..HI bound in order; they replace the port range).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub bind: crate::plan::BindMode,

    /// Destinations (ip:port) the load is spread over evenly.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub destinations: u32,

    /// Local source addresses the load is spread over evenly, as `run --source` takes them
    /// (repeat or comma-separate); only their number matters to the model.
    #[arg(
        long,
        value_name = "IP",
        value_delimiter = ',',
        conflicts_with = "sources"
    )]
    pub source: Vec<std::net::IpAddr>,

    /// How many local source addresses (older spelling of --source when only the number
    /// is known).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub sources: u32,

    /// The target is on loopback (tcp_tw_reuse = 2 applies there).
    #[arg(long, conflicts_with = "remote")]
    pub loopback: bool,

    /// The target is on another host (the default).
    #[arg(long)]
    pub remote: bool,

    /// Sockets already holding ports when the load starts; they are not available.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preexisting: u32,

    /// The connection-tracking table's size (nf_conntrack_max) where the connections pass
    /// a conntrack (a stateful firewall, a NAT, a Kubernetes node): adds when it fills
    /// (R x (lifetime + its TIME_WAIT timeout) entries) and which limit comes first.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub conntrack_max: Option<u64>,

    /// Entries already in the table (nf_conntrack_count); with --conntrack-max.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        requires = "conntrack_max"
    )]
    pub conntrack_count: u64,

    /// The table's TIME_WAIT timeout (nf_conntrack_tcp_timeout_time_wait), e.g. 120s;
    /// with --conntrack-max.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_s, allow_hyphen_values = true, requires = "conntrack_max")]
    pub conntrack_time_wait: Option<f64>,

    /// How long each connection stays open (connect to close), e.g. 50ms or 30s; it holds
    /// a conntrack entry (and a NAT's port) that long before the timeout. Default 0; with
    /// --conntrack-max or --nat-ports.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_s, allow_hyphen_values = true)]
    pub lifetime: Option<f64>,

    /// A NAT in front of the server with this many ports per destination (a Kubernetes
    /// node's masquerade, a cloud NAT's ports per VM, e.g. 64): adds the connections it can
    /// map at once, those it refuses (their SYNs dropped: connect stalls and timeouts, not
    /// EADDRNOTAVAIL), and when a NAT that holds ports runs out (docs/nat.md).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65535))]
    pub nat_ports: Option<u64>,

    /// Clients behind the NAT, each with this load (--rate, --pool); with --nat-ports.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), requires = "nat_ports")]
    pub nat_clients: u64,

    /// How long the NAT holds a port after the close (a cloud NAT's TCP TIME_WAIT timeout,
    /// e.g. 120s); unset, it hands a closed connection's port out again at once, as a Linux
    /// NAT does; with --nat-ports.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_s, allow_hyphen_values = true, requires = "nat_ports")]
    pub nat_hold: Option<f64>,

    /// Output format: text, json (one object: input, prediction, inverse, advice), or csv
    /// and markdown (its fields as key,value rows).
    #[arg(long, value_name = "FORMAT", value_enum, default_value = "text")]
    pub format: Format,
}

use crate::plan::values::{parse_duration_s, parse_rate};

/// Builds and validates the model input from the flags: the profile's defaults, then
/// every flag given. Errors name the flag and what it accepts.
pub fn input_from_args(args: &PredictArgs) -> Result<ModelInput, ModelError> {
    let profile = args.profile;
    if !profile.has_linux_knobs() {
        let linux_only = [
            ("--tw-reuse", args.tw_reuse.is_some()),
            ("--tw-reuse-delay", args.tw_reuse_delay.is_some()),
            ("--max-tw-buckets", args.max_tw_buckets.is_some()),
        ];
        if let Some((flag, _)) = linux_only.into_iter().find(|(_, given)| *given) {
            return Err(ModelError::NotForProfile {
                flag,
                profile: profile.name(),
            });
        }
    }
    let base = ModelInput::from_profile(profile);
    let bound_range = match args.bind {
        crate::plan::BindMode::Range(lo, hi) => Some(PortRange::new(lo, hi)?),
        _ => None,
    };
    let spec = match (bound_range.or(args.port_range), args.ports, base.port_range) {
        (Some(r), _, _) => PortSpec::Range(r),
        (None, Some(n), _) => PortSpec::Count(n),
        (None, None, Some(r)) => PortSpec::Range(r),
        (None, None, None) => {
            return Err(ModelError::MissingForCustom {
                flag: "--ports or --port-range",
                what: "the ephemeral ports, e.g. --port-range 32768-60999",
            })
        }
    };
    let input = ModelInput {
        time_wait_s: args.time_wait.unwrap_or(base.time_wait_s),
        tw_reuse: args.tw_reuse.unwrap_or(base.tw_reuse),
        tw_reuse_delay_s: args.tw_reuse_delay.unwrap_or(base.tw_reuse_delay_s),
        max_tw_buckets: args.max_tw_buckets,
        rate: args.rate,
        timewait_side: args.close.into(),
        pool: args.pool,
        bind: match args.bind {
            crate::plan::BindMode::Auto | crate::plan::BindMode::NoPort => {
                BindModel::PerDestination
            }
            crate::plan::BindMode::AnyPort | crate::plan::BindMode::Range(..) => {
                BindModel::WholeRange
            }
        },
        destinations: args.destinations,
        sources: match args.source.len() {
            0 => args.sources,
            n => u32::try_from(n).unwrap_or(u32::MAX),
        },
        loopback: args.loopback,
        preexisting: args.preexisting,
        ..base
    }
    .with_ports(spec, reserved_count(args, spec)?)?;
    input.validate()?;
    Ok(input)
}

/// Reserved ports that count against `spec`: --reserved N, or the ports of
/// --reserved-ports LIST inside the range (all of them when only a count of ports is known).
fn reserved_count(args: &PredictArgs, spec: PortSpec) -> Result<u32, ModelError> {
    let Some(list) = &args.reserved_ports else {
        return Ok(args.reserved);
    };
    let ranges = PortRange::parse_list(list).map_err(|e| ModelError::Value {
        flag: "--reserved-ports",
        given: list.clone(),
        reason: format!("{e}; write the kernel's syntax, e.g. 1000-1010,2000"),
    })?;
    Ok(match spec {
        PortSpec::Range(range) => ranges.iter().map(|r| r.overlap(range)).sum(),
        PortSpec::Count(_) => ranges.iter().map(|r| r.len()).sum(),
    })
}

/// The JSON document `predict --format json` prints.
#[derive(Serialize)]
struct Report<'a> {
    input: &'a ModelInput,
    prediction: &'a Prediction,
    inverse: Option<&'a Inverse>,
    advice: &'a [Advice],
    #[serde(skip_serializing_if = "Option::is_none")]
    conntrack: Option<&'a crate::model::conntrack::ConntrackPrediction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nat: Option<&'a crate::model::nat::NatPrediction>,
}

/// Which runs out first, the NAT or the client's own ports, in words.
fn nat_first_limit(n: &crate::model::nat::NatPrediction, ports_s: Option<f64>) -> String {
    let when = |t: Option<f64>| t.map_or("never".to_string(), |t| format!("{t:.1} s"));
    match (n.outlook.refused_at_once > 0, n.runs_out_at_s, ports_s) {
        (true, _, _) => {
            "the NAT, at once: more connections want a port at once than it has".to_string()
        }
        (false, Some(nat), Some(own)) if own <= nat => format!(
            "the client's own ports ({}), before the NAT ({})",
            when(Some(own)),
            when(Some(nat))
        ),
        (false, Some(nat), own) => format!(
            "the NAT ({}), before the client's own ports ({})",
            when(Some(nat)),
            when(own)
        ),
        (false, None, own) => format!(
            "not the NAT (it never runs out); the client's own ports: {}",
            when(own)
        ),
    }
}

/// The NAT's prediction from the flags, when --nat-ports is given.
fn nat_prediction(
    args: &PredictArgs,
    input: &ModelInput,
) -> Result<Option<crate::model::nat::NatPrediction>, ModelError> {
    let Some(ports) = args.nat_ports else {
        if args.lifetime.is_some() && args.conntrack_max.is_none() {
            return Err(ModelError::Value {
                flag: "--lifetime",
                given: format!("{}", args.lifetime.unwrap_or(0.0)),
                reason: "it says how long a connection holds a conntrack entry or a NAT's \
                         port: give --conntrack-max or --nat-ports too"
                    .into(),
            });
        }
        return Ok(None);
    };
    if let Some(h) = args.nat_hold {
        if !(h >= 0.0 && h.is_finite()) {
            return Err(ModelError::Value {
                flag: "--nat-hold",
                given: h.to_string(),
                reason: "a duration of 0 or more, e.g. 120s".into(),
            });
        }
    }
    Ok(Some(crate::model::nat::predict(
        &crate::model::nat::NatPlan {
            ports,
            clients: args.nat_clients,
            rate: input.rate,
            pool: input.pool,
            lifetime_s: args.lifetime.unwrap_or(0.0),
            server_closes: input.timewait_side == crate::model::TimeWaitSide::Server,
            hold_s: args.nat_hold,
        },
    )))
}

/// The conntrack table's input from the flags, when --conntrack-max is given.
fn conntrack_input(
    args: &PredictArgs,
) -> Result<Option<crate::model::conntrack::ConntrackInput>, ModelError> {
    let Some(max) = args.conntrack_max else {
        return Ok(None);
    };
    let mut ct = crate::model::conntrack::ConntrackInput::new(max, args.conntrack_count);
    if let Some(t) = args.conntrack_time_wait {
        if !(t > 0.0 && t.is_finite()) {
            return Err(ModelError::Value {
                flag: "--conntrack-time-wait",
                given: t.to_string(),
                reason: "a positive duration, e.g. 120s".into(),
            });
        }
        ct.time_wait_s = t;
    }
    if let Some(t) = args.lifetime {
        if !(t >= 0.0 && t.is_finite()) {
            return Err(ModelError::Value {
                flag: "--lifetime",
                given: t.to_string(),
                reason: "a duration of 0 or more, e.g. 50ms".into(),
            });
        }
        ct.lifetime_s = t;
    }
    Ok(Some(ct))
}

/// Runs `portlab predict`: builds the input, predicts, and prints inputs, prediction and
/// advice in the chosen format. Input errors are [`ModelError`]s inside the anyhow error
/// (downcast to map them to exit code 2). Returns the exit code (0).
pub fn run(args: &PredictArgs, out: &mut dyn crate::say::Output) -> anyhow::Result<u8> {
    let input = input_from_args(args)?;
    let ct_input = conntrack_input(args)?;
    let nat = nat_prediction(args, &input)?;
    let (prediction, inv, advice) = crate::model::analyse(&input);
    let conntrack = ct_input.map(|ct| {
        crate::model::conntrack::predict(
            &ct,
            input.rate,
            input.timewait_side,
            input.pool,
            prediction.first_error_s,
        )
    });
    let report = Report {
        input: &input,
        prediction: &prediction,
        inverse: inv.as_ref(),
        advice: &advice,
        conntrack: conntrack.as_ref(),
        nat: nat.as_ref(),
    };
    let text = || {
        let mut t =
            crate::report::prediction::render_text(&input, &prediction, inv.as_ref(), &advice);
        if let Some(ct) = &conntrack {
            t.push_str(&crate::report::prediction::conntrack_text(ct, true));
        }
        if let Some(n) = &nat {
            t.push_str(&format!("\nNAT\n  {}\n", n.explanation));
            t.push_str(&format!(
                "  first limit: {}\n",
                nat_first_limit(n, prediction.first_error_s)
            ));
        }
        t
    };
    crate::report::document::render(&report, args.format, &text, out)
        .context("writing the prediction")?;
    Ok(0)
}

#[cfg(test)]
#[path = "predict_tests.rs"]
mod tests;
