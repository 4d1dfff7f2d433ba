//! portlab.exe (x86_64-pc-windows-gnu, built with mingw-w64) run under Wine, through
//! test-support/wine/run.sh, so that the Windows code paths run somewhere, not only compile.
//!
//! What it proves: the Windows code paths (the registry read back by `inspect`, Winsock,
//! `C:\` paths, the profiles of `predict`) run and agree with the Linux build. What it cannot
//! prove: Windows' TCP behaviour. Under Wine the sockets are the host (Linux) kernel's.
//!
//! Runs when PORTLAB_WINE=1 or when wine, mingw-w64 and the Rust target are all present;
//! otherwise prints SKIPPED with the reason. Under CI=true a missing tool is a failure.

use crate::common;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const KEY: &str = r"HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test-support/wine/run.sh")
}

/// The reason Wine cannot be used here, or None.
fn missing() -> Option<String> {
    let has = |cmd: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut missing = Vec::new();
    if !has("wine") {
        missing.push("wine (apt-get install wine wine64)");
    }
    if !has("x86_64-w64-mingw32-gcc") {
        missing.push("x86_64-w64-mingw32-gcc (apt-get install gcc-mingw-w64-x86-64)");
    }
    let target = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("x86_64-pc-windows-gnu"));
    if !target {
        missing.push("the Rust target (rustup target add x86_64-pc-windows-gnu)");
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// True when the test may run; prints SKIPPED otherwise (fails under CI=true or
/// PORTLAB_WINE=1, where it must run).
fn available(test: &str) -> bool {
    let Some(reason) = missing() else {
        return true;
    };
    let must = std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("PORTLAB_WINE").as_deref() == Ok("1");
    if must {
        panic!("{test}: needs {reason}; CI (or PORTLAB_WINE=1) must run this test");
    }
    eprintln!("SKIPPED {test}: needs {reason}");
    false
}

/// `run.sh ARGS`, once the .exe is built (built once per test binary; the tests of this
/// file share one Wine prefix, so they run one at a time: `heavy`, which also keeps
/// Wine's load away from the timing tests).
fn wine(args: &[&str]) -> Output {
    static BUILT: OnceLock<()> = OnceLock::new();
    let _turn = common::heavy();
    BUILT.get_or_init(|| {
        let out = Command::new(script()).arg("build").output().unwrap();
        assert!(
            out.status.success(),
            "building portlab.exe: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    Command::new(script()).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace("\r\n", "\n")
}

#[test]
#[ignore = "needs wine and mingw-w64 (apt-get install wine gcc-mingw-w64-x86-64); cargo test -- --include-ignored runs it"]
fn predict_under_wine_matches_the_linux_build() {
    if !available("predict_under_wine") {
        return;
    }
    for profile in ["windows-2003", "windows-2008"] {
        let args = ["predict", "--profile", profile, "--rate", "30"];
        let exe = wine(&[&["portlab"][..], &args].concat());
        assert_eq!(exe.status.code(), Some(0), "{}", text(&exe.stderr));
        let native = Command::new(common::portlab()).args(args).output().unwrap();
        assert_eq!(text(&exe.stdout), text(&native.stdout), "{profile}");
        let out = text(&exe.stdout);
        match profile {
            // 3976 ports / 30 per s = 132.5 s; Windows names the error WSAENOBUFS.
            "windows-2003" => assert!(out.contains("after 132.53 s (WSAENOBUFS)"), "{out}"),
            // 16384 ports, 30/s x 240 s = 7200 busy: no exhaustion.
            _ => assert!(
                out.contains("16384 usable") && out.contains("exhausts           no"),
                "{out}"
            ),
        }
    }
}

#[test]
#[ignore = "needs wine and mingw-w64 (apt-get install wine gcc-mingw-w64-x86-64); cargo test -- --include-ignored runs it"]
fn inspect_reads_back_the_registry_values_wine_holds() {
    if !available("inspect_under_wine") {
        return;
    }
    for (name, value) in [("MaxUserPort", "5000"), ("TcpTimedWaitDelay", "30")] {
        let out = wine(&[
            "reg",
            "add",
            KEY,
            "/v",
            name,
            "/t",
            "REG_DWORD",
            "/d",
            value,
            "/f",
        ]);
        assert!(
            out.status.success(),
            "reg add {name}: {}",
            text(&out.stderr)
        );
    }
    let out = wine(&["portlab", "inspect", "--rate", "100", "--format", "json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "inspect under Wine printed no JSON ({e}): {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    let all = json.to_string();
    let setting = |name: &str| -> String {
        json["settings"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name))
            .map(|s| s["value"].to_string())
            .unwrap_or_else(|| panic!("{name} missing: {all}"))
    };
    assert!(setting("MaxUserPort").contains("5000"), "{all}");
    assert!(setting("TcpTimedWaitDelay").contains("30"), "{all}");
    // ... and the model works from them: ports 1025-5000 = 3976.
    assert!(all.contains("3976"), "{all}");
}

#[test]
#[ignore = "needs wine and mingw-w64 (apt-get install wine gcc-mingw-w64-x86-64); cargo test -- --include-ignored runs it"]
fn a_short_run_writes_its_results_under_a_windows_path() {
    if !available("run_under_wine") {
        return;
    }
    let dir = format!(r"C:\portlab-wine-{}", std::process::id());
    let out = wine(&[
        "portlab",
        "run",
        "--rate",
        "100",
        "--duration",
        "2s",
        "--out",
        &dir,
        "-q",
        "--format",
        "json",
    ]);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no summary ({e}), exit {:?}: {}\n{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(summary["attempts"], 200, "{summary:#}");
    assert_eq!(summary["completed"], 200, "{summary:#}");
    // The results are in the Wine prefix's C: drive.
    let prefix = std::env::var("PORTLAB_WINEPREFIX").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wine-prefix"),
        PathBuf::from,
    );
    let on_disk = prefix.join("drive_c").join(dir.trim_start_matches(r"C:\"));
    assert!(
        on_disk.join("summary.json").is_file(),
        "{} has no summary.json",
        on_disk.display()
    );
    std::fs::remove_dir_all(on_disk).unwrap();
}
