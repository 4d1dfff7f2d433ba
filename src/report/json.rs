//! JSON: summary.json exactly; a comparison, a document or a suite as they serialise.

use super::document::Document;
use super::{Renderer, Run};
use crate::results::compare::Comparison;
use crate::results::suite::Report as SuiteReport;
use std::io::{self, Write};

/// `--format json`.
pub struct Json;

impl Renderer for Json {
    fn run(&self, run: &Run, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, run.summary)?;
        writeln!(out)
    }

    fn runs(&self, _: &[Run], table: &Comparison, out: &mut dyn Write) -> io::Result<()> {
        let text = serde_json::to_string_pretty(table).map_err(io::Error::other)?;
        writeln!(out, "{text}")
    }

    fn prints_summary_json(&self) -> bool {
        true
    }

    fn document(&self, doc: &Document, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", doc.json)
    }

    fn suite(&self, suite: &SuiteReport, out: &mut dyn Write) -> io::Result<()> {
        let json = serde_json::to_string_pretty(suite).map_err(io::Error::other)?;
        writeln!(out, "{json}")
    }
}
