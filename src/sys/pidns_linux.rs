//! A user's command in a PID namespace of its own, so that the kernel ends everything it
//! forks when portlab dies, `kill -9` included: shells, pipelines, and daemons that
//! double-fork or call setsid (which leave the process group and ignore a parent's death).
//!
//! Three processes, all in the process group portlab signals:
//!
//! - A, portlab's child (the pid portlab waits for): SIGKILL when portlab dies
//!   (PR_SET_PDEATHSIG, set by the caller). It creates the namespace, waits for B, and ends
//!   the way the command ended (same exit code, or the same signal raised on itself), so
//!   portlab's view of the command is unchanged.
//! - B, the namespace's init (pid 1 in it): SIGKILL when A dies. It starts C, reaps whatever
//!   is orphaned into the namespace, and exits when C exits. When a PID namespace's init ends,
//!   the kernel SIGKILLs every process left in it: nothing the command forked survives.
//! - C, the command (pid 2 in the namespace), with SIGINT and SIGTERM at their defaults.
//!
//! A and B never exec: everything between fork and their `_exit` is an async-signal-safe
//! system call on plain integers. The namespace shares /proc with the host (no mount
//! namespace): `/proc/self` and the host pids stay as the command expects.
//!
//! Needs CAP_SYS_ADMIN in the caller's user namespace: root, or a lab's user namespace.
//! Elsewhere [`enter`] changes nothing and the process group plus PR_SET_PDEATHSIG remain the
//! bound (a child that leaves the group may outlive a `kill -9` of portlab).

use std::io;

/// Called between fork and exec in portlab's child (A). Returns in the command's process (C),
/// which then execs; A and B never return. Ok without a namespace when the kernel refuses
/// one (no privilege).
///
/// # Safety
/// Only between fork and exec, in a single-threaded child.
pub unsafe fn enter() -> io::Result<()> {
    if libc::unshare(libc::CLONE_NEWPID) != 0 {
        return Ok(());
    }
    // status: B tells A how C ended. life: its write end is held by A alone, so B sees it
    // close (POLLHUP) if A died before B's PR_SET_PDEATHSIG was in place.
    let mut status = [-1; 2];
    let mut life = [-1; 2];
    if libc::pipe2(status.as_mut_ptr(), libc::O_CLOEXEC) != 0
        || libc::pipe2(life.as_mut_ptr(), libc::O_CLOEXEC) != 0
    {
        return Err(io::Error::last_os_error());
    }
    let b = libc::fork();
    if b < 0 {
        return Err(io::Error::last_os_error());
    }
    if b == 0 {
        libc::close(life[1]);
        libc::close(status[0]);
        init(life[0], status[1])
    } else {
        libc::close(life[0]);
        libc::close(status[1]);
        ignore_stop_signals();
        close_all_but(&[status[0], life[1]]);
        let mut b_status = 0;
        while libc::waitpid(b, &mut b_status, 0) < 0 {
            if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                libc::_exit(127);
            }
        }
        let mut c_status: libc::c_int = 0;
        let n = libc::read(
            status[0],
            std::ptr::addr_of_mut!(c_status).cast(),
            std::mem::size_of::<libc::c_int>(),
        );
        let ended = if n == std::mem::size_of::<libc::c_int>() as isize {
            c_status
        } else {
            b_status
        };
        end_as(ended)
    }
}

/// B: the namespace's init. Starts C (returning in it), then reaps until C ends.
unsafe fn init(life: libc::c_int, status: libc::c_int) -> io::Result<()> {
    if libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    ) != 0
    {
        libc::_exit(127);
    }
    // A died before the line above: no signal will come. (getppid() is 0 here: A lives in
    // the parent namespace.)
    let mut p = libc::pollfd {
        fd: life,
        events: libc::POLLIN,
        revents: 0,
    };
    if libc::poll(&mut p, 1, 0) > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        libc::_exit(127);
    }
    let c = libc::fork();
    if c < 0 {
        libc::_exit(127);
    }
    if c == 0 {
        // C: the command. portlab's handlers would be reset at exec anyway; an ignored
        // signal would not, so both are set to their defaults explicitly.
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        return Ok(());
    }
    ignore_stop_signals();
    close_all_but(&[status]);
    let mut c_status = 0;
    loop {
        let mut st = 0;
        let r = libc::waitpid(-1, &mut st, 0);
        if r == c {
            c_status = st;
            break;
        }
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    libc::write(
        status,
        std::ptr::addr_of!(c_status).cast(),
        std::mem::size_of::<libc::c_int>(),
    );
    // The kernel now SIGKILLs whatever is left in the namespace.
    libc::_exit(0)
}

/// A and B ignore SIGINT and SIGTERM: portlab's stop reaches the whole group, and it is the
/// command's to act on (a namespace's init would drop it anyway).
unsafe fn ignore_stop_signals() {
    libc::signal(libc::SIGINT, libc::SIG_IGN);
    libc::signal(libc::SIGTERM, libc::SIG_IGN);
}

/// A ends the way `status` (a waitpid status) says: its exit code, or its signal raised on
/// itself (without a core dump of this copy of portlab).
unsafe fn end_as(status: libc::c_int) -> ! {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
        libc::_exit(128 + sig);
    }
    libc::_exit(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        127
    })
}

/// Closes every descriptor but `keep`: A and B must not hold the command's stdout and stderr
/// (portlab reads them to their end) nor the pipe on which portlab learns that the exec
/// succeeded.
unsafe fn close_all_but(keep: &[libc::c_int]) {
    // No allocation between fork and exec: a small array on the stack, sorted in place.
    let mut sorted = [libc::c_uint::MAX; 4];
    for (slot, fd) in sorted.iter_mut().zip(keep) {
        *slot = *fd as libc::c_uint;
    }
    sorted.sort_unstable();
    let mut from: libc::c_uint = 0;
    for k in sorted {
        if k > from {
            let to = k - 1;
            if libc::syscall(libc::SYS_close_range, from, to, 0) != 0 {
                // Before Linux 5.9: one by one, up to the descriptor limit.
                let mut lim: libc::rlimit = std::mem::zeroed();
                let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                    lim.rlim_cur.min(1 << 20) as libc::c_uint
                } else {
                    4096
                };
                for fd in from..=to.min(max) {
                    libc::close(fd as libc::c_int);
                }
            }
        }
        if k == libc::c_uint::MAX {
            break;
        }
        from = k + 1;
    }
}
