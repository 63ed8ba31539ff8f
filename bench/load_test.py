"""Load test: many members, many ``/video`` jobs, one real bot on the tiny models.

Starts the local fake Discord (``tests/fake_discord``) and a real :class:`bot.client.VideoBot` on
``tiny_t2v`` (8 frames, 64x64, 10 steps: about 0.3 s of denoising per job on the build machine),
with the limits raised so nothing is refused (20 queued per member, a queue of 1000) and progress
edits every 2 s as in production. Then it fires ``--jobs`` ``/video`` interactions from
``--members`` members and waits until every job has its final message.

The load is uneven on purpose:

- **heavy** members (a fifth) send a burst of 20 at once, then keep topping up to 20 outstanding
  until they have sent their share (the rest of the jobs);
- **regular** members (seven tenths) send 1 to 5 jobs each, spread through the stream;
- **late** members (a tenth) send exactly one job, late: once 40% of all jobs have finished, when
  the queue is still deep.

``--rate 0`` (the default) dispatches the stream as fast as the fake can; ``--rate R`` spaces the
arrivals to R interactions per second on average (a burst still arrives all at once). The heavy
members' top-ups are closed-loop in both modes.

Measured and printed, with a PASS/FAIL line per target:

- **ack latency** (p50/p99/max): from the fake dispatching INTERACTION_CREATE to the bot's initial
  callback (the defer), ``FakeInteraction.response_latency``; target p99 < 500 ms, max < 2.5 s;
- **jobs lost**: interactions without a final message (the video, or an error embed) plus jobs
  not ``done`` in the bot's SQLite store; target 0;
- **fairness**: the wait (queued -> started, from the store) of members with exactly one job
  against the mean wait of all jobs (target: the worst one-job wait below the mean); and the
  order: a one-job member's job never starts after more than one job of any other member that
  was queued when it arrived (target: no violation). The order is read from an exact log of the
  executor's pushes and starts (``executor.submit`` and ``job.on_start`` are wrapped, nothing
  else changes); the same check on the store's timestamps is printed for information;
- **event-loop lag** (p50/p99/max) while the executor is busy: a task on the bot's loop sleeps
  50 ms again and again and records how late it wakes;
- throughput (jobs/s) and total time.

To explain the loop lag it also prints the garbage collector's pauses by generation, the heap size
before and after the load, where the main thread was while the loop was stuck for over 200 ms
(a sampling thread), and the number of asyncio tasks alive; ``--gc-freeze`` calls ``gc.freeze()``
after start-up to see how much of the lag the start-up heap causes. The bot's warnings and errors
are counted and the most frequent are printed.

The fake runs on the bot's own event loop (as in the tests), so the ack latency and the loop lag
include the fake's own work (serving REST, gateway frames, storing uploads): they are an upper
bound for what the bot alone would show.

Not a test: the figures depend on the machine. Usage:

    VIDEOBOT_MODEL_CACHE=/tmp/videobot-test-models \\
        .venv/bin/python bench/load_test.py [--members 50] [--jobs 500] [--rate 0]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # fake_discord and bot_helpers, as the tests import them
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VIDEOBOT_MODEL_CACHE", "/tmp/videobot-test-models")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MEMBER_CAP = 20  # max_queued_per_user, as the brief sets it
HEAVY_BURST = 20
LATE_TRIGGER = 0.40  # late members send once this share of all jobs has finished

TARGET_ACK_P99_S = 0.5
TARGET_ACK_MAX_S = 2.5
TARGET_FAIRNESS_RATIO = 1.0


# --- the plan --------------------------------------------------------------------------------


@dataclass
class Member:
    index: int
    kind: str  # heavy | regular | late
    jobs: int
    user: Any = None
    sent: int = 0
    outstanding: int = 0


@dataclass
class Plan:
    members: list[Member]
    blocks: list[list[Member]]  # the open-loop stream: each block arrives at once
    topups: dict[int, int]  # heavy member index -> jobs left after the burst
    late: list[Member]


def make_plan(n_members: int, n_jobs: int, rng: random.Random) -> Plan:
    if n_members < 3:
        raise SystemExit("--members must be at least 3 (heavy, regular and late members)")
    if n_jobs < n_members + 2 * max(1, round(n_members * 0.2)):
        raise SystemExit("--jobs is too small for that many members (need about 1.4x --members)")
    n_late = max(1, round(n_members * 0.1))
    n_heavy = max(1, round(n_members * 0.2))
    n_regular = n_members - n_late - n_heavy
    regular_jobs = [rng.randint(1, 5) for _ in range(n_regular)]
    heavy_total = n_jobs - n_late - sum(regular_jobs)
    while heavy_total < 2 * n_heavy:  # few jobs: trim the regulars towards one each
        i = max(range(n_regular), key=lambda k: regular_jobs[k])
        if regular_jobs[i] == 1:
            raise SystemExit("--jobs is too small for that many members")
        regular_jobs[i] -= 1
        heavy_total += 1
    members: list[Member] = []
    for i in range(n_heavy):
        share = heavy_total // n_heavy + (1 if i < heavy_total % n_heavy else 0)
        members.append(Member(len(members), "heavy", share))
    for count in regular_jobs:
        members.append(Member(len(members), "regular", count))
    for _ in range(n_late):
        members.append(Member(len(members), "late", 1))
    blocks: list[list[Member]] = []
    topups: dict[int, int] = {}
    for m in members:
        if m.kind == "heavy":
            burst = min(HEAVY_BURST, MEMBER_CAP, m.jobs)
            blocks.append([m] * burst)
            topups[m.index] = m.jobs - burst
        elif m.kind == "regular":
            blocks.extend([m] for _ in range(m.jobs))
    rng.shuffle(blocks)
    return Plan(members, blocks, topups, [m for m in members if m.kind == "late"])


# --- measurement records ---------------------------------------------------------------------


@dataclass
class Sent:
    member: Member
    interaction: Any
    sent_at: float
    final_at: float | None = None
    outcome: str | None = None  # video | error | cancelled | refused


@dataclass
class Run:
    sent: list[Sent] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)
    tasks: list[int] = field(default_factory=list)  # asyncio tasks alive, sampled each second
    heartbeat: float = 0.0  # perf_counter of the lag monitor's last wake-up
    events: list[tuple[str, int, int]] = field(default_factory=list)  # (push|start, job, user)
    finished: int = 0
    started_at: float = 0.0
    dispatched_at: float = 0.0
    all_final_at: float | None = None
    stalled: str | None = None
    late_sent_at: float | None = None
    open_loop_sent: int = 0
    open_loop_done_at: float | None = None  # when the last block of the open-loop stream was sent


class LogCounter(logging.Handler):
    """Counts the bot's warnings and errors by logger and message (tracebacks kept for the first)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.first_trace: dict[tuple[str, str, str], str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken log call must not break the benchmark
            message = str(record.msg)
        if record.name == "discord.client" and "voice will NOT be supported" in message:
            return  # discord.py's optional voice libraries: not the bot's business
        key = (record.levelname, record.name, message.splitlines()[0][:160] if message else "")
        self.counts[key] += 1
        if record.exc_info and key not in self.first_trace:
            self.first_trace[key] = logging.Formatter().formatException(record.exc_info)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


class StallSampler(threading.Thread):
    """While the loop is stuck (the lag monitor has not woken for ``threshold`` s), sample the main
    thread's stack every 10 ms and count where it is: in the project's code (bot/, cogs/, the fake,
    this script) and innermost. Tells whether a lag spike is the bot's, the fake's or the GC's."""

    def __init__(self, run: Run, threshold: float = 0.2) -> None:
        super().__init__(name="stall-sampler", daemon=True)
        self.run_ = run
        self.threshold = threshold
        self.main_id = threading.main_thread().ident or 0
        self.where: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        import traceback

        while not self.stop_flag.wait(0.01):
            beat = self.run_.heartbeat
            if not beat or time.perf_counter() - beat < self.threshold:
                continue
            frame = sys._current_frames().get(self.main_id)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)
            ours = next(
                (
                    f
                    for f in reversed(stack)
                    if any(part in f.filename for part in ("/bot/", "/cogs/", "/fake_discord/"))
                ),
                None,
            )
            inner = stack[-1]
            label = (
                f"{_short(ours.filename)}:{ours.lineno} {ours.name}"
                if ours
                else "(no project frame)"
            ) + f"  <- innermost {_short(inner.filename)}:{inner.lineno} {inner.name}"
            self.where[label] += 1
            self.samples += 1


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


class GcTimer:
    """How long the garbage collector stops the world, by generation."""

    def __init__(self) -> None:
        import gc

        self._gc = gc
        self.pauses: dict[int, list[float]] = collections.defaultdict(list)
        self._start = 0.0

    def __enter__(self) -> GcTimer:
        self._gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        self._gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._start)


# --- driving the fake ------------------------------------------------------------------------


def classify(fake: Any, interaction: Any) -> str | None:
    """The interaction's end state, or None while it has none yet."""
    from bot_helpers import final_message

    message = final_message(fake, interaction)
    if message is not None:
        if message.attachments:
            return "video"
        return "cancelled" if "cancelled" in (message.content or "") else "error"
    for followup in fake.followups(interaction):
        if followup.flags & 64:  # an ephemeral answer: the request was refused
            return "refused"
    return None


async def drive(fake: Any, plan: Plan, run: Run, rate: float) -> None:
    """Send the open-loop stream (paced if ``rate``), the heavy top-ups and the late members."""
    loop = asyncio.get_running_loop()
    total = sum(m.jobs for m in plan.members)
    blocks = collections.deque(plan.blocks)
    topups = dict(plan.topups)
    heavy = {m.index: m for m in plan.members if m.kind == "heavy"}
    late = list(plan.late)
    next_at = loop.time()
    serial = 0

    async def send(member: Member) -> None:
        nonlocal serial
        serial += 1
        options = {
            "prompt": f"load test {serial} from member {member.index} --seed {serial} "
            "--frames 8 --steps 10",
            "width": 64,
            "height": 64,
        }
        sent_at = time.monotonic()
        interaction = await fake.run_slash_command("video", options, user=member.user)
        member.sent += 1
        member.outstanding += 1
        run.sent.append(Sent(member, interaction, sent_at))
        await asyncio.sleep(0)  # let the bot read what was just dispatched

    while blocks or any(topups.values()) or late:
        progressed = False
        if blocks and loop.time() >= next_at:
            block = blocks.popleft()
            for member in block:
                await send(member)
            run.open_loop_sent += len(block)
            if not blocks:
                run.open_loop_done_at = time.monotonic()
            if rate > 0:
                next_at = max(next_at, loop.time() - 1.0) + len(block) / rate
            progressed = True
        if late and run.finished >= LATE_TRIGGER * total:
            run.late_sent_at = time.monotonic()
            for member in late:
                await send(member)
            late = []
            progressed = True
        for index, left in topups.items():
            member = heavy[index]
            if not member.sent:  # its burst has not arrived yet: top-ups come after it
                continue
            while left and member.outstanding < MEMBER_CAP:
                await send(member)
                left -= 1
                progressed = True
            topups[index] = left
        if not progressed:
            await asyncio.sleep(0.02)
    run.dispatched_at = time.monotonic()


async def watch(fake: Any, run: Run, total: int, deadline: float, stall_s: float) -> None:
    """Poll the fake for final messages until every job has one, the deadline, or a stall."""
    pending: list[Sent] = []
    seen = 0
    last_progress = time.monotonic()
    while True:
        pending.extend(run.sent[seen:])
        seen = len(run.sent)
        now = time.monotonic()
        still: list[Sent] = []
        for s in pending:
            outcome = classify(fake, s.interaction)
            if outcome is None:
                still.append(s)
                continue
            s.outcome, s.final_at = outcome, now
            s.member.outstanding -= 1
            run.finished += 1
            last_progress = now
        pending = still
        if run.finished >= total and seen >= total:
            run.all_final_at = now
            return
        if now >= deadline:
            run.stalled = f"deadline reached with {total - run.finished} job(s) unfinished"
            return
        if now - last_progress > stall_s:
            run.stalled = (
                f"no job finished for {stall_s:.0f} s with {total - run.finished} unfinished"
            )
            return
        await asyncio.sleep(0.2)


async def lag_monitor(bot: Any, run: Run, stop: asyncio.Event, period: float = 0.05) -> None:
    ticks = 0
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(period)
        run.heartbeat = time.perf_counter()
        late = run.heartbeat - before - period
        if bot.executor.snapshot():  # only while a job is queued or running
            run.lag.append(max(0.0, late))
        ticks += 1
        if ticks % 20 == 0:  # about once a second: how many tasks the loop holds
            run.tasks.append(len(asyncio.all_tasks()))


def instrument(bot: Any, run: Run) -> None:
    """Log the executor's pushes and starts in their exact order (for the order check)."""
    executor = bot.executor
    submit = executor.submit

    def logged_submit(job: Any) -> int:
        inner = job.on_start

        async def on_start(started: Any) -> None:
            run.events.append(("start", started.id, started.user_id))
            if inner is not None:
                await inner(started)

        job.on_start = on_start
        run.events.append(("push", job.id, job.user_id))
        return submit(job)

    executor.submit = logged_submit


# --- the run ---------------------------------------------------------------------------------


async def run_load(args: argparse.Namespace, workdir: Path, logs: LogCounter) -> dict[str, Any]:
    from bot_helpers import make_bot, make_settings
    from fake_discord import FakeDiscord

    from bot.core.manager import ManagerOptions, ModelManager

    rng = random.Random(args.seed)
    plan = make_plan(args.members, args.jobs, rng)
    total = sum(m.jobs for m in plan.members)
    settings = make_settings(
        workdir,
        models={"preload": ["tiny_t2v"]},
        limits={
            "max_queued_per_user": MEMBER_CAP,
            "max_queued_per_user_total": MEMBER_CAP,
            "max_queue": 1000,
            "progress_interval_s": 2.0,
            "cooldown_s": 0.0,
        },
    )
    manager = ModelManager(ManagerOptions(cache_dir=Path(os.environ["VIDEOBOT_MODEL_CACHE"])))
    run = Run()
    out: dict[str, Any] = {
        "plan": plan,
        "run": run,
        "settings": settings,
        "total": total,
        "gc_freeze": args.gc_freeze,
    }
    setup_start = time.monotonic()
    async with FakeDiscord() as fake:
        out["fake"] = fake
        out["fake_followups"] = fake.followups
        async with fake.run_bot(make_bot(settings, manager), ready_timeout=120) as bot:
            for m in plan.members:
                m.user = fake.add_user(f"member{m.index:02d}", global_name=f"Member {m.index}")
                await fake.add_member(m.user)
            # Warm-up outside the figures: the first encode and upload paths.
            warm = await fake.run_slash_command(
                "video",
                {"prompt": "warm-up --seed 1 --frames 8 --steps 10", "width": 64, "height": 64},
            )
            await fake.wait_until(lambda: classify(fake, warm), timeout=120, what="warm-up job")
            out["warmup_outcome"] = classify(fake, warm)
            out["setup_s"] = time.monotonic() - setup_start
            first_interaction = len(fake.interactions)
            import gc

            gc.collect()
            if args.gc_freeze:  # what the bot would do by calling gc.freeze() after start-up
                gc.freeze()
            out["heap_before"] = len(gc.get_objects()) + gc.get_freeze_count()
            instrument(bot, run)
            stop = asyncio.Event()
            sampler = StallSampler(run)
            out["sampler"] = sampler
            gc_timer = GcTimer().__enter__()
            out["gc"] = gc_timer
            sampler.start()
            monitor = asyncio.create_task(lag_monitor(bot, run, stop), name="lag-monitor")
            run.started_at = time.monotonic()
            deadline = run.started_at + args.timeout
            driver = asyncio.create_task(drive(fake, plan, run, args.rate), name="load-driver")
            watcher = asyncio.create_task(
                watch(fake, run, total, deadline, args.stall), name="load-watcher"
            )
            try:
                await watcher
                if not driver.done():
                    out["driver_unfinished"] = True
                    driver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await driver
            finally:
                stop.set()
                sampler.stop_flag.set()
                gc_timer.__exit__()
                for task in (driver, watcher, monitor):
                    task.cancel()
                await asyncio.gather(driver, watcher, monitor, return_exceptions=True)
            out["run_s"] = (run.all_final_at or time.monotonic()) - run.started_at
            # The final message is posted before the bot records its id (store.set_message):
            # give that bookkeeping a moment, so closing the bot does not cut it short.
            await asyncio.sleep(1.0)
            out["heap_after"] = len(gc.get_objects()) + gc.get_freeze_count()
            out["heap_fake"] = len(fake.requests), len(fake.gateway_log), len(fake.messages)
            gc.unfreeze()
            out["executor_left"] = len(bot.executor.snapshot())
            out["interactions_total"] = len(fake.interactions) - first_interaction
            shutdown_start = time.monotonic()
        out["shutdown_s"] = time.monotonic() - shutdown_start
        out["requests_by_status"] = collections.Counter(
            (r.status // 100 * 100 if r.status else 0) for r in fake.requests
        )
        out["unknown_routes"] = sorted({r.key for r in fake.unknown_requests})
        out["error_requests"] = collections.Counter(
            f"{r.status} {r.key}" for r in fake.requests if (r.status or 0) >= 400
        )
    out["records"] = await read_store(settings.storage.database, plan, fake.guild.id)
    return out


async def read_store(path: Path, plan: Plan, guild_id: int) -> dict[int, Any]:
    """Every benchmark job, from the bot's own store (reopened after the bot closed it)."""
    from bot.store import Store

    records: dict[int, Any] = {}
    async with await Store.open(path) as store:
        for m in plan.members:
            for record in await store.history(m.user.id, guild_id, limit=100_000):
                records[record.id] = record
    return records


# --- analysis --------------------------------------------------------------------------------


def analyse(out: dict[str, Any]) -> tuple[list[str], list[tuple[str, bool, str]]]:
    run: Run = out["run"]
    plan: Plan = out["plan"]
    total: int = out["total"]
    records: dict[int, Any] = out["records"]
    lines: list[str] = []
    verdicts: list[tuple[str, bool, str]] = []

    # Ack latency.
    latencies = [
        s.interaction.response_latency
        for s in run.sent
        if s.interaction.response_latency is not None
    ]
    unacked = sum(1 for s in run.sent if s.interaction.response_latency is None)
    deferred = sum(1 for s in run.sent if s.interaction.response_type == 5)
    p50, p99, worst = (
        percentile(latencies, 50),
        percentile(latencies, 99),
        max(latencies, default=float("nan")),
    )
    lines.append(
        f"ack latency     p50 {ms(p50)}   p99 {ms(p99)}   max {ms(worst)}"
        f"   ({len(latencies)} acked, {deferred} deferred, {unacked} never acked)"
    )
    verdicts.append(("ack p99 < 500 ms", p99 < TARGET_ACK_P99_S and not unacked, f"{ms(p99)}"))
    verdicts.append(("ack max < 2.5 s", worst < TARGET_ACK_MAX_S and not unacked, f"{ms(worst)}"))

    # Jobs lost.
    by_token = {r.interaction_token: r for r in records.values() if r.interaction_token}
    outcomes = collections.Counter(s.outcome or "none" for s in run.sent)
    statuses = collections.Counter(str(r.status) for r in by_token.values())
    no_final = [s for s in run.sent if s.outcome not in ("video", "error")]
    not_done = [
        s for s in run.sent if getattr(by_token.get(s.interaction.token), "status", None) != "done"
    ]
    lost = {id(s) for s in no_final} | {id(s) for s in not_done}
    never_sent = total - len(run.sent)
    no_row = sum(1 for s in run.sent if s.interaction.token not in by_token)
    lines.append(
        f"final messages  {dict(sorted(outcomes.items()))}   store: "
        f"{dict(sorted(statuses.items()))}, {no_row} interaction(s) without a row"
    )
    refusals = collections.Counter(
        (f.content or "").splitlines()[0][:110]
        for s in run.sent
        if s.outcome == "refused"
        for f in out["fake_followups"](s.interaction)
        if f.flags & 64
    )
    for reason, count in refusals.most_common(3):
        lines.append(f"    refused {count:4d} x {reason}")
    lines.append(
        f"jobs lost       {len(lost)}   ({len(no_final)} without a final message, "
        f"{len(not_done)} not done in SQLite, {never_sent} never sent)"
    )
    verdicts.append(("jobs lost = 0", not lost and not never_sent, f"{len(lost) + never_sent}"))
    unlinked = sum(1 for r in by_token.values() if str(r.status) == "done" and r.message_id is None)
    lines.append(f"result links    {unlinked} done job(s) without the result message id in SQLite")

    # Fairness: waits from the store.
    def wait_of(record: Any) -> float | None:
        if record is None or record.started_at is None:
            return None
        return (record.started_at - record.queued_at).total_seconds()

    waits = [w for s in run.sent if (w := wait_of(by_token.get(s.interaction.token))) is not None]
    singles = [m for m in plan.members if m.jobs == 1]
    single_waits: list[tuple[float, Member]] = []
    for s in run.sent:
        if s.member.jobs == 1:
            w = wait_of(by_token.get(s.interaction.token))
            if w is not None:
                single_waits.append((w, s.member))
    mean_wait = sum(waits) / len(waits) if waits else float("nan")
    if single_waits:
        worst_single, worst_member = max(single_waits, key=lambda x: x[0])
        mean_single = sum(w for w, _ in single_waits) / len(single_waits)
        late_waits = [w for w, m in single_waits if m.kind == "late"]
        ratio = worst_single / mean_wait if mean_wait else float("nan")
        lines.append(
            f"wait (store)    mean all {mean_wait:6.1f} s   max all {max(waits):6.1f} s   "
            f"one-job members ({len(single_waits)}): mean {mean_single:5.1f} s, "
            f"max {worst_single:5.1f} s ({worst_member.kind}), late max "
            f"{max(late_waits, default=float('nan')):5.1f} s   ratio max/mean {ratio:.2f}"
        )
        verdicts.append(
            ("one-job max wait < mean wait", ratio < TARGET_FAIRNESS_RATIO, f"ratio {ratio:.2f}")
        )
    else:
        lines.append(f"wait (store)    mean all {mean_wait:6.1f} s   (no one-job members)")

    # Fairness: order, exactly, from the executor log.
    single_users = {m.user.id for m in singles}
    violations = order_violations(run.events, single_users)
    store_violations = store_order_violations(records, single_users)
    lines.append(
        f"order           {len(violations)} violation(s) in the executor log, "
        f"{len(store_violations)} by the store's timestamps (informational)"
    )
    for v in violations[:5]:
        lines.append(f"    {v}")
    verdicts.append(
        (
            "one-job member behind <= 1 job of each other member",
            not violations and bool(run.events),
            f"{len(violations)} violation(s)",
        )
    )

    # Loop lag.
    lag = run.lag
    lines.append(
        f"loop lag (busy) p50 {ms(percentile(lag, 50))}   p99 {ms(percentile(lag, 99))}   "
        f"max {ms(max(lag, default=float('nan')))}   ({len(lag)} samples of a 50 ms sleep)"
    )
    gc_timer: GcTimer | None = out.get("gc")
    if gc_timer is not None:
        lines.append(
            "gc pauses       "
            + "   ".join(
                f"gen{g}: {len(p)} x, max {ms(max(p)).strip()}, total {sum(p):.2f} s"
                for g, p in sorted(gc_timer.pauses.items())
            )
        )
        requests, frames, messages = out.get("heap_fake", (0, 0, 0))
        lines.append(
            f"heap            {out.get('heap_before', 0):,} GC-tracked objects before the load (frozen ones included), "
            f"{out.get('heap_after', 0):,} after (the fake keeps {requests:,} requests, "
            f"{frames:,} gateway frames, {messages:,} messages){' [gc.freeze() after start-up]' if out.get('gc_freeze') else ''}"
        )
    sampler: StallSampler | None = out.get("sampler")
    if sampler is not None and sampler.samples:
        lines.append(
            f"loop stalls     {sampler.samples} samples (10 ms each) of the loop stuck > 200 ms; "
            "where (project frame <- innermost):"
        )
        for where, count in sampler.where.most_common(6):
            lines.append(f"    {count:4d} x {where}")
    lines.append(
        f"asyncio tasks   peak {max(run.tasks, default=0)}   last sample "
        f"{run.tasks[-1] if run.tasks else 0}   (sampled each second during the load)"
    )

    # Throughput.
    done_records = [
        by_token[s.interaction.token]
        for s in run.sent
        if getattr(by_token.get(s.interaction.token), "status", None) == "done"
    ]
    if done_records:
        first_q = min(r.queued_at for r in done_records)
        last_f = max(r.finished_at for r in done_records if r.finished_at)
        makespan = (last_f - first_q).total_seconds()
        runs = [r.timings.get("total", 0.0) for r in done_records if r.timings]
        lines.append(
            f"throughput      {len(done_records) / makespan:5.2f} jobs/s over {makespan:6.1f} s "
            f"(first queued -> last done); generation p50 {ms(percentile(runs, 50))} per job"
        )
    e2e = [s.final_at - s.sent_at for s in run.sent if s.final_at]
    lines.append(
        f"end to end      p50 {percentile(e2e, 50):6.1f} s   p99 {percentile(e2e, 99):6.1f} s   "
        f"max {max(e2e, default=float('nan')):6.1f} s   (dispatch -> final message, 0.2 s poll)"
    )
    lines.append(
        f"time            setup {out.get('setup_s', 0):5.1f} s   load {out['run_s']:6.1f} s "
        f"(open-loop stream of {run.open_loop_sent} sent in "
        f"{(run.open_loop_done_at or run.started_at) - run.started_at:5.1f} s, all sent after "
        f"{run.dispatched_at - run.started_at if run.dispatched_at else float('nan'):5.1f} s)   "
        f"shutdown {out.get('shutdown_s', float('nan')):4.1f} s"
    )
    if run.stalled:
        lines.append(f"STOPPED EARLY   {run.stalled}")
    return lines, verdicts


def order_violations(events: list[tuple[str, int, int]], single_users: set[int]) -> list[str]:
    """A one-job member's job must not start after two jobs of one other member that started
    between its push and its own start (round-robin gives each other member one turn)."""
    pushed: dict[int, int] = {}
    starts: list[tuple[int, int, int]] = []  # (position, job, user)
    for position, (kind, job, user) in enumerate(events):
        if kind == "push":
            pushed[job] = position
        else:
            starts.append((position, job, user))
    start_of = {job: position for position, job, _ in starts}
    problems: list[str] = []
    for job, user in {(j, u) for k, j, u in events if k == "push" and u in single_users}:
        if job not in start_of:
            problems.append(f"job {job} of a one-job member never started")
            continue
        ahead = collections.Counter(
            u for position, _, u in starts if pushed[job] < position < start_of[job] and u != user
        )
        over = {u: n for u, n in ahead.items() if n > 1}
        if over:
            problems.append(f"job {job}: other members ran more than once before it: {over}")
    return problems


def store_order_violations(records: dict[int, Any], single_users: set[int]) -> list[int]:
    started = [r for r in records.values() if r.started_at is not None]
    problems: list[int] = []
    for r in started:
        if r.user_id not in single_users:
            continue
        ahead = collections.Counter(
            o.user_id
            for o in started
            if o.user_id != r.user_id and r.queued_at < o.started_at < r.started_at
        )
        if any(n > 1 for n in ahead.values()):
            problems.append(r.id)
    return problems


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="interactions per second on average; 0 = as fast as the fake can",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the plan (who sends what)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=420.0,
        help="seconds the load phase may take before it is stopped",
    )
    parser.add_argument(
        "--stall", type=float, default=60.0, help="stop when no job finishes for this many seconds"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch CPU threads for the 'GPU' thread (1 leaves a core to the loop)",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() after start-up (models loaded): is the lag the GC's?",
    )
    args = parser.parse_args()

    import torch

    from bot.logs import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(max(1, args.torch_threads))
    logs = LogCounter()
    logging.getLogger().addHandler(logs)
    logging.getLogger().setLevel(logging.WARNING)

    # A hard stop if shutdown itself hangs: no process is left behind.
    hard_limit = args.timeout + 300
    watchdog = threading.Timer(
        hard_limit,
        lambda: (
            print(f"load_test: still running after {hard_limit:.0f} s; exiting hard", flush=True),
            os._exit(3),
        ),
    )
    watchdog.daemon = True
    watchdog.start()

    started = time.monotonic()
    print(
        f"load test: {args.jobs} jobs from {args.members} members, rate "
        f"{'as fast as possible' if args.rate <= 0 else f'{args.rate:g}/s'}, seed {args.seed}, "
        f"tiny_t2v 8 frames 64x64 10 steps, torch threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPU(s)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="videobot-load-") as folder:
        out = asyncio.run(run_load(args, Path(folder), logs))
    plan: Plan = out["plan"]
    kinds = collections.Counter(m.kind for m in plan.members)
    jobs_by_kind: collections.Counter[str] = collections.Counter()
    for m in plan.members:
        jobs_by_kind[m.kind] += m.jobs
    print(
        "plan: "
        + ", ".join(
            f"{kinds[k]} {k} ({jobs_by_kind[k]} jobs)" for k in ("heavy", "regular", "late")
        )
        + f"; members with exactly one job: {sum(1 for m in plan.members if m.jobs == 1)}"
    )
    lines, verdicts = analyse(out)
    print("-" * 100)
    for line in lines:
        print(line)
    print("-" * 100)
    statuses = dict(sorted(out["requests_by_status"].items()))
    print(
        f"fake: {sum(statuses.values())} requests by status class {statuses}; "
        f"unknown routes {out['unknown_routes'] or 'none'}"
    )
    for key, count in out["error_requests"].most_common(5):
        print(f"    {count:5d} x {key}")
    if logs.counts:
        print("bot log (warnings and errors, most frequent first):")
        for (level, name, message), count in logs.counts.most_common(8):
            print(f"    {count:5d} x {level} {name}: {message}")
        for key, trace in list(logs.first_trace.items())[:2]:
            print(f"    first traceback of {key[1]}: {trace.strip().splitlines()[-1]}")
    else:
        print("bot log: no warnings or errors")
    print("-" * 100)
    for name, ok, figure in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<52} {figure}")
    print(f"total wall time {time.monotonic() - started:.1f} s")
    watchdog.cancel()
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
