"""Launching: whether an MPI launcher started this process, mpi4py imported with a clear message, and
the job ended as a whole when one rank fails (the abort hooks, exit_job) or hangs (the watchdog).

A failing rank ends the whole job. With several ranks, world() makes an uncaught exception (Ctrl-C
included) print its traceback and then call MPI_Abort: otherwise the rank would finalize MPI and exit,
and the others would wait for it in their next collective forever. `python -m mpi4py` does the same
for exceptions, but only once MPI is initialised, so a program calls world() before anything that can
fail. A program that stops itself with a status (sys.exit, argparse's usage errors) ends through
exit_job(status). A rank that hangs without failing (a deadlock, a stuck file system, a stopped
process) is ended by the others: a rank that waits in one collective longer than set_timeout's
seconds (TIMEOUT by default, as PyTorch's process groups) says so and aborts the job, from a watchdog
thread that world() starts (NCCL's collectives are asynchronous and are not watched). These are the
only changes world() makes to the process, and only under a launcher with more than one rank; a
one-process import changes nothing.
"""
import contextlib
import functools
import os
import signal
import sys
import threading
import time

# Set by the launchers: MPICH/Hydra (PMI_*), Open MPI (OMPI_*), PMIx-based ones (PMIX_RANK).
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")
ABORT_PAUSE = 0.5             # seconds between a failing rank's last output and MPI_Abort
TIMEOUT = 600.0               # seconds a rank may wait in one collective (PyTorch's NCCL default: 10 min)
_job = None                   # the world communicator once end_job_on_failure has been installed


def launched_by_mpi():
    """True when an MPI launcher started this process, or the program has already initialised MPI
    through mpi4py itself (`python -m mpi4py` does); importing the mpi4py package alone does not count."""
    return "mpi4py.MPI" in sys.modules or any(name in os.environ for name in LAUNCHER_VARIABLES)


def mpi():
    """mpi4py.MPI, or a RuntimeError that says what to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        variables = [name for name in LAUNCHER_VARIABLES if name in os.environ]
        raise RuntimeError(f"minigrad.distributed: this process was started by an MPI launcher "
                           f"({', '.join(variables) or 'mpi4py.MPI imported'}) but mpi4py cannot be imported "
                           f"({error}); install it with: pip install \"minigrad[distributed]\"") from None
    return MPI


def end_job_on_failure(world):
    """What world() installs with several ranks: an uncaught exception or a hang on this rank ends
    every rank of `world`, and so does exit_job with a failure."""
    global _job
    _job = world
    _abort_on_uncaught_exception(world)
    watchdog.start(world)


def set_timeout(seconds):
    """How long a rank may wait in one collective for the others before it ends the job (None: for
    ever). Long enough for the slowest legitimate wait: rank 0 writing a checkpoint, a rank decoding
    a larger share of the images at start-up."""
    if seconds is not None and not seconds > 0:
        raise ValueError(f"set_timeout: expected a number of seconds > 0, or None, got {seconds!r}")
    watchdog.timeout = seconds


class Watchdog:
    """Watches this rank's collectives from a thread of its own: one that has waited longer than the
    timeout means another rank hangs (or this one does, with them), and nothing else would end it."""

    def __init__(self):
        self.timeout, self.wait, self.depth, self.thread = TIMEOUT, None, 0, None

    @contextlib.contextmanager
    def waiting(self, what):
        if self.depth == 0:                       # (a collective that calls another is one wait)
            self.wait = (time.monotonic(), what)  # (one attribute: the thread reads both at once)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0:
                self.wait = None

    def start(self, comm):
        if self.thread is None:
            self.thread = threading.Thread(target=self._watch, args=(comm,), name="minigrad-watchdog", daemon=True)
            self.thread.start()

    def _watch(self, comm):
        while True:
            timeout = self.timeout                # (read once: set_timeout may change it meanwhile)
            time.sleep(1.0 if timeout is None else min(1.0, timeout / 10))
            wait = self.wait
            if wait is not None and timeout is not None and time.monotonic() - wait[0] > timeout:
                print(f"minigrad.distributed: rank {comm.rank} of {comm.size} (host {os.uname().nodename}, pid "
                      f"{os.getpid()}) waited more than {timeout:g} s in {wait[1]} for the other ranks: one "
                      f"of them hangs or has stopped; ending every rank of the job (exit status 1)",
                      file=sys.stderr, flush=True)
                time.sleep(ABORT_PAUSE)
                if mpi().Query_thread() == mpi().THREAD_MULTIPLE:
                    comm.abort(1)                 # (MPI_Abort from this thread while the main one waits in MPI)
                os._exit(1)                       # the launcher ends the others when a rank exits unfinalized


watchdog = Watchdog()


def bounded(what):
    """Decorate a blocking collective so that the watchdog knows while this rank waits in it."""
    def decorate(method):
        @functools.wraps(method)
        def waits(self, *args, **kwargs):
            with watchdog.waiting(what):
                return method(self, *args, **kwargs)
        return waits
    return decorate


def _abort_on_uncaught_exception(comm):
    """Make an uncaught exception print its traceback as usual, then end every rank (MPI_Abort, exit
    status 1, or 130 for Ctrl-C as a shell reports it), instead of leaving the other ranks waiting."""
    previous = sys.excepthook

    def hook(kind, value, traceback):
        try:
            previous(kind, value, traceback)
        finally:
            _abort_after_output(comm, 128 + signal.SIGINT if issubclass(kind, KeyboardInterrupt) else 1)

    sys.excepthook = hook


def exit_job(status=0):
    """sys.exit(status) for a program that may run on several ranks: a failure (a non-zero status, or a
    message, which is printed) on one rank ends the whole job through MPI_Abort. Exiting normally would
    finalize MPI on this rank alone and leave the others waiting in a collective."""
    if status not in (None, 0) and _job is not None:
        if not isinstance(status, int):
            print(status, file=sys.stderr)
        _abort_after_output(_job, status if isinstance(status, int) else 1)
    sys.exit(status)


def _abort_after_output(comm, code):
    """Say which rank ends the job (the launcher interleaves the ranks' output unlabelled), then
    MPI_Abort once what this rank printed has left it. The launcher forwards a rank's output on its
    own schedule and stops forwarding when it kills the job: aborting at once lost the traceback in
    about one run in ten under MPICH's mpiexec, a short pause lost none in forty."""
    sys.stdout.flush()
    print(f"minigrad.distributed: rank {comm.rank} of {comm.size} (host {os.uname().nodename}, pid {os.getpid()}) "
          f"failed; ending every rank of the job (exit status {code})", file=sys.stderr, flush=True)
    time.sleep(ABORT_PAUSE)
    comm.abort(code)
