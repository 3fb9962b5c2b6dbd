"""OPO training for the app: per-category adapters trained in a child process, never in a click's way.

``submit`` only validates and enqueues a finished object (raw 1x256x64x64
embedding, final HxW bool mask). The trainer (:class:`_Trainer`) hands queued
objects to their category's :class:`~clickmask.learning.trainer.CategoryTrainer`
(the class the sequential benchmark runs too: gate test, memory of the
``memory`` most recent objects, ``steps`` SGD steps) and sends the new
weights back; the worker publishes them as an immutable :class:`Published`. Objects that queued
up while it trained are learned in one update, so the trainer never falls
further behind than one update.

Clicks read published adapters without any lock. ``delta``: the adapter for
a category's next object is the newest one learned from at most
``finished - delta + 1`` objects, where ``finished`` counts the category's
submitted objects since the last reset (object n uses objects up to n - delta).

Where the trainer runs: with ``process=True`` (the app) in a child process
started with "spawn" on the first ``submit``, at nice 19 with one torch thread
and ``pause`` seconds between SGD steps. A sender thread forwards requests
through a pipe, a receiver thread publishes the replies (cheap work only); a
trainer *thread* would share the server's GIL and slow clicks down. With
``process=False`` the same trainer runs in a thread (tests: an in-memory
decoder, monkeypatching). While the app answers a click it stops the child
(:meth:`OpoWorker.frozen`, SIGSTOP/SIGCONT): on two cores even a niced
process takes CPU time and cache from a click that is running.

Memory banks and optimizer state live only in the trainer. If the child
process dies, the worker records it in ``errors``, keeps the published
versions, drops the queued objects (``status`` is no longer busy, memory 0)
and starts a new child with the next ``submit``; that one continues from
each category's last published (or restored) weights, but with empty memory
banks and fresh optimizers. ``close`` does the same on purpose. PyTorch is
imported on the training side only, so the app runs without it.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import weakref
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Callable, Iterator

import numpy as np

from clickmask.errors import ClickmaskError
from clickmask.learning.opo import OPOConfig

logger = logging.getLogger(__name__)
Affine = tuple[np.ndarray, np.ndarray]  # (256x256 A, 256 b): out = A x + b per pixel
HISTORY = 8  # published versions kept per category (delta must not exceed it)
NICE = 19  # the trainer's nice value (thread mode on Linux: that thread only)
_EMPTY = object()  # "no request waiting"


@dataclass(frozen=True, eq=False)
class Published:
    """A category's adapter as clicks see it: ``version`` updates and ``samples`` objects since the last reset."""

    version: int
    samples: int
    affine: Affine | None  # None = identity (the raw model)


IDENTITY = Published(0, 0, None)
_RUNNING: "weakref.WeakSet[OpoWorker]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """At exit, stop every worker after its current SGD step: no torch code may run while Python shuts down."""
    for worker in list(_RUNNING):
        worker.close(timeout=30)


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _lower_priority(thread_ids) -> None:
    """Give these threads (Linux; elsewhere 0 = this process) the nice value ``NICE``, if allowed."""
    for tid in thread_ids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, NICE)
        except (AttributeError, OSError):
            pass


# ---------------------------------------------------------------- training side (child process or thread)
class _Trainer:
    """Learns queued objects per category and replies with new weights; one update per category and batch.

    Requests: ``("object", cat, generation, float16 embedding, mask)``, ``("restore", cat, generation,
    adapter bytes)``, ``("reset", cat, generation)``, ``("sync", token)``; ``None`` stops. Replies:
    ``("result", cat, generation, objects taken, (adapter bytes, affine or None while the gate is closed,
    objects learned) or None,
    memory size, error or None)`` and ``("synced", token)`` once everything before the sync is answered.
    A newer generation of a category drops its bank; objects of an older one are discarded.
    """

    def __init__(self, load_decoder: Callable[[], Any], config: OPOConfig, pause: float,
                 receive: Callable[[bool], Any], send: Callable[[tuple], None]) -> None:
        self.config = config
        self._load_decoder = load_decoder
        self._decoder = None
        self._pause = pause
        self._receive = receive  # receive(block) -> request, or _EMPTY when not blocking and none waits
        self._send = send
        self._banks: dict[int, tuple[int, Any]] = {}  # category -> (generation, CategoryTrainer)
        self._backlog: deque = deque()  # requests taken while training

    def run(self) -> None:
        """Serve requests until ``None``."""
        import torch

        from clickmask.learning.adapter import adapter_from_bytes

        torch.set_num_threads(1)
        while True:
            batch = [self._take(True)]
            while batch[-1] is not None and (request := self._take(False)) is not _EMPTY:
                batch.append(request)  # all queued meanwhile: one update; nothing after a stop (None, or EOF)
            if any(request is None for request in batch):
                return
            jobs: dict[int, list] = {}
            for kind, key, *rest in batch:
                if kind == "sync":
                    continue
                trainer = self._trainer(key, rest[0])
                if kind == "object":
                    jobs.setdefault(key, []).append(rest)
                elif kind == "restore" and trainer is not None:
                    trainer.restore(adapter_from_bytes(rest[1], "restored OPO adapter")[0])
            for category_id, items in jobs.items():
                self._send(self._update(category_id, items))
            for kind, key, *_ in batch:
                if kind == "sync":
                    self._send(("synced", key))

    def _take(self, block: bool) -> Any:
        return self._backlog.popleft() if self._backlog else self._receive(block)

    def _trainer(self, category_id: int, generation: int):
        """The category's trainer of this generation (a newer one replaces it); None for an outdated generation."""
        from clickmask.learning.trainer import CategoryTrainer

        current = self._banks.get(category_id)
        if current is None or current[0] < generation:
            current = self._banks[category_id] = (generation, CategoryTrainer(self.config, category_id))
        return current[1] if current[0] == generation else None

    def _update(self, category_id: int, items: list) -> tuple:
        """Learn a category's queued objects of its current generation: the reply."""
        generation, trainer = self._banks[category_id]
        objects = [(emb, mask) for gen, emb, mask in items if gen == generation]
        result = error = None
        if objects:
            try:
                result = self._train(category_id, trainer, objects)
            except Exception as exc:  # noqa: BLE001 - a failed update keeps the last version
                error = f"OPO update of category {category_id} failed: {_one_line(exc)}"
        return ("result", category_id, generation, len(items), result, len(trainer.memory), error)

    def _train(self, category_id: int, trainer, objects: list) -> tuple | None:
        """Add objects and run the steps: (adapter bytes, affine, objects added); None if interrupted."""
        from clickmask.learning.adapter import adapter_to_bytes

        if self._decoder is None:
            self._decoder = self._load_decoder()
        added = sum(trainer.add(self._decoder, emb, mask, name=f"category {category_id}") for emb, mask in objects)
        try:
            done = trainer.train(self._decoder, lambda: self._interrupted(category_id), self._pause)
        except Exception:
            trainer.forget_last(added)  # do not keep objects that break training
            raise
        if not done:
            return None  # reset meanwhile, or stopping
        return adapter_to_bytes(trainer.adapter), trainer.published(), len(objects)

    def _interrupted(self, category_id: int) -> bool:
        """Take the requests that arrived meanwhile: True when told to stop or the category was reset."""
        while (request := self._receive(False)) is not _EMPTY:
            self._backlog.append(request)
            if request is None:
                break  # stopping: the pipe may be closed after it
        return any(r is None or (r[0] == "reset" and r[1] == category_id) for r in self._backlog)


def _exit_with(parent: int, every: float = 0.5) -> None:
    """Watchdog thread of the child: end the process as soon as ``parent`` is gone.

    The pipe's end-of-file is noticed only between SGD steps, and a server
    killed, or ended by a signal that uvicorn re-raises after its shutdown,
    runs no exit handler: without this the trainer would keep a core busy,
    orphaned, until its queue ran dry.
    """
    while os.getppid() == parent:
        threading.Event().wait(every)
    os._exit(0)


def _child_main(load_decoder: Callable[[], Any], config: OPOConfig, pause: float,
                requests: Connection, replies: Connection, parent: int | None = None) -> None:
    """The trainer process: lowest CPU priority, one torch thread; ends on ``None`` or when the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which then stops us
    threading.Thread(target=_exit_with, args=(parent or os.getppid(),), name="clickmask-opo-watchdog",
                     daemon=True).start()
    try:
        _lower_priority([int(tid) for tid in os.listdir("/proc/self/task")])  # Linux: every thread so far
    except OSError:
        _lower_priority([0])

    def receive(block: bool) -> Any:
        try:
            return requests.recv() if block or requests.poll() else _EMPTY
        except EOFError:
            return None  # the parent closed the pipe: stop

    try:
        _Trainer(load_decoder, config, pause, receive, replies.send).run()
    except (EOFError, OSError):
        pass  # the parent went away


def _forward(outbox: queue.Queue, conn: Connection) -> None:
    """Sender thread: pass requests to the child in order, up to the stop request (``None``)."""
    try:
        while True:
            request = outbox.get()
            conn.send(request)
            if request is None:
                return
    except (OSError, ValueError):
        pass  # the child is gone: the receiver reports it
    finally:
        conn.close()


def _signal(process, signum: int) -> None:
    """Send a signal to a child process if it is still running."""
    try:
        if process.pid is not None and process.exitcode is None:
            os.kill(process.pid, signum)
    except (OSError, ValueError):
        pass  # already gone


# ---------------------------------------------------------------- the server's side
class _Category:
    """A category as clicks see it: published versions (replaced, never mutated), counters, latest weights."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.history: tuple[Published, ...] = (IDENTITY,)
        self.finished = 0  # objects submitted since the last reset
        self.memory = 0  # objects in the trainer's memory bank, as last reported
        self.weights: bytes | None = None  # newest adapter (adapter_to_bytes), sent to a (re)started trainer


@dataclass
class _Runner:
    """A started trainer: its request queue, threads and (process mode) child process."""

    outbox: queue.Queue
    threads: list[threading.Thread] = field(default_factory=list)
    process: Any = None  # multiprocessing.Process

    def stop(self, timeout: float) -> None:
        """Ask the trainer to stop after its current SGD step; kill the child if it does not."""
        self.outbox.put(None)
        if self.process is not None:
            _signal(self.process, signal.SIGCONT)  # frozen by a click that never ended: let it stop
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(timeout)


class OpoWorker:
    """Per-category OPO adapters trained in the background (a child process with ``process=True``, else a thread).

    ``load_decoder()`` returns the frozen PyTorch decoder (called once, by the
    trainer; with ``process=True`` it must be picklable, e.g.
    ``functools.partial(load_frozen_decoder, spec)``).
    ``on_publish(category_id, published, adapter)`` runs after each update
    with an ``EmbeddingAdapter`` copy of the new weights (to store it);
    ``on_reset(category_id)`` in the caller's thread. Both run under a lock
    that only publishing and resetting take.
    """

    def __init__(self, load_decoder: Callable[[], Any], config: OPOConfig = OPOConfig(),
                 on_publish: Callable | None = None, on_reset: Callable | None = None, pause: float = 0.0,
                 process: bool = False) -> None:
        if config.delta > HISTORY:
            raise ClickmaskError(f"OPO delta must be at most {HISTORY} in the app, got {config.delta}")
        if process:
            try:
                pickle.dumps(load_decoder)
            except Exception as exc:  # noqa: BLE001 - lambdas, local functions, open resources
                raise ClickmaskError(f"OPO: load_decoder must be picklable to train in a process "
                                     f"({_one_line(exc)})") from None
        self.config = config
        self.pause = pause
        self.process = process
        self.errors: list[str] = []
        self._load_decoder = load_decoder
        self._on_publish = on_publish
        self._on_reset = on_reset
        self._states: dict[int, _Category] = {}
        self._pending: Counter = Counter()
        self._syncs: dict[int, threading.Event] = {}
        self._tokens = itertools.count()
        self._runner: _Runner | None = None
        self._frozen: tuple[Any, int] | None = None  # (child process, holders) while clicks run
        self._freeze_lock = threading.Lock()
        self._lock = threading.Lock()  # states, counters, runner; held briefly
        self._publish_lock = threading.Lock()  # publishing + storing vs. resetting

    # ------------------------------------------------------------ reads (never wait for training)
    def latest(self, category_id: int) -> Published:
        """The newest published adapter of a category."""
        state = self._states.get(category_id)
        return IDENTITY if state is None else state.history[-1]

    def for_next_object(self, category_id: int) -> Published:
        """The adapter for the category's next object: learned from at most ``finished - delta + 1`` objects."""
        state = self._states.get(category_id)
        if state is None:
            return IDENTITY
        allowed = state.finished - self.config.delta + 1
        return next((p for p in reversed(state.history) if p.samples <= allowed), IDENTITY)

    def status(self, category_id: int) -> dict:
        """{version, samples, served, memory, queued, busy} of a category.

        ``served``: the newest version's weights are used by clicks (False before
        any training, and while the gate holds a trained version back).
        """
        state = self._states.get(category_id)
        latest = self.latest(category_id)
        queued = self._pending[category_id]
        return {"version": latest.version, "samples": latest.samples, "served": latest.affine is not None,
                "memory": 0 if state is None else state.memory, "queued": queued, "busy": queued > 0}

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Stop the trainer process (SIGSTOP) while the block runs, e.g. a click: it gets the whole CPU.

        Nested or concurrent blocks share one stop; the last one to leave resumes
        it (SIGCONT), as do ``close`` and exit. Thread mode: no effect.
        """
        with self._freeze_lock:
            if self._frozen is not None:
                self._frozen = (self._frozen[0], self._frozen[1] + 1)
            else:
                runner = self._runner
                if runner is not None and runner.process is not None:
                    _signal(runner.process, signal.SIGSTOP)
                    self._frozen = (runner.process, 1)
        try:
            yield
        finally:
            with self._freeze_lock:
                if self._frozen is not None:
                    process, holders = self._frozen
                    self._frozen = None if holders == 1 else (process, holders - 1)
                    if holders == 1:
                        _signal(process, signal.SIGCONT)

    # ------------------------------------------------------------ changes
    def submit(self, category_id: int, embedding: np.ndarray, mask: np.ndarray) -> None:
        """Queue a finished object (1x256x64x64 float embedding, HxW bool mask, not empty); returns at once.

        Starts the trainer if it is not running (first submit, after ``close`` or a crash).
        """
        emb = np.asarray(embedding)
        mask = np.asarray(mask, dtype=bool)
        if emb.shape != (1, 256, 64, 64):
            raise ClickmaskError(f"OPO: embedding must be 1x256x64x64, got {emb.shape}")
        if mask.ndim != 2 or not mask.any():
            raise ClickmaskError(f"OPO: mask must be a non-empty HxW array, got shape {mask.shape}")
        request = [emb.astype(np.float16), mask.copy()]
        with self._lock:
            state = self._state(category_id)
            state.finished += 1
            self._pending[category_id] += 1
            self._start().outbox.put(("object", category_id, state.generation, *request))

    def restore(self, category_id: int, adapter, version: int, samples: int, served: bool = True) -> None:
        """Start a category from a stored adapter (an ``EmbeddingAdapter``); it counts as learned long ago.

        Its weights go to the trainer (now if it runs, else when it starts): training continues from them.
        ``served`` False: the stored version was held back by the gate (clicks keep the plain model).
        """
        from clickmask.learning.adapter import adapter_to_bytes

        weights = adapter_to_bytes(adapter)
        with self._lock:
            state = self._state(category_id)
            state.weights = weights
            state.history = (IDENTITY, Published(version, samples, adapter.affine() if served else None))
            state.finished = samples + self.config.delta - 1
            if self._runner is not None:
                self._runner.outbox.put(("restore", category_id, state.generation, weights))

    def reset(self, category_id: int) -> None:
        """Back to the identity: memory, optimizer and versions dropped; queued objects are discarded."""
        with self._publish_lock:
            with self._lock:
                old = self._states.pop(category_id, None)
                if old is not None:
                    self._state(category_id).generation = old.generation + 1
                    if self._runner is not None:
                        self._runner.outbox.put(("reset", category_id, old.generation + 1))
            if self._on_reset is not None:
                self._on_reset(category_id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until everything submitted so far is trained and published (or dropped); False on timeout."""
        with self._lock:
            if self._runner is None:
                return True
            token = next(self._tokens)
            done = self._syncs[token] = threading.Event()
            self._runner.outbox.put(("sync", token))
        return done.wait(timeout)

    def close(self, timeout: float = 60) -> None:
        """Stop the trainer after its current SGD step (queued objects and memory banks are dropped)."""
        runner = self._runner
        if runner is not None and self._detach(runner):
            runner.stop(timeout)
        _RUNNING.discard(self)

    # ------------------------------------------------------------ trainer management
    def _state(self, category_id: int) -> _Category:
        """The category's state, created on first use (``_lock`` held)."""
        state = self._states.get(category_id)
        if state is None:
            state = self._states[category_id] = _Category(0)
        return state

    def _start(self) -> _Runner:
        """The trainer, started if needed with every category's newest weights (``_lock`` held)."""
        if self._runner is not None:
            return self._runner
        runner = _Runner(queue.Queue())
        if self.process:
            ctx = multiprocessing.get_context("spawn")
            requests, to_child = ctx.Pipe(duplex=False)
            from_child, replies = ctx.Pipe(duplex=False)
            runner.process = ctx.Process(target=_child_main, name="clickmask-opo", daemon=True,
                                         args=(self._load_decoder, self.config, self.pause, requests, replies,
                                               os.getpid()))
            runner.process.start()
            _lower_priority([runner.process.pid])  # already while it imports; it lowers its own threads too
            requests.close()  # the child's ends: the parent sees EOF when the child is gone
            replies.close()
            runner.threads = [
                threading.Thread(target=_forward, args=(runner.outbox, to_child), name="clickmask-opo-send",
                                 daemon=True),
                threading.Thread(target=self._receive, args=(runner, from_child), name="clickmask-opo-receive",
                                 daemon=True)]
        else:
            runner.threads = [threading.Thread(target=self._train_here, args=(runner,), name="clickmask-opo",
                                               daemon=True)]
        for category_id, state in self._states.items():
            if state.weights is not None:
                runner.outbox.put(("restore", category_id, state.generation, state.weights))
        for thread in runner.threads:
            thread.start()
        self._runner = runner
        _RUNNING.add(self)
        return runner

    def _train_here(self, runner: _Runner) -> None:
        """Thread mode: run the trainer in this thread, at the lowest priority (Linux: per thread)."""
        _lower_priority([threading.get_native_id()])

        def receive(block: bool) -> Any:
            try:
                return runner.outbox.get(block)
            except queue.Empty:
                return _EMPTY

        try:
            _Trainer(self._load_decoder, self.config, self.pause, receive,
                     lambda reply: self._handle(runner, reply)).run()
        except Exception as exc:  # noqa: BLE001 - reported like a crashed child
            if self._detach(runner):
                self._report(f"OPO trainer stopped unexpectedly: {_one_line(exc)}")

    def _receive(self, runner: _Runner, conn: Connection) -> None:
        """Process mode, receiver thread: handle the child's replies; report the child's end unless closing."""
        try:
            while True:
                self._handle(runner, conn.recv())
        except Exception:  # noqa: BLE001 - EOF: the child ended (or a reply could not be read)
            pass
        conn.close()
        runner.process.join(5)
        if runner.process.is_alive():
            runner.process.kill()
            runner.process.join(5)
        if self._detach(runner):
            self._report(f"OPO trainer process stopped unexpectedly (exit code {runner.process.exitcode}); "
                         "queued objects were dropped, the next object restarts it")
            runner.outbox.put(None)  # ends the sender thread

    def _detach(self, runner: _Runner) -> bool:
        """Forget a stopped or stopping trainer: queued work and memory counts are gone, waiters released.

        False if ``runner`` is not the current trainer (already detached).
        """
        with self._lock:
            if self._runner is not runner:
                return False
            self._runner = None
            self._pending.clear()
            for state in self._states.values():
                state.memory = 0
            syncs, self._syncs = self._syncs, {}
        for done in syncs.values():
            done.set()
        return True

    def _handle(self, runner: _Runner, reply: tuple) -> None:
        """A trainer reply: publish a new version, update counters, wake ``wait_idle``."""
        if reply[0] == "synced":
            with self._lock:
                done = self._syncs.pop(reply[1], None)
            if done is not None:
                done.set()
            return
        _, category_id, generation, taken, result, memory, error = reply
        current = self._runner is runner
        with self._publish_lock:
            state = self._states.get(category_id)
            if state is not None and state.generation == generation:  # not reset meanwhile
                if current:
                    state.memory = memory
                if result is not None:
                    error = self._publish(category_id, state, *result) or error
        if error:
            self._report(error)
        if current:
            with self._lock:
                self._pending[category_id] -= taken
                if self._pending[category_id] <= 0:
                    del self._pending[category_id]

    def _publish(self, category_id: int, state: _Category, weights: bytes, affine: Affine | None,
                 added: int) -> str | None:
        """Publish a trained version and hand it to ``on_publish`` (``_publish_lock`` held); an error if that fails.

        ``affine`` None: the gate holds the trained weights back, clicks use the plain model.
        """
        last = state.history[-1]
        published = Published(last.version + 1, last.samples + added, affine)
        state.history = (*state.history[-(HISTORY - 1):], published)
        state.weights = weights
        if self._on_publish is None:
            return None
        from clickmask.learning.adapter import adapter_from_bytes

        try:
            self._on_publish(category_id, published, adapter_from_bytes(weights, "trained OPO adapter")[0])
        except Exception as exc:  # noqa: BLE001 - the version stays published; storing it failed
            return f"OPO update of category {category_id} failed: {_one_line(exc)}"
        return None

    def _report(self, message: str) -> None:
        """Log a one-line failure and keep it in ``errors`` (the last 20)."""
        logger.warning(message)
        self.errors = [*self.errors[-19:], message]
