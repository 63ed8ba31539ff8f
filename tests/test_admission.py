"""Admission under simultaneous requests: random interleavings of many requests from several
members in several places (servers and direct messages), against a real SQLite store, never let
a limit be exceeded or a request vanish (issue 12)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.admission import Admission, Requester, RequestRefused, Ticket
from bot.config import Settings
from bot.lifecycle import JobKind
from bot.store import Store

PLACES = (101, 202, None)  # two servers and direct messages
MEMBERS = (1, 2, 3)
KINDS = tuple(JobKind)

request = st.tuples(
    st.sampled_from(MEMBERS),
    st.sampled_from(PLACES),
    st.sampled_from(KINDS),
    st.integers(min_value=0, max_value=4),  # yields before asking: the interleaving
    st.booleans(),  # release the ticket afterwards (the job ended)
)


def make_settings(tmp_path: Path, **limits: object) -> Settings:
    return Settings(
        storage={"database": tmp_path / "db.sqlite3", "output_dir": tmp_path / "out"},
        limits=limits,
    )


def who(member: int, place: int | None) -> Requester:
    return Requester(member, f"m{member}", place, channel_id=place or 9)


async def run_burst(
    admission: Admission, requests: list[tuple[int, int | None, JobKind, int, bool]]
) -> tuple[list[Ticket], list[str], Counter[tuple[int | None, int]]]:
    """Fire every request at once; record the most slots any member held at any moment."""
    tickets: list[Ticket] = []
    refusals: list[str] = []
    peak: Counter[tuple[int | None, int]] = Counter()

    async def one(member: int, place: int | None, kind: JobKind, yields: int, end: bool) -> None:
        for _ in range(yields):
            await asyncio.sleep(0)
        try:
            ticket = await admission.admit(who(member, place), kind)
        except RequestRefused as exc:
            refusals.append(str(exc))
            return
        tickets.append(ticket)
        scope = (place, member)
        peak[scope] = max(peak[scope], admission.active(place, member))
        assert admission.gpu_active <= admission.queue_capacity
        if end:
            ticket.recorded = True
            await asyncio.sleep(0)
            ticket.release()

    await asyncio.gather(*(one(*r) for r in requests))
    return tickets, refusals, peak


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    requests=st.lists(request, min_size=1, max_size=24),
    cap=st.integers(1, 3),
    override=st.integers(0, 3),
)
def test_the_per_member_cap_holds_under_any_interleaving(tmp_path, requests, cap, override) -> None:  # type: ignore[no-untyped-def]
    """The bot's cap applies in server 101 and in DMs; server 202 overrides it (0 pauses)."""
    caps = {101: cap, None: cap, 202: override}

    async def scenario() -> None:
        async with await Store.open(":memory:") as store:
            await store.update_guild_settings(202, max_queued_per_user=override)
            admission = Admission(make_settings(tmp_path, max_queued_per_user=cap), store)
            tickets, refusals, peak = await run_burst(admission, requests)
            assert len(tickets) + len(refusals) == len(requests)  # every request answered
            assert all(held <= caps[place] for (place, _), held in peak.items()), peak
            if override == 0:
                assert not [t for t in tickets if t.scope[0] == 202]
                asked_there = sum(1 for _, place, *_ in requests if place == 202)
                assert sum("paused" in r for r in refusals) == asked_there
            # what is still held is exactly the tickets not released
            held = Counter(t.scope for t in tickets if not t.released)
            for (place, member), count in held.items():
                assert admission.active(place, member) == count
            for ticket in tickets:
                ticket.release()
            assert admission.gpu_active == 0
            assert all(admission.active(p, m) == 0 for p in PLACES for m in MEMBERS)

    asyncio.run(scenario())


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests=st.lists(request, min_size=1, max_size=24))
def test_the_cooldown_admits_one_request_per_place_under_any_interleaving(
    tmp_path, requests
) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with await Store.open(":memory:") as store:
            limits = {"cooldown_s": 3600, "max_queued_per_user": 50}
            admission = Admission(make_settings(tmp_path, **limits), store, clock=lambda: 1000.0)
            tickets, refusals, _ = await run_burst(admission, requests)
            per_place = Counter(t.scope for t in tickets)
            asked = {(place, member) for member, place, *_ in requests}
            # exactly one admitted per member and place, the rest told to slow down
            assert set(per_place) == asked and set(per_place.values()) == {1}
            assert len(refusals) == len(requests) - len(asked)
            assert all("slow down" in r for r in refusals)

    asyncio.run(scenario())


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests=st.lists(request, min_size=1, max_size=30), max_queue=st.integers(1, 4))
def test_the_global_queue_cap_holds_for_gpu_jobs_only(tmp_path, requests, max_queue) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with await Store.open(":memory:") as store:
            limits = {
                "max_queue": max_queue,
                "max_queued_per_user": 50,
                "max_queued_per_user_total": 200,
            }
            admission = Admission(make_settings(tmp_path, **limits), store)
            kept = [(m, p, k, y, False) for m, p, k, y, _ in requests]  # nobody's job ends
            tickets, refusals, _ = await run_burst(admission, kept)
            gpu = [t for t in tickets if t.kind.uses_gpu]
            assert len(gpu) <= max_queue + 1
            wanted_gpu = sum(1 for _, _, k, _, _ in kept if k.uses_gpu)
            assert len(gpu) == min(wanted_gpu, max_queue + 1)  # no slot is wasted either
            edits = [t for t in tickets if not t.kind.uses_gpu]
            assert len(edits) == sum(1 for _, _, k, _, _ in kept if not k.uses_gpu)
            assert all("queue is full" in r for r in refusals)

    asyncio.run(scenario())


async def test_a_ticket_released_before_its_job_was_recorded_gives_the_cooldown_back(
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    async with await Store.open(":memory:") as store:
        admission = Admission(make_settings(tmp_path, cooldown_s=60), store, clock=lambda: 50.0)
        ticket = await admission.admit(who(1, 101), JobKind.GENERATE)
        ticket.release()  # e.g. the parameters failed after admission: no request was made
        again = await admission.admit(who(1, 101), JobKind.GENERATE)
        again.recorded = True
        again.release()
        with pytest.raises(RequestRefused, match="slow down"):
            await admission.admit(who(1, 101), JobKind.GENERATE)
        # another server has its own cooldown
        await admission.admit(who(1, 202), JobKind.GENERATE)


async def test_blocked_members_and_direct_messages(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with await Store.open(":memory:") as store:
        await store.block(101, 1, moderator_id=9, reason="spam")
        admission = Admission(make_settings(tmp_path), store)
        with pytest.raises(RequestRefused, match="blocked you"):
            await admission.admit(who(1, 101), JobKind.EDIT)
        await admission.admit(who(1, 202), JobKind.GENERATE)  # not blocked in another server
        with pytest.raises(RequestRefused, match="direct messages either"):
            await admission.admit(who(1, None), JobKind.GENERATE)
        await admission.admit(who(2, None), JobKind.GENERATE)

        off = Admission(make_settings(tmp_path, direct_messages="off"), store)
        with pytest.raises(RequestRefused, match="use me in a server"):
            await off.admit(who(2, None), JobKind.GENERATE)


def test_blocked_words_are_refused_whole_words_any_case(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        storage={"database": tmp_path / "db.sqlite3", "output_dir": tmp_path / "out"},
        moderation={"blocked_words": ["Gore"]},
    )
    admission = Admission(settings, store=None)  # type: ignore[arg-type]  # words need no store
    with pytest.raises(RequestRefused, match="negative: the word 'gore'"):
        admission.check_words([("prompt", "a cat"), ("negative", "no GORE please")])
    admission.check_words([("prompt", "gorest of all, a gorey tale")])  # not whole words


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    requests=st.lists(request, min_size=1, max_size=24),
    cap=st.integers(1, 3),
    total=st.integers(1, 4),
)
def test_the_cap_across_servers_holds_under_any_interleaving(
    tmp_path, requests, cap, total
) -> None:  # type: ignore[no-untyped-def]
    """One person in many servers (and DMs) holds at most ``max_queued_per_user_total`` jobs in
    all of them together, and no slot within both caps is wasted."""

    async def scenario() -> None:
        async with await Store.open(":memory:") as store:
            limits = {"max_queued_per_user": cap, "max_queued_per_user_total": total}
            admission = Admission(make_settings(tmp_path, **limits), store)
            peak: Counter[int] = Counter()
            admit = admission.admit

            async def watched(who: Requester, kind: JobKind, texts=()) -> Ticket:  # type: ignore[no-untyped-def]
                ticket = await admit(who, kind, texts)
                peak[who.user_id] = max(peak[who.user_id], admission.active_everywhere(who.user_id))
                return ticket

            admission.admit = watched  # type: ignore[method-assign]
            kept = [(m, p, k, y, False) for m, p, k, y, _ in requests]  # nobody's job ends
            tickets, refusals, _ = await run_burst(admission, kept)
            assert len(tickets) + len(refusals) == len(requests)
            assert all(held <= total for held in peak.values()), peak
            for member in MEMBERS:
                asked = Counter(p for m, p, *_ in kept if m == member)
                within = sum(min(cap, n) for n in asked.values())
                held = sum(1 for t in tickets if t.scope[1] == member)
                assert held == min(total, within)  # every slot both caps allow is given
            assert all("the limit is" in r for r in refusals)
            for ticket in tickets:
                ticket.release()
            assert all(admission.active_everywhere(m) == 0 for m in MEMBERS)

    asyncio.run(scenario())


async def test_a_released_job_gives_its_slot_across_servers_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with await Store.open(":memory:") as store:
        settings = make_settings(tmp_path, max_queued_per_user=3, max_queued_per_user_total=2)
        admission = Admission(settings, store)
        first = await admission.admit(who(1, 101), JobKind.GENERATE)
        await admission.admit(who(1, 202), JobKind.EDIT)
        with pytest.raises(RequestRefused, match="across all servers and direct messages"):
            await admission.admit(who(1, None), JobKind.GENERATE)
        await admission.admit(who(2, None), JobKind.GENERATE)  # another person is not counted
        first.release()
        await admission.admit(who(1, None), JobKind.GENERATE)


def word_filter(tmp_path: Path, *entries: str) -> Admission:
    settings = Settings(
        storage={"database": tmp_path / "db.sqlite3", "output_dir": tmp_path / "out"},
        moderation={"blocked_words": list(entries)},
    )
    return Admission(settings, store=None)  # type: ignore[arg-type]  # words need no store


@pytest.mark.parametrize(
    "disguised",
    [
        "ｇｏｒｅ",  # full-width letters
        "go\u200bre",  # a zero-width space
        "go\u00adre",  # a soft hyphen
        "g\u2060o\u200dre",  # a word joiner and a zero-width joiner
        "gor\u0435",  # a Cyrillic е
        "g\u043er\u0435",  # Cyrillic о and е
        "g\u03bfre",  # a Greek omicron
        "\U0001d420\U0001d428\U0001d42b\U0001d41e",  # mathematical bold
        "\u0261ore",  # Latin script small g
        "GORE",
        "G\u041eRE",  # a Cyrillic capital О
        "g0re",  # TR39 puts the digit zero with o
        "\u202egore",  # a right-to-left override before it
    ],
)
def test_blocked_words_are_found_however_they_are_spelled(tmp_path, disguised) -> None:  # type: ignore[no-untyped-def]
    """The text encoders read each of these as the word: so does the filter (NFKC, case folded,
    format characters removed, Unicode's confusable skeleton)."""
    admission = word_filter(tmp_path, "gore")
    with pytest.raises(RequestRefused, match="prompt: the word 'gore' is not allowed"):
        admission.check_words([("prompt", f"a cat, {disguised} everywhere")])


def test_blocked_words_stay_whole_words_and_phrases_match_in_a_row(tmp_path) -> None:  # type: ignore[no-untyped-def]
    admission = word_filter(tmp_path, "gore", "red wine", "g\u043er\u0435d")
    for fine in ("gorest of all", "a gorey tale", "go re", "red, then white wine", "redwine"):
        admission.check_words([("prompt", fine)])
    with pytest.raises(RequestRefused, match="the word 'red wine'"):
        admission.check_words([("prompt", "a glass of RED\u200b  w\u0456ne")])
    # an entry written with look-alikes blocks the plain word too
    with pytest.raises(RequestRefused, match="the word 'g\u043er\u0435d'"):
        admission.check_words([("prompt", "gored")])


def test_a_blocked_entry_with_nothing_to_match_is_a_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="has no letters or digits to match"):
        word_filter(tmp_path, "gore", "\u200b")
