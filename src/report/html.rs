//! report.html: one self-contained page per run (or per comparison / suite) with the run's
//! story in charts: connections per interval, TIME_WAIT against the model's line, and connect
//! latency over time, then the verdict, the settings and the model's explanation.
//!
//! The charts are drawn by plotters' SVG backend (no bitmap, no fonts, no JavaScript): the
//! SVG is inlined so the page needs no network and opens from a file.

use super::document::{not_a_run, Document};
use super::{Renderer, Run, Summary};
use crate::results::compare::Comparison;
use crate::results::suite::Report as SuiteReport;
use crate::results::verdict::compact;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

/// A timeline.csv read by column name (its kernel columns vary with what could be observed).
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Timeline {
    /// Reads a run's timeline.csv.
    /// Read through [`crate::input`] (a FIFO or a device is refused, not waited on) up to
    /// [`crate::input::TIMELINE_LIMIT`]: the page holds its rows in memory.
    pub fn read(path: &Path) -> Result<Timeline, csv::Error> {
        let file = crate::input::open(path, crate::input::TIMELINE_LIMIT)?;
        let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(file);
        let columns = r.headers()?.iter().map(str::to_string).collect();
        let mut rows = Vec::new();
        for rec in r.records() {
            rows.push(rec?.iter().map(str::to_string).collect());
        }
        Ok(Timeline { columns, rows })
    }

    /// The timeline of a results directory: timeline.csv, or for a `--client-exec` run its
    /// client-samples.csv (TIME_WAIT on each side, the client's rate), its times moved to
    /// count from the client's first connection as the summary's do; empty when it has
    /// neither.
    pub fn of_dir(dir: &Path, summary: &Summary) -> Timeline {
        if let Ok(t) = Timeline::read(&dir.join("timeline.csv")) {
            return t;
        }
        let Ok(mut t) = Timeline::read(&dir.join("client-samples.csv")) else {
            return Timeline::default();
        };
        let shift = summary
            .client_exec
            .as_ref()
            .and_then(|c| c.first_connection_s)
            .unwrap_or(0.0);
        if let Some(i) = t.columns.iter().position(|c| c == "t_s") {
            t.rows
                .retain_mut(|row| match row.get(i).and_then(|v| v.parse::<f64>().ok()) {
                    Some(v) if v >= shift => {
                        row[i] = format!("{:.3}", v - shift);
                        true
                    }
                    _ => false,
                });
        }
        t
    }

    /// A finite value of column `name` in `row` ("inf" and "NaN" parse as f64 but are no
    /// value a chart can place).
    fn cell(&self, row: &[String], name: &str) -> Option<f64> {
        let i = self.columns.iter().position(|c| c == name)?;
        row.get(i)?
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
    }

    /// (t, value) for each row where `name` has a value.
    fn series(&self, name: &str) -> Vec<(f64, f64)> {
        self.rows
            .iter()
            .filter_map(|r| Some((self.cell(r, "t_s")?, self.cell(r, name)?)))
            .collect()
    }

    fn has(&self, name: &str) -> bool {
        !self.series(name).is_empty()
    }

    /// Failures per interval for each error kind, 0 where a kind did not occur.
    fn errors_by_kind(&self) -> BTreeMap<String, Vec<(f64, f64)>> {
        let Some(col) = self.columns.iter().position(|c| c == "errors_by_kind") else {
            return BTreeMap::new();
        };
        let per_row: Vec<(f64, BTreeMap<&str, f64>)> = self
            .rows
            .iter()
            .filter_map(|r| {
                let t = self.cell(r, "t_s")?;
                let kinds = r
                    .get(col)
                    .map(|s| {
                        s.split_whitespace()
                            .filter_map(|kv| kv.split_once('='))
                            .filter_map(|(k, n)| Some((k, n.parse().ok()?)))
                            .collect()
                    })
                    .unwrap_or_default();
                Some((t, kinds))
            })
            .collect();
        let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (_, kinds) in &per_row {
            for k in kinds.keys() {
                out.entry((*k).to_string()).or_default();
            }
        }
        for (kind, points) in &mut out {
            *points = per_row
                .iter()
                .map(|(t, kinds)| (*t, kinds.get(kind.as_str()).copied().unwrap_or(0.0)))
                .collect();
        }
        out
    }
}

/// One run on a page: a label, its summary and its timeline.
pub struct Charted<'a> {
    /// How the page names it (the results directory's name).
    pub label: &'a str,
    /// Its summary.json.
    pub summary: &'a Summary,
    /// Its timeline.csv.
    pub timeline: &'a Timeline,
}

/// `--format html`: a run's page draws its timeline from its results directory (a summary
/// alone has none: the charts say so); several runs, or a suite's, are overlaid on one page.
pub struct Html;

impl Renderer for Html {
    fn run(&self, run: &Run, out: &mut dyn Write) -> io::Result<()> {
        render(run.summary, &timeline(run), out)
    }

    /// The runs' timelines overlaid, which the comparison table does not hold.
    fn runs(&self, runs: &[Run], _: &Comparison, out: &mut dyn Write) -> io::Result<()> {
        let timelines: Vec<Timeline> = runs.iter().map(timeline).collect();
        let charted: Vec<Charted> = runs
            .iter()
            .zip(&timelines)
            .map(|(r, timeline)| Charted {
                label: &r.label,
                summary: r.summary,
                timeline,
            })
            .collect();
        render_many(&charted, out)
    }

    fn document(&self, _: &Document, _: &mut dyn Write) -> io::Result<()> {
        Err(not_a_run())
    }

    /// Every run of the suite that left a summary, on one page.
    fn suite(&self, suite: &SuiteReport, out: &mut dyn Write) -> io::Result<()> {
        let mut loaded = Vec::new();
        for row in &suite.scenarios {
            let dir = Path::new(&row.results);
            if !dir.join("summary.json").is_file() {
                continue;
            }
            let summary = crate::results::dir::load_summary(dir)
                .map_err(|e| io::Error::other(format!("{e:#}")))?;
            let label = dir.file_name().map_or_else(
                || dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            loaded.push((label, summary, dir));
        }
        let runs: Vec<Run> = loaded
            .iter()
            .map(|(label, summary, dir)| Run {
                label: label.clone(),
                summary,
                dir: Some(dir),
            })
            .collect();
        match runs.as_slice() {
            [one] => self.run(one, out),
            many => self.runs(many, &Comparison::default(), out),
        }
    }
}

/// A run's timeline.csv, or none when it has no results directory.
fn timeline(run: &Run) -> Timeline {
    run.dir
        .map_or_else(Timeline::default, |d| Timeline::of_dir(d, run.summary))
}

/// Writes report.html into a run's results directory (its timeline.csv read back), atomically
/// and without following a symlink, as every results file.
pub fn write_report(dir: &crate::results::dir::ResultsDir, summary: &Summary) -> io::Result<()> {
    let timeline = Timeline::of_dir(dir.path(), summary);
    let mut page = Vec::new();
    render(summary, &timeline, &mut page)?;
    dir.write_atomic("report.html", &page)
}

/// Writes report.html, or warns on stderr: the page is a convenience, and a run whose
/// report.html cannot be written still succeeds with everything else on disk.
pub fn write_report_or_warn(dir: &crate::results::dir::ResultsDir, summary: &Summary) {
    if let Err(e) = write_report(dir, summary) {
        crate::say::warning!(
            "{} cannot be written ({e}); the run's other results are complete",
            dir.path().join("report.html").display()
        );
    }
}

/// The page of one run.
pub fn render(summary: &Summary, timeline: &Timeline, out: &mut dyn Write) -> io::Result<()> {
    let run = Charted {
        label: &summary.scenario,
        summary,
        timeline,
    };
    let title = format!("portlab: {}", name_of(summary));
    head(out, &title)?;
    writeln!(out, "<h1>{}</h1>", esc(&title))?;
    overview(out, summary)?;
    let axis = axis_label(std::slice::from_ref(&run));
    figure(
        out,
        "chart-connections",
        "Connections per interval",
        if summary.client_exec.is_some() {
            "The client's connections per second, from the samples of its namespace."
        } else {
            "Attempts begun, connections completed, and failures by error kind in each interval."
        },
        &connections_chart(&run, &axis)?,
    )?;
    figure(
        out,
        "chart-timewait",
        "TIME_WAIT against the model",
        &timewait_caption(summary),
        &timewait_chart(std::slice::from_ref(&run), &axis)?,
    )?;
    figure(
        out,
        "chart-latency",
        "Connect latency over time",
        "connect() latency from the scheduled start (coordinated-omission corrected), per interval.",
        &latency_chart(std::slice::from_ref(&run), &axis)?,
    )?;
    verdict_table(out, summary)?;
    explanation(out, summary)?;
    settings(out, summary)?;
    tail(out)
}

/// The page of several runs overlaid (a comparison, or a suite's runs).
pub fn render_many(runs: &[Charted], out: &mut dyn Write) -> io::Result<()> {
    let title = format!("portlab: {} runs compared", runs.len());
    head(out, &title)?;
    writeln!(out, "<h1>{}</h1>", esc(&title))?;
    writeln!(
        out,
        "<table><tr><th>run</th><th>scenario</th><th>rate /s</th><th>first error</th>\
         <th>predicted</th><th>TIME_WAIT max</th><th>verdict</th></tr>"
    )?;
    for r in runs {
        let s = r.summary;
        let predicted = pred(s)
            .and_then(|p| p.first_error_s)
            .map_or("none".into(), |v| format!("{v:.3} s"));
        let first = s.exhaustion.first_s.map_or("none".into(), |v| {
            format!("{v:.3} s ({})", s.exhaustion.kind.as_deref().unwrap_or("?"))
        });
        let tw = s
            .timewait
            .as_ref()
            .and_then(|t| t.client_max.max(t.server_max))
            .map_or("-".into(), |n| n.to_string());
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r.label),
            esc(&name_of(s)),
            s.achieved_rate,
            esc(&first),
            esc(&predicted),
            tw,
            verdict_cell(s)
        )?;
    }
    writeln!(out, "</table>")?;
    let axis = axis_label(runs);
    figure(
        out,
        "chart-connections",
        "Completed connections per interval, runs overlaid",
        "Solid: completed; dashed: failures (all kinds).",
        &overlay_connections_chart(runs, &axis)?,
    )?;
    figure(
        out,
        "chart-timewait",
        "TIME_WAIT, runs overlaid",
        "Solid: measured TIME_WAIT (the side that holds it); dashed: each run's model, min(R × t, P).",
        &timewait_chart(runs, &axis)?,
    )?;
    figure(
        out,
        "chart-latency",
        "Connect latency p99 over time, runs overlaid",
        "connect() latency p99 from the scheduled start, per interval.",
        &latency_chart(runs, &axis)?,
    )?;
    for r in runs {
        writeln!(out, "<h2 class=\"run\">{}</h2>", esc(r.label))?;
        overview(out, r.summary)?;
        verdict_table(out, r.summary)?;
        explanation(out, r.summary)?;
    }
    tail(out)
}

fn name_of(s: &Summary) -> String {
    if s.scenario.is_empty() {
        "run".into()
    } else {
        s.scenario.clone()
    }
}

fn pred(s: &Summary) -> Option<&crate::model::Prediction> {
    s.prediction.as_ref()
}

/// "lab seconds" for a time-scaled lab (its charts are in the lab's own time).
fn axis_label(runs: &[Charted]) -> String {
    let scales: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.summary.modelled.as_ref().map(|m| m.time_scale))
        .collect();
    let client = runs.iter().all(|r| r.summary.client_exec.is_some());
    match scales.as_slice() {
        [] if client && !runs.is_empty() => "time since the client first connected (s)".into(),
        [] => "time since start (s)".into(),
        [k] if runs.len() == 1 => format!("lab seconds (1 lab s = {k} modelled s)"),
        _ => "lab seconds (time-scaled runs: modelled = lab × time scale)".into(),
    }
}

/// HTML-escapes text (five characters; not worth a dependency).
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1000px;\
margin:2em auto;padding:0 1em;color:#222;background:#fff}h1{font-size:1.6em}h2{font-size:1.25em;\
margin-top:1.6em;border-bottom:1px solid #ddd}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.92em}th{background:#f3f3f3}\
.pass{color:#1a7f37;font-weight:600}.fail{color:#c62828;font-weight:600}figure{margin:1.2em 0}\
figcaption{font-size:.9em;color:#555;margin-top:.3em}figure svg{max-width:100%;height:auto}\
pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.85em}.note{color:#555}";

fn head(out: &mut dyn Write, title: &str) -> io::Result<()> {
    // The page reports its own script errors: data-errors counts them and data-rendered is
    // set by the last script, so a headless browser's DOM dump shows whether all went well.
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\" data-errors=\"0\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n\
         <script>window.addEventListener('error',function(){{var d=document.documentElement;\
         d.dataset.errors=String(Number(d.dataset.errors)+1);}});</script>\n</head>\n<body>",
        esc(title)
    )
}

fn tail(out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "<p class=\"note\">Written by portlab {}.</p>\n<script>document.documentElement.dataset.rendered=\
         document.documentElement.dataset.errors==='0'?'ok':'errors';</script>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION")
    )
}

fn figure(out: &mut dyn Write, id: &str, title: &str, caption: &str, svg: &str) -> io::Result<()> {
    writeln!(
        out,
        "<h2>{}</h2>\n<figure id=\"{id}\" title=\"{}\">\n{svg}\n<figcaption>{}</figcaption>\n</figure>",
        esc(title),
        esc(title),
        esc(caption)
    )
}

fn verdict_cell(s: &Summary) -> &'static str {
    match &s.verdict {
        Some(v) if v.pass => "<span class=\"pass\">PASS</span>",
        Some(_) => "<span class=\"fail\">FAIL</span>",
        None => "-",
    }
}

fn overview(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    if let Some(d) = &s.description {
        writeln!(out, "<p>{}</p>", esc(d))?;
    }
    writeln!(
        out,
        "<table id=\"overview\"><tr><th>target</th><td>{}</td></tr>\
         <tr><th>started</th><td>{}</td></tr><tr><th>plan</th><td>{}</td></tr>\
         <tr><th>attempts / completed / failed</th><td>{} / {} / {}</td></tr>\
         <tr><th>achieved rate</th><td>{:.1} /s over {:.3} s</td></tr>",
        esc(&s.target),
        esc(&s.started_at),
        esc(&s.plan_line()),
        s.attempts,
        s.completed,
        s.failed,
        s.achieved_rate,
        s.load_duration_s
    )?;
    match s.exhaustion.first_s {
        Some(t) => writeln!(
            out,
            "<tr><th>first port-exhaustion error</th><td>{} at {t:.3} s</td></tr>",
            esc(s.exhaustion.kind.as_deref().unwrap_or("?"))
        )?,
        None => writeln!(
            out,
            "<tr><th>first port-exhaustion error</th><td>none</td></tr>"
        )?,
    }
    if let Some(m) = &s.modelled {
        writeln!(
            out,
            "<tr><th>time scale</th><td>{} modelled s per lab s: rate {:.2} /s, first error {} \
             in modelled time</td></tr>",
            m.time_scale,
            m.rate,
            m.first_error_s
                .map_or("none".into(), |t| format!("{t:.3} s"))
        )?;
    }
    writeln!(
        out,
        "<tr><th>verdict</th><td>{}</td></tr></table>",
        verdict_cell(s)
    )
}

fn verdict_table(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    let Some(v) = &s.verdict else {
        return Ok(());
    };
    writeln!(
        out,
        "<h2>Verdict: {}</h2>\n<table class=\"verdict\"><tr><th>check</th><th>expected</th>\
         <th>measured</th><th>error</th><th>allowed</th><th>result</th><th>note</th></tr>",
        verdict_cell(s)
    )?;
    let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}%"));
    for c in &v.checks {
        let result = match (c.pass, c.advisory) {
            (_, true) => "<span class=\"note\">advisory</span>",
            (true, false) => "<span class=\"pass\">pass</span>",
            (false, false) => "<span class=\"fail\">FAIL</span>",
        };
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{result}</td><td>{}</td></tr>",
            esc(&c.name),
            esc(&c.expected_text()),
            esc(&compact(&c.measured)),
            pct(c.error_pct),
            pct(c.tolerance_pct),
            esc(c.note.as_deref().unwrap_or(""))
        )?;
    }
    writeln!(out, "</table>")
}

fn explanation(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    let Some(p) = &s.prediction else {
        return Ok(());
    };
    writeln!(out, "<h2>The model</h2>")?;
    writeln!(out, "<p id=\"explanation\">{}</p>", esc(&p.explanation))?;
    writeln!(out, "<table>")?;
    let figure = |v: Option<f64>| v.map(|v| compact(&serde_json::json!(v)));
    for (label, value) in [
        ("usable ports P", Some(p.ports_effective.to_string())),
        ("port hold time T (s)", figure(Some(p.hold_s))),
        ("first error P / R (s)", figure(p.first_error_s)),
        ("sustainable rate P / T (/s)", figure(p.sustainable_rate)),
        ("TIME_WAIT ceiling", figure(p.steady_timewait_max)),
        ("TIME_WAIT side", Some(p.timewait_side.name().to_string())),
    ] {
        if let Some(v) = value {
            writeln!(out, "<tr><th>{label}</th><td>{}</td></tr>", esc(&v))?;
        }
    }
    writeln!(out, "</table>")
}

fn settings(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    writeln!(out, "<h2>Settings</h2>")?;
    if let Some(lab) = &s.lab {
        if !lab.settings.is_empty() {
            writeln!(
                out,
                "<table id=\"lab-settings\"><tr><th>lab sysctl (read back)</th><th>value</th></tr>"
            )?;
            for (k, v) in &lab.settings {
                writeln!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v))?;
            }
            writeln!(out, "</table>")?;
        }
    }
    let plan = toml::to_string_pretty(&s.plan).unwrap_or_else(|e| format!("# {e}"));
    writeln!(
        out,
        "<p>The resolved plan (every key set):</p>\n<pre id=\"plan\">{}</pre>",
        esc(&plan)
    )
}

fn timewait_caption(s: &Summary) -> String {
    let mut c = String::from(
        "Measured TIME_WAIT sockets on each side; dashed: the model's line min(R × t, P).",
    );
    if let (Some(p), Some(t)) = (
        pred(s).map(|p| p.ports_effective as f64),
        pred(s).and_then(|p| p.first_error_s),
    ) {
        c.push_str(&format!(" Predicted P / R = {p:.0} / R = {t:.3} s."));
    }
    if let Some(t) = s.exhaustion.first_s {
        c.push_str(&format!(" Measured first error at {t:.3} s."));
    }
    if let Some(r) = pred(s).and_then(|p| p.sustainable_rate) {
        c.push_str(&format!(" Sustainable rate P / T = {r:.2} /s."));
    }
    c
}

// ---- charts ---------------------------------------------------------------------------

const W: u32 = 960;
const H: u32 = 380;
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// An axis label: whole numbers without decimals, small ones with what they need.
fn number(v: f64) -> String {
    if v == v.round() {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.2}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.to_string()
        }
    }
}

fn chart_err<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(format!("drawing a chart: {e}"))
}

/// A line drawn on a chart.
struct Line {
    label: String,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    dashed: bool,
}

/// A vertical marker at x with a label.
struct Marker {
    x: f64,
    label: String,
    color: RGBColor,
    /// Which text row its label takes (0 at the top), so two close markers stay readable.
    row: i32,
}

/// Per-interval counts as steps: each value holds over its interval (previous end, end].
fn steps(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let first_len = match points.as_slice() {
        [(a, _), (b, _), ..] => b - a,
        [(a, _)] => *a,
        [] => 0.0,
    };
    let mut out = Vec::with_capacity(points.len() * 2);
    let mut start = points.first().map_or(0.0, |p| (p.0 - first_len).max(0.0));
    for (t, v) in points {
        out.push((start, v));
        out.push((t, v));
        start = t;
    }
    out
}

/// The largest value a chart draws: a value beyond it (or not finite: `inf` in a
/// hand-edited timeline.csv) is left out rather than stretching the axes past what the
/// tick arithmetic handles (an infinite axis made the ticks loop forever), as is a negative
/// one (the axes start at 0: -1e15 overflowed the pixel arithmetic). Every series drawn is a
/// count, a time or a latency.
const DRAWABLE: f64 = 1e15;

fn drawable(v: f64) -> bool {
    (0.0..=DRAWABLE).contains(&v)
}

/// Each line's points that can be drawn.
fn drawable_points(lines: &[Line]) -> Vec<Vec<(f64, f64)>> {
    lines
        .iter()
        .map(|l| {
            l.points
                .iter()
                .copied()
                .filter(|&(x, y)| drawable(x) && drawable(y))
                .collect()
        })
        .collect()
}

fn x_max(points: &[Vec<(f64, f64)>], markers: &[Marker]) -> f64 {
    points
        .iter()
        .flat_map(|l| l.iter().map(|p| p.0))
        .chain(markers.iter().map(|m| m.x).filter(|x| drawable(*x)))
        .fold(1.0, f64::max)
}

fn y_max(points: &[Vec<(f64, f64)>]) -> f64 {
    let m = points
        .iter()
        .flat_map(|l| l.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    if m > 0.0 {
        m * 1.12
    } else {
        1.0
    }
}

/// Where each note's text begins: in the lower right, above the axis whose right end is
/// at `corner`, clear of the legend (upper right) and of lines rising from the origin;
/// ~7 px per character at 14 px, one 18 px row each, the last lowest.
fn note_positions(corner: (i32, i32), notes: &[String]) -> Vec<(i32, i32)> {
    let widest = notes.iter().map(|n| n.chars().count()).max().unwrap_or(0) as i32;
    let rows = notes.len() as i32;
    (0..rows)
        .map(|i| (corner.0 - 12 - 7 * widest, corner.1 - 22 - 18 * (rows - i)))
        .collect()
}

/// Draws lines and markers on one set of axes and returns the SVG.
fn draw(
    y_desc: &str,
    x_desc: &str,
    x_end: f64,
    lines: &[Line],
    markers: &[Marker],
    notes: &[String],
) -> io::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let points = drawable_points(lines);
        let x_end = if drawable(x_end) { x_end } else { 0.0 };
        let (xm, ym) = (x_max(&points, markers).max(x_end), y_max(&points));
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..xm, 0.0..ym)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .axis_desc_style(("sans-serif", 15))
            .label_style(("sans-serif", 13))
            .light_line_style(RGBColor(238, 238, 238))
            .y_label_formatter(&|v| number(*v))
            .x_label_formatter(&|v| number(*v))
            .draw()
            .map_err(chart_err)?;
        for m in markers.iter().filter(|m| drawable(m.x)) {
            let style = m.color.stroke_width(1);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(m.x, 0.0), (m.x, ym)],
                    4,
                    4,
                    style,
                ))
                .map_err(chart_err)?;
            let pos = chart.backend_coord(&(m.x, ym));
            root.draw(&Text::new(
                m.label.clone(),
                (pos.0 + 4, pos.1 + 4 + 16 * m.row),
                ("sans-serif", 13).into_font().color(&m.color),
            ))
            .map_err(chart_err)?;
        }
        let corner = chart.backend_coord(&(xm, 0.0));
        for (note, at) in notes.iter().zip(note_positions(corner, notes)) {
            root.draw(&Text::new(
                note.clone(),
                at,
                ("sans-serif", 14).into_font().color(&RGBColor(51, 51, 51)),
            ))
            .map_err(chart_err)?;
        }
        for (l, points) in lines.iter().zip(&points).filter(|(_, p)| !p.is_empty()) {
            let c = l.color;
            let style = c.stroke_width(2);
            let anno = if l.dashed {
                chart
                    .draw_series(DashedLineSeries::new(points.clone(), 8, 5, style))
                    .map_err(chart_err)?
            } else {
                chart
                    .draw_series(LineSeries::new(points.clone(), style))
                    .map_err(chart_err)?
            };
            // The legend's sample is dashed like its line: two short strokes with a gap.
            let gap = if l.dashed { 5 } else { 0 };
            anno.label(l.label.clone()).legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (11 - gap, 0)], c.stroke_width(2))
                    + PathElement::new(vec![(11, 0), (22, 0)], c.stroke_width(2))
            });
        }
        if points.iter().any(|p| !p.is_empty()) {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(chart_err)?;
        } else {
            root.draw(&Text::new(
                "no data: the run's timeline.csv has no rows for this chart",
                (W as i32 / 2 - 200, H as i32 / 2),
                ("sans-serif", 15)
                    .into_font()
                    .color(&RGBColor(120, 120, 120)),
            ))
            .map_err(chart_err)?;
        }
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

fn connections_chart(run: &Charted, x_desc: &str) -> io::Result<String> {
    let tl = run.timeline;
    let mut lines = vec![
        Line {
            label: "attempts".into(),
            points: steps(tl.series("attempts")),
            color: color(0),
            dashed: false,
        },
        Line {
            label: "completed".into(),
            points: steps(tl.series("completed")),
            color: color(1),
            dashed: false,
        },
    ];
    for (i, (kind, points)) in tl.errors_by_kind().into_iter().enumerate() {
        lines.push(Line {
            label: format!("failed: {kind}"),
            points: steps(points),
            color: color(2 + i),
            dashed: true,
        });
    }
    if tl.series("dropped").iter().any(|p| p.1 > 0.0) {
        lines.push(Line {
            label: "dropped (max in flight)".into(),
            points: steps(tl.series("dropped")),
            color: RGBColor(120, 120, 120),
            dashed: true,
        });
    }
    // A --client-exec run has no per-interval counts: its sampled rate stands in.
    let sampled = !tl.has("attempts") && tl.has("rate");
    if sampled {
        lines.push(Line {
            label: "client connections /s (sampled)".into(),
            points: tl.series("rate"),
            color: color(0),
            dashed: false,
        });
    }
    let markers = first_error_marker(run.summary)
        .into_iter()
        .collect::<Vec<_>>();
    draw(
        if sampled {
            "connections per second"
        } else {
            "connections per interval"
        },
        x_desc,
        run_end(std::slice::from_ref(run)),
        &lines,
        &markers,
        &[],
    )
}

fn overlay_connections_chart(runs: &[Charted], x_desc: &str) -> io::Result<String> {
    let mut lines = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        lines.push(Line {
            label: format!("{}: completed", r.label),
            points: steps(r.timeline.series("completed")),
            color: color(i),
            dashed: false,
        });
        let errors = r.timeline.series("errors");
        if errors.iter().any(|p| p.1 > 0.0) {
            lines.push(Line {
                label: format!("{}: failed", r.label),
                points: steps(errors),
                color: color(i),
                dashed: true,
            });
        }
    }
    draw(
        "connections per interval",
        x_desc,
        run_end(runs),
        &lines,
        &[],
        &[],
    )
}

fn first_error_marker(s: &Summary) -> Option<Marker> {
    s.exhaustion.first_s.map(|t| Marker {
        x: t,
        label: format!("measured first error {t:.2} s"),
        color: RGBColor(198, 40, 40),
        row: 1,
    })
}

/// The model's TIME_WAIT line, min(R × t, P), over the run's duration.
fn model_line(s: &Summary, t_end: f64) -> Option<Vec<(f64, f64)>> {
    let p = pred(s)
        .and_then(|p| p.steady_timewait_max)
        .or_else(|| pred(s).map(|p| p.ports_effective as f64))?;
    let rate = match pred(s).and_then(|p| p.first_error_s) {
        Some(t) if t > 0.0 => pred(s).map(|p| p.ports_effective as f64)? / t,
        _ => s.achieved_rate,
    };
    if rate.is_nan() || rate <= 0.0 || !rate.is_finite() || !p.is_finite() {
        return None;
    }
    let load_end = s.load_duration_s.min(t_end).max(0.0);
    let knee = p / rate;
    let mut pts = vec![(0.0, 0.0)];
    if knee < load_end {
        pts.push((knee, p));
        pts.push((t_end, p));
    } else {
        pts.push((load_end, rate * load_end));
        pts.push((t_end, rate * load_end));
    }
    Some(pts)
}

fn timewait_chart(runs: &[Charted], x_desc: &str) -> io::Result<String> {
    let mut lines = Vec::new();
    let mut markers = Vec::new();
    let one = runs.len() == 1;
    for (i, r) in runs.iter().enumerate() {
        let s = r.summary;
        let tl = r.timeline;
        let prefix = if one {
            String::new()
        } else {
            format!("{}: ", r.label)
        };
        let t_end = tl
            .series("t_s")
            .last()
            .map_or(s.duration_s, |p| p.0)
            .max(s.duration_s);
        let sides = [("tw_client", "client"), ("tw_server", "server")];
        let shown: Vec<_> = sides
            .iter()
            .filter(|(col, _)| tl.has(col))
            // Overlaid runs show the side their model predicts (or the client's).
            .filter(|(_, side)| one || pred_side(s).map_or(*side == "client", |p| p == *side))
            .collect();
        for (j, (col, side)) in shown.iter().enumerate() {
            lines.push(Line {
                label: format!("{prefix}TIME_WAIT {side}"),
                points: tl.series(col),
                color: if one { color(j) } else { color(i) },
                dashed: false,
            });
        }
        if let Some(points) = model_line(s, t_end) {
            lines.push(Line {
                label: format!("{prefix}model min(R × t, P)"),
                points,
                color: if one { RGBColor(90, 90, 90) } else { color(i) },
                dashed: true,
            });
        }
        if one {
            if let Some(t) = pred(s).and_then(|p| p.first_error_s) {
                markers.push(Marker {
                    x: t,
                    label: format!("predicted P / R = {t:.2} s"),
                    color: RGBColor(90, 90, 90),
                    row: 0,
                });
            }
            markers.extend(first_error_marker(s));
        }
    }
    let mut notes = Vec::new();
    if let [r] = runs {
        let s = r.summary;
        if let (Some(p), Some(t)) = (
            pred(s).map(|p| p.ports_effective as f64),
            pred(s).map(|p| p.hold_s),
        ) {
            notes.push(format!("P = {p:.0} ports, T = {t} s hold"));
        }
        if let Some(rate) = pred(s).and_then(|p| p.sustainable_rate) {
            notes.push(format!("sustainable P / T = {rate:.2} /s"));
        }
    }
    draw(
        "sockets in TIME_WAIT",
        x_desc,
        run_end(runs),
        &lines,
        &markers,
        &notes,
    )
}

/// The last time any of the runs covers (their timelines' ends, or their durations).
fn run_end(runs: &[Charted]) -> f64 {
    runs.iter()
        .map(|r| {
            r.timeline
                .series("t_s")
                .last()
                .map_or(r.summary.duration_s, |p| p.0)
        })
        .fold(0.0, f64::max)
}

fn pred_side(s: &Summary) -> Option<&str> {
    pred(s).map(|p| p.timewait_side.name())
}

fn latency_chart(runs: &[Charted], x_desc: &str) -> io::Result<String> {
    let ms = |pts: Vec<(f64, f64)>| pts.into_iter().map(|(t, v)| (t, v / 1000.0)).collect();
    let mut lines = Vec::new();
    if let [r] = runs {
        for (i, (col, label)) in [
            ("connect_p50_us", "p50"),
            ("connect_p99_us", "p99"),
            ("connect_max_us", "max"),
        ]
        .into_iter()
        .enumerate()
        {
            lines.push(Line {
                label: label.into(),
                points: steps(ms(r.timeline.series(col))),
                color: color(i),
                dashed: col == "connect_max_us",
            });
        }
    } else {
        for (i, r) in runs.iter().enumerate() {
            lines.push(Line {
                label: format!("{}: p99", r.label),
                points: steps(ms(r.timeline.series("connect_p99_us"))),
                color: color(i),
                dashed: false,
            });
        }
    }
    draw(
        "connect latency (ms)",
        x_desc,
        run_end(runs),
        &lines,
        &[],
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_interval_counts_become_steps_over_their_interval() {
        let s = steps(vec![(1.0, 5.0), (2.0, 7.0)]);
        assert_eq!(s, vec![(0.0, 5.0), (1.0, 5.0), (1.0, 7.0), (2.0, 7.0)]);
        // Quarter-second intervals start a quarter second before their end.
        let s = steps(vec![(0.25, 1.0), (0.5, 2.0)]);
        assert_eq!(s[0], (0.0, 1.0));
        assert!(steps(Vec::new()).is_empty());
    }

    #[test]
    fn errors_by_kind_are_split_into_one_series_each() {
        let tl = Timeline {
            columns: ["t_s", "errors_by_kind"].map(String::from).to_vec(),
            rows: vec![
                vec!["1.000".into(), String::new()],
                vec!["2.000".into(), "EADDRNOTAVAIL=12 ECONNRESET=1".into()],
            ],
        };
        let kinds = tl.errors_by_kind();
        assert_eq!(kinds["EADDRNOTAVAIL"], vec![(1.0, 0.0), (2.0, 12.0)]);
        assert_eq!(kinds["ECONNRESET"], vec![(1.0, 0.0), (2.0, 1.0)]);
        assert_eq!(kinds.len(), 2);
    }

    #[test]
    fn text_is_escaped_and_axis_numbers_are_short() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(number(250.0), "250");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(0.999_999_9), "1");
        assert_eq!(number(0.5), "0.5");
    }

    #[test]
    fn notes_stack_up_from_the_axis_aligned_on_the_widest() {
        let notes = ["ab".to_string(), "abcd".to_string()];
        // 4 characters wide: 12 + 28 px left of the corner; rows 18 px apart, the last 40 px
        // above the axis.
        assert_eq!(note_positions((500, 300), &notes), [(460, 242), (460, 260)]);
        assert!(note_positions((500, 300), &[]).is_empty());
    }
}
