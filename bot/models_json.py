"""The registry as JSON for scripts and owners' tooling (``videobot models --json``).

Each entry says what a model is (key, name, family, source repo, role), what it can do, its rules
and defaults, and its memory: the card figure, the parameter counts, every plan's GPU and host
memory at the native size and the plan each common card size gets (``bot.core.plans``). Plain
data, so a script can read it without importing the bot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.core.aspect import ASPECTS, size_for_aspect
from bot.core.plans import Card, choose, host_ram_gb, native_shape, plans_for
from bot.core.registry import REGISTRY, ModelSpec

if TYPE_CHECKING:
    from bot.core.manager import ModelManager

CARD_SIZES_GB = (12, 16, 24, 48, 80)
"""The card sizes every entry is planned for: the consumer cards owners run, and the data-centre
ones."""
REFERENCE_HOST_GB = 64.0
"""The host memory the per-card plans assume (the plans for this machine's card use its own)."""


def registry_json(manager: ModelManager) -> dict[str, Any]:
    card = manager.card()
    rows = {row.key: row for row in manager.list_models()}
    return {
        "card": _card(card),
        "card_sizes_gb": list(CARD_SIZES_GB),
        "models": [_entry(spec, rows[spec.key]) for spec in REGISTRY.values()],
    }


def _entry(spec: ModelSpec, row: Any) -> dict[str, Any]:
    return {
        "key": spec.key,
        "name": spec.name,
        "family": spec.family,
        "role": spec.role,
        "source": row.source,
        "tiny": spec.tiny,
        "abilities": {
            "text_to_video": spec.role == "generator",
            "image_to_video": spec.image_to_video,
            "restyle": spec.restyles,
            "extend": spec.extends,  # how it continues a clip (bot.core.extend), or None
            "first_last_frame": spec.first_last_frame,
        },
        "rules": {
            "size": {"min": spec.min_size, "max": spec.max_size, "multiple": spec.size_multiple},
            "frames": {
                "min": spec.frames.low,
                "max": spec.frames.high,
                "step": spec.frames.step,
                "offset": spec.frames.offset,
            },
            "steps": {"min": spec.steps.low, "max": spec.steps.high},
            "guidance": {"min": spec.guidance.low, "max": spec.guidance.high},
            "schedulers": list(spec.schedulers),
            # The size each /video aspect: and --ar shape runs at (bot.core.aspect).
            "aspects": {name: list(size_for_aspect(spec, name)) for name in ASPECTS},
        },
        "defaults": spec.defaults(),
        "draft_model": spec.draft_model,
        "upscaler": spec.upscaler,
        "memory": _memory(spec, row),
    }


def _memory(spec: ModelSpec, row: Any) -> dict[str, Any]:
    memory: dict[str, Any] = {
        "card_vram_gb": spec.total_vram_gb,
        "parameters_millions": dict(spec.parameters),
        "advice": spec.memory_advice,
    }
    if not spec.parameters:
        memory["plans"] = None  # a tiny model: fits anywhere
        return memory
    reference = Card(vram_gb=80, host_ram_gb=REFERENCE_HOST_GB, compute_capability=(8, 9))
    memory["plans"] = [
        {k: v for k, v in plan.as_dict().items() if k not in ("fits", "why_not")}
        for plan in plans_for(spec, native_shape(spec), reference)
    ]
    memory["plan_by_card_gb"] = {
        str(size): _chosen(spec, Card(size, REFERENCE_HOST_GB, (8, 9))) for size in CARD_SIZES_GB
    }
    memory["this_card"] = row.plan.as_dict() if row.plan else None
    return memory


def _chosen(spec: ModelSpec, card: Card) -> str | None:
    choice = choose(spec, card)
    return choice.chosen.key if choice.chosen else None


def _card(card: Card | None) -> dict[str, Any] | None:
    if card is None:
        return {"device": "cpu", "host_ram_gb": round(host_ram_gb(), 1)}
    return {
        "vram_gb": card.vram_gb,
        "host_ram_gb": card.host_ram_gb,
        "compute_capability": list(card.compute_capability),
    }
