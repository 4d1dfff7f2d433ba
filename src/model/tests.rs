//! Model tests: one table of cases for `predict`, then the inverse and the advice commands.
//! The `predict` command's flags and output are tested in cmd/predict_tests.rs.

use super::*;
use crate::plan::PortRange;

/// Rounding used by the table: figures are written with two decimals.
const TOL: f64 = 0.005;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL
}

fn close_opt(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => close(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn input(profile: Profile, rate: Option<f64>) -> ModelInput {
    ModelInput {
        rate,
        ..ModelInput::from_profile(profile)
    }
}

fn custom(ports: u32, time_wait_s: f64, rate: f64) -> ModelInput {
    ModelInput {
        time_wait_s,
        rate: Some(rate),
        ..ModelInput::from_profile(Profile::Custom)
    }
    .with_ports(PortSpec::Count(ports), 0)
    .expect("valid ports")
}

struct Case {
    name: &'static str,
    input: ModelInput,
    exhausts: bool,
    first_error_s: Option<f64>,
    sustainable_rate: Option<f64>,
    steady_timewait: Option<f64>,
    side: TimeWaitSide,
    hold_s: f64,
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use Profile::*;
    use TimeWaitSide::*;
    let w03 = |r| input(Windows2003, Some(r));
    let linux = |r| input(Linux, Some(r));
    let c = |name, input, exhausts, first_error_s, sustainable_rate, steady_timewait, side, hold_s| Case {
        name, input, exhausts, first_error_s, sustainable_rate, steady_timewait, side, hold_s,
    };
    vec![
        // Seed: Windows 2003 defaults, 3976 ports x 240 s at 30/s: 7200 > 3976, first error at 3976 / 30.
        c("w2003 seed", w03(30.0), true, Some(132.53), Some(16.57), Some(3976.0), Client, 240.0),
        // TcpTimedWaitDelay = 30: 30 x 30 = 900 < 3976, never.
        c("w2003 TcpTimedWaitDelay 30", ModelInput { time_wait_s: 30.0, ..w03(30.0) }, false, None, Some(132.53), Some(900.0), Client, 30.0),
        // Rate unknown: capacity only, no steady count.
        c("w2003 no rate", input(Windows2003, None), false, None, Some(16.57), None, Client, 240.0),
        // Linux defaults, remote destination (tw_reuse 2 does not apply): 28232 / 60 = 470.53/s per destination.
        c("linux remote 100/s", linux(100.0), false, None, Some(470.53), Some(6000.0), Client, 60.0),
        // Same at 1000/s: 60000 > 28232, first error at 28.23 s, then 470.53/s.
        c("linux remote 1000/s", linux(1000.0), true, Some(28.23), Some(470.53), Some(28232.0), Client, 60.0),
        // Loopback with the default tw_reuse 2: the hold is the 1 s reuse delay.
        c("linux loopback reuse 2", ModelInput { loopback: true, ..linux(1000.0) }, false, None, Some(28232.0), Some(1000.0), Client, 1.0),
        // Loopback with tw_reuse 0: back to 60 s.
        c("linux loopback reuse 0", ModelInput { loopback: true, tw_reuse: TwReuse::Off, ..linux(1000.0) }, true, Some(28.23), Some(470.53), Some(28232.0), Client, 60.0),
        // tw_reuse 1 applies to a remote destination too.
        c("linux remote reuse 1", ModelInput { tw_reuse: TwReuse::On, ..linux(1000.0) }, false, None, Some(28232.0), Some(1000.0), Client, 1.0),
        // bind(0) before connect(): tw_reuse is a connect() feature, so 60 s even on loopback.
        c("linux any-port loopback", ModelInput { loopback: true, bind: BindModel::WholeRange, ..linux(1000.0) }, true, Some(28.23), Some(470.53), Some(28232.0), Client, 60.0),
        // Passive close: TIME_WAIT on the server (30 x 240 = 7200 sockets), the client never runs out.
        c("w2003 passive", ModelInput { timewait_side: Server, ..w03(30.0) }, false, None, None, Some(7200.0), Server, 0.0),
        // Reset: no TIME_WAIT anywhere.
        c("w2003 reset", ModelInput { timewait_side: Nobody, ..w03(30.0) }, false, None, None, Some(0.0), Nobody, 0.0),
        // Pool of 8: 8 ports held, nothing in TIME_WAIT.
        c("w2003 pool 8", ModelInput { pool: 8, ..w03(30.0) }, false, None, None, Some(0.0), Nobody, 0.0),
        // Pool larger than the ports: connection 3977 fails, at the latest at 3976 / 30.
        c("w2003 pool 5000", ModelInput { pool: 5000, ..w03(30.0) }, true, Some(132.53), None, Some(0.0), Nobody, 0.0),
        // connect() to 2 destinations: 2 x 28232 = 56464 slots hold 900/s x 60 s = 54000.
        c("linux connect 2 dest", ModelInput { destinations: 2, ..linux(900.0) }, false, None, Some(941.07), Some(54000.0), Client, 60.0),
        // At 2000/s it runs out at 56464 / 2000.
        c("linux connect 2 dest 2000/s", ModelInput { destinations: 2, ..linux(2000.0) }, true, Some(28.23), Some(941.07), Some(56464.0), Client, 60.0),
        // any-port with 2 destinations: one shared range, half the time of connect().
        c("linux any-port 2 dest 2000/s", ModelInput { destinations: 2, bind: BindModel::WholeRange, ..linux(2000.0) }, true, Some(14.12), Some(470.53), Some(28232.0), Client, 60.0),
        // 2 source addresses double the slots: 56464 < 60000, first error at 56.46 s.
        c("linux 2 sources", ModelInput { sources: 2, ..linux(1000.0) }, true, Some(56.46), Some(941.07), Some(56464.0), Client, 60.0),
        // tcp_max_tw_buckets 2000 < 28232: closes past it skip TIME_WAIT, never runs out.
        c("linux max_tw_buckets below P", ModelInput { max_tw_buckets: Some(2000), ..linux(1000.0) }, false, None, Some(470.53), Some(2000.0), Client, 60.0),
        // A cap equal to P does not help: every port is in TIME_WAIT before the cap bites.
        c("linux max_tw_buckets = P", ModelInput { max_tw_buckets: Some(28232), ..linux(1000.0) }, true, Some(28.23), Some(470.53), Some(28232.0), Client, 60.0),
        // 976 sockets already hold ports: 3000 left, first error at 100 s instead of 132.53.
        c("w2003 preexisting 976", ModelInput { preexisting: 976, ..w03(30.0) }, true, Some(100.0), Some(12.5), Some(3000.0), Client, 240.0),
        // Every port already held: the first connection fails.
        c("w2003 all ports held", ModelInput { preexisting: 4000, ..w03(30.0) }, true, Some(0.0), Some(0.0), Some(0.0), Client, 0.0),
        // Measured lab case: 200 ports, no reuse, 100/s: first EADDRNOTAVAIL at 2.0 s.
        c("lab 200 ports 100/s", custom(200, 60.0, 100.0), true, Some(2.0), Some(3.33), Some(200.0), Client, 60.0),
        // Measured lab case: tw_reuse 1, delay 4 s: 400 > 200, 50/s after exhaustion.
        c("lab reuse delay 4 s", ModelInput { tw_reuse: TwReuse::On, tw_reuse_delay_s: 4.0, ..custom(200, 60.0, 100.0) }, true, Some(2.0), Some(50.0), Some(200.0), Client, 4.0),
        // Time scale k = 10 of the seed: 3976 ports, 24 s reuse delay, 300/s: 13.25 s.
        c("lab seed scaled by 10", ModelInput { tw_reuse: TwReuse::On, tw_reuse_delay_s: 24.0, ..custom(3976, 60.0, 300.0) }, true, Some(13.25), Some(165.67), Some(3976.0), Client, 24.0),
        // macOS: 16384 ports x 30 s at 1000/s: 30000 > 16384, first error at 16.38 s.
        c("macos 1000/s", input(Macos, Some(1000.0)), true, Some(16.38), Some(546.13), Some(16384.0), Client, 30.0),
        // FreeBSD: 55536 ports x 60 s at 500/s: 30000 < 55536.
        c("freebsd 500/s", input(Freebsd, Some(500.0)), false, None, Some(925.6), Some(30000.0), Client, 60.0),
        // Passive on loopback with max_tw_buckets: the server's TIME_WAIT is capped too.
        c("linux passive loopback capped", ModelInput { timewait_side: Server, loopback: true, max_tw_buckets: Some(5000), ..linux(1000.0) }, false, None, None, Some(5000.0), Server, 0.0),
    ]
}

#[test]
fn predict_table() {
    let mut failures = Vec::new();
    for c in cases() {
        c.input
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let p = predict(&c.input);
        let ok = p.exhausts == c.exhausts
            && close_opt(p.first_error_s, c.first_error_s)
            && close_opt(p.sustainable_rate, c.sustainable_rate)
            && close_opt(p.steady_timewait, c.steady_timewait)
            && p.timewait_side == c.side
            && close(p.hold_s, c.hold_s)
            && !p.explanation.is_empty();
        // Exhaustion iff margin > 1, wherever the margin is known.
        let consistent = p.margin.is_none_or(|m| (m > 1.0) == p.exhausts);
        if !ok || !consistent {
            failures.push(format!("{}: {p:#?}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn any_port_exhausts_in_half_the_time_of_connect_with_two_destinations() {
    let connect = ModelInput {
        destinations: 2,
        rate: Some(2000.0),
        ..ModelInput::from_profile(Profile::Linux)
    };
    let any_port = ModelInput {
        bind: BindModel::WholeRange,
        ..connect.clone()
    };
    let (a, c) = (predict(&any_port), predict(&connect));
    let (Some(a), Some(c)) = (a.first_error_s, c.first_error_s) else {
        panic!("both exhaust: {a:?} {c:?}");
    };
    assert!((a * 2.0 - c).abs() < 1e-9, "{a} vs {c}");
}

#[test]
fn preexisting_sockets_shorten_the_time() {
    let base = input(Profile::Windows2003, Some(30.0));
    let busy = ModelInput {
        preexisting: 100,
        ..base.clone()
    };
    let t = |i: &ModelInput| predict(i).first_error_s.unwrap_or(f64::NAN);
    assert!(t(&busy) < t(&base));
    assert!((t(&base) - t(&busy) - 100.0 / 30.0).abs() < 1e-9);
}

#[test]
fn explanations_carry_the_numbers() {
    let p = predict(&input(Profile::Windows2003, Some(30.0)));
    for s in [
        "30 conn/s",
        "240 s",
        "7200 ports",
        "3976",
        "WSAENOBUFS",
        "132.53 s",
        "16.57 conn/s",
    ] {
        assert!(
            p.explanation.contains(s),
            "{s:?} missing in {}",
            p.explanation
        );
    }
    let capped = ModelInput {
        max_tw_buckets: Some(2000),
        ..input(Profile::Linux, Some(1000.0))
    };
    assert!(predict(&capped)
        .explanation
        .contains("tcp_max_tw_buckets = 2000"));
}

// ---- the inverse and its commands ----

fn fix(i: &ModelInput) -> (Prediction, Inverse, Vec<Advice>) {
    let p = predict(i);
    let inv = inverse(i, &p).expect("exhausts, so there is an inverse");
    let advice = advise(i, &p, &inv);
    (p, inv, advice)
}

fn commands(advice: &[Advice]) -> Vec<&str> {
    advice.iter().filter_map(|a| a.command.as_deref()).collect()
}

#[test]
fn inverse_table() {
    #[rustfmt::skip]
    let rows: Vec<(&str, ModelInput, u64, u64, Option<f64>)> = vec![
        // (name, input, slots needed, ports in the range needed, longest hold)
        // Seed: 30 x 240 = 7200 ports, or TIME_WAIT <= 3976 / 30 = 132.53 s.
        ("w2003 seed", input(Profile::Windows2003, Some(30.0)), 7200, 7200, Some(132.53)),
        // Reserved ports must be added back to the range.
        ("w2003 reserved 24", input(Profile::Windows2003, Some(30.0)).with_ports(PortSpec::Range(PortRange { lo: 1025, hi: 5000 }), 24).expect("ok"), 7200, 7224, Some(131.73)),
        // Preexisting sockets too.
        ("w2003 preexisting 100", ModelInput { preexisting: 100, ..input(Profile::Windows2003, Some(30.0)) }, 7200, 7300, Some(129.2)),
        // connect() to 4 destinations: the range serves each, so a quarter per destination.
        ("linux 4 dest", ModelInput { destinations: 4, ..input(Profile::Linux, Some(2000.0)) }, 120000, 30000, Some(56.46)),
        // Pool of 5000: 5000 ports, no hold.
        ("w2003 pool 5000", ModelInput { pool: 5000, ..input(Profile::Windows2003, Some(30.0)) }, 5000, 5000, None),
    ];
    for (name, i, slots, ports, hold) in rows {
        let (_, inv, _) = fix(&i);
        assert_eq!(
            (inv.slots_needed, inv.ports_needed),
            (slots, ports),
            "{name}"
        );
        assert!(close_opt(inv.max_hold_s, hold), "{name}: {inv:?}");
    }
    // Sustainable inputs have no inverse.
    let fine = input(Profile::Windows2003, Some(10.0));
    assert_eq!(inverse(&fine, &predict(&fine)), None);
}

#[test]
fn windows_2003_commands() {
    let (_, _, advice) = fix(&input(Profile::Windows2003, Some(30.0)));
    let cmds = commands(&advice);
    // 7200 ports from 1025: MaxUserPort = 1024 + 7200.
    assert!(cmds.contains(&r#"reg add "HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters" /v MaxUserPort /t REG_DWORD /d 8224 /f"#), "{cmds:#?}");
    // 132.53 s rounds down to 132.
    assert!(cmds.contains(&r#"reg add "HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters" /v TcpTimedWaitDelay /t REG_DWORD /d 132 /f"#), "{cmds:#?}");
    assert!(advice
        .iter()
        .any(|a| a.caveat.as_deref().is_some_and(|c| c.contains("reboot"))));
}

#[test]
fn windows_2008_commands() {
    // 100/s x 240 s = 24000 ports: 41536-65535.
    let (_, _, advice) = fix(&input(Profile::Windows2008, Some(100.0)));
    let cmds = commands(&advice);
    assert!(
        cmds.contains(&"netsh int ipv4 set dynamicport tcp start=41536 num=24000"),
        "{cmds:#?}"
    );
    // 16384 / 100 = 163.84 s.
    assert!(cmds
        .iter()
        .any(|c| c.ends_with("/v TcpTimedWaitDelay /t REG_DWORD /d 163 /f")));
    // Below 30 s TcpTimedWaitDelay cannot help: 16384 / 1000 = 16.4 s.
    let (_, _, advice) = fix(&input(Profile::Windows2008, Some(1000.0)));
    assert!(advice.iter().any(|a| a.what.contains("minimum is 30 s")));
}

#[test]
fn linux_commands() {
    // 1000/s x 60 s = 60000 ports: does not fit below 60999, so 5536-65535.
    let (_, _, advice) = fix(&input(Profile::Linux, Some(1000.0)));
    let cmds = commands(&advice);
    assert!(
        cmds.contains(&r#"sysctl -w net.ipv4.ip_local_port_range="5536 65535""#),
        "{cmds:#?}"
    );
    assert!(cmds.contains(&"sysctl -w net.ipv4.tcp_tw_reuse=1"));
    assert!(advice.iter().any(|a| a
        .caveat
        .as_deref()
        .is_some_and(|c| c.contains("timestamps"))));
    assert!(advice.iter().any(|a| a
        .caveat
        .as_deref()
        .is_some_and(|c| c.contains("below 32768"))));
    assert!(advice
        .iter()
        .any(|a| a.what.contains("tcp_fin_timeout") && a.command.is_none()));

    // 600/s x 60 s = 36000 ports: keep 60999 as HI, LO = 61000 - 36000.
    let (_, _, advice) = fix(&input(Profile::Linux, Some(600.0)));
    assert!(commands(&advice).contains(&r#"sysctl -w net.ipv4.ip_local_port_range="25000 60999""#));

    // Reuse already applies (loopback), 28232 slots at 40000/s: lower the delay to 705 ms.
    let fast = ModelInput {
        loopback: true,
        ..input(Profile::Linux, Some(40000.0))
    };
    let (_, _, advice) = fix(&fast);
    assert!(commands(&advice).contains(&"sysctl -w net.ipv4.tcp_tw_reuse_delay=705"));
    assert!(!commands(&advice).contains(&"sysctl -w net.ipv4.tcp_tw_reuse=1"));

    // bind before connect: tw_reuse is not offered, connect() is.
    let bound = ModelInput {
        bind: BindModel::WholeRange,
        ..input(Profile::Linux, Some(1000.0))
    };
    let (_, _, advice) = fix(&bound);
    assert!(!commands(&advice).contains(&"sysctl -w net.ipv4.tcp_tw_reuse=1"));
    assert!(advice
        .iter()
        .any(|a| a.what.contains("Let connect() choose")));
}

#[test]
fn macos_commands() {
    // 1000/s x 30 s = 30000 ports: 35536-65535; 16384 / 1000 = 16.38 s = 2 x 8192 ms.
    let (_, _, advice) = fix(&input(Profile::Macos, Some(1000.0)));
    let cmds = commands(&advice);
    assert!(
        cmds.contains(&"sysctl -w net.inet.ip.portrange.first=35536"),
        "{cmds:#?}"
    );
    assert!(
        cmds.contains(&"sysctl -w net.inet.tcp.msl=8192"),
        "{cmds:#?}"
    );
}

#[test]
fn too_many_ports_needed_says_so() {
    // 2000/s x 240 s = 480000 ports: no range holds that.
    let (_, inv, advice) = fix(&input(Profile::Windows2008, Some(2000.0)));
    assert_eq!(inv.ports_needed, 480000);
    assert!(advice
        .iter()
        .any(|a| a.what.starts_with("Ports alone cannot fix this")));
    assert!(!commands(&advice).iter().any(|c| c.starts_with("netsh")));
    // 480000 / 16384 per address = 30 source addresses.
    assert!(advice
        .iter()
        .any(|a| a.what.contains("30 source addresses")));
    assert!(advice.iter().any(|a| a.what.contains("pool")));
    assert!(advice.iter().any(|a| a.what.contains("server close first")));
}

#[test]
fn render_advice_lists_what_command_and_note() {
    let a = [Advice {
        what: "Do it".into(),
        command: Some("cmd /x".into()),
        caveat: Some("reboot needed".into()),
    }];
    assert_eq!(
        render_advice(&a),
        "  - Do it\n      cmd /x\n      note: reboot needed\n"
    );
}

#[test]
fn passive_close_server_timewait_is_capped_by_the_client_tuples() {
    // Linux client, 388 ports, 613/s: R x T = 36,780, but connect() cycles through the 194
    // ports of one parity, and a SYN takes over the server's TIME_WAIT of the same 4-tuple.
    let input = ModelInput {
        rate: Some(613.0),
        timewait_side: TimeWaitSide::Server,
        ..ModelInput::from_profile(Profile::Linux)
    }
    .with_ports(PortSpec::Count(388), 0)
    .unwrap();
    let p = predict(&input);
    assert_eq!(p.client_tuples, Some(194.0));
    let steady = p.steady_timewait.unwrap();
    assert!((193.99..=194.0).contains(&steady), "{steady}");
    assert!(
        p.explanation.contains("at most 194 distinct ports"),
        "{}",
        p.explanation
    );
    // Two destinations: a port per destination, so twice the tuples.
    let two = ModelInput {
        destinations: 2,
        ..input.clone()
    };
    assert_eq!(predict(&two).client_tuples, Some(388.0));
    // Measured in the lab: 175 server TIME_WAIT after 400 connections over 388 ports (194 of
    // one parity, visited in random steps of 1 to 8), 1,585 after 2,000 over 6,000 ports.
    assert_eq!(tuples_reached(194.0, 400.0).round(), 175.0);
    assert_eq!(tuples_reached(3000.0, 2000.0).round(), 1588.0);
    assert_eq!(
        tuples_reached(3000.0, 10.0),
        10.0,
        "never more than the connections"
    );
    // A slow client: 2/s x 60 s = 120 connections over 194 slots: about half are distinct.
    let slow = ModelInput {
        rate: Some(2.0),
        ..input.clone()
    };
    let s = predict(&slow).steady_timewait.unwrap();
    assert!((97.0..98.0).contains(&s), "{s}");
    // Another OS's allocator is not modelled: R x T.
    let windows = ModelInput {
        rate: Some(613.0),
        timewait_side: TimeWaitSide::Server,
        ..ModelInput::from_profile(Profile::Windows2008)
    };
    let p = predict(&windows);
    assert_eq!(
        (p.steady_timewait, p.client_tuples),
        (Some(613.0 * 240.0), None)
    );
}
