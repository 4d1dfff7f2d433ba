//! The watch logic on scripted sockets and samples: no kernel needed.

use super::*;
use crate::model::{PortSpec, Profile};
use crate::plan::PortRange;

fn a(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// Linux defaults with the range LO-HI and tcp_tw_reuse `reuse`.
fn host(lo: u16, hi: u16, reuse: TwReuse) -> ModelInput {
    let mut i = ModelInput::from_profile(Profile::Linux)
        .with_ports(PortSpec::Range(PortRange::new(lo, hi).unwrap()), 0)
        .unwrap();
    i.tw_reuse = reuse;
    i
}

/// TIME_WAIT timer for a socket that closed `age` seconds ago.
fn left(age: f64) -> u32 {
    ((TIMEWAIT_LEN_S - age) * 1000.0).round() as u32
}

/// The ports a client takes from `first` on, as Linux chooses them in the aggregator's
/// range: the offsets (from the range's first port) of `first`'s parity, from `first` on
/// and wrapping, then the other parity. An even offset is connect()'s choice, an odd one
/// bind(0)'s. Outside the range: every second port from `first`.
fn port_sequence(agg: &Aggregator, first: u16) -> Vec<u16> {
    let Some(r) = agg
        .input
        .port_range
        .filter(|r| (r.lo..=r.hi).contains(&first))
    else {
        return (0..=(u16::MAX - first) / 2)
            .map(|k| first + 2 * k)
            .collect();
    };
    let off = first - r.lo;
    let same: Vec<u16> = (0..=r.hi - r.lo).filter(|o| o % 2 == off % 2).collect();
    let other = (0..=r.hi - r.lo).filter(|o| o % 2 != off % 2);
    let start = same.iter().position(|&o| o == off).expect("in the range");
    same[start..]
        .iter()
        .chain(&same[..start])
        .copied()
        .chain(other)
        .map(|o| r.lo + o)
        .collect()
}

/// A client that has closed one connection every 1/rate s for `secs` seconds toward `dst`
/// from 10.0.0.1, ports as [`port_sequence`] from `first_port` (an even offset: connect();
/// odd: bind before connect); `open` more sockets ESTABLISHED.
fn client(agg: &mut Aggregator, dst: &str, rate: f64, secs: f64, first_port: u16, open: u16) {
    let n = (rate * secs).round() as usize;
    let ports = port_sequence(agg, first_port);
    for (i, &port) in ports.iter().enumerate().take(n) {
        let age = secs - i as f64 / rate;
        let local = SocketAddr::new(a("10.0.0.1:0").ip(), port);
        agg.add(TCP_TIME_WAIT, local, a(dst), left(age));
    }
    for &port in ports.iter().skip(n).take(usize::from(open)) {
        let local = SocketAddr::new(a("10.0.0.1:0").ip(), port);
        agg.add(TCP_ESTABLISHED, local, a(dst), 0);
    }
}

fn eval(agg: &Aggregator) -> WatchReport {
    evaluate(
        &agg.finish(0.0, 0.0, None, "test"),
        &History::default(),
        10.0,
        "test",
    )
}

#[test]
fn rate_from_one_sample_of_timers() {
    // Steady for 30 s at 50/s: the window is full (5 s), 250 young sockets -> 50/s.
    let mut agg = Aggregator::new(host(40000, 49999, TwReuse::Off), None);
    client(&mut agg, "10.0.0.9:80", 50.0, 30.0, 40000, 0);
    let r = eval(&agg);
    let d = &r.destinations[0];
    assert!((d.rate - 50.0).abs() < 0.5, "{}", d.rate);
    assert_eq!(d.rate_window_s, RATE_WINDOW_S);
    // Started 1.5 s ago at 100/s: the window starts at the oldest socket -> (N - 1) / age.
    let mut agg = Aggregator::new(host(40000, 49999, TwReuse::Off), None);
    client(&mut agg, "10.0.0.9:80", 100.0, 1.5, 40000, 0);
    let d = &eval(&agg).destinations[0];
    assert!((d.rate - 100.0).abs() < 1.0, "{}", d.rate);
    assert_eq!(d.rate_window_s, 1.5);
    // A slow client (2/s for 50 s): 10 sockets in 5 s are too few, so the 15 s window
    // (30 sockets) measures it.
    let mut agg = Aggregator::new(host(40000, 49999, TwReuse::Off), None);
    client(&mut agg, "10.0.0.9:80", 2.0, 50.0, 40000, 0);
    let d = &eval(&agg).destinations[0];
    assert_eq!(d.rate_window_s, 15.0);
    assert!((d.rate - 2.0).abs() < 0.1, "{}", d.rate);
    // One socket, nothing older: no rate to speak of.
    let mut agg = Aggregator::new(host(40000, 49999, TwReuse::Off), None);
    agg.add(
        TCP_TIME_WAIT,
        a("10.0.0.1:40000"),
        a("10.0.0.9:80"),
        left(0.5),
    );
    assert_eq!(eval(&agg).destinations[0].rate, 0.0);
}

#[test]
fn eta_state_and_steady_verdict() {
    // P = 1000, 100/s for 2 s (200 TIME_WAIT) + 5 ESTABLISHED: used 205, T = 60 s,
    // R x T = 6000 > 1000 -> warning, ETA (1000 - 205) / 100 = 7.95 s.
    let mut agg = Aggregator::new(host(40000, 40999, TwReuse::Off), None);
    client(&mut agg, "10.0.0.9:80", 100.0, 2.0, 40000, 5);
    let r = eval(&agg);
    let d = &r.destinations[0];
    assert_eq!((d.time_wait, d.established, d.used), (200, 5, 205));
    assert_eq!(d.usable_ports, 1000);
    assert_eq!(d.hold_s, 60.0);
    assert_eq!(d.state, State::Warning);
    let eta = d.eta_s.expect("runs out");
    assert!((eta - 7.95).abs() < 0.1, "{eta}");
    assert!(d.model.contains("need"), "{}", d.model);
    assert_eq!(r.exit_code(), 1);

    // 5/s on 1000 ports: R x T = 300, never; headroom 139 s > 10 s -> ok, exit 0.
    let mut agg = Aggregator::new(host(40000, 40999, TwReuse::Off), None);
    client(&mut agg, "10.0.0.9:80", 5.0, 30.0, 40000, 0);
    let r = eval(&agg);
    let d = &r.destinations[0];
    assert_eq!(d.eta_s, None);
    assert_eq!(d.state, State::Ok);
    assert_eq!(r.exit_code(), 0);

    // Every port held -> exhausted, ETA 0.
    let mut agg = Aggregator::new(host(40000, 40099, TwReuse::Off), None);
    client(&mut agg, "10.0.0.9:80", 50.0, 2.0, 40000, 0);
    let d = &eval(&agg).destinations[0];
    assert_eq!((d.used, d.usable_ports), (100, 100));
    assert_eq!((d.state, d.eta_s), (State::Exhausted, Some(0.0)));
}

#[test]
fn warn_within_catches_little_headroom_when_the_steady_state_fits() {
    // 16/s on 1000 ports: R x T = 960 <= 1000 (never), but with 950 held the free 50 last
    // 3.1 s at this rate: inside --warn-within 10 s -> warning; with 1 s -> ok.
    let mut agg = Aggregator::new(host(40000, 40999, TwReuse::Off), None);
    client(&mut agg, "10.0.0.9:80", 16.0, 59.0, 40000, 6);
    let s = agg.finish(0.0, 0.0, None, "test");
    let r = evaluate(&s, &History::default(), 10.0, "t");
    assert_eq!(r.destinations[0].eta_s, None);
    assert_eq!(r.destinations[0].state, State::Warning);
    assert_eq!(
        evaluate(&s, &History::default(), 1.0, "t").destinations[0].state,
        State::Ok
    );
}

#[test]
fn tw_reuse_accounting() {
    // tcp_tw_reuse 2: loopback destinations hold for the delay (1 s), others for 60 s.
    let mut agg = Aggregator::new(host(40000, 40999, TwReuse::Loopback), None);
    for i in 0..100u16 {
        let age = 0.9 - f64::from(i) * 0.009;
        agg.add(
            TCP_TIME_WAIT,
            SocketAddr::new(a("127.0.0.1:0").ip(), 40000 + i),
            a("127.0.0.1:8080"),
            left(age),
        );
        agg.add(
            TCP_TIME_WAIT,
            SocketAddr::new(a("10.0.0.1:0").ip(), 40000 + i),
            a("10.0.0.9:80"),
            left(age),
        );
    }
    // A loopback TIME_WAIT older than the reuse delay: connect() may take its port, so it
    // is counted in TIME_WAIT but not in the ports used; toward the remote one it blocks.
    agg.add(
        TCP_TIME_WAIT,
        a("127.0.0.1:40500"),
        a("127.0.0.1:8080"),
        left(5.0),
    );
    agg.add(
        TCP_TIME_WAIT,
        a("10.0.0.1:40500"),
        a("10.0.0.9:80"),
        left(5.0),
    );
    // The free ports last about 8 s at 110/s, more than one 1 s hold: no warning.
    let r = eval(&agg);
    let lo = r
        .destinations
        .iter()
        .find(|d| d.destination == "127.0.0.1:8080")
        .unwrap();
    let remote = r
        .destinations
        .iter()
        .find(|d| d.destination == "10.0.0.9:80")
        .unwrap();
    assert_eq!((lo.time_wait, lo.used), (101, 100));
    assert_eq!((remote.time_wait, remote.used), (101, 101));
    assert_eq!((lo.hold_s, lo.tw_reuse_applies), (1.0, true));
    assert_eq!((remote.hold_s, remote.tw_reuse_applies), (60.0, false));
    assert_eq!(lo.state, State::Ok, "110/s x 1 s < 1000");
    assert_eq!(remote.state, State::Warning, "110/s x 60 s > 1000");
    // The window is capped at the reuse delay: sockets may be reused after it.
    assert!(lo.rate_window_s <= 1.0);
    // tcp_tw_reuse 1: every destination; 0: none.
    let on = host(40000, 40999, TwReuse::On);
    assert_eq!(hold_s(&on, a("10.0.0.1:0").ip(), a("10.0.0.9:0").ip()), 1.0);
    let off = host(40000, 40999, TwReuse::Off);
    assert_eq!(
        hold_s(&off, a("127.0.0.1:0").ip(), a("127.0.0.1:0").ip()),
        60.0
    );
}

#[test]
fn listeners_servers_filter_and_whole_range() {
    let mut agg = Aggregator::new(host(40000, 40999, TwReuse::Off), Some(a("10.0.0.9:80")));
    // Two listeners inside the range (P = 998) and one outside; dual-stack listener on 40500.
    agg.add(TCP_LISTEN, a("0.0.0.0:40500"), a("0.0.0.0:0"), 0);
    agg.add(TCP_LISTEN, a("[::]:40501"), a("[::]:0"), 0);
    agg.add(TCP_LISTEN, a("0.0.0.0:22"), a("0.0.0.0:0"), 0);
    // Server-side sockets on a listening port: no destination.
    agg.add(
        TCP_TIME_WAIT,
        a("10.0.0.1:22"),
        a("10.0.0.7:51000"),
        left(1.0),
    );
    agg.add(TCP_ESTABLISHED, a("10.0.0.1:40500"), a("10.0.0.7:51001"), 0);
    // Filtered out, but its port still counts for the whole range.
    agg.add(
        TCP_TIME_WAIT,
        a("10.0.0.1:40001"),
        a("10.0.0.8:443"),
        left(1.0),
    );
    // Kept: a v4-mapped IPv6 socket counts toward the IPv4 destination; SYN_SENT too; a
    // port outside the range is listed but uses none of P.
    agg.add(
        TCP_TIME_WAIT,
        a("[::ffff:10.0.0.1]:40001"),
        a("[::ffff:10.0.0.9]:80"),
        left(2.0),
    );
    agg.add(TCP_SYN_SENT, a("10.0.0.1:40002"), a("10.0.0.9:80"), 1000);
    agg.add(TCP_ESTABLISHED, a("10.0.0.1:30000"), a("10.0.0.9:80"), 0);
    // Other states (FIN_WAIT1 = 4) are not counted.
    agg.add(4, a("10.0.0.1:40003"), a("10.0.0.9:80"), 0);
    let s = agg.finish(0.0, 0.0, None, "test");
    assert_eq!(s.listening_in_range, 2);
    let r = evaluate(&s, &History::default(), 10.0, "t");
    assert_eq!(r.destinations.len(), 1);
    let d = &r.destinations[0];
    assert_eq!(d.destination, "10.0.0.9:80");
    assert_eq!(d.local, "10.0.0.1");
    assert_eq!(
        (d.time_wait, d.syn_sent, d.established, d.used),
        (1, 1, 1, 2)
    );
    assert_eq!(d.usable_ports, 998);
    // Distinct ports in the range across destinations: 40001 (twice), 40002.
    assert_eq!(r.whole_range.ports_in_use, 2);
}

#[test]
fn groups_are_bounded() {
    let mut agg = Aggregator::new(host(1024, 65535, TwReuse::Off), None);
    for i in 0..(MAX_GROUPS as u32 + 10) {
        let dst = SocketAddr::new(std::net::Ipv4Addr::from(0x0a00_0000 + i).into(), 80);
        agg.add(TCP_TIME_WAIT, a("10.1.0.1:40000"), dst, left(1.0));
    }
    let s = agg.finish(0.0, 0.0, None, "test");
    assert_eq!(s.groups.len(), MAX_GROUPS);
    assert_eq!(s.other_destinations, 10);
}

#[test]
fn active_opens_rate_across_samples() {
    let agg = Aggregator::new(host(40000, 40999, TwReuse::Off), None);
    let first = agg.finish(100.0, 1.0, Some(1000), "test");
    let second = agg.finish(100.5, 1.5, Some(1025), "test");
    let mut h = History::default();
    h.record(&first);
    let r = evaluate(&second, &h, 10.0, "t");
    assert_eq!(r.active_opens_rate, Some(50.0));
    assert_eq!(
        evaluate(&first, &History::default(), 10.0, "t").active_opens_rate,
        None
    );
    // A counter that went backwards (another namespace) gives no rate.
    let back = agg.finish(101.0, 2.0, Some(10), "test");
    h.record(&second);
    assert_eq!(evaluate(&back, &h, 10.0, "t").active_opens_rate, None);
}

/// A scripted sampler: the watch loop, its exit code and its line-per-sample output.
struct Script(Vec<Snapshot>);

impl Source for Script {
    fn snapshot(&mut self) -> Result<Snapshot, WatchError> {
        Ok(self.0.remove(0))
    }
}

fn args(format: WatchFormat, count: Option<u64>) -> WatchArgs {
    WatchArgs {
        pid: None,
        netns: None,
        all_netns: false,
        dst: None,
        // No wait between samples: each sample carries its own times (unix_s, mono_s), which
        // the rates are taken from, so these tests of the loops' logic leave the clock out.
        interval: Span(std::time::Duration::ZERO),
        once: false,
        count,
        warn_within: "10s".parse().unwrap(),
        nat_ports: None,
        format,
        listen: None,
        max_destinations: 50,
    }
}

#[test]
fn the_loop_prints_one_line_per_sample_and_exits_by_the_last_state() {
    let mut calm = Aggregator::new(host(40000, 40999, TwReuse::Off), None);
    client(&mut calm, "10.0.0.9:80", 5.0, 30.0, 40000, 0);
    let mut busy = Aggregator::new(host(40000, 40999, TwReuse::Off), None);
    client(&mut busy, "10.0.0.9:80", 100.0, 2.0, 40000, 0);
    let script = || {
        Script(vec![
            calm.finish(1.0, 0.0, Some(0), "test"),
            busy.finish(2.0, 1.0, Some(100), "test"),
        ])
    };
    let mut out = Vec::new();
    let code = watch_loop(
        &mut script(),
        &args(WatchFormat::Text, Some(2)),
        "t",
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, 1, "the last sample is in warning");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().nth(1).unwrap().contains("warning"), "{text}");
    let mut out = Vec::new();
    watch_loop(
        &mut script(),
        &args(WatchFormat::Json, Some(2)),
        "t",
        &mut out,
    )
    .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["active_opens_rate"], 100.0);
    for key in [
        "destination",
        "local",
        "time_wait",
        "established",
        "syn_sent",
        "rate",
        "usable_ports",
        "hold_s",
        "eta_s",
        "state",
    ] {
        assert!(lines[0]["destinations"][0].get(key).is_some(), "{key}");
    }
    assert!(lines[0]["destinations"][0]["eta_s"].is_null());
}

#[test]
fn prometheus_exposition_shape() {
    let mut agg = Aggregator::new(host(40000, 40999, TwReuse::Off), None);
    client(&mut agg, "[2001:db8::1]:443", 100.0, 2.0, 40000, 0);
    client(&mut agg, "10.0.0.9:80", 5.0, 30.0, 41000, 0);
    let text = render::prometheus(&eval(&agg), 50, None);
    assert!(
        text.contains("# TYPE portlab_usable_ports gauge\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "portlab_port_state{destination=\"[2001:db8::1]:443\",local=\"10.0.0.1\"} 1\n"
        ),
        "{text}"
    );
    // Never: +Inf, as the format writes infinity.
    assert!(
        text.contains(
            "portlab_exhaustion_eta_seconds{destination=\"10.0.0.9:80\",local=\"10.0.0.1\"} +Inf\n"
        ),
        "{text}"
    );
    // Every sample line is NAME{LABELS} VALUE or NAME VALUE, every family typed once.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        assert!(name.starts_with("portlab_"), "{l}");
        assert_eq!(
            text.matches(&format!("# TYPE {name} gauge")).count(),
            1,
            "{l}"
        );
    }
    assert_eq!(render::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

#[test]
fn text_table_and_line() {
    let mut agg = Aggregator::new(host(40000, 40999, TwReuse::Off), None);
    client(&mut agg, "10.0.0.9:80", 100.0, 2.0, 40000, 0);
    client(&mut agg, "10.0.0.8:5432", 5.0, 30.0, 40300, 2);
    let r = evaluate(
        &agg.finish(0.0, 0.0, Some(0), "test"),
        &History::default(),
        10.0,
        "pid 42",
    );
    let t = render::table(&r);
    for needle in [
        "portlab watch: pid 42, 1970-01-01T00:00:00.000Z",
        "ports: range 40000-40999, 1000 usable (0 reserved, 0 listening inside); tcp_tw_reuse 0",
        "DESTINATION",
        "10.0.0.9:80 from 10.0.0.1: 99.5 conn/s each holding a port for 60 s",
        "connect() chooses the ports: 50 client sockets share a local port with another",
        "state: WARNING",
    ] {
        assert!(t.contains(needle), "{needle:?} missing in\n{t}");
    }
    // Worst first: the warning row before the ok one, each with its figures.
    let rows: Vec<&str> = t.lines().filter(|l| l.starts_with("10.0.0.")).collect();
    assert!(
        rows[0].starts_with("10.0.0.9:80") && rows[0].ends_with("warning"),
        "{t}"
    );
    assert!(
        rows[0].contains("200/1000") && rows[0].contains("60 s"),
        "{t}"
    );
    assert!(
        rows[1].starts_with("10.0.0.8:5432") && rows[1].ends_with("ok"),
        "{t}"
    );
    assert!(rows[1].contains("never"), "{t}");
    let l = render::line(&r);
    assert!(
        l.starts_with("1970-01-01T00:00:00.000Z  2 destinations  worst 10.0.0.9:80"),
        "{l}"
    );
    assert_eq!(l.lines().count(), 1);
    // Nothing toward any destination.
    let empty = Aggregator::new(host(40000, 40999, TwReuse::Off), None);
    let r = evaluate(
        &empty.finish(0.0, 0.0, None, "test"),
        &History::default(),
        10.0,
        "t",
    );
    assert!(render::table(&r).contains("no client sockets toward any destination"));
    assert!(render::line(&r).ends_with("0 destinations  ok\n"));
    assert_eq!(r.exit_code(), 0);
}

/// Two clients toward 10.0.0.8:5432 and 10.0.0.9:80 at `rate` each for `secs` seconds,
/// alternating: `bind` takes each port from the one range (odd offsets first, never a port
/// twice, as bind(0) does), else each destination walks its own even offsets (connect()),
/// from a different start, so that some ports are held toward both.
fn two_destinations(agg: &mut Aggregator, rate: f64, secs: f64, bind: bool) {
    let n = (rate * secs).round() as usize;
    let lo = agg.input.port_range.expect("a range").lo;
    let shared = port_sequence(agg, lo + 1);
    let own = [port_sequence(agg, lo), port_sequence(agg, lo + 100)];
    for i in 0..n {
        for (d, dst) in ["10.0.0.8:5432", "10.0.0.9:80"].into_iter().enumerate() {
            let port = if bind { shared[2 * i + d] } else { own[d][i] };
            let age = secs - i as f64 / rate;
            agg.add(
                TCP_TIME_WAIT,
                SocketAddr::new(a("10.0.0.1:0").ip(), port),
                a(dst),
                left(age),
            );
        }
    }
}

#[test]
fn bind_before_connect_shares_the_range_and_connect_does_not() {
    // P = 200, 25/s toward each of two destinations for 3 s: 150 ports.
    // bind before connect(): one range, 50/s x 60 s > 200, (200 - 150) / 50 = 1 s left.
    let mut agg = Aggregator::new(host(40000, 40199, TwReuse::Off), None);
    two_destinations(&mut agg, 25.0, 3.0, true);
    let r = eval(&agg);
    let w = &r.whole_range;
    assert!(w.shared, "{}", w.evidence);
    assert_eq!((w.ports_in_use, w.shared_port_sockets), (150, 0));
    assert!((w.rate - 50.0).abs() < 0.5, "{}", w.rate);
    assert_eq!(w.hold_s, 60.0);
    let eta = w.eta_s.expect("the range runs out");
    assert!((eta - 1.0).abs() < 0.02, "{eta}");
    assert_eq!((w.state, r.state), (Some(State::Warning), State::Warning));
    // Every destination runs out with the range: its ETA is the range's, not its own
    // (200 - 75) / 25 = 5 s.
    for d in &r.destinations {
        assert_eq!((d.eta_s, d.state), (w.eta_s, State::Warning), "{d:?}");
        assert_eq!(d.used, 75);
    }
    assert!(w.evidence.starts_with("the client binds before connect()"));
    let prom = render::prometheus(&r, 50, None);
    for line in [
        "portlab_range_shared 1\n",
        "portlab_range_port_state 1\n",
        &format!("portlab_range_exhaustion_eta_seconds {eta}\n"),
    ] {
        assert!(prom.contains(line), "{line:?} missing in\n{prom}");
    }
    assert!(render::line(&r).contains("one range shared by every destination"));

    // 4 s: the whole range is full, so every destination is exhausted, although each
    // holds only 100 of its 200 ports.
    let mut agg = Aggregator::new(host(40000, 40199, TwReuse::Off), None);
    two_destinations(&mut agg, 25.0, 4.0, true);
    let r = eval(&agg);
    assert!(r.whole_range.shared, "{}", r.whole_range.evidence);
    assert_eq!(r.state, State::Exhausted);
    assert_eq!(r.whole_range.eta_s, Some(0.0));
    assert_eq!(r.exit_code(), 1);
    let prom = render::prometheus(&r, 50, None);
    assert!(prom.contains("portlab_range_port_state 2\n"), "{prom}");
    assert!(prom.contains("portlab_watch_state 2\n"), "{prom}");
    let t = render::table(&r);
    assert!(
        t.contains("RANGE (every destination): 200/200 ports in use"),
        "{t}"
    );
    assert!(t.contains("bind(0) fails with EADDRINUSE"), "{t}");

    // The same load through connect(): ports held toward both destinations, each
    // destination its own range (5 s left each), nothing shared in any output.
    let mut agg = Aggregator::new(host(40000, 40199, TwReuse::Off), None);
    two_destinations(&mut agg, 25.0, 3.0, false);
    let r = eval(&agg);
    let w = &r.whole_range;
    assert!(!w.shared, "{}", w.evidence);
    assert!(w.shared_port_sockets > 0);
    assert_eq!((w.eta_s, w.state, w.model.as_deref()), (None, None, None));
    for d in &r.destinations {
        // (200 - 75) / 24.67: the timers of a client younger than the window give
        // (N - 1) / age.
        let eta = d.eta_s.expect("runs out");
        assert!((eta - 5.0).abs() < 0.1, "{d:?}");
    }
    let prom = render::prometheus(&r, 50, None);
    assert!(prom.contains("portlab_range_shared 0\n"), "{prom}");
    assert!(
        prom.contains("portlab_range_exhaustion_eta_seconds +Inf\n"),
        "{prom}"
    );
    let t = render::table(&r);
    assert!(t.contains("each destination has its own range"), "{t}");
    assert!(
        !t.contains("RANGE") && !t.contains("shared by every"),
        "{t}"
    );
}

#[test]
fn one_bound_destination_holds_ports_for_60_s_even_with_tw_reuse() {
    // tcp_tw_reuse 2 on loopback would make connect()'s hold 1 s; bind(0) cannot take a
    // TIME_WAIT port, so a client binding before connect() holds each for 60 s: 30/s on
    // 1000 ports runs out ((1000 - 300) / 30 = 23.3 s), one destination or not.
    let mut agg = Aggregator::new(host(40000, 40999, TwReuse::Loopback), None);
    for i in 0..300u16 {
        agg.add(
            TCP_TIME_WAIT,
            SocketAddr::new(a("127.0.0.1:0").ip(), 40001 + 2 * i),
            a("127.0.0.1:9000"),
            left(10.0 - f64::from(i) / 30.0),
        );
    }
    let r = eval(&agg);
    assert!(r.whole_range.shared, "{}", r.whole_range.evidence);
    let d = &r.destinations[0];
    assert_eq!((d.hold_s, d.tw_reuse_applies, d.used), (60.0, false, 300));
    assert_eq!(d.state, State::Warning);
    assert!((d.eta_s.unwrap() - 700.0 / 30.0).abs() < 0.5, "{d:?}");
}

#[test]
fn a_full_range_stays_shared_while_no_port_is_held_twice() {
    // One destination, every port held: both parities are full, so this sample alone
    // cannot tell bind() from connect(); a sample within 60 s before that showed bind()
    // keeps the range shared.
    let mut agg = Aggregator::new(host(40000, 40199, TwReuse::Off), None);
    client(&mut agg, "127.0.0.1:9000", 50.0, 4.0, 40001, 0);
    let full = agg.finish(0.0, 30.0, None, "test");
    assert!(
        !evaluate(&full, &History::default(), 10.0, "t")
            .whole_range
            .shared
    );
    let mut agg = Aggregator::new(host(40000, 40199, TwReuse::Off), None);
    client(&mut agg, "127.0.0.1:9000", 50.0, 1.0, 40001, 0);
    let early = agg.finish(0.0, 27.0, None, "test");
    let mut h = History::default();
    h.record(&early);
    let r = evaluate(&full, &h, 10.0, "t");
    assert!(r.whole_range.shared, "{}", r.whole_range.evidence);
    assert_eq!(r.state, State::Exhausted);
    // 60 s later it no longer counts.
    let mut late = full.clone();
    late.mono_s = 90.0;
    assert!(!evaluate(&late, &h, 10.0, "t").whole_range.shared);
}

#[test]
fn the_rate_falls_to_0_one_short_window_after_the_client_stops() {
    // 100/s for 30 s, stopped `gap` s ago: the 5 s window empties, the 15 s and 60 s ones
    // still hold up to 1000 and 3000 sockets; the rate is the recent one, 0 after 5 s.
    let stopped = |gap: f64| {
        let mut agg = Aggregator::new(host(30000, 59999, TwReuse::Off), None);
        for i in 0..3000u16 {
            let age = gap + 30.0 - f64::from(i) / 100.0;
            agg.add(
                TCP_TIME_WAIT,
                SocketAddr::new(a("10.0.0.1:0").ip(), 30000 + 2 * i),
                a("10.0.0.9:80"),
                left(age),
            );
        }
        eval(&agg).destinations[0].clone()
    };
    let d = stopped(0.0);
    assert!((d.rate - 100.0).abs() < 1.0, "{}", d.rate);
    // 4.9 s after: 10 sockets in the 5 s window where 100/s would put 500.
    let d = stopped(4.9);
    assert!((d.rate - 2.0).abs() < 0.3, "{}", d.rate);
    assert_eq!(d.rate_window_s, 5.0);
    for gap in [5.1, 8.0, 14.0, 20.0, 40.0] {
        let d = stopped(gap);
        assert_eq!(d.rate, 0.0, "{gap} s after the client stopped");
        assert_eq!(d.state, State::Ok, "{gap}: {}", d.model);
        assert!(d.model.starts_with("No connection closed in the last 5 s"));
    }
    // A client that slowed from 100/s to 3/s 10 s ago is measured at 3/s, not at the
    // 15 s window's mix; a steady 3/s client keeps its 15 s window.
    let mut agg = Aggregator::new(host(30000, 59999, TwReuse::Off), None);
    for i in 0..30u16 {
        let age = f64::from(i) / 3.0;
        agg.add(
            TCP_TIME_WAIT,
            SocketAddr::new(a("10.0.0.1:0").ip(), 30000 + 2 * i),
            a("10.0.0.9:80"),
            left(age),
        );
    }
    for i in 0..1000u16 {
        agg.add(
            TCP_TIME_WAIT,
            SocketAddr::new(a("10.0.0.1:0").ip(), 31000 + 2 * i),
            a("10.0.0.9:80"),
            left(10.0 + f64::from(i) / 100.0),
        );
    }
    let d = &eval(&agg).destinations[0];
    assert!((d.rate - 3.0).abs() < 0.3, "{}", d.rate);
    let mut agg = Aggregator::new(host(30000, 59999, TwReuse::Off), None);
    client(&mut agg, "10.0.0.9:80", 3.0, 50.0, 30000, 0);
    let d = &eval(&agg).destinations[0];
    assert_eq!(d.rate_window_s, 15.0);
    assert!((d.rate - 3.0).abs() < 0.1, "{}", d.rate);
}

#[test]
fn the_sentence_says_what_the_eta_and_the_state_say() {
    // Every port held while the rate is still > 0 (R x T > P): exhausted, ETA now, and
    // the sentence says so, not "the first error comes after P / R".
    let mut agg = Aggregator::new(host(40000, 40399, TwReuse::Off), None);
    client(&mut agg, "10.0.0.9:80", 8.0, 50.0, 40000, 0);
    let d = &eval(&agg).destinations[0];
    assert_eq!((d.state, d.eta_s), (State::Exhausted, Some(0.0)), "{d:?}");
    assert!(
        d.model
            .starts_with("Every one of the 400 usable ports is held now"),
        "{}",
        d.model
    );
    assert!(
        !d.model.contains("comes after") && !d.model.contains("run out in"),
        "{}",
        d.model
    );
    // Over a spread of loads, the ETA in the row is the one in the sentence.
    for (rate, secs, lo, hi) in [
        (100.0, 2.0, 40000, 40999),
        (50.0, 3.0, 40000, 40199),
        (16.0, 30.0, 40000, 40999),
        (5.0, 30.0, 40000, 40999),
        (400.0, 1.0, 40000, 40999),
    ] {
        let mut agg = Aggregator::new(host(lo, hi, TwReuse::Off), None);
        client(&mut agg, "10.0.0.9:80", rate, secs, lo, 0);
        let d = &eval(&agg).destinations[0];
        match d.eta_s {
            Some(e) if e > 0.0 => assert!(
                d.model
                    .contains(&format!("= {} s, when connect() fails", num(e))),
                "{d:?}"
            ),
            Some(_) => assert!(d.model.contains("is held now"), "{d:?}"),
            None => assert!(d.model.contains("never run out"), "{d:?}"),
        }
    }
}

/// 10,000 destinations (one TIME_WAIT socket each): the sampler groups 4096 of them
/// (MAX_GROUPS) and counts the rest; the exposition lists --max-destinations of them, adds
/// up the others in one `other` series, and keeps HELP and TYPE for every family. The
/// series count is what docs/watch.md says a node with 10,000 destinations gives.
#[test]
fn the_exposition_caps_destinations_and_adds_up_the_rest() {
    let mut agg = Aggregator::new(host(1024, 65535, TwReuse::Off), None);
    // One destination far busier than the rest: it must be among those listed.
    for p in 0..300u16 {
        let local = SocketAddr::new(a("10.1.0.1:0").ip(), 30000 + p);
        agg.add(TCP_TIME_WAIT, local, a("192.0.2.5:80"), left(0.5));
    }
    for i in 0..10_000u32 {
        let dst = SocketAddr::new(std::net::Ipv4Addr::from(0x0a00_0000 + i).into(), 80);
        agg.add(TCP_TIME_WAIT, a("10.1.0.1:40000"), dst, left(1.0));
    }
    let r = eval(&agg);
    assert_eq!(r.destinations.len(), MAX_GROUPS);
    let text = render::prometheus(&r, 50, None);
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let per_destination = samples
        .iter()
        .filter(|l| l.contains("{destination="))
        .count();
    let other = samples
        .iter()
        .filter(|l| l.contains("{destination=\"other\",local=\"other\"}"))
        .count();
    // 10 families x 50 destinations, and the 8 families that add up (no hold, no R x T).
    assert_eq!(other, 8, "{text}");
    assert_eq!(per_destination, 10 * 50 + other);
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    // Without an ActiveOpens reading or sampler statistics: 10 per destination and 13
    // more, of which the TIME_WAIT by side has two series.
    assert_eq!(families.len(), 10 + 13, "{families:?}");
    assert_eq!(samples.len(), per_destination + 14);
    for l in &samples {
        let name = l.split(['{', ' ']).next().unwrap();
        assert_eq!(text.matches(&format!("# HELP {name} ")).count(), 1, "{l}");
        assert_eq!(
            families
                .iter()
                .filter(|f| f.split(' ').next() == Some(name))
                .count(),
            1,
            "{l}"
        );
    }
    let tw = |dst: &str| -> f64 {
        let prefix = format!("portlab_time_wait_sockets{{destination=\"{dst}\"");
        samples
            .iter()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} missing"))
    };
    // The busy destination is listed; the other series holds every TIME_WAIT socket of
    // the 4096 - 50 destinations not listed.
    assert_eq!(tw("192.0.2.5:80"), 300.0);
    let listed: f64 = r.destinations[..50]
        .iter()
        .map(|d| d.time_wait as f64)
        .sum();
    let grouped: f64 = r.destinations.iter().map(|d| d.time_wait as f64).sum();
    assert_eq!(tw("other"), grouped - listed);
    assert!(text.contains(&format!("\nportlab_destinations {MAX_GROUPS}\n")));
    assert!(text.contains(&format!(
        "\nportlab_unlisted_destination_sockets {}\n",
        10_000 + 1 - MAX_GROUPS
    )));
    // Under the cap: no other series.
    let few = render::prometheus(&r, 5000, None);
    assert!(!few.contains("{destination=\"other\""));
}

/// A sampler that fails on the samples marked None.
struct Flaky(Vec<Option<Snapshot>>);

impl Source for Flaky {
    fn snapshot(&mut self) -> Result<Snapshot, WatchError> {
        self.0.remove(0).ok_or_else(|| WatchError::Io {
            what: "listing sockets through sock_diag".into(),
            source: std::io::Error::other("no buffer space"),
        })
    }
}

/// The exporter's loop keeps the latest exposition with its own counters: a failed sample
/// is counted and the previous one stays served; a first sample that fails ends it.
#[test]
fn the_export_loop_keeps_the_latest_sample_and_counts_failures() {
    let mut busy = Aggregator::new(host(40000, 40999, TwReuse::Off), None);
    client(&mut busy, "10.0.0.9:80", 100.0, 2.0, 40000, 0);
    let snap = busy.finish(10.0, 1.0, Some(5000), "test");
    let mut later = snap.clone();
    later.unix_s = 12.0;
    later.mono_s = 3.0;
    later.active_opens = Some(5200);
    let latest = exporter::Latest::default();
    let a = args(WatchFormat::Prom, Some(3));
    let mut source = Flaky(vec![Some(snap.clone()), None, Some(later)]);
    let code = exporter::export_loop(&mut source, &a, "test", &latest).expect("runs");
    assert_eq!(code, 1, "R x T > P: warning");
    let text = latest.get().expect("a sample");
    for line in [
        "portlab_watch_samples_total 2\n",
        "portlab_watch_sample_errors_total 1\n",
        "portlab_watch_sample_timestamp_seconds 12\n",
        "portlab_tcp_active_opens_total 5200\n",
        // 200 opens over the 2 s between the two good samples.
        "portlab_active_opens_per_second 100\n",
        "# TYPE portlab_tcp_active_opens_total counter\n",
        "# TYPE portlab_watch_sample_duration_seconds gauge\n",
    ] {
        assert!(text.contains(line), "{line:?} missing in\n{text}");
    }
    let mut failing = Flaky(vec![None]);
    let empty = exporter::Latest::default();
    assert!(exporter::export_loop(&mut failing, &a, "test", &empty).is_err());
    assert!(empty.get().is_none());
}

/// TIME_WAIT by side: a socket on a listening port is the server's (no ephemeral port held,
/// in no destination); every other is a client's, counted for the whole namespace even
/// under --dst.
#[test]
fn time_wait_is_counted_by_side() {
    let mut agg = Aggregator::new(host(40000, 40999, TwReuse::Off), Some(a("10.0.0.9:80")));
    agg.add(TCP_LISTEN, a("10.0.0.1:8080"), a("0.0.0.0:0"), 0);
    for p in 0..3u16 {
        agg.add(
            TCP_TIME_WAIT,
            a("10.0.0.1:8080"),
            SocketAddr::new(a("10.0.0.7:0").ip(), 50000 + p),
            left(1.0),
        );
    }
    client(&mut agg, "10.0.0.9:80", 10.0, 2.0, 40000, 0);
    // Another destination: outside --dst, but a client's TIME_WAIT of the namespace.
    agg.add(
        TCP_TIME_WAIT,
        a("10.0.0.1:40999"),
        a("10.0.0.8:443"),
        left(1.0),
    );
    let r = eval(&agg);
    assert_eq!((r.time_wait_client, r.time_wait_server), (21, 3));
    assert_eq!(r.destinations.len(), 1);
    assert_eq!(r.destinations[0].time_wait, 20);
    let prom = render::prometheus(&r, 50, None);
    assert!(
        prom.contains("\nportlab_namespace_time_wait_sockets{side=\"client\"} 21\n"),
        "{prom}"
    );
    assert!(
        prom.contains("\nportlab_namespace_time_wait_sockets{side=\"server\"} 3\n"),
        "{prom}"
    );
    assert!(render::table(&r).contains("TIME_WAIT in the namespace: 21 client side, 3 server side"));
}

/// `--all-netns` in Prometheus: every series of a namespace carries its labels, each family
/// appears once (HELP and TYPE) with the samples of every namespace, and the counts --help
/// gives hold: 10 x max + 24 series for a namespace beyond the cap, 16 for one without
/// client sockets, and 4 of the exporter's own.
#[test]
fn all_netns_exposition_labels_every_series_and_counts_them() {
    let report = |agg: &Aggregator| {
        let history = History {
            opens: Some((0.0, 50)),
            ..History::default()
        };
        evaluate(
            &agg.finish(1.0, 1.0, Some(100), "test"),
            &history,
            10.0,
            "test",
        )
    };
    let mut busy = Aggregator::new(host(1024, 65535, TwReuse::Off), None);
    for i in 0..40u32 {
        let dst = SocketAddr::new(std::net::Ipv4Addr::from(0x0a00_0000 + i).into(), 80);
        agg_add(&mut busy, dst);
    }
    let quiet = Aggregator::new(host(1024, 65535, TwReuse::Off), None);
    let pod = "0::/kubepods.slice/kubepods-pod1f2e3d4c_5b6a_4789_9abc_def012345678.slice/cri-containerd-8e9f7c3a1b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f2a3b.scope\n";
    let reports = [
        NamespaceReport {
            labels: netns::NsLabels::new(4026532500, false, 977, "pause", Some(pod)),
            report: report(&busy),
        },
        NamespaceReport {
            labels: netns::NsLabels::new(4026531840, true, 1, "systemd", Some("0::/init.scope\n")),
            report: report(&quiet),
        },
    ];
    let max = 5;
    let stats = render::SamplerStats {
        samples: 3,
        errors: 0,
        duration_s: 0.01,
        all_netns: true,
    };
    let text = render::prometheus_all(&reports, max) + &render::sampler_families(&stats, 2);
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let of = |ns: &str| samples.iter().filter(|l| l.contains(ns)).count();
    assert_eq!(of("netns=\"net:[4026532500]\""), 10 * max + 24, "{text}");
    assert_eq!(of("netns=\"net:[4026531840]\""), 16, "{text}");
    let own: Vec<&&str> = samples.iter().filter(|l| !l.contains("netns=")).collect();
    assert_eq!(own.len(), 4, "{own:?}");
    assert!(samples.iter().any(|l| l.starts_with(
        "portlab_time_wait_sockets{netns=\"net:[4026532500]\",host=\"false\",pid=\"977\",comm=\"pause\",cgroup=\"/kubepods.slice/"
    ) && l.contains("container_id=\"8e9f7c3a1b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f2a3b\",pod_uid=\"1f2e3d4c-5b6a-4789-9abc-def012345678\",destination=")));
    // Each family once, its samples together.
    let mut seen = std::collections::HashSet::new();
    let mut current = "";
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            current = rest.split(' ').next().unwrap();
            assert!(seen.insert(current), "{current} twice:\n{text}");
        } else if !l.starts_with('#') {
            let name = l.split(['{', ' ']).next().unwrap();
            assert_eq!(name, current, "{l} outside its family");
        }
    }
}

fn agg_add(agg: &mut Aggregator, dst: SocketAddr) {
    agg.add(TCP_TIME_WAIT, a("10.1.0.1:40000"), dst, left(1.0));
}
