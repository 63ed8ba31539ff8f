"""What every tiny model shares: the seed its weights come from and the words of its vocabularies."""

from __future__ import annotations

TINY_SEED = 0
_TEXT_DIM = 32
"""The width of the tiny text encoders' embeddings (CLIP and T5 alike)."""


def _seed(offset: int = 0) -> None:
    """Seed torch right before a component, so its weights are fixed by ``TINY_SEED`` alone."""
    import torch

    torch.manual_seed(TINY_SEED + offset)


def _word_merges(vocab: dict[str, int], prefix: str) -> list[tuple[str, str]]:
    """BPE merges that make each word of :data:`_VOCAB_WORDS`, after the word-start marker
    ``prefix`` (``Ġ`` byte-level, ``▁`` SentencePiece-style), one piece, adding every piece to
    ``vocab`` as it forms: the tokenizers built in code (Qwen, Gemma) then split prompts into
    word-sized pieces like the real ones."""
    merges: list[tuple[str, str]] = []
    for word in _VOCAB_WORDS:
        piece = prefix
        for char in word:
            if (piece, char) not in merges:
                merges.append((piece, char))
            piece += char
            vocab.setdefault(piece, len(vocab))
    return merges


_VOCAB_WORDS = [
    "a",
    "an",
    "the",
    "of",
    "on",
    "in",
    "at",
    "with",
    "and",
    "over",
    "under",
    "into",
    "by",
    "to",
    "from",
    "is",
    "cat",
    "dog",
    "boat",
    "pond",
    "sea",
    "sky",
    "city",
    "car",
    "cars",
    "flying",
    "horse",
    "mars",
    "astronaut",
    "sunset",
    "mountains",
    "beautiful",
    "cinematic",
    "scene",
    "futuristic",
    "paper",
    "drifting",
    "surfing",
    "wave",
    "forest",
    "night",
    "day",
    "rain",
    "snow",
    "fire",
    "water",
    "blurry",
    "low",
    "quality",
    "red",
    "blue",
    "green",
]
