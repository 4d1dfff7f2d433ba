//! The text rendering of a [`Prediction`]: the model's inputs, its figures and the advice,
//! as `portlab predict` prints it, `inspect --rate` below the host's settings and
//! `run --dry-run` as comment lines; and the conntrack table's lines (predict, inspect).

use crate::model::inverse::{render_advice, Advice, Inverse};
use crate::model::num;
use crate::model::predict::Prediction;
use crate::model::profile::{BindModel, ModelInput, Profile, TimeWaitSide};

/// The text rendering: inputs, prediction, and what would fix it. Over 100 lines: a
/// straight sequence of labelled rows in their printed order.
pub fn render_text(
    input: &ModelInput,
    p: &Prediction,
    inv: Option<&Inverse>,
    advice: &[Advice],
) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    let range = match input.port_range {
        Some(r) => format!("range {r}, "),
        None => String::new(),
    };
    rows.push(("profile", input.profile.to_string()));
    rows.push((
        "ports",
        format!(
            "{} usable ({range}{} reserved)",
            input.ports, input.reserved
        ),
    ));
    rows.push(("TIME_WAIT", format!("{} s", num(input.time_wait_s))));
    if input.profile.has_linux_knobs() {
        rows.push((
            "tcp_tw_reuse",
            format!(
                "{} (delay {} s; {})",
                input.tw_reuse.value(),
                num(input.tw_reuse_delay_s),
                if p.reuse_applies {
                    "applies"
                } else {
                    "does not apply here"
                }
            ),
        ));
        rows.push((
            "max_tw_buckets",
            input
                .max_tw_buckets
                .map_or("no limit".into(), |b| b.to_string()),
        ));
    }
    rows.push((
        "rate",
        input.rate.map_or("not given (capacity only)".into(), |r| {
            format!("{} conn/s", num(r))
        }),
    ));
    rows.push((
        "close",
        match input.timewait_side {
            TimeWaitSide::Client => "active: the client keeps TIME_WAIT",
            TimeWaitSide::Server => "passive: the server keeps TIME_WAIT",
            TimeWaitSide::Nobody => "reset: no TIME_WAIT",
        }
        .into(),
    ));
    rows.push((
        "pool",
        if input.pool == 0 {
            "none (a new connection per request)".into()
        } else {
            format!("{} persistent connections", input.pool)
        },
    ));
    rows.push((
        "bind",
        match input.bind {
            BindModel::PerDestination => "auto: connect() picks the port, per destination",
            BindModel::WholeRange => "any-port: bind before connect, one range for all",
        }
        .into(),
    ));
    rows.push(("destinations", input.destinations.to_string()));
    rows.push(("sources", input.sources.to_string()));
    rows.push((
        "target",
        if input.loopback { "loopback" } else { "remote" }.into(),
    ));
    rows.push(("preexisting", format!("{} sockets", input.preexisting)));

    let mut s = String::from("Inputs\n");
    push_rows(&mut s, &rows);
    rows.clear();

    let opt = |v: Option<f64>, unit: &str, none: &str| match v {
        Some(x) => format!("{} {unit}", num(x)),
        None => none.to_string(),
    };
    rows.push(("exhausts", if p.exhausts { "yes" } else { "no" }.into()));
    rows.push((
        "first error",
        match p.first_error_s {
            Some(t) => format!("after {} s ({})", num(t), p.exhaustion_error),
            None => "never".into(),
        },
    ));
    rows.push((
        "sustainable rate",
        match (p.sustainable_rate, p.sustainable_rate_per_destination) {
            (Some(r), Some(d)) if input.destinations > 1 => {
                format!("{} conn/s ({} conn/s per destination)", num(r), num(d))
            }
            (r, _) => opt(r, "conn/s", "not limited by ports"),
        },
    ));
    if p.exhausts {
        rows.push((
            "after exhaustion",
            opt(p.post_exhaustion_rate, "conn/s succeed", "-"),
        ));
    }
    rows.push((
        "steady TIME_WAIT",
        match (p.steady_timewait, p.steady_timewait_max) {
            (Some(a), Some(b)) if b > a => format!(
                "{} ports blocked on the {} (up to {} sockets counted)",
                num(a),
                p.timewait_side.name(),
                num(b)
            ),
            (Some(a), _) if p.timewait_side == TimeWaitSide::Nobody => {
                format!("{} (none on either side)", num(a))
            }
            (Some(a), _) => format!("{} sockets on the {}", num(a), p.timewait_side.name()),
            (None, _) => format!("unknown without a rate (on the {})", p.timewait_side.name()),
        },
    ));
    rows.push(("hold per port", format!("{} s", num(p.hold_s))));
    rows.push((
        "margin",
        match p.margin {
            Some(m) => format!(
                "{} (demand {} ports / {} available; above 1 runs out)",
                num(m),
                num(m * p.ports_effective as f64),
                p.ports_effective
            ),
            None => format!("unknown ({} port slots)", p.ports_effective),
        },
    ));
    s += "\nPrediction\n";
    push_rows(&mut s, &rows);
    s += &format!("  {}\n", p.explanation);

    if let Some(inv) = inv {
        match input.rate {
            Some(r) if input.pool == 0 => s += &format!("\nTo sustain {} conn/s\n", num(r)),
            _ => s += "\nTo make it fit\n",
        }
        s += &format!("  needs {} ports in the range", inv.ports_needed);
        if let Some(h) = inv.max_hold_s {
            let what = if p.reuse_applies {
                "a tcp_tw_reuse delay"
            } else if input.profile == Profile::Linux {
                "a port hold (TIME_WAIT is fixed at 60 s; tcp_tw_reuse sets the hold)"
            } else {
                "a TIME_WAIT"
            };
            s += &format!(", or {what} of at most {} s", num(h));
        }
        s += "\n";
        s += &render_advice(advice);
    }
    s
}

fn push_rows(s: &mut String, rows: &[(&str, String)]) {
    for (k, v) in rows {
        s.push_str(&format!("  {k:<18} {v}\n"));
    }
}

/// The text lines of the conntrack figures (after the ports').
pub fn conntrack_text(ct: &crate::model::conntrack::ConntrackPrediction, header: bool) -> String {
    let mut out = String::from(if header { "\nconntrack table\n" } else { "" });
    out.push_str(&format!("  {}\n", ct.explanation));
    if let Some(first) = &ct.first_limit {
        let what = match first.as_str() {
            "conntrack" => "the conntrack table fills before the ports run out",
            "ports" => "the ports run out before the conntrack table fills",
            _ => "neither the ports nor the conntrack table run out",
        };
        out.push_str(&format!("  first limit: {what}\n"));
    }
    for a in &ct.advice {
        out.push_str(&format!("  - {a}\n"));
    }
    out
}
