//! Reports: the renderings of results (`crate::results`), one file per format (text, json,
//! csv_format, markdown, junit, html), each a [`Renderer`] that knows how a run, several runs,
//! a command's document and a suite look in it. [`renderer`] is the one place a `--format`
//! is chosen; every command prints through it, and `portlab report` re-renders a saved run
//! the same way the run printed it.

mod csv_format;
pub mod document;
pub mod html;
mod json;
pub mod junit;
mod markdown;
pub mod prediction;
pub mod text;

use crate::results::summary::Summary;

#[cfg(test)]
mod chain_tests {
    use super::chain;
    use anyhow::Context;

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::from_raw_os_error(1);
        let text = io.to_string();
        // An error that quotes its source, as thiserror's "{source}" does.
        #[derive(Debug, thiserror::Error)]
        #[error("cannot enter the lab: {source}")]
        struct Quoting {
            source: std::io::Error,
        }
        let e = anyhow::Error::new(Quoting { source: io }).context("setting up the lab");
        let line = chain(&e);
        assert_eq!(line.matches(&text).count(), 1, "{line}");
        assert_eq!(
            line,
            format!("setting up the lab: cannot enter the lab: {text}")
        );
        // Causes that do not repeat each other are all kept, in order.
        let e = Err::<(), _>(std::io::Error::from_raw_os_error(2))
            .context("reading plan.toml")
            .unwrap_err();
        assert_eq!(
            chain(&e),
            format!(
                "reading plan.toml: {}",
                std::io::Error::from_raw_os_error(2)
            )
        );
    }
}

use crate::results::compare::Comparison;
use crate::results::suite::Report as SuiteReport;
use std::io::{self, Write};
use std::path::Path;

/// An output format for `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A human summary.
    Text,
    /// summary.json as is.
    Json,
    /// metric,value,unit rows.
    Csv,
    /// Tables for a pull-request comment.
    Markdown,
    /// A self-contained HTML page with charts (what report.html holds).
    Html,
    /// JUnit XML: one test case per verdict check, for CI servers' test reports.
    Junit,
}

/// The renderer of a format: the one place a format is chosen. A new format is a file
/// implementing [`Renderer`], one variant of [`Format`] and one arm here.
pub fn renderer(format: Format) -> Box<dyn Renderer> {
    match format {
        Format::Text => Box::new(text::Text),
        Format::Json => Box::new(json::Json),
        Format::Csv => Box::new(csv_format::Csv),
        Format::Markdown => Box::new(markdown::Markdown),
        Format::Html => Box::new(html::Html),
        Format::Junit => Box::new(junit::Junit),
    }
}

/// One run to render: its summary and, when it has one, its results directory.
pub struct Run<'a> {
    /// How a comparison names it (its results directory's name).
    pub label: String,
    /// Its summary.json.
    pub summary: &'a Summary,
    /// Its results directory: html draws the charts from its timeline.csv, junit names it as
    /// the attachment. None for a summary alone.
    pub dir: Option<&'a Path>,
}

/// A format: what each kind of result portlab prints looks like in it. Every command prints
/// its results through one (chosen by [`renderer`]).
pub trait Renderer {
    /// One run (`portlab report DIR`, and `run` through [`Renderer::made`]).
    fn run(&self, run: &Run, out: &mut dyn Write) -> io::Result<()>;

    /// The run this command has just made (`portlab run`), its results in `results`:
    /// [`Renderer::run`]; text then says where they are.
    fn made(&self, run: &Run, results: &Path, out: &mut dyn Write) -> io::Result<()> {
        let _ = results;
        self.run(run, out)
    }

    /// The run `portlab merge` has just made of its shards, its results in `results`:
    /// [`Renderer::made`]; text lists the shards too.
    fn merged(&self, run: &Run, results: &Path, out: &mut dyn Write) -> io::Result<()> {
        self.made(run, results, out)
    }

    /// Several saved runs (`portlab report A B ...`), with their comparison table.
    fn runs(&self, runs: &[Run], table: &Comparison, out: &mut dyn Write) -> io::Result<()>;

    /// True when [`Renderer::runs`] is a verdict of each run (junit), not a comparison that
    /// only shows: the exit code then fails when any run's verdict failed.
    fn judges_each_run(&self) -> bool {
        false
    }

    /// True when [`Renderer::run`] prints summary.json itself (json): a run whose
    /// summary.json could not be saved has it on stdout already.
    fn prints_summary_json(&self) -> bool {
        false
    }

    /// A command's document (predict, inspect).
    fn document(&self, doc: &document::Document, out: &mut dyn Write) -> io::Result<()>;

    /// A suite's table (`portlab suite`).
    fn suite(&self, suite: &SuiteReport, out: &mut dyn Write) -> io::Result<()>;
}

/// The error of a format that has no form for a kind of result.
fn no_form(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// An error and its causes on one line, most general first, each said once: a cause whose
/// text the line already holds (an io::Error quoted by the error that wraps it) is skipped.
pub fn chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A run's change from the first run, as a comparison shows it.
fn change(c: Option<f64>) -> String {
    c.map_or(String::new(), |c| format!("{c:+.1}%"))
}

/// Seconds with millisecond precision and a unit.
pub(crate) fn secs(v: f64) -> String {
    format!("{v:.3} s")
}
