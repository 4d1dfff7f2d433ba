//! `[expect]`: the user's own checks and the model checks' tolerances; resolved and checked
//! here.

use super::bounds::{self, MAX_PCT, MAX_WAIT};
use super::{invalid, PlanError};
use serde::{Deserialize, Serialize};

super::scenario::section! {
    /// `[expect]`: the user's own expectations (flags under "Expect"). Each key set becomes a
    /// verdict check named `expect.<key>`; a failed one makes the run exit 1.
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct ExpectSection in "expect" {
        /// The run must (true) or must not (false) run out of ports [key: expect.exhaustion].
        #[arg(long = "expect-exhaustion", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        pub exhaustion: Option<bool>,
        /// failed / attempts must stay at or below F, e.g. 0.01 [key: expect.max_error_rate].
        #[arg(long, allow_hyphen_values = true, value_name = "F")]
        pub max_error_rate: Option<f64>,
        /// p99 connect latency must stay at or below MS milliseconds
        /// [key: expect.max_connect_p99_ms].
        #[arg(long, allow_hyphen_values = true, value_name = "MS")]
        pub max_connect_p99_ms: Option<f64>
            where v => {
                let max_ms = MAX_WAIT.as_secs_f64() * 1000.0;
                bounds::range(v.filter(|ms| ms.is_finite()), 0.0, max_ms, " ms")
            },
        /// completed / attempts must reach at least F, e.g. 0.99 [key: expect.min_success_rate].
        #[arg(long, allow_hyphen_values = true, value_name = "F")]
        pub min_success_rate: Option<f64>,
        /// The ports must cover at least F times what the load holds: P / (R x T) >= F, e.g.
        /// 2 (fails a client that stopped reusing connections or a settings change that
        /// narrowed the headroom) [key: expect.min_margin].
        #[arg(long, allow_hyphen_values = true, value_name = "F")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub min_margin: Option<f64>,
        /// An error kind that must appear (as summary.errors names it, e.g. ECONNRESET);
        /// repeat or comma-separate [key: expect.errors].
        #[arg(long = "expect-error", value_delimiter = ',', value_name = "KIND")]
        pub errors: Option<Vec<String>>,
        /// Whether the model's checks count toward the verdict; false reports them only
        /// [key: expect.model; default true].
        #[arg(long = "model-checks", value_name = "BOOL")]
        pub model: Option<bool>,
        /// Tolerance of every model check, percent (default 5); the flag is --tolerance PCT.
        #[arg(skip)]
        pub tolerance_pct: Option<f64>
            where("--tolerance") v => bounds::range(*v, 0.0, MAX_PCT, " %"),
        /// Tolerance of one model check, by its name; the flag is --tolerance NAME=PCT.
        #[arg(skip)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tolerance: Option<std::collections::BTreeMap<String, f64>>
            where("--tolerance") v => v
                .iter()
                .flat_map(|t| t.values())
                .try_for_each(|pct| bounds::range(Some(*pct), 0.0, MAX_PCT, " %")),
    }
}

/// The model's numeric checks, by the names the verdict gives them; `[expect.tolerance]`
/// (and `--tolerance NAME=PCT`) accepts these names.
pub const MODEL_CHECKS: [&str; 4] = [
    "first_error_s",
    "timewait_max",
    "post_exhaustion_rate",
    "delivery",
];

/// Default tolerance of every model check, percent.
pub const DEFAULT_TOLERANCE_PCT: f64 = 5.0;

/// `[expect]`, validated: the user's own checks and the model checks' tolerances.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectations {
    /// The run must (true) or must not (false) run out of ports.
    pub exhaustion: Option<bool>,
    /// failed / attempts, at most.
    pub max_error_rate: Option<f64>,
    /// p99 connect latency, at most, ms.
    pub max_connect_p99_ms: Option<f64>,
    /// completed / attempts, at least.
    pub min_success_rate: Option<f64>,
    /// Headroom the ports must keep: P / (R x T) at least this.
    pub min_margin: Option<f64>,
    /// Error kinds that must each appear (upper case, as in summary.errors).
    pub errors: Vec<String>,
    /// Whether the model's checks count toward the verdict.
    pub model: bool,
    /// Tolerance of every model check without its own, percent.
    pub tolerance_pct: f64,
    /// Per-check tolerances, percent, by check name (one of [`MODEL_CHECKS`]).
    pub tolerance: std::collections::BTreeMap<String, f64>,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            exhaustion: None,
            max_error_rate: None,
            max_connect_p99_ms: None,
            min_success_rate: None,
            min_margin: None,
            errors: Vec::new(),
            model: true,
            tolerance_pct: DEFAULT_TOLERANCE_PCT,
            tolerance: Default::default(),
        }
    }
}

impl Expectations {
    /// The tolerance of model check `name`, percent.
    pub fn tolerance_for(&self, name: &str) -> f64 {
        self.tolerance
            .get(name)
            .copied()
            .unwrap_or(self.tolerance_pct)
    }

    pub(super) fn resolve(e: &ExpectSection) -> Result<Expectations, PlanError> {
        let max_connect_p99_ms = match e.max_connect_p99_ms {
            Some(ms) if !(ms.is_finite() && ms > 0.0) => {
                return Err(invalid(
                    "expect.max_connect_p99_ms",
                    "--max-connect-p99-ms",
                    format!("{ms} is not a latency; write milliseconds above 0, e.g. 50"),
                ))
            }
            v => v,
        };
        let min_margin = match e.min_margin {
            Some(f) if !(f.is_finite() && f > 0.0) => {
                return Err(invalid(
                    "expect.min_margin",
                    "--min-margin",
                    format!("{f} is not a headroom factor; write a number above 0, e.g. 2 for ports enough for twice the load"),
                ))
            }
            v => v,
        };
        let errors = error_names(e.errors.iter().flatten())?;
        let tolerance = tolerances(e.tolerance.iter().flatten())?;
        Ok(Expectations {
            exhaustion: e.exhaustion,
            max_error_rate: fraction(
                e.max_error_rate,
                "expect.max_error_rate",
                "--max-error-rate",
            )?,
            max_connect_p99_ms,
            min_success_rate: fraction(
                e.min_success_rate,
                "expect.min_success_rate",
                "--min-success-rate",
            )?,
            min_margin,
            errors,
            model: e.model.unwrap_or(true),
            tolerance_pct: percent(
                e.tolerance_pct.unwrap_or(DEFAULT_TOLERANCE_PCT),
                "expect.tolerance_pct",
                "--tolerance",
            )?,
            tolerance,
        })
    }

    /// Back to the `[expect]` table (only what differs from the defaults).
    /// Taken apart field by field: a check added is a compile error here until it is written.
    pub fn to_section(&self) -> ExpectSection {
        let Expectations {
            exhaustion,
            max_error_rate,
            max_connect_p99_ms,
            min_success_rate,
            min_margin,
            errors,
            model,
            tolerance_pct,
            tolerance,
        } = self;
        ExpectSection {
            exhaustion: *exhaustion,
            max_error_rate: *max_error_rate,
            max_connect_p99_ms: *max_connect_p99_ms,
            min_success_rate: *min_success_rate,
            min_margin: *min_margin,
            errors: (!errors.is_empty()).then(|| errors.clone()),
            model: (!model).then_some(false),
            tolerance_pct: (*tolerance_pct != DEFAULT_TOLERANCE_PCT).then_some(*tolerance_pct),
            tolerance: (!tolerance.is_empty()).then(|| tolerance.clone()),
        }
    }
}

/// A fraction from 0 to 1 (`key`, `flag` name it in the error).
fn fraction(
    v: Option<f64>,
    key: &'static str,
    flag: &'static str,
) -> Result<Option<f64>, PlanError> {
    match v {
        Some(f) if !(0.0..=1.0).contains(&f) => Err(invalid(
            key,
            flag,
            format!("{f} is not a fraction; write a number from 0 to 1, e.g. 0.01 for 1%"),
        )),
        v => Ok(v),
    }
}

/// A tolerance: a percentage of 0 or more.
fn percent(v: f64, key: &'static str, flag: &'static str) -> Result<f64, PlanError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(invalid(
            key,
            flag,
            format!("{v} is not a tolerance; write a percentage of 0 or more, e.g. 5"),
        ))
    }
}

/// `expect.errors`: error names as summary.errors shows them, upper-cased.
fn error_names<'a>(names: impl Iterator<Item = &'a String>) -> Result<Vec<String>, PlanError> {
    names
        .map(|name| {
            let upper = name.trim().to_ascii_uppercase();
            if upper.is_empty()
                || !upper
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                Err(invalid(
                    "expect.errors",
                    "--expect-error",
                    format!("'{name}' is not an error name; write one as summary.errors shows it, e.g. ECONNRESET or TIMEOUT"),
                ))
            } else {
                Ok(upper)
            }
        })
        .collect()
}

/// `expect.tolerance`: per model check, a percentage.
fn tolerances<'a>(
    given: impl Iterator<Item = (&'a String, &'a f64)>,
) -> Result<std::collections::BTreeMap<String, f64>, PlanError> {
    let mut tolerance = std::collections::BTreeMap::new();
    for (name, v) in given {
        if !MODEL_CHECKS.contains(&name.as_str()) {
            return Err(invalid(
                "expect.tolerance",
                "--tolerance",
                format!(
                    "'{name}' is not a model check; tolerances apply to {}",
                    MODEL_CHECKS.join(", ")
                ),
            ));
        }
        tolerance.insert(
            name.clone(),
            percent(*v, "expect.tolerance", "--tolerance")?,
        );
    }
    Ok(tolerance)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key a refused section names, or "" when it resolves.
    fn refused_key(toml_text: &str) -> &'static str {
        let e: ExpectSection = toml::from_str(toml_text).expect("an [expect] table");
        match Expectations::resolve(&e) {
            Ok(_) => "",
            Err(PlanError::Invalid { key, .. }) => key,
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn each_bad_value_names_its_key_and_the_first_one_wins() {
        let cases = [
            ("", ""),
            ("max_error_rate = 0.5\nmin_success_rate = 1", ""),
            ("max_error_rate = 1.5", "expect.max_error_rate"),
            ("min_success_rate = -0.1", "expect.min_success_rate"),
            ("max_connect_p99_ms = 0", "expect.max_connect_p99_ms"),
            ("min_margin = -1", "expect.min_margin"),
            ("errors = [\"econnreset\", \"TIMEOUT\"]", ""),
            ("errors = [\"\"]", "expect.errors"),
            ("errors = [\"E-1\"]", "expect.errors"),
            ("tolerance = { first_error_s = 10 }", ""),
            ("tolerance = { nonsense = 10 }", "expect.tolerance"),
            ("tolerance = { first_error_s = -1 }", "expect.tolerance"),
            ("tolerance_pct = -5", "expect.tolerance_pct"),
            // Several wrong: the latency is checked before the fractions.
            (
                "max_error_rate = 2\nmax_connect_p99_ms = -1",
                "expect.max_connect_p99_ms",
            ),
        ];
        for (text, key) in cases {
            assert_eq!(refused_key(text), key, "{text}");
        }
    }

    #[test]
    fn error_names_are_upper_cased_and_tolerances_kept_per_check() {
        let e: ExpectSection =
            toml::from_str("errors = [\" econnreset \"]\ntolerance = { first_error_s = 12 }")
                .unwrap();
        let x = Expectations::resolve(&e).unwrap();
        assert_eq!(x.errors, ["ECONNRESET"]);
        assert_eq!(x.tolerance_for("first_error_s"), 12.0);
        assert_eq!(x.tolerance_for("timewait_max"), DEFAULT_TOLERANCE_PCT);
    }
}
