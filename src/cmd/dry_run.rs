//! `portlab run --dry-run` and `portlab suite --dry-run`: parse, merge, validate (the host
//! checks included) and show the resolved plan with the model's prediction, sending nothing
//! and writing no file.
//!
//! The text form is itself a valid scenario: the plan as TOML, the prediction as `#` comment
//! lines, so `portlab run --dry-run ... > plan.toml` gives a file that re-runs the same plan.

use crate::model::{self, ModelInput};
use crate::plan::{Plan, Scenario, Target};
use crate::report::Format;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;

/// The server's address in the lab's veth topology (lab/linux.rs sets it up).
const VETH_SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));

/// Validates `given` as `portlab run` would before any traffic (the host checks included):
/// the plan a dry run shows.
pub fn check(given: &Scenario) -> anyhow::Result<Plan> {
    let plan = Plan::resolve(given)?;
    crate::lab::check_host(given, &plan)?;
    Ok(plan)
}

/// Renders a plan [`check`]ed (or resolved and checked by `portlab run`, which shares it)
/// and the model's prediction in `format` (json: one object; any other: TOML and comments).
pub fn render(plan: &Plan, format: Format) -> anyhow::Result<String> {
    let input = model_input(plan);
    let (prediction, inverse, advice) = model::analyse(&input);
    let scenario = &plan.scenario;
    if format == Format::Json {
        let doc = serde_json::json!({
            "plan": scenario,
            "lab_warnings": plan.lab.as_ref().map(|l| l.warnings.clone()).unwrap_or_default(),
            "model": {
                "input": input,
                "prediction": prediction,
                "inverse": inverse,
                "advice": advice,
            },
        });
        return Ok(serde_json::to_string_pretty(&doc).context("serialising the plan")? + "\n");
    }
    let mut out = String::from("# portlab run --dry-run: the resolved plan (nothing was sent)\n");
    out += &toml::to_string(scenario).context("serialising the resolved plan")?;
    for w in plan.lab.iter().flat_map(|l| &l.warnings) {
        out += &format!("# warning: lab: {w}\n");
    }
    out += "\n# The model's prediction for this plan";
    out += if plan.isolated() {
        " (the lab's sysctls over this host's):\n"
    } else {
        " (this host's settings):\n"
    };
    let text =
        crate::report::prediction::render_text(&input, &prediction, inverse.as_ref(), &advice);
    for line in text.lines() {
        out += &if line.is_empty() {
            "#\n".to_string()
        } else {
            format!("# {line}\n")
        };
    }
    Ok(out)
}

/// The model's input as the run would compute it: this host's sysctls with the lab's writes
/// laid over them (the lab is not entered), against the target's address.
fn model_input(plan: &Plan) -> ModelInput {
    let mut settings: BTreeMap<String, String> = crate::lab::read_settings().unwrap_or_default();
    let veth = plan
        .lab
        .as_ref()
        .is_some_and(|l| l.isolate && l.topology == crate::plan::lab::Topology::Veth);
    if let Some(lab) = plan.lab.as_ref().filter(|l| l.isolate) {
        for s in &lab.sysctls {
            settings.insert(s.name().to_string(), s.value.clone());
        }
    }
    let target = match &plan.target {
        Target::Embedded(_) if veth => SocketAddr::new(VETH_SERVER, 0),
        Target::Embedded(s) => s.listen,
        // Resolved as the run will; an unknown host counts as remote.
        Target::External(a) => a
            .to_socket_addrs()
            .ok()
            .and_then(|mut it| it.next())
            .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)),
    };
    model::from_plan::input_for(plan, &settings, target)
}

/// `portlab suite --dry-run DIR`: every *.toml of `dir`, in name order, each as
/// `run --dry-run FILE` shows it, under a `# === FILE ===` line. Every file is checked (not
/// only up to the first bad one); returns the exit code: 0 all valid, 2 one or more refused.
/// A file with a command (target.exec, client.exec) and no `allow_exec` is skipped, as
/// `suite DIR` skips it, with the command that runs it.
pub fn suite(
    dir: &Path,
    format: Format,
    allow_exec: bool,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<u8> {
    let files = crate::suite::scenario_files(dir)?;
    let mut refused = 0;
    let mut skipped = 0;
    for file in &files {
        let result = crate::catalog::load(file).and_then(|s| {
            let text = render(&check(&s)?, format)?;
            Ok((text, crate::suite::skip_reason(file, &s, allow_exec)))
        });
        match result {
            Ok((_, Some(why))) => {
                skipped += 1;
                writeln!(out, "# === {} === SKIPPED: {why}\n", file.display())?;
            }
            Ok((text, None)) => {
                writeln!(out, "# === {} ===", file.display())?;
                out.write_all(text.as_bytes())?;
                writeln!(out)?;
            }
            Err(e) => {
                refused += 1;
                eprintln!("error: {}: {e:#}", file.display());
            }
        }
    }
    eprintln!(
        "{} of {} scenario files valid{}{}",
        files.len() - refused - skipped,
        files.len() - skipped,
        if skipped > 0 {
            format!(", {skipped} skipped (they run commands: add --allow-exec)")
        } else {
            String::new()
        },
        if refused > 0 {
            ""
        } else {
            "; nothing was sent"
        }
    );
    Ok(if refused > 0 { 2 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_a_scenario_that_resolves_to_the_same_plan() {
        let given: Scenario = toml::from_str(
            "[load]\nrate = 100\ncount = 50\n[client]\nbind = \"range=40000-40099\"",
        )
        .unwrap();
        let text = render(&check(&given).unwrap(), Format::Text).unwrap();
        assert!(text.contains("# The model's prediction"), "{text}");
        let again: Scenario = toml::from_str(&text).expect("the dry run's text is TOML");
        assert_eq!(
            Plan::resolve(&again).unwrap(),
            Plan::resolve(&given).unwrap()
        );
    }

    #[test]
    fn json_holds_plan_and_prediction() {
        let given: Scenario = toml::from_str("[load]\nrate = 100\ncount = 50").unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&render(&check(&given).unwrap(), Format::Json).unwrap()).unwrap();
        assert_eq!(v["plan"]["load"]["count"], 50);
        assert!(v["model"]["prediction"].is_object(), "{v:#}");
        assert_eq!(v["model"]["input"]["rate"], 100.0);
    }

    #[test]
    fn a_bad_plan_is_the_plan_error() {
        let given: Scenario = toml::from_str("[load]\nrate = 1e-9").unwrap();
        let e = check(&given).unwrap_err().to_string();
        assert!(e.contains("load.rate") && e.contains("--rate"), "{e}");
    }
}
