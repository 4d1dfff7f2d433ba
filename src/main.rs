//! portlab's entry point: parse, call the command (`cmd::<name>::run`), and turn its outcome
//! into an exit code (0 ran, 1 a check failed, 2 bad input or setup failure, 3 ran but the
//! results are incomplete, 4 inconclusive, 130 interrupted).

use portlab::cmd;
use portlab::cmd::cli::{Cli, Command};
use portlab::say::Output;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

#[cfg(target_os = "linux")]
#[path = "early_linux.rs"]
mod early;

fn main() -> ExitCode {
    // Blocked before main on Linux (early_linux.rs), here elsewhere: a signal that comes
    // while the flags are read waits until this process has chosen what it does.
    portlab::sys::block_stop_signals();
    let cli = match Cli::try_parse_args() {
        Ok(cli) => cli,
        Err(e) => {
            portlab::sys::release_stop_signals();
            e.exit()
        }
    };
    // run and suite count a signal (the run then stops, writing everything); every other
    // command ends by it as usual, a pending one now.
    if matches!(&cli.command, Command::Run(_))
        || matches!(&cli.command, Command::Suite(args) if !args.dry_run)
    {
        portlab::sys::catch_stop_signals();
    }
    portlab::sys::release_stop_signals();
    let mut out = Stdout::default();
    let result = match &cli.command {
        Command::Run(args) => cmd::run::run(args, &mut out),
        Command::Predict(args) => cmd::predict::run(args, &mut out),
        Command::Inspect(args) => cmd::inspect::run(args, &mut out),
        Command::Report(args) => cmd::report::run(args, &mut out),
        Command::Merge(args) => cmd::merge::run(args, &mut out),
        Command::Suite(args) => cmd::suite::run(args, &mut out),
        Command::Watch(args) => cmd::watch::run(args, &mut out),
        Command::Scenarios(args) => cmd::scenarios::run(args, &mut out),
        Command::Completions(args) => cmd::completions::run(args, &mut out),
        Command::Man(args) => cmd::man::run(args, &mut out),
    };
    let _ = out.flush();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", portlab::report::chain(&e));
            ExitCode::from(cmd::exit::SETUP)
        }
    }
}

/// stdout for every command. A reader that went away (`portlab run | head`) is not an
/// error: from the first broken pipe on, output is dropped, [`Output::closed`] says so
/// (watch stops there), and the command goes on to its own exit code. This is the one place
/// a broken pipe is handled.
#[derive(Default)]
struct Stdout {
    gone: bool,
}

impl Output for Stdout {
    fn closed(&self) -> bool {
        self.gone
    }

    fn is_terminal(&self) -> bool {
        io::stdout().is_terminal()
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.gone {
            return Ok(buf.len());
        }
        match io::stdout().lock().write(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.gone = true;
                Ok(buf.len())
            }
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.gone {
            return Ok(());
        }
        match io::stdout().lock().flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.gone = true;
                Ok(())
            }
            r => r,
        }
    }
}
