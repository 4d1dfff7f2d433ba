//! Schedule accuracy bench: portlab open loop at 1,000, 10,000 and 30,000
//! starts/s for 10 s each, in a private network namespace (ports 1024-65535,
//! `tcp_tw_reuse = 1`, reset close, so no run nears a port ceiling). Prints the achieved rate
//! against the target, the dropped starts and the schedule lag percentiles.
//!
//! Goals: achieved within 1% of the target at each rate; p99 schedule lag under 1 ms at
//! 10,000/s.
//!
//! Needs Linux and root or unprivileged user namespaces; skips with a message otherwise.
//! Knobs (environment): SCHEDULE_SECS (10), SCHEDULE_RATES (1000,10000,30000),
//! SCHEDULE_CLOSE (reset), SCHEDULE_BEFORE (path of an earlier portlab build, run right after
//! each of this build's runs for a before/after comparison).
//!
//! Run: `cargo bench --bench schedule`

#[cfg(target_os = "linux")]
mod common;

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("schedule bench: skipped (Linux only: it needs network namespaces)");
}

#[cfg(target_os = "linux")]
fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --benches` runs bench targets without --bench: no load in a test run.
        println!("schedule bench: not run (use `cargo bench --bench schedule`)");
        return;
    }
    if let Err(e) = run() {
        eprintln!("schedule bench failed: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(target_os = "linux")]
fn run() -> anyhow::Result<()> {
    use common::env_or;
    use std::time::Duration;

    if let Some(why) = common::lab_unavailable() {
        println!("schedule bench: SKIPPED (no private network namespace: {why})");
        return Ok(());
    }
    let secs: u64 = env_or("SCHEDULE_SECS", 10);
    let close = std::env::var("SCHEDULE_CLOSE").unwrap_or_else(|_| "reset".into());
    let rates: Vec<u64> = std::env::var("SCHEDULE_RATES")
        .unwrap_or_else(|_| "1000,10000,30000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    common::enter_lab("1024-65535", None)?;
    println!("schedule: {secs} s per rate, --close {close}, private namespace, ports 1024-65535, tcp_tw_reuse 1");
    println!(
        "{:>8} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8}  goal",
        "target", "achieved", "error", "dropped", "completed", "lag p50", "lag p99", "p99.9", "max"
    );
    let duration = format!("{secs}s");
    // CHURN-style before/after: an earlier build run right after each of this build's runs.
    let before = std::env::var("SCHEDULE_BEFORE").ok();
    let mut builds = vec![("", common::PORTLAB)];
    if let Some(b) = before.as_deref() {
        builds.push((" (before)", b));
    }
    for rate in rates {
        for &(label, bin) in &builds {
            let r = rate.to_string();
            let p = common::run_portlab_bin(
                bin,
                &[
                    "--rate",
                    &r,
                    "--duration",
                    &duration,
                    "--close",
                    &close,
                    "--max-in-flight",
                    "4096",
                ],
                Duration::from_secs(secs + 60),
            )?;
            let achieved = p.num("/achieved_rate");
            let error = (achieved - rate as f64) / rate as f64 * 100.0;
            let p99 = p.num("/schedule_lag_us/p99");
            let mut goal = format!("rate {}", if error.abs() < 1.0 { "met" } else { "NOT met" });
            if rate == 10_000 {
                goal += &format!(
                    ", p99 < 1 ms {}",
                    if p99 < 1000.0 { "met" } else { "NOT met" }
                );
            }
            println!(
            "{rate:>8} {achieved:>10.1} {error:>7.2}% {:>8} {:>10} {:>6} us {:>5} us {:>5} us {:>5} us  {goal}{label}",
            p.num("/dropped"),
            p.num("/completed"),
            p.num("/schedule_lag_us/p50"),
            p99,
            p.num("/schedule_lag_us/p999"),
            p.num("/schedule_lag_us/max"),
        );
        }
    }
    Ok(())
}
