//! report.html in a real browser, since the page is meant to be opened in one: Debian's
//! headless chromium opens the page
//! of a real exhausting lab run and of a comparison of two runs, takes a screenshot (which
//! must not be blank), dumps the DOM (each chart must be there, drawn) and logs the console
//! (no errors). A page with a script error proves the error check can fail.
//! Skipped when chromium or a namespace is missing, except under CI=true.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHARTS: [&str; 3] = ["chart-connections", "chart-timewait", "chart-latency"];

/// True when chromium is installed; under CI=true its absence is a failure.
fn chromium_available(test: &str) -> bool {
    can_run(
        test,
        Path::new(CHROMIUM).exists(),
        "needs Debian's chromium (apt-get install chromium)",
    )
}

/// Runs headless chromium on `page` with `extra` flags, in a fresh profile, bounded by
/// timeout(1) so a hung browser cannot hang the test.
fn chromium(page: &Path, extra: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args(["120", CHROMIUM])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium failed on {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What the browser made of a page.
struct Seen {
    /// The DOM after the scripts ran.
    dom: String,
    /// Console lines chromium logged (both runs).
    console: Vec<String>,
    /// Non-white pixels in the 1280 x 2400 screenshot, and all pixels.
    ink: (usize, usize),
}

fn open(page: &Path) -> Seen {
    let shot_dir = tempfile::tempdir().unwrap();
    let shot = shot_dir.path().join("page.png");
    let a = chromium(
        page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400",
        ],
    );
    let b = chromium(page, &["--dump-dom"]);
    let console = [&a.stderr, &b.stderr]
        .iter()
        .flat_map(|e| {
            String::from_utf8_lossy(e)
                .lines()
                .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    Seen {
        dom: String::from_utf8_lossy(&b.stdout).into_owned(),
        console,
        ink: ink(&shot),
    }
}

/// Counts pixels that are not (near) white in a PNG.
fn ink(png_path: &Path) -> (usize, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).expect("chromium wrote no screenshot"),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let bytes = &buf[..info.buffer_size()];
    let px: Vec<&[u8]> = bytes.chunks(channels).collect();
    let inked = px
        .iter()
        .filter(|p| p.iter().take(3).any(|&c| c < 200))
        .count();
    (inked, px.len())
}

/// The part of the DOM from an element's id to the end of its figure.
fn figure<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element {id} in the page"));
    let end = dom[start..].find("</figure>").expect("figure not closed") + start;
    &dom[start..end]
}

fn assert_page_good(what: &str, seen: &Seen, lines_per_chart: usize) {
    let (inked, all) = seen.ink;
    assert!(
        inked * 50 > all,
        "{what}: the screenshot is (nearly) blank: {inked} of {all} pixels not white"
    );
    assert!(
        seen.console.is_empty(),
        "{what}: console errors: {:#?}",
        seen.console
    );
    assert!(
        seen.dom.contains("data-rendered=\"ok\"") && seen.dom.contains("data-errors=\"0\""),
        "{what}: the page's scripts did not finish without errors"
    );
    for id in CHARTS {
        let fig = figure(&seen.dom, id);
        assert!(fig.contains("<svg"), "{what}: {id} has no SVG");
        // Each drawn line is a polyline; axes and grid are <line>s.
        let drawn = fig.matches("<polyline").count();
        assert!(
            drawn >= lines_per_chart,
            "{what}: {id} has {drawn} drawn lines, expected at least {lines_per_chart}"
        );
        assert!(!fig.contains("no data"), "{what}: {id} says it has no data");
    }
    assert!(
        seen.dom.contains("class=\"verdict\""),
        "{what}: no verdict table"
    );
}

/// An exhausting lab run: 150 ports at 150/s run out at 1 s; 3 s in quarter-second intervals.
fn lab_run(dir: &Path, rate: &str) {
    let dir = dir.to_str().unwrap();
    portlab_ok(&[
        "run",
        "--lab",
        "--lab-port-range",
        "40000-40149",
        "--lab-tw-reuse",
        "0",
        "--rate",
        rate,
        "--duration",
        "3s",
        "--interval",
        "250ms",
        "-q",
        "--out",
        dir,
    ]);
}

/// `portlab ARGS`, which must succeed; its stdout.
fn portlab_ok(args: &[&str]) -> Vec<u8> {
    let out = Command::new(portlab()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "portlab {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
#[ignore = "needs chromium (apt-get install chromium); cargo test -- --include-ignored runs it"]
fn report_html_of_an_exhausting_lab_run_and_a_comparison_render_in_chromium() {
    let _turn = heavy();
    let test = "report_html_in_chromium";
    if !chromium_available(test) || !namespaces_available(test) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let (fast, slow): (PathBuf, PathBuf) = (root.path().join("fast"), root.path().join("slow"));
    lab_run(&fast, "150");
    lab_run(&slow, "100");

    // The run wrote its own page; it has every chart with content.
    let page = fast.join("report.html");
    let html = std::fs::read_to_string(&page).expect("the run wrote no report.html");
    // The SVG namespace is a name, not a fetch; nothing else may point outside the page.
    let html = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for outside in ["http://", "https://", " src=", "<link", "url("] {
        assert!(
            !html.contains(outside),
            "the page needs the network: {outside}"
        );
    }
    let seen = open(&page);
    // attempts, completed, failed: EADDRNOTAVAIL; TIME_WAIT client/server + model; p50/p99/max.
    assert_page_good("one run", &seen, 3);
    let tw = figure(&seen.dom, "chart-timewait");
    assert!(tw.contains("predicted P / R = 1.00 s"), "{tw}");
    assert!(tw.contains("measured first error"), "{tw}");
    assert!(tw.contains("sustainable P / T"), "{tw}");
    assert!(figure(&seen.dom, "chart-connections").contains("EADDRNOTAVAIL"));

    // `portlab report A B --format html`: both runs overlaid.
    let (fast_s, slow_s) = (fast.to_str().unwrap(), slow.to_str().unwrap());
    let page = portlab_ok(&["report", "--format", "html", fast_s, slow_s]);
    let cmp = root.path().join("compare.html");
    std::fs::write(&cmp, page).unwrap();
    let seen = open(&cmp);
    assert_page_good("comparison", &seen, 2);
    for id in CHARTS {
        let fig = figure(&seen.dom, id);
        assert!(
            fig.contains("fast:") && fig.contains("slow:"),
            "{id} does not overlay both runs"
        );
    }

    // The suite form: a directory whose runs are its subdirectories.
    let page = portlab_ok(&["report", "--format", "html", root.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&page).contains("2 runs compared"));
}

#[test]
#[ignore = "needs chromium (apt-get install chromium); cargo test -- --include-ignored runs it"]
fn the_browser_checks_catch_a_script_error_and_a_blank_page() {
    let test = "html_checks_can_fail";
    if !chromium_available(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    // The same error hook as report.html, then a script that throws.
    let mut html = Vec::new();
    portlab::report::html::render_many(&[], &mut html).unwrap();
    let html = String::from_utf8(html).unwrap().replace(
        "<body>",
        "<body style=\"display:none\"><script>noSuchFunction();</script>",
    );
    std::fs::write(&page, html).unwrap();
    let seen = open(&page);
    assert!(
        !seen.console.is_empty() || !seen.dom.contains("data-errors=\"0\""),
        "a thrown error went unnoticed"
    );
    assert!(
        seen.dom.contains("data-rendered=\"errors\""),
        "{}",
        seen.dom
    );
    assert!(
        seen.ink.0 * 50 <= seen.ink.1,
        "a hidden page counted as drawn"
    );
}

#[test]
fn report_html_of_saved_runs_has_every_chart_and_the_model_line() {
    // No browser needed: the saved fixtures drawn as one page and as a comparison.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs");
    let page = |dirs: &[&str]| {
        let out = Command::new(portlab())
            .args(["report", "--format", "html"])
            .args(dirs.iter().map(|d| fixtures.join(d)))
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    // One run's exit code is its verdict's, as when it ran (this fixture's failed).
    let (code, one) = page(&["before"]);
    assert_eq!(code, Some(1));
    assert!(one.contains("<span class=\"fail\">FAIL</span>"));
    for id in CHARTS {
        assert!(figure(&one, id).contains("<polyline"), "{id} not drawn");
    }
    let tw = figure(&one, "chart-timewait");
    assert!(tw.contains("model min(R × t, P)"), "no model line");
    assert!(tw.contains("predicted P / R = 3.00 s"), "no predicted mark");
    assert!(
        tw.contains("measured first error 3.00 s"),
        "no measured mark"
    );
    assert!(one.contains("<table class=\"verdict\">"));
    assert!(one.contains("id=\"explanation\""));
    let (code, both) = page(&["before", "after"]);
    assert_eq!(code, Some(0), "a comparison only shows");
    assert!(both.contains("2 runs compared"));
    assert!(figure(&both, "chart-timewait").contains("after: model"));
    // A path that is not a run says so and exits 2, before anything is printed.
    let out = Command::new(portlab())
        .args(["report", "--format", "html", "/nonexistent/run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("summary.json"));
}

#[test]
fn report_html_reads_directories_as_report_does() {
    // html goes through `report`'s own directory handling: a directory that cannot be read
    // among several is named and left out while the others are drawn, the exit code is the
    // one `report` gives in text, and a failed verdict's checks are named on stderr alike.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs");
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("summary.json"), "{ not json").unwrap();
    let report = |format: &str, dirs: &[&Path]| {
        Command::new(portlab())
            .args(["report", "--format", format])
            .args(dirs)
            .output()
            .unwrap()
    };
    let before = fixtures.join("before");
    let both: [&Path; 2] = [&before, broken.path()];
    let (html, text) = (report("html", &both), report("text", &both));
    let page = String::from_utf8(html.stdout).unwrap();
    let err = String::from_utf8_lossy(&html.stderr);
    assert!(
        page.contains("<h1>portlab: "),
        "no page for the good run: {err}"
    );
    assert!(!page.contains("runs compared"), "the broken run was drawn");
    for id in CHARTS {
        assert!(figure(&page, id).contains("<polyline"), "{id} not drawn");
    }
    assert!(
        err.contains(&broken.path().display().to_string()) && err.contains("left out"),
        "the skipped directory is not named: {err}"
    );
    assert_eq!(html.status.code(), Some(2), "{err}");
    assert_eq!(html.status.code(), text.status.code());
    assert_eq!(err, String::from_utf8_lossy(&text.stderr));
    // One run: its verdict's exit code and its failed checks named, as in text.
    let (html, text) = (report("html", &[&before]), report("text", &[&before]));
    let err = String::from_utf8_lossy(&html.stderr);
    assert_eq!(html.status.code(), Some(1), "{err}");
    assert_eq!(html.status.code(), text.status.code());
    assert!(!err.is_empty(), "no failed check named");
    assert_eq!(err, String::from_utf8_lossy(&text.stderr));
}
