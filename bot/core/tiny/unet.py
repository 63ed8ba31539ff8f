"""The tiny seed families: ModelScope-style text-to-video and its video-to-video upscaler
(``UNet3DConditionModel``), and AnimateDiff (an SD1.5-shaped base and a ``MotionAdapter``), with a
CLIP text encoder and a CLIP BPE tokenizer generated in code.

The VAE keeps Stable Diffusion's four blocks (8x downsampling) so the latents stay as small relative
to the frames as in the real models.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

from bot.core.tiny.common import _TEXT_DIM, _VOCAB_WORDS, TINY_SEED

# --- tokenizer -----------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte-to-character table (the same one CLIPTokenizer uses)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def _tiny_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """A byte-level BPE vocabulary: every byte, every byte ending a word, and merges that make each
    word of a small list one piece, so prompts tokenize into word-sized pieces like the real CLIP
    tokenizer. Merges are added in the order BPE applies them (rank), so each word really merges."""
    chars = list(_bytes_to_unicode().values())
    vocab_list = chars + [c + "</w>" for c in chars]
    known = set(vocab_list)
    ranks: dict[tuple[str, str], int] = {}
    for word in _VOCAB_WORDS:
        symbols = _apply_merges([*word[:-1], word[-1] + "</w>"], ranks)
        while len(symbols) > 1:
            ranks[(symbols[0], symbols[1])] = len(ranks)
            if symbols[0] + symbols[1] not in known:
                known.add(symbols[0] + symbols[1])
                vocab_list.append(symbols[0] + symbols[1])
            symbols = _apply_merges(symbols, ranks)
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    merges = [f"{a} {b}" for (a, b), _ in sorted(ranks.items(), key=lambda item: item[1])]
    return {tok: i for i, tok in enumerate(vocab_list)}, merges


def _apply_merges(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Standard BPE: merge the lowest-ranked adjacent pair until no known pair is left."""
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(itertools.pairwise(symbols))]
        ranked = [(rank, i) for rank, i in pairs if rank is not None]
        if not ranked:
            break
        _, i = min(ranked)
        symbols = [*symbols[:i], symbols[i] + symbols[i + 1], *symbols[i + 2 :]]
    return symbols


def _tiny_tokenizer(folder: Path):  # type: ignore[no-untyped-def]
    from transformers import CLIPTokenizer

    vocab, merges = _tiny_vocab_and_merges()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(
        vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=77
    )


def _tiny_text_encoder(vocab_size: int, bos: int, eos: int):  # type: ignore[no-untyped-def]
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(TINY_SEED)
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=_TEXT_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=_TEXT_DIM,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
        hidden_act="quick_gelu",
    )
    return CLIPTextModel(config).eval()


def _text_components(scratch: Path) -> dict[str, object]:
    tokenizer = _tiny_tokenizer(scratch / "tokenizer-src")
    text_encoder = _tiny_text_encoder(
        len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id
    )
    return {"tokenizer": tokenizer, "text_encoder": text_encoder}


def _tiny_vae():  # type: ignore[no-untyped-def]
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(TINY_SEED)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        norm_num_groups=4,
        latent_channels=4,
        sample_size=64,
    )


def _sd_scheduler():  # type: ignore[no-untyped-def]
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def _tiny_unet3d():  # type: ignore[no-untyped-def]
    import torch
    from diffusers import UNet3DConditionModel

    torch.manual_seed(TINY_SEED)
    return UNet3DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock3D", "DownBlock3D", "CrossAttnDownBlock3D"),
        up_block_types=("CrossAttnUpBlock3D", "UpBlock3D", "UpBlock3D"),
        block_out_channels=(8, 8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        cross_attention_dim=_TEXT_DIM,
        attention_head_dim=2,
    )


# --- builders ------------------------------------------------------------------------------------


def _build_text_to_video(target: Path, pipeline_name: str) -> None:
    import diffusers

    pipeline_cls = getattr(diffusers, pipeline_name)
    with tempfile.TemporaryDirectory() as scratch:
        pipe = pipeline_cls(
            vae=_tiny_vae(),
            unet=_tiny_unet3d(),
            scheduler=_sd_scheduler(),
            **_text_components(Path(scratch)),
        )
        pipe.save_pretrained(target)


def _build_tiny_t2v(target: Path) -> None:
    """Same classes as ModelScope and Zeroscope: ``TextToVideoSDPipeline`` over a UNet3D."""
    _build_text_to_video(target, "TextToVideoSDPipeline")


def _build_tiny_v2v(target: Path) -> None:
    """Same classes as Zeroscope XL, the upscaler: ``VideoToVideoSDPipeline`` over a UNet3D."""
    _build_text_to_video(target, "VideoToVideoSDPipeline")


def _tiny_unet2d():  # type: ignore[no-untyped-def]
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(TINY_SEED)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        block_out_channels=(8, 8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        cross_attention_dim=_TEXT_DIM,
        attention_head_dim=8,
    )


def _tiny_motion_adapter(seed_offset: int, heads: int = 2, groups: int = 4):  # type: ignore[no-untyped-def]
    """A MotionAdapter matching the tiny SD1.5 UNet. The seed offset tells adapters apart:
    AnimateDiff's is +1, AnimateDiff-Lightning's (in ``dit``) +2."""
    import torch
    from diffusers import MotionAdapter

    torch.manual_seed(TINY_SEED + seed_offset)
    return MotionAdapter(
        block_out_channels=(8, 8, 16),
        motion_layers_per_block=1,
        motion_norm_num_groups=groups,
        motion_num_attention_heads=heads,
        motion_max_seq_length=32,
    )


def _build_sd15_base(target: Path) -> None:
    """An SD1.5-shaped ``StableDiffusionPipeline`` folder, laid out like the hub's
    ``stable-diffusion-v1-5``: the base that the motion adapters are put on."""
    from diffusers import StableDiffusionPipeline

    with tempfile.TemporaryDirectory() as scratch:
        base = StableDiffusionPipeline(
            vae=_tiny_vae(),
            unet=_tiny_unet2d(),
            scheduler=_sd_scheduler(),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
            **_text_components(Path(scratch)),
        )
        base.save_pretrained(target)  # type: ignore[attr-defined]


def _build_tiny_animatediff(target: Path) -> None:
    """An SD1.5-shaped base folder plus a separate ``MotionAdapter`` folder, laid out like the hub's
    ``stable-diffusion-v1-5`` and ``animatediff-motion-adapter-v1-5-2`` so they load the same way."""
    _build_sd15_base(target / "base")
    _tiny_motion_adapter(seed_offset=1).save_pretrained(target / "motion_adapter")
