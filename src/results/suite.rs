//! A suite's results (`portlab suite`): one row per scenario with the figures behind it, as
//! suite.json holds them. Running the suite is `crate::suite`'s; its renderings are
//! `report`'s.

use serde::Serialize;

/// How one scenario ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// Every check held.
    Pass,
    /// A check failed (the run's exit code 1).
    Fail,
    /// The run could not be set up or its summary could not be read (exit code 2 or other).
    Error,
    /// Stopped by Ctrl-C.
    Interrupted,
    /// Not run: the file runs a command (target.exec, client.exec) and the suite was not
    /// given --allow-exec; its problem line says how to run it.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Error => "ERROR",
            Outcome::Interrupted => "INTERRUPTED",
            Outcome::Skipped => "SKIPPED",
        }
    }
}

/// One line of the table, with the figures behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// The scenario file.
    pub file: String,
    /// The run's results directory.
    pub results: String,
    /// PASS, FAIL, ERROR, INTERRUPTED or SKIPPED.
    pub verdict: Outcome,
    /// The run's exit code (None if it died by a signal).
    pub exit_code: Option<i32>,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// What the model predicted, in a few words.
    pub predicted: String,
    /// What was measured, in a few words.
    pub measured: String,
    /// Names of the checks that failed, or the error that stopped the run.
    pub problems: Vec<String>,
    /// The run's prediction, as in its summary.json.
    #[serde(serialize_with = "super::summary::sorted_keys")]
    pub prediction: Option<crate::model::Prediction>,
    /// The run's verdict, as in its summary.json.
    #[serde(serialize_with = "super::summary::sorted_keys")]
    pub checks: Option<super::verdict::Verdict>,
}

/// The whole suite, as written to suite.json.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The directory the scenarios came from.
    pub scenarios_dir: String,
    /// Where everything was written.
    pub results: String,
    /// When the suite began, UTC (RFC 3339).
    pub started_at: String,
    /// Wall time so far, seconds.
    pub wall_s: f64,
    /// True when every scenario passed (the skipped ones aside).
    pub pass: bool,
    /// One entry per scenario run so far.
    pub scenarios: Vec<Row>,
}

impl Report {
    /// How many scenarios passed.
    pub fn passed(&self) -> usize {
        self.scenarios
            .iter()
            .filter(|x| x.verdict == Outcome::Pass)
            .count()
    }

    /// How many scenarios were skipped (they run a command, and no --allow-exec).
    pub fn skipped(&self) -> usize {
        self.scenarios
            .iter()
            .filter(|x| x.verdict == Outcome::Skipped)
            .count()
    }

    /// "3 of 3 passed" or "22 of 22 passed, 3 skipped (they run commands: --allow-exec)".
    pub fn tally(&self) -> String {
        let skipped = self.skipped();
        let mut t = format!(
            "{} of {} passed",
            self.passed(),
            self.scenarios.len() - skipped
        );
        if skipped > 0 {
            t += &format!(", {skipped} skipped (they run commands: add --allow-exec to run them)");
        }
        t
    }
}
