"""``aae reproduce --jobs N``: the runs a reproduction must train, trained N at a time, each in its
own process with an equal share of the CPU's cores.

On a CPU, independent runs side by side move more images per second than one run given every
core: a run's small matrix products (minibatches of 100-250) do not keep two cores busy, and its
optimizer steps and element-wise work run on one. ``benchmarks/jobs.py`` measures the ratio
(docs/results/throughput.md). A reproduction first gathers what it must train (a quiet pass over
its tables, :class:`Plan`), trains that here, then builds its tables from the records as usual."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import ConfigError, TrainingError, one_line
from ..training.runlog import read_history


@dataclass
class Plan:
    """The runs to train, each once, in the order found: run directory -> its config as a dict."""

    runs: dict[str, dict] = field(default_factory=dict)

    def add(self, cfg_dict: dict, run_dir: Path) -> None:
        self.runs.setdefault(str(run_dir), cfg_dict)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


MAX_JOBS = 1024


def check_jobs(jobs: int) -> None:
    if not 1 <= jobs <= MAX_JOBS:
        raise ConfigError(f"--jobs {jobs} is not allowed; give 1 to {MAX_JOBS} runs at a time")


def _worker_signals(parent: int) -> None:
    """Ctrl-C reaches the whole process group: a worker leaves it to the command, which stops the
    pool; stopped, a worker exits as from an error, releasing what it holds (its locks among them).
    And it dies with the command, however that dies (:func:`_die_with`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    _die_with(parent)


PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """SIGTERM to this worker when the command (pid ``parent``) dies, kill -9 included, so that no run
    trains on orphaned, holding its lock: Linux's PR_SET_PDEATHSIG (the kernel sends it), and on
    every system a thread that checks the parent's pid each second (a worker whose parent died is
    given to another, so its parent pid changes)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above: no signal will come
        sys.exit(1)
    threading.Thread(target=_watch, args=(parent,), name="aae-parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)  # its handler stops the run in the worker's main thread


def _train_one(task: tuple[dict, str, int, str]) -> tuple[str, float]:
    """One run, in a fresh worker process: ``threads`` torch threads, subnormals flushed (set before
    torch starts its threads, as the command line does), no progress bar, the run's own log."""
    cfg_dict, run_dir, threads, device = task
    import torch

    from ..config.load import from_dict
    from ..experiment import run
    from ..training.devices import flush_denormals

    with flush_denormals():
        torch.set_num_threads(threads)
        start = time.perf_counter()
        run(from_dict(cfg_dict), run_dir, resume=True, device=device, progress=False)
    return run_dir, time.perf_counter() - start


def _worker(task: tuple[dict, str, int, str], answer, parent: int) -> None:
    """A worker process: one run, its result or its error sent back on ``answer``."""
    _worker_signals(parent)
    try:
        outcome = ("done", _train_one(task))
    except Exception as exc:  # the run's error is the command's: sent back whole where it can be
        outcome = ("error", exc)
    try:
        answer.send(outcome)
    except Exception:  # an error that does not pickle: its line
        answer.send(("error", TrainingError(f"{task[1]}: {one_line(outcome[1])}")))


def train(plan: Plan, jobs: int, device: str = "auto", progress: bool = True) -> None:
    """Train every run of ``plan``, ``jobs`` at a time, the longest (by epochs) first so that the last
    minutes are not one long run alone. Each run resumes from its checkpoint, so an interrupted call
    loses at most an epoch of each; a failed run stops the others (they resume on the next call) and
    its error is raised here. Each run is a process of its own, started from this thread (so that
    PR_SET_PDEATHSIG, which follows the thread that started a process, fires only when the command
    dies)."""
    tasks = sorted(plan.runs.items(), key=lambda kv: -kv[1]["train"]["epochs"])
    if not tasks:
        return
    workers = min(jobs, len(tasks))
    threads = max(1, cores() // workers)
    runs = f"{len(tasks)} run" + ("s" if len(tasks) > 1 else "")
    print(f"training {runs}, {workers} at a time, {threads} thread{'s' if threads > 1 else ''} each", flush=True)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch state shared with this one
    epochs = sum(cfg["train"]["epochs"] for _, cfg in tasks)
    done = _epochs_done(tasks) if progress else 0
    bar = tqdm(total=epochs, initial=done, desc="epochs", unit="epoch", disable=not progress)
    main = threading.current_thread() is threading.main_thread()  # where signal handlers can be set
    before = signal.signal(signal.SIGTERM, _stop) if main else None
    waiting, running = list(tasks), {}
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                run_dir, cfg = waiting.pop(0)
                answer, send = context.Pipe(duplex=False)
                task = (cfg, run_dir, threads, device)
                worker = context.Process(target=_worker, args=(task, send, os.getpid()), daemon=True)
                worker.start()
                send.close()
                running[worker] = (run_dir, answer)
            ended = multiprocessing.connection.wait([w.sentinel for w in running], timeout=POLL)
            for worker in [w for w in running if w.sentinel in ended]:
                run_dir, answer = running.pop(worker)
                try:
                    outcome = answer.recv() if answer.poll() else None
                except (EOFError, OSError):  # it died mid-answer
                    outcome = None
                worker.join()
                answer.close()
                if outcome is None:
                    raise TrainingError(
                        f"the run {run_dir} stopped (exit status {worker.exitcode}); the same command again "
                        f"continues it from its last checkpoint"
                    )
                if outcome[0] == "error":
                    raise outcome[1]  # a worker's error is the command's
                tqdm.write(f"trained {run_dir} in {outcome[1][1] / 60:.1f} minutes")
            if progress:
                bar.update(_epochs_done(tasks) - bar.n)
    finally:
        for worker in running:  # the other runs stop where their last checkpoint is
            worker.terminate()
        for worker in running:
            worker.join()
        bar.close()
        if main:
            signal.signal(signal.SIGTERM, before)


def _stop(signum, frame) -> None:
    """``kill`` of the command: stop the pool as Ctrl-C does (the workers must not train on, orphaned)."""
    raise SystemExit(128 + signum)


POLL = 2.0
"""seconds between looks at the workers and their runs' logs"""


def _epochs_done(tasks: list[tuple[str, dict]]) -> int:
    """Epochs the runs have logged (each run's metrics.jsonl has a line per epoch), up to each one's count."""
    return sum(min(cfg["train"]["epochs"], len(read_history(run_dir) or [])) for run_dir, cfg in tasks)
