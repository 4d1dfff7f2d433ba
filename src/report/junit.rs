//! `--format junit`: the verdict as JUnit XML, the report format Jenkins, GitLab and GitHub's
//! test-report actions show natively. One `<testsuite>` per run inside `<testsuites>`, one
//! `<testcase>` per verdict check (model, `[expect]`, baseline, and any other), a `<failure>`
//! whose message is the sentence the text report prints, the run's figures as `<property>`s,
//! and the results directory as a `[[ATTACHMENT|path]]` line in `<system-out>` (the
//! convention of Jenkins' JUnit attachments plugin and GitLab).
//!
//! The XML is written by hand: the document is a fixed, shallow shape and the only dynamic
//! parts are attribute values and text, which `escape` covers; an XML writer crate would add
//! a dependency (and build time on a 2-core machine) for no more than that.

use super::document::{not_a_run, Document};
use super::{Renderer, Run, Summary};
use crate::results::compare::Comparison;
use crate::results::suite::{Outcome, Report as SuiteReport, Row};
use crate::results::verdict::Check;
use std::io::{self, Write};
use std::path::Path;

/// `--format junit`: a run's results directory, when it has one, is the attachment path.
pub struct Junit;

impl Renderer for Junit {
    fn run(&self, run: &Run, out: &mut dyn Write) -> io::Result<()> {
        render_suite(&[SuiteRun::Ran(run.summary, run.dir)], out)
    }

    /// JUnit holds verdicts, not a comparison: one test suite per run.
    fn runs(&self, runs: &[Run], _: &Comparison, out: &mut dyn Write) -> io::Result<()> {
        let suites: Vec<SuiteRun> = runs
            .iter()
            .map(|r| SuiteRun::Ran(r.summary, r.dir))
            .collect();
        render_suite(&suites, out)
    }

    fn judges_each_run(&self) -> bool {
        true
    }

    fn document(&self, _: &Document, _: &mut dyn Write) -> io::Result<()> {
        Err(not_a_run())
    }

    fn suite(&self, suite: &SuiteReport, out: &mut dyn Write) -> io::Result<()> {
        self::suite_runs(suite, out)
    }
}

/// One scenario of a suite: its summary, or the error that kept it from producing one.
pub enum SuiteRun<'a> {
    /// The run's summary and its results directory.
    Ran(&'a Summary, Option<&'a Path>),
    /// A run that ended without a summary: its name, results directory, and why.
    Failed {
        /// The scenario's name.
        name: &'a str,
        /// Its results directory.
        results_dir: &'a Path,
        /// What went wrong, one line.
        why: String,
    },
}

/// Several runs (a suite) as one JUnit document, one `<testsuite>` each.
pub fn render_suite(runs: &[SuiteRun<'_>], out: &mut dyn Write) -> io::Result<()> {
    let (mut tests, mut failures, mut errors, mut time) = (0, 0, 0, 0.0);
    for r in runs {
        match r {
            SuiteRun::Ran(s, _) => {
                let checks = checks_of(s);
                tests += checks.len().max(1);
                failures += checks.iter().filter(|c| counts_as_failure(c)).count();
                time += s.duration_s;
            }
            SuiteRun::Failed { .. } => {
                tests += 1;
                errors += 1;
            }
        }
    }
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="portlab" tests="{tests}" failures="{failures}" errors="{errors}" time="{time:.3}">"#
    )?;
    for (id, r) in runs.iter().enumerate() {
        match r {
            SuiteRun::Ran(s, dir) => suite(id, s, *dir, out)?,
            SuiteRun::Failed {
                name,
                results_dir,
                why,
            } => {
                let name = escape(name);
                writeln!(
                    out,
                    r#"  <testsuite name="{name}" id="{id}" package="portlab" tests="1" failures="0" errors="1" skipped="0" time="0.000">"#
                )?;
                writeln!(
                    out,
                    r#"    <testcase name="run" classname="portlab.{name}" time="0.000">"#
                )?;
                writeln!(
                    out,
                    r#"      <error type="run" message="{m}">{m}</error>"#,
                    m = escape(why)
                )?;
                writeln!(out, "    </testcase>")?;
                attachment(results_dir, out)?;
                writeln!(out, "  </testsuite>")?;
            }
        }
    }
    writeln!(out, "</testsuites>")
}

/// The verdict's checks (none for a summary written without one).
fn checks_of(s: &Summary) -> &[Check] {
    s.verdict.as_ref().map_or(&[], |v| v.checks.as_slice())
}

/// A failed check that counts toward the verdict (an advisory one is reported as skipped).
fn counts_as_failure(c: &Check) -> bool {
    !c.pass && !c.advisory
}

fn suite(id: usize, s: &Summary, dir: Option<&Path>, out: &mut dyn Write) -> io::Result<()> {
    let checks = checks_of(s);
    let name = escape(&s.scenario);
    let failures = checks.iter().filter(|c| counts_as_failure(c)).count();
    let skipped = checks.iter().filter(|c| c.advisory).count();
    // JUnit's timestamp is a local date-time without a zone; started_at is UTC RFC 3339.
    let timestamp: String = s.started_at.chars().take(19).collect();
    writeln!(
        out,
        r#"  <testsuite name="{name}" id="{id}" package="portlab" tests="{}" failures="{failures}" errors="0" skipped="{skipped}" time="{:.3}" timestamp="{}" hostname="localhost">"#,
        checks.len().max(1),
        s.duration_s,
        escape(&timestamp)
    )?;
    writeln!(out, "    <properties>")?;
    for (k, v) in figures(s) {
        writeln!(
            out,
            r#"      <property name="{}" value="{}"/>"#,
            escape(&k),
            escape(&v)
        )?;
    }
    writeln!(out, "    </properties>")?;
    if checks.is_empty() {
        // A saved summary without a verdict still ran: one case says so rather than none.
        writeln!(
            out,
            r#"    <testcase name="verdict" classname="portlab.{name}" time="0.000">"#
        )?;
        writeln!(
            out,
            r#"      <skipped message="this summary has no verdict"/>"#
        )?;
        writeln!(out, "    </testcase>")?;
    }
    for c in checks {
        let case = escape(&c.name);
        write!(
            out,
            r#"    <testcase name="{case}" classname="portlab.{name}" time="0.000""#
        )?;
        let sentence = escape(&c.explain());
        if c.advisory {
            writeln!(out, ">")?;
            writeln!(
                out,
                r#"      <skipped message="advisory ([expect] model = false): {sentence}"/>"#
            )?;
            writeln!(out, "    </testcase>")?;
        } else if !c.pass {
            writeln!(out, ">")?;
            writeln!(
                out,
                r#"      <failure type="verdict" message="{sentence}">{sentence}</failure>"#
            )?;
            writeln!(out, "    </testcase>")?;
        } else {
            writeln!(out, "/>")?;
        }
    }
    if let Some(dir) = dir {
        attachment(dir, out)?;
    }
    writeln!(out, "  </testsuite>")
}

/// The results directory as an attachment line (absolute, so a CI server finds it).
fn attachment(dir: &Path, out: &mut dyn Write) -> io::Result<()> {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    writeln!(
        out,
        "    <system-out>results: {}\n[[ATTACHMENT|{}]]</system-out>",
        escape(&dir.display().to_string()),
        escape(&abs.display().to_string())
    )
}

/// The run's figures, as name/value pairs.
fn figures(s: &Summary) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("portlab_version".into(), s.portlab_version.clone()),
        ("started_at".into(), s.started_at.clone()),
        ("target".into(), s.target.clone()),
        ("duration_s".into(), format!("{:.3}", s.duration_s)),
        (
            "load_duration_s".into(),
            format!("{:.3}", s.load_duration_s),
        ),
        ("interrupted".into(), s.interrupted.to_string()),
        ("attempts".into(), s.attempts.to_string()),
        ("connected".into(), s.connected.to_string()),
        ("completed".into(), s.completed.to_string()),
        ("failed".into(), s.failed.to_string()),
        ("dropped".into(), s.dropped.to_string()),
        ("aborted".into(), s.aborted.to_string()),
        ("achieved_rate".into(), format!("{:.3}", s.achieved_rate)),
        (
            "exhaustion.first_s".into(),
            s.exhaustion
                .first_s
                .map_or("-".into(), |t| format!("{t:.3}")),
        ),
        (
            "connect_p99_us".into(),
            s.connect_latency_us.p99.to_string(),
        ),
    ];
    for (k, e) in &s.errors {
        v.push((format!("errors.{k}"), e.count.to_string()));
    }
    if let Some(p) = &s.prediction {
        let figure = |x: Option<f64>| crate::results::verdict::compact(&serde_json::json!(x));
        v.push(("model.exhausts".into(), p.exhausts.to_string()));
        v.push(("model.first_error_s".into(), figure(p.first_error_s)));
        v.push(("model.sustainable_rate".into(), figure(p.sustainable_rate)));
        v.push(("model.margin".into(), figure(p.margin)));
    }
    if let Some(c) = &s.client_exec {
        v.push(("client.command".into(), c.command.clone()));
        v.push(("client.connections".into(), c.connections.to_string()));
        v.push((
            "client.requests".into(),
            c.requests.map_or("-".into(), |r| r.to_string()),
        ));
        v.push(("client.pooled".into(), c.pooled.to_string()));
    }
    v
}

/// Escapes text for an XML attribute value or element text. Characters XML 1.0 cannot hold
/// at all (controls other than tab, newline, return) become U+FFFD.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

// The suite as JUnit XML: one test suite per scenario (its checks as test cases), read back
/// from each run's summary.json; a scenario without one is a test case in error. A skipped
/// scenario ran nothing and is left out.
fn suite_runs(r: &SuiteReport, out: &mut dyn Write) -> io::Result<()> {
    let loaded: Vec<(&Row, Result<Summary, String>)> = r
        .scenarios
        .iter()
        .filter(|row| row.verdict != Outcome::Skipped)
        .map(|row| {
            let s = crate::results::dir::load_summary(Path::new(&row.results))
                .map_err(|e| format!("{e:#}"));
            (row, s)
        })
        .collect();
    let runs: Vec<SuiteRun> = loaded
        .iter()
        .map(|(row, s)| match s {
            Ok(s) => SuiteRun::Ran(s, Some(Path::new(&row.results))),
            Err(e) => SuiteRun::Failed {
                name: &row.scenario,
                results_dir: Path::new(&row.results),
                why: if row.problems.is_empty() {
                    e.clone()
                } else {
                    row.problems.join("; ")
                },
            },
        })
        .collect();
    render_suite(&runs, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_quotes_and_controls() {
        assert_eq!(
            escape("a<b & \"c\" 'd'>\u{1}\n"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\u{FFFD}&#10;"
        );
    }

    #[test]
    fn failed_checks_carry_the_text_reports_sentence() {
        let mut s: Summary = serde_json::from_str(include_str!(
            "../../tests/fixtures/runs/before/summary.json"
        ))
        .unwrap();
        let v = s.verdict.as_mut().unwrap();
        v.checks[0].pass = false;
        let sentence = v.checks[0].explain();
        let mut out = Vec::new();
        let run = Run {
            label: "x".into(),
            summary: &s,
            dir: Some(Path::new("results/x")),
        };
        Junit.run(&run, &mut out).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(
            xml.contains(&format!("message=\"{}\"", escape(&sentence))),
            "{xml}"
        );
        assert!(xml.contains("[[ATTACHMENT|"), "{xml}");
    }
}
