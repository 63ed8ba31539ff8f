"""The names members, owners and job specs give the learned upscaler. Pure, no torch.

``realesrgan`` is what a member picks and an owner configures; a queued job names its scale too
(``realesrgan_x2``, ``realesrgan_x4``), so a job spec says everything the worker needs in its
``upscaler`` field, as it does for a diffusion upscaler's registry key.
"""

from __future__ import annotations

from bot.core.errors import InvalidParameterError

LEARNED_UPSCALER = "realesrgan"
"""Real-ESRGAN x2/x4 through spandrel: any size, the default upscaler."""

DIFFUSION_UPSCALER = "zeroscope_xl"
"""What a member picks for the model's diffusion upscaler (Zeroscope XL, at its own size)."""

UPSCALER_CHOICES = (LEARNED_UPSCALER, DIFFUSION_UPSCALER)

UPSCALE_FACTORS = (2, 4)
"""The scales Real-ESRGAN's released weights come in."""


def learned_key(scale: int) -> str:
    """The job's upscaler for Real-ESRGAN at ``scale``: ``realesrgan_x2`` or ``realesrgan_x4``."""
    return f"{LEARNED_UPSCALER}_x{scale}"


def learned_scale(key: str | None) -> int | None:
    """The scale of a learned upscaler key (``realesrgan`` is 2x), None for any other key; a
    ``realesrgan_xN`` with another N is refused in one line."""
    if not isinstance(key, str):
        return None
    name = key.strip().lower()
    if name == LEARNED_UPSCALER:
        return 2
    if not name.startswith(f"{LEARNED_UPSCALER}_x"):
        return None
    scale = name.removeprefix(f"{LEARNED_UPSCALER}_x")
    if scale not in ("2", "4"):
        raise InvalidParameterError(
            "upscaler", f"Real-ESRGAN upscales 2x or 4x: realesrgan_x2 or realesrgan_x4 (got {key})"
        )
    return int(scale)


def learned_label(scale: int) -> str:
    """What the result says it was upscaled with."""
    return f"Real-ESRGAN x{scale}"
