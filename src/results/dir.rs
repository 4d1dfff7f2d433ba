//! The results directory and the files in it, written safely: a file is always created new
//! (never through a symlink, never over a file portlab did not just make), summary.json and
//! suite.json are replaced atomically (a reader never sees a torn or empty one), and a run
//! that could not be set up takes back what it created.

use super::summary::Summary;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// A results directory and the files portlab created in it.
#[derive(Debug)]
pub struct ResultsDir {
    path: PathBuf,
    /// portlab made the directory itself (so it may remove it again).
    made: bool,
    /// `--force`: files of portlab's names already there are replaced.
    force: bool,
    /// What portlab created, for [`ResultsDir::discard`].
    created: Mutex<Vec<PathBuf>>,
    /// The directory, locked (flock) while this value lives: a second run on it is refused.
    _lock: Option<File>,
}

impl ResultsDir {
    /// Prepares `out`, or a fresh results/<name>-<UTC time>/ (for a run, or a suite named
    /// "suite"). An existing `out` must be an empty directory unless `force`.
    pub fn prepare(name: &str, out: Option<&Path>, force: bool) -> Result<ResultsDir> {
        let path = match out {
            Some(d) => d.to_path_buf(),
            None => fresh_path(name),
        };
        // A link there would send the files (--force: replacing some) wherever it points.
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if meta.file_type().is_symlink() {
                let to = std::fs::read_link(&path)
                    .map(|t| format!(" (to {})", t.display()))
                    .unwrap_or_default();
                anyhow::bail!(
                    "the results directory {} (--out) is a symbolic link{to}; portlab does not write through one: name the directory itself",
                    path.display()
                );
            }
        }
        let existed = path.exists();
        if existed && !force {
            let mut entries = std::fs::read_dir(&path).with_context(|| {
                format!(
                    "cannot use {} as the results directory (--out); name a new or empty directory",
                    path.display()
                )
            })?;
            if entries.next().is_some() {
                anyhow::bail!(
                    "the results directory {} (--out) is not empty; name a new or empty directory, or add --force to replace portlab's files in it",
                    path.display()
                );
            }
        }
        std::fs::create_dir_all(&path).with_context(|| {
            format!(
                "cannot create the results directory {} (choose another with --out DIR)",
                path.display()
            )
        })?;
        // One run per directory: two at once would mix their files.
        let lock = crate::sys::lock_directory(&path).map_err(|e| match e {
            crate::sys::LockError::Busy(pid) => anyhow::anyhow!(
                "the results directory {} (--out) is in use by another portlab run ({}); wait for it to end, or choose another --out",
                path.display(),
                pid.map_or_else(|| "pid unknown".to_string(), |p| format!("pid {p}"))
            ),
            crate::sys::LockError::Io(e) => anyhow::Error::new(e).context(format!(
                "cannot lock the results directory {} (--out); name a real directory",
                path.display()
            )),
        })?;
        Ok(ResultsDir {
            path,
            made: !existed,
            force,
            created: Mutex::new(Vec::new()),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the file `name` in the directory (see [`create_new`]); with `--force` a file
    /// (or symlink) of that name is removed first, never followed.
    pub fn create(&self, name: &str) -> io::Result<File> {
        let path = self.path.join(name);
        if self.force {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let file = create_new(&path)?;
        self.remember(path);
        Ok(file)
    }

    /// Writes `bytes` as the file `name` in one go (see [`write_atomic`]).
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.path.join(name);
        write_atomic(&path, bytes)?;
        self.remember(path);
        Ok(())
    }

    fn remember(&self, path: PathBuf) {
        if let Ok(mut c) = self.created.lock() {
            if !c.contains(&path) {
                c.push(path);
            }
        }
    }

    /// Takes back what a run that could not be set up (exit 2: nothing sent) created: its
    /// files, and the directory when portlab made it and it is empty now.
    pub fn discard(self) {
        if let Ok(created) = self.created.lock() {
            for f in created.iter() {
                let _ = std::fs::remove_file(f);
            }
        }
        if self.made {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

/// results/<name>-<UTC time>/, with -2, -3 ... when a run of the same second exists.
fn fresh_path(name: &str) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let base = PathBuf::from("results").join(format!("{name}-{stamp}"));
    let mut dir = base.clone();
    let mut n = 2;
    while dir.exists() {
        dir = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    dir
}

/// Creates a file that does not exist yet. O_CREAT | O_EXCL (Windows: CREATE_NEW) fails on
/// any existing name, a symlink included, dangling or not, so nothing is ever written
/// through a link someone else placed.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Replaces `path` with `bytes` atomically: they go to a new temporary file beside it, are
/// synced, and the temporary file is renamed over `path` (rename replaces a symlink, it does
/// not follow it). On failure `path` is as it was and the temporary file is gone.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    // A name nobody can guess (a file placed there beforehand cannot block the write), and
    // another on the rare clash.
    let mut attempt = 0;
    let (tmp, file) = loop {
        let tmp = path.with_file_name(format!(
            ".{}.{}.{:016x}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            unguessable()
        ));
        match create_new(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let written = {
        let mut f = file;
        f.write_all(bytes).and_then(|()| f.sync_all())
    };
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// 64 random bits: std's hasher keys come from the OS's random source.
fn unguessable() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Reads a saved run: a results directory (its summary.json) or a summary.json itself.
pub fn load_summary(path: &Path) -> Result<Summary> {
    let file = if path.is_dir() {
        path.join("summary.json")
    } else {
        path.to_path_buf()
    };
    let text =
        crate::input::read_to_string(&file, crate::input::SUMMARY_LIMIT).with_context(|| {
            format!(
                "cannot read {}; name a results directory (results/<run>/) or its summary.json",
                file.display()
            )
        })?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a portlab summary.json (written by portlab {}?)",
            file.display(),
            env!("CARGO_PKG_VERSION")
        )
    })
}

/// The saved runs `path` names: a results directory or a summary.json stands for itself; a
/// suite's results directory (no summary.json, its runs in subdirectories) for its runs, by
/// name.
pub fn runs_named(path: &Path) -> Vec<PathBuf> {
    if !path.is_dir() || path.join("summary.json").exists() {
        return vec![path.to_path_buf()];
    }
    let mut runs: Vec<_> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("summary.json").is_file())
        .collect();
    if runs.is_empty() {
        return vec![path.to_path_buf()];
    }
    runs.sort();
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_empty_out_is_refused_unless_forced() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("mine.txt"), "x").unwrap();
        let err = ResultsDir::prepare("r", Some(d.path()), false).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("not empty") && msg.contains("--force"),
            "{msg}"
        );
        let dir = ResultsDir::prepare("r", Some(d.path()), true).unwrap();
        dir.create("plan.toml").unwrap();
        assert!(
            d.path().join("mine.txt").exists(),
            "--force keeps other files"
        );
    }

    #[cfg(unix)]
    #[test]
    fn results_files_never_follow_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::os::unix::fs::symlink(&victim, out.join("plan.toml")).unwrap();
        // Not empty: refused outright.
        assert!(ResultsDir::prepare("r", Some(&out), false).is_err());
        // Forced: the link is replaced, its target untouched.
        let dir = ResultsDir::prepare("r", Some(&out), true).unwrap();
        dir.create("plan.toml").unwrap().write_all(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!out.join("plan.toml").is_symlink());
        // Even unforced, creating over a link fails instead of following it.
        std::fs::remove_file(out.join("plan.toml")).unwrap();
        std::os::unix::fs::symlink(&victim, out.join("plan.toml")).unwrap();
        assert!(create_new(&out.join("plan.toml")).is_err());
        // write_atomic replaces the link itself.
        std::os::unix::fs::symlink(&victim, out.join("summary.json")).unwrap();
        write_atomic(&out.join("summary.json"), b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(out.join("summary.json")).unwrap(),
            "{}"
        );
    }

    #[test]
    fn discard_takes_back_only_what_portlab_made() {
        let d = tempfile::tempdir().unwrap();
        let fresh = d.path().join("fresh");
        let dir = ResultsDir::prepare("r", Some(&fresh), false).unwrap();
        dir.create("plan.toml").unwrap();
        dir.write_atomic("summary.json", b"{}").unwrap();
        dir.discard();
        assert!(!fresh.exists(), "a directory portlab made is removed");

        std::fs::write(d.path().join("keep"), "x").unwrap();
        let dir = ResultsDir::prepare("r", Some(d.path()), true).unwrap();
        dir.create("plan.toml").unwrap();
        dir.discard();
        assert!(d.path().join("keep").exists() && !d.path().join("plan.toml").exists());
    }

    #[test]
    fn write_atomic_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("summary.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        // A directory cannot be replaced by a file: the old state stays, no temporary file.
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("x"), "x").unwrap();
        assert!(write_atomic(&sub, b"no").is_err());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_out_is_refused_even_with_force() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::create_dir(&target).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let msg = format!(
            "{:#}",
            ResultsDir::prepare("r", Some(&link), true).unwrap_err()
        );
        assert!(
            msg.contains("symbolic link") && msg.contains("--out"),
            "{msg}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_locked_out_is_refused_naming_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let first = ResultsDir::prepare("r", Some(d.path()), true).unwrap();
        let msg = format!(
            "{:#}",
            ResultsDir::prepare("r", Some(d.path()), true).unwrap_err()
        );
        assert!(msg.contains("in use"), "{msg}");
        #[cfg(target_os = "linux")]
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        assert!(ResultsDir::prepare("r", Some(d.path()), true).is_ok());
    }

    #[test]
    fn a_pre_created_temporary_file_does_not_block_write_atomic() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("summary.json");
        // The name the temporary file used to have: anyone could place it first.
        let old = d
            .path()
            .join(format!(".summary.json.{}.tmp", std::process::id()));
        std::fs::write(&old, "squatter").unwrap();
        write_atomic(&p, b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{}");
    }
}
