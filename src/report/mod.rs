//! Reports: the renderings of results (`crate::results`), one file per format behind one
//! trait. `portlab report` re-renders a saved summary the same way.

pub mod comparison;
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

use std::io::{self, Write};

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

/// Renders a summary in one format.
pub trait Reporter {
    /// Writes the rendering of `s` to `out`.
    fn render(&self, s: &Summary, out: &mut dyn Write) -> io::Result<()>;
}

/// Anything portlab prints as results, in every `--format`: one run ([`Summary`]), several
/// ([`compare::Comparison`]), a suite ([`crate::suite::Report`]), or a command's document
/// ([`document::Document`]: predict, inspect). A new format (HTML) is one more arm in each
/// implementation; a new kind of result is one more implementation.
pub trait Render {
    /// Writes `self` in `format` to `out`.
    fn render(&self, format: Format, out: &mut dyn Write) -> io::Result<()>;
}

impl Render for Summary {
    fn render(&self, format: Format, out: &mut dyn Write) -> io::Result<()> {
        reporter(format).render(self, out)
    }
}

impl Render for crate::results::compare::Comparison {
    fn render(&self, format: Format, out: &mut dyn Write) -> io::Result<()> {
        comparison::render(self, format, out)
    }
}

/// The reporter for a format.
pub fn reporter(format: Format) -> Box<dyn Reporter> {
    match format {
        Format::Text => Box::new(text::Text),
        Format::Json => Box::new(json::Json),
        Format::Csv => Box::new(csv_format::Csv),
        Format::Markdown => Box::new(markdown::Markdown),
        Format::Html => Box::new(html::Html),
        Format::Junit => Box::new(junit::Junit),
    }
}

/// Prints a run whose results are in `dir`: html draws the charts from its timeline, junit
/// names `dir` as the attachment; the other formats need the summary alone.
pub fn render_run(
    format: Format,
    summary: &Summary,
    dir: &std::path::Path,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Html => html::render(summary, &html::Timeline::of_dir(dir, summary), out),
        Format::Junit => junit::render(summary, Some(dir), out),
        format => reporter(format).render(summary, out),
    }
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

/// Seconds with millisecond precision and a unit.
pub(crate) fn secs(v: f64) -> String {
    format!("{v:.3} s")
}
