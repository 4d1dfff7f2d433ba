//! portlab reproduces TCP ephemeral-port exhaustion on purpose and checks it against arithmetic.
//!
//! A run drives short-lived TCP connections at a steady rate against a target (an embedded
//! server by default), records every connect latency and every error by its OS name, and
//! reports when the first "no local port left" error came.
//!
//! # Layout
//!
//! Data flows one way: `plan` -> `lab` -> `server` -> `runner` -> `collect` (<- `observe`)
//! -> `results` -> `report`; `model` is a pure function of the plan and host settings, and
//! only the results see both the prediction and the measurement.
//!
//! The modules stand in layers, each importing only from those below it (tests/layers.rs
//! declares them and checks every import, unit tests included): `sys`, `say`, `shard` <
//! `input` < `plan` < `model`, `catalog` < `collect`, `observe` < `runner` < `lab`, `server`
//! < `results` < `report` < `client` < `engine` < `inspect`, `suite`, `watch` < `cmd` <
//! `fuzz`, main.rs.
//!
//! - [`catalog`]: the built-in scenario catalog (scenarios/*.toml and the client programs
//!   they run, compiled in): `portlab run NAME`, `portlab scenarios`, `suite` without a
//!   directory.
//! - [`cmd`]: one file per subcommand (`cmd/run.rs`, `predict`, `inspect`, `report`,
//!   `merge`, `suite`, `watch`, `scenarios`, `completions`, `man`), each
//!   `run(args, out) -> exit code`: the command's orchestration, its flags where they are its
//!   own, its printing; `cmd::cli` the clap `Command` enum assembled from them; `cmd::exit`
//!   the exit codes. main.rs parses, calls `cmd::<name>::run`, and handles a closed stdout
//!   once. `cmd::dry_run` is `run --dry-run` and `suite --dry-run`: validate and show the
//!   resolved plan with the model's prediction, sending nothing.
//! - [`fuzz`]: fuzzing entry points (scenario text, run flags, summary.json, a results
//!   directory through report and merge) and a seeded mutator, shared by the property test,
//!   the cargo-fuzz targets and the example driver.
//! - [`input`]: every read of a file a user names (scenario, --baseline, a results
//!   directory's files, `watch --netns`): opened without blocking, regular files only, size
//!   capped, refusals naming the file.
//! - [`engine`]: one run end to end: results directory, target, collector thread, runner,
//!   summary; every set-up failure happens here before the first connection (and takes
//!   back what it created); it dispatches a `--client-exec` run to [`client`], which never
//!   imports it. `engine::run_many` is
//!   the many-client lab (`--lab-clients K`, Linux): K client processes, each a shard in its
//!   own namespace, against one server namespace, merged (engine/clients.rs; the pure half
//!   is [`plan::clients`], the server's TIME_WAIT arithmetic [`model::clients`]).
//! - [`plan`]: scenario files (TOML, unknown keys refused) merged with flags into one
//!   validated [`plan::Plan`]. One definition per key: each section (`[load]`, `[client]`,
//!   `[payload]`, `[target]`, `[expect]`, `[lab]`, `[lab.server]`) is one struct in its own
//!   file (plan/load.rs, client.rs, payload.rs, target.rs, expect.rs, lab.rs) that is both
//!   its flags (clap, flattened into `run`) and its keys (serde), writes each key's accepted
//!   range beside the field, and resolves itself there; plan/scenario.rs holds the
//!   `section!` macro (overlay of flags on the file, bounds, key -> flag) and the
//!   [`plan::Scenario`] of all sections; [`plan::bounds`] the limits and their wording,
//!   [`plan::values`] the one grammar of durations, rates, port ranges, close modes and
//!   bytes (and the `--rate`/`--close` parsers predict and inspect share);
//!   [`plan::client_exec`] the resolved `client.exec` keys;
//!   [`plan::lab`] is the lab's pure half (validation, the time-scale arithmetic) and
//!   [`plan::sysctl`] the registry of kernel knobs that lab validation, inspect, the model's
//!   host input and `compare` iterate; `plan::check_host` the checks against this host
//!   (local sources, descriptor limit, kernel version).
//! - [`lab`]: Linux network-namespace lab: enter a private namespace, write and read back
//!   sysctls (Linux only; elsewhere a clear error); lab/clients.rs makes the many-client
//!   lab's namespaces. It imports plan, never the reverse.
//! - [`server`]: the embedded TCP/HTTP server whose close behaviour is part of the plan
//!   (one listener per destination), and `server::exec`: a server command portlab starts
//!   inside the lab, waits for, and stops; `server::stop_servers` stops the embedded servers
//!   at the end of any run.
//! - [`runner`]: the pacer (open loop, absolute schedule), long-lived workers, socket set-up
//!   (socket2), pooling, shutdown, and `runner::threads` (one thread and event loop per core) that
//!   the workers and the embedded server run on.
//! - [`collect`]: HDR histograms, errors classified by raw OS error, the per-interval timeline
//!   and histograms.hlog (the intervals' histograms, which `portlab merge` adds exactly).
//! - [`shard`]: one run split over N machines (`--shard I/N`, `--start-at`): the even
//!   interleaved schedule, the exact count split, the countdown.
//! - [`observe`]: kernel observation (TIME_WAIT counts, TCP counters) where the OS allows it.
//! - [`model`]: the exhaustion arithmetic (P / R and friends) and OS profiles; pure (no
//!   flags, no I/O). `model::host` turns the settings read on each OS (Linux sysctls,
//!   Windows netsh and registry, macOS sysctl) into the model's input.
//! - [`inspect`]: what `portlab inspect` shows: this host's port settings and socket counts,
//!   and the model for a rate (read only).
//! - [`report`]: the renderings of results, one file per `--format` (text, JSON, CSV,
//!   Markdown, JUnit, HTML), each a `report::Renderer`, chosen by `report::renderer` (the
//!   one `match` on the format); `report::document` gives any command's document every format;
//!   `report::prediction` renders the model's prediction as text (predict, inspect, dry run).
//! - [`results`]: what a run measured and concluded, as data: summary.json (`results::summary`,
//!   typed: prediction, lab, verdict), the verdict (`results::verdict`), shards' runs added into
//!   one (`results::merge`, for `portlab merge` and the many-client lab), saved runs side by
//!   side (`results::compare`), the pure step from what was measured to the summary
//!   (`results::assemble`: `figures` builds the measured part for a built-in run and a
//!   `--client-exec` run alike, `server_summary` and `lab_summary` the server's and the lab's),
//!   a suite's table (`results::suite`, what suite.json holds), and the results directory
//!   read and written safely (`results::dir`: new files only, atomic summary.json; a suite's
//!   directory standing for its runs).
//! - [`say`]: what portlab says: `say::Output`, where a command writes its document
//!   (stdout, or a buffer in tests); warnings, notices and notes on stderr, all silenced by
//!   `--quiet`.
//! - [`suite`]: what `portlab suite` does: every scenario of a directory as a child run, one
//!   table.
//! - [`client`]: `--client-exec`: the user's own client in the lab, its samples, its failure
//!   lines, and the model on its measured rate.
//! - [`sys`]: small OS-specific helpers (file-descriptor limits, SIGINT/SIGTERM counting and
//!   `sys::signalled` to await them, children that die with portlab), one file per OS, and
//!   `sys::netlink` (Linux): the netlink client that lab (rtnetlink) and observe (sock_diag)
//!   both use.
//! - [`watch`]: what `portlab watch` shows: per destination on a live namespace, the ports used, the
//!   rate from the TIME_WAIT timers, and when the ports run out (read only, Linux); with
//!   `--listen`, a Prometheus exporter (`watch::exporter`).

pub mod catalog;
pub mod client;
pub mod cmd;
pub mod collect;
pub mod engine;
pub mod fuzz;
pub mod input;
pub mod inspect;
pub mod lab;
pub mod model;
pub mod observe;
pub mod plan;
pub mod report;
pub mod results;
pub mod runner;
pub mod say;
pub mod server;
pub mod shard;
pub mod suite;
pub mod sys;
pub mod watch;
