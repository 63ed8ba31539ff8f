"""Blocked words, matched the way a text encoder still reads them.

A plain comparison is bypassed by text that looks (and tokenizes) like the word but is made of other
code points: full-width letters (``ｇｏｒｅ``), a zero-width space or a soft hyphen inside the word,
a Cyrillic ``е`` for the Latin ``e``. Both the prompt and each blocked word are therefore reduced to
one key before they are compared:

1. format characters (Unicode category Cf: zero-width spaces and joiners, the soft hyphen, bidi
   controls, tags) are removed, then the text is put in NFKC (full-width and styled letters become
   plain ones) and case folded;
2. the result is mapped to its confusable *skeleton* (Unicode Technical Standard #39, section 4):
   every character replaced by the prototype it is confusable with, so Cyrillic, Greek and other
   look-alikes meet the Latin word. The skeleton comes from ``disarm.skeleton_key`` (Unicode's own
   confusables data, kept current by that package) with TR39's digit classes (``0`` is ``o``,
   ``1`` is ``l``); folding case first keeps ``KILL`` and ``kill`` one word, where TR39 alone
   maps a capital ``I`` to ``l``.

Entries match whole words: the key is cut into ``\\w+`` words and an entry (a word or a phrase)
matches where its words appear in a row. ``gore`` blocks ``GORE``, ``g\\u200bore`` and ``ɡοrе``,
not ``gorest``.

This module is a leaf: it knows nothing of Discord, settings or the store.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from disarm import skeleton_key

_WORD = re.compile(r"\w+")


def key(text: str) -> str:
    """The comparison key of ``text``: without format characters, NFKC, case folded, skeleton."""
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    folded = unicodedata.normalize("NFKC", visible).casefold()
    return skeleton_key(folded, digit_policy="tr39")


def words(text: str) -> list[str]:
    """The whole words of ``text``'s key, in order."""
    return _WORD.findall(key(text))


@dataclass(frozen=True)
class BlockedWord:
    """One configured entry (a word or a phrase) and the words of its key."""

    entry: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class WordFilter:
    """The blocked words, keyed once; :meth:`find` looks for them in a text."""

    blocked: tuple[BlockedWord, ...]

    @classmethod
    def of(cls, entries: Iterable[str]) -> WordFilter:
        keyed = (BlockedWord(entry, tuple(words(entry))) for entry in entries)
        return cls(tuple(b for b in keyed if b.words))

    def find(self, text: str) -> str | None:
        """The first configured entry found in ``text`` as whole words, or None."""
        if not self.blocked:
            return None
        found = words(text)
        for blocked in self.blocked:
            if _contains(found, blocked.words):
                return blocked.entry
        return None


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    size = len(needle)
    return any(
        tuple(haystack[i : i + size]) == tuple(needle) for i in range(len(haystack) - size + 1)
    )


__all__ = ["BlockedWord", "WordFilter", "key", "words"]
