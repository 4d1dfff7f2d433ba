//! portlab's integration tests, as one test crate (one binary to link instead of one per
//! file). Each file of tests/it/ is a module named after what it covers; `common` holds
//! what they share, including the lock that keeps load runs from running at the same time
//! (see its doc comment). Run one module with `cargo test --test it MODULE::`, one test
//! with `cargo test --test it MODULE::TEST_NAME`.

mod common;

mod bad_input;
mod catalog;
mod ci_examples;
mod ci_gate;
mod client_exec;
mod close_modes;
mod completions;
mod conntrack;
mod consent;
mod dry_run;
mod exit_codes;
mod formats;
mod fuzz;
mod html;
mod inspect;
mod junit;
mod lab;
mod layers;
mod lifecycle;
mod local_port_range;
mod many_clients;
mod messages;
mod nat;
mod nginx;
mod outputs;
mod payloads;
mod readme;
mod reference;
mod report;
mod saved_results;
mod scale;
mod scenarios;
mod shards;
mod signals;
mod storms;
mod verdict;
mod watch;
mod windows_wine;
