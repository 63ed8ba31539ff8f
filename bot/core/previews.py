"""Live previews: a cheap picture of the latents while a job denoises, never the VAE.

Each latent space has a published linear map from its channels to RGB (``rgb = latent @ factors +
bias``, values in [-1, 1]), fitted by the ComfyUI project against each VAE's decoder. Projecting a
few latent frames through it and encoding them as a small looping GIF costs a matrix product and
an image encode: a few milliseconds, against seconds for a VAE decode of a whole video.

The map depends only on the latent space, not the model: AnimateDiff, ModelScope and Zeroscope all
denoise Stable Diffusion 1.5's VAE latents; Wan 2.1 (16 channels) and Wan 2.2 TI2V (48 channels)
have two different VAEs under one family, told apart by the channel count. A latent space with no
published factors is shown as a channel-mean greyscale, stretched to the full range: still the
video forming, with no made-up colours.

GIF, not WebP: Discord plays animated GIF attachments inline in every client; animated WebP came
to its media pipeline only lately (Discord's engineering blog, "Modern Image Formats at Discord:
Supporting WebP and AVIF") and older and third-party clients show its first frame.

Everything here runs on the job's own thread inside the diffusers step callback, so it keeps the
work on the latents' device small (a projection of at most ``max_frames`` frames) and moves only
those few RGB pixels to the CPU.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bot.core.progress import Preview

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Factors = tuple[tuple[float, float, float], ...]
Bias = tuple[float, float, float]

# --- the published factors ---------------------------------------------------------------------
# SD 1.5, Mochi, LTX-Video, Wan 2.1 and Wan 2.2: ComfyUI's comfy/latent_formats.py (classes SD15,
# Mochi, LTXV, Wan21, Wan22; github.com/Comfy-Org/ComfyUI, commit a125cd84b054, Oct 2025), rounded
# to 6 decimals. CogVideoX: ComfyUI has no factors for it (its CogVideoX class has none); these are
# from kijai/ComfyUI-CogVideoXWrapper's latent_preview.py (commit 666f7832f958), published without a
# bias. All apply to the latents as the diffusers pipelines hold them while denoising (scaled or
# normalised the way each VAE's decode expects them back), which is the space ComfyUI previews in.

_SD15_FACTORS: Factors = (
    (0.3512, 0.2297, 0.3227),
    (0.325, 0.4974, 0.235),
    (-0.2829, 0.1762, 0.2721),
    (-0.212, -0.2616, -0.7177),
)
_SD15_BIAS: Bias = (0.0, 0.0, 0.0)

_MOCHI_FACTORS: Factors = (
    (-0.0069, -0.0045, 0.0018),
    (0.0154, -0.0692, -0.0274),
    (0.0333, 0.0019, 0.0206),
    (-0.139, 0.0628, 0.1678),
    (-0.0725, 0.0134, -0.1898),
    (0.0074, -0.027, -0.0209),
    (-0.0176, -0.0277, -0.0221),
    (0.5294, 0.5204, 0.3852),
    (-0.0326, -0.0446, -0.0143),
    (-0.0659, 0.0153, -0.0153),
    (0.0185, -0.0217, 0.0014),
    (-0.0396, -0.0495, -0.0281),
)
_MOCHI_BIAS: Bias = (-0.094, -0.1418, -0.1453)

_LTXV_FACTORS: Factors = (
    (0.011202, -0.000638, -0.010021),
    (0.086031, 0.065813, 0.000954),
    (-0.012576, -0.007573, -0.004053),
    (0.009406, -0.002169, 0.002609),
    (0.003764, 0.012765, 0.009155),
    (0.021024, -0.005297, 0.003437),
    (-0.00889, -0.019703, -0.018761),
    (-0.01316, -0.010523, 0.001971),
    (-0.001515, -0.006989, -0.007581),
    (-0.001725, 0.000466, -0.003384),
    (0.013617, 0.004708, -0.002005),
    (0.010256, 0.007732, 0.013948),
    (-0.016108, -0.006215, 0.001156),
    (0.007341, 0.015628, 0.000449),
    (0.000954, -0.002952, -0.01476),
    (0.019143, 0.010868, 0.012264),
    (0.004457, 3.7e-05, -0.006851),
    (-0.000457, 0.003257, 0.007793),
    (0.033902, 0.033405, 0.037454),
    (-0.023001, -0.002488, -0.003103),
    (0.050265, 0.038841, 0.033539),
    (-0.004102, -0.00111, 0.001586),
    (-0.12689, -0.13107, -0.21005),
    (0.026276, 0.014189, -0.003596),
    (-0.004868, 0.008849, 0.007803),
    (-0.001661, -0.00486, -0.005206),
    (-0.002101, 0.002361, 0.00938),
    (-0.022482, -0.021305, -0.015087),
    (-0.015753, -0.010646, -0.006508),
    (-0.004698, 0.005029, -0.006739),
    (0.011951, 0.020712, 0.016191),
    (-0.00637, -0.008483, -0.009548),
    (0.007261, -0.009933, -0.022978),
    (-0.000919, 0.006288, 0.009572),
    (-0.037178, -0.037123, -0.056713),
    (-0.13373, -0.1072, -0.053801),
    (-0.00537, 0.008126, 0.00884),
    (-0.15247, -0.21437, -0.21843),
    (0.031441, 0.007033, -0.009754),
    (0.002153, -0.008982, -0.021023),
    (0.003846, -0.005896, -0.015014),
    (-0.004347, -0.01294, -0.015972),
    (-0.005478, -0.010842, -0.00302),
    (-0.006535, 0.003081, -0.010163),
    (-0.005041, -0.00715, -0.000897),
    (-0.008585, -0.002435, 0.001067),
    (-0.009002, -0.009649, 0.001569),
    (0.005091, 0.012099, 0.019968),
    (0.013758, 0.011669, 0.008196),
    (-0.010518, -0.011575, -0.004131),
    (-0.02841, -0.031266, -0.022149),
    (0.002934, 0.036511, 0.018717),
    (-0.016703, -0.016696, -0.004453),
    (0.048818, 0.040063, 0.008741),
    (-0.015066, -0.000573, 0.002978),
    (-0.017613, -0.008103, 0.013086),
    (-0.009263, 0.010803, -0.006349),
    (0.003085, 0.000478, 0.012347),
    (-0.022785, -0.023043, -0.026005),
    (-0.024787, -0.015389, -0.022104),
    (-0.023572, 0.001054, 0.012361),
    (-0.007891, -0.001227, -0.006097),
    (-0.011478, -0.001254, 0.006268),
    (-0.054229, 0.026644, 0.006339),
    (0.004422, -0.007334, -0.010464),
    (-0.004501, 0.001608, 0.01442),
    (0.013673, 0.008888, 0.004125),
    (-0.010145, 0.009007, 0.015695),
    (-0.005623, 0.001185, 0.008126),
    (-0.003717, -0.005354, 0.001259),
    (0.029476, 0.021424, 0.030424),
    (-0.034925, -0.02434, -0.025316),
    (-0.034127, -0.022406, -0.010589),
    (-0.017342, -0.013249, -0.010719),
    (-0.002148, -0.008605, -0.002988),
    (0.001209, -0.004239, -0.006857),
    (0.000904, -0.006689, -6.8e-05),
    (0.016048, -0.010057, -0.028929),
    (0.001229, 0.010163, 0.018861),
    (0.017264, 0.000273, 0.013785),
    (-0.013482, -0.003643, 0.000675),
    (0.004678, -0.005242, 0.002447),
    (-0.005911, -0.006224, -0.001816),
    (0.015496, 0.014582, 0.001951),
    (0.007496, 0.001589, -0.00823),
    (0.019086, 0.001636, -0.003967),
    (-0.005702, -0.002731, -0.004107),
    (0.001745, 0.014602, 0.025794),
    (-0.000828, 0.00229, 0.004516),
    (0.011632, 0.008919, -0.007281),
    (0.007572, 0.002678, 0.011393),
    (0.005194, 0.00369, 0.014049),
    (-0.018383, -0.022529, -0.024477),
    (0.000588, -0.005787, -0.01477),
    (-0.016125, -0.00861, -0.014533),
    (0.02054, 0.020729, 0.006434),
    (0.003359, -0.011226, -0.016444),
    (-0.001474, -0.010489, 0.00171),
    (0.02813, 0.023546, 0.032791),
    (-0.018532, -0.012842, -0.008776),
    (-0.008053, -0.010771, -0.017536),
    (-0.003901, 0.01615, 0.033359),
    (-0.007455, -0.014154, -0.006191),
    (0.003473, -0.01137, -0.010581),
    (0.011476, 0.003928, 0.002823),
    (0.007164, -0.001474, -0.003807),
    (0.002225, -0.008755, -0.009572),
    (0.024146, 0.021696, 0.028056),
    (-0.005437, -0.024291, -0.017802),
    (0.007426, 0.01051, 0.012705),
    (0.006267, 0.006266, 0.019211),
    (0.016378, 0.009493, 0.006697),
    (0.017173, 0.023601, 0.023296),
    (-0.014568, -0.009828, -0.011556),
    (0.014431, 0.01443, 0.006636),
    (-0.006823, 0.018863, 0.014555),
    (0.006116, 0.00347, -0.002666),
    (-0.002698, -0.00594, -0.009228),
    (0.010235, 0.007417, -0.007624),
    (-0.013255, 0.019322, -0.000922),
    (0.002422, -0.004804, -0.015759),
    (0.026244, 0.025951, 0.020249),
    (0.015711, 0.018498, 0.002741),
    (-0.002171, 0.004721, -0.022443),
    (-0.007475, 0.007417, 0.01443),
    (-0.008391, -0.007978, 0.009793),
    (0.038321, 0.009662, -0.019268),
    (-0.014605, -0.006703, 0.003967),
)
_LTXV_BIAS: Bias = (-0.0571, -0.1657, -0.2512)

_WAN21_FACTORS: Factors = (
    (-0.1299, -0.1692, 0.2932),
    (0.0671, 0.0406, 0.0442),
    (0.3568, 0.2548, 0.1747),
    (0.0372, 0.2344, 0.142),
    (0.0313, 0.0189, -0.0328),
    (0.0296, -0.0956, -0.0665),
    (-0.3477, -0.4059, -0.2925),
    (0.0166, 0.1902, 0.1975),
    (-0.0412, 0.0267, -0.1364),
    (-0.1293, 0.074, 0.1636),
    (0.068, 0.3019, 0.1128),
    (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699),
    (0.006, -0.0633, 0.0005),
    (0.3477, 0.2275, 0.295),
    (0.1984, 0.0913, 0.1861),
)
_WAN21_BIAS: Bias = (-0.1835, -0.0868, -0.336)

_WAN22_FACTORS: Factors = (
    (0.0119, 0.0103, 0.0046),
    (-0.1062, -0.0504, 0.0165),
    (0.014, 0.0409, 0.0491),
    (-0.0813, -0.0677, 0.0607),
    (0.0656, 0.0851, 0.0808),
    (0.0264, 0.0463, 0.0912),
    (0.0295, 0.0326, 0.059),
    (-0.0244, -0.027, 0.0025),
    (0.0443, -0.0102, 0.0288),
    (-0.0465, -0.009, -0.0205),
    (0.0359, 0.0236, 0.0082),
    (-0.0776, 0.0854, 0.1048),
    (0.0564, 0.0264, 0.0561),
    (0.0006, 0.0594, 0.0418),
    (-0.0319, -0.0542, -0.0637),
    (-0.0268, 0.0024, 0.026),
    (0.0539, 0.0265, 0.0358),
    (-0.0359, -0.0312, -0.0287),
    (-0.0285, -0.1032, -0.1237),
    (0.1041, 0.0537, 0.0622),
    (-0.0086, -0.0374, -0.0051),
    (0.039, 0.067, 0.2863),
    (0.0069, 0.0144, 0.0082),
    (0.0006, -0.0167, 0.0079),
    (0.0313, -0.0574, -0.0232),
    (-0.1454, -0.0902, -0.0481),
    (0.0714, 0.0827, 0.0447),
    (-0.0304, -0.0574, -0.0196),
    (0.0401, 0.0384, 0.0204),
    (-0.0758, -0.0297, -0.0014),
    (0.0568, 0.1307, 0.1372),
    (-0.0055, -0.031, -0.038),
    (0.0239, -0.0305, 0.0325),
    (-0.0663, -0.0673, -0.014),
    (-0.0416, -0.0047, -0.0023),
    (0.0166, 0.0112, -0.0093),
    (-0.0211, 0.0011, 0.0331),
    (0.1833, 0.1466, 0.225),
    (-0.0368, 0.037, 0.0295),
    (-0.3441, -0.3543, -0.2008),
    (-0.0479, -0.0489, -0.042),
    (-0.066, -0.0153, 0.08),
    (-0.0101, 0.0068, 0.0156),
    (-0.069, -0.0452, -0.0927),
    (-0.0145, 0.0041, 0.0015),
    (0.0421, 0.0451, 0.0373),
    (0.0504, -0.0483, -0.0356),
    (-0.0837, 0.0168, 0.0055),
)
_WAN22_BIAS: Bias = (0.0317, -0.0878, -0.1388)

_COGVIDEOX_FACTORS: Factors = (
    (0.119459, 0.099192, -0.004833),
    (-0.001198, 0.054965, 0.021322),
    (-0.014089, -0.008701, -0.020991),
    (0.030639, 0.121865, 0.013959),
    (0.09274, 0.030293, 0.050831),
    (0.037911, 0.049352, 0.058563),
    (0.01775, 0.008839, 0.036006),
    (0.106101, 0.023399, 0.057154),
    (0.127364, -0.01096, 0.043269),
    (-0.018735, 0.082209, 0.106133),
    (0.008429, 0.076239, 0.092957),
    (0.129381, 0.123604, 0.044789),
    (0.045659, 0.041064, -0.017695),
    (0.00019, -0.013965, 0.053297),
    (0.080824, 0.115483, -0.021464),
    (-0.015179, -0.005799, 0.072166),
)
_COGVIDEOX_BIAS: Bias = (0.0, 0.0, 0.0)

# HunyuanVideo 1.5 (32 channels): ComfyUI's comfy/latent_formats.py, class HunyuanVideo15
# (github.com/Comfy-Org/ComfyUI, commit 75399d78ddcc), which previews the latents scaled by the
# VAE's 1.03682 as diffusers' HunyuanVideo 1.5 pipelines hold them while denoising.
_HUNYUAN15_FACTORS: Factors = (
    (0.0568, -0.0521, -0.0131),
    (0.0014, 0.0735, 0.0326),
    (0.0186, 0.0531, -0.0138),
    (-0.0031, 0.0051, 0.0288),
    (0.011, 0.0556, 0.0432),
    (-0.0041, -0.0023, -0.0485),
    (0.053, 0.0413, 0.0253),
    (0.0283, 0.0251, 0.0339),
    (0.0277, -0.0372, -0.0093),
    (0.0393, 0.0944, 0.1131),
    (0.002, 0.0251, 0.0037),
    (-0.0017, 0.0012, 0.0234),
    (0.0468, 0.0436, 0.0203),
    (0.0354, 0.0439, -0.0233),
    (0.009, 0.0123, 0.0346),
    (0.0382, 0.0029, 0.0217),
    (0.0261, -0.03, 0.003),
    (-0.0088, -0.022, -0.0283),
    (-0.0272, -0.0121, -0.0363),
    (-0.0664, -0.0622, 0.0144),
    (0.0414, 0.0479, 0.0529),
    (0.0355, 0.0612, -0.0247),
    (0.0147, 0.0264, 0.0174),
    (0.0438, 0.0038, 0.0542),
    (0.0431, -0.0573, -0.0033),
    (-0.0162, -0.0211, -0.0406),
    (-0.0487, -0.0295, -0.0393),
    (0.0005, -0.0109, 0.0253),
    (0.0296, 0.0591, 0.0353),
    (0.0119, 0.0181, -0.0306),
    (-0.0085, -0.0362, 0.0229),
    (0.0005, -0.0106, 0.0242),
)
_HUNYUAN15_BIAS: Bias = (0.0456, -0.0202, -0.0644)


@dataclass(frozen=True)
class LatentProjection:
    """One latent space's linear map to RGB: ``rgb = latent_channels @ factors + bias``."""

    name: str
    factors: Factors
    bias: Bias = (0.0, 0.0, 0.0)

    @property
    def channels(self) -> int:
        return len(self.factors)


PROJECTIONS: dict[str, LatentProjection] = {
    projection.name: projection
    for projection in (
        LatentProjection("sd15", _SD15_FACTORS, _SD15_BIAS),
        LatentProjection("ltxv", _LTXV_FACTORS, _LTXV_BIAS),
        LatentProjection("wan21", _WAN21_FACTORS, _WAN21_BIAS),
        LatentProjection("wan22", _WAN22_FACTORS, _WAN22_BIAS),
        LatentProjection("cogvideox", _COGVIDEOX_FACTORS, _COGVIDEOX_BIAS),
        LatentProjection("hunyuan_video15", _HUNYUAN15_FACTORS, _HUNYUAN15_BIAS),
        LatentProjection("mochi", _MOCHI_FACTORS, _MOCHI_BIAS),
    )
}

FAMILY_LATENTS: dict[str, tuple[str, ...]] = {
    # ModelScope, Zeroscope and AnimateDiff all denoise in SD 1.5's VAE space.
    "text_to_video": ("sd15",),
    "animatediff": ("sd15",),
    "video_to_video": ("sd15",),
    "ltx": ("ltxv",),
    # Wan 2.1's VAE has 16 channels (Wan 2.1 and the Wan 2.2 A14B experts denoise in it), Wan 2.2
    # TI2V's 48: the channel count tells them apart.
    "wan": ("wan21", "wan22"),
    "cogvideox": ("cogvideox",),
    "hunyuan_video15": ("hunyuan_video15",),
    "mochi": ("mochi",),
}
"""The latent spaces each registry family's models denoise in."""


def projection_for(family: str, channels: int) -> LatentProjection | None:
    """The family's published projection for latents of ``channels`` channels; ``None`` (shown as
    greyscale) for a family or a channel count with no published factors."""
    for name in FAMILY_LATENTS.get(family, ()):
        if PROJECTIONS[name].channels == channels:
            return PROJECTIONS[name]
    return None


# --- latents -> RGB frames ---------------------------------------------------------------------

PREVIEW_FRAMES = 6
"""Frames in a preview, evenly spread over the clip: enough to see the motion, few enough that
even the pure noise of the first steps stays a few tens of KB."""

Layout = Literal["BCFHW", "BFCHW", "packed"]
"""How a pipeline holds its latents during the loop: the UNet families and Wan as
``[batch, channels, frames, height, width]``, CogVideoX as ``[batch, frames, channels, H, W]``,
LTX-Video packed into tokens ``[batch, frames*height*width, channels]``."""


def project(
    video: torch.Tensor, projection: LatentProjection | None, max_frames: int = PREVIEW_FRAMES
) -> np.ndarray:
    """One video's latents ``[channels, frames, height, width]`` as uint8 RGB frames
    ``[frames, height, width, 3]``, at most ``max_frames`` of them, evenly spread.

    The product runs where the latents are (the GPU on a real run) in float32; only the small RGB
    result crosses to the CPU."""
    import torch

    frames = video.shape[1]
    if frames > max_frames:
        index = torch.linspace(0, frames - 1, max_frames, device=video.device).round().long()
        video = video.index_select(1, index)
    latents = video.float()
    if projection is not None and projection.channels == latents.shape[0]:
        weights = torch.tensor(projection.factors, dtype=torch.float32, device=latents.device)
        bias = torch.tensor(projection.bias, dtype=torch.float32, device=latents.device)
        rgb = torch.einsum("cfhw,cr->fhwr", latents, weights) + bias
        rgb = ((rgb + 1.0) / 2.0).clamp(0.0, 1.0)
    else:
        grey = latents.mean(dim=0)
        low, high = grey.min(), grey.max()
        grey = (grey - low) / (high - low).clamp_min(1e-6)
        rgb = grey.unsqueeze(-1).expand(*grey.shape, 3)
    return (rgb * 255.0).round().to(torch.uint8).cpu().numpy()


def to_channels_first(
    latents: torch.Tensor, layout: Layout, unpack: Callable[[Any], Any] | None = None
) -> torch.Tensor:
    """The first video of a batch of latents in ``layout``, as ``[channels, frames, H, W]``.

    Packed latents need ``unpack``: the pipeline's own ``_unpack_latents`` bound to the job's
    latent geometry, so the tokens are put back exactly the way the pipeline itself does."""
    if layout == "packed":
        if unpack is None:
            raise ValueError("packed latents need the pipeline's unpack function")
        return unpack(latents[:1])[0]  # type: ignore[no-any-return]
    if layout == "BFCHW":
        return latents[0].transpose(0, 1)
    return latents[0]


# --- frames -> an animated picture -------------------------------------------------------------

PREVIEW_LONGEST_SIDE = 128
"""Pixels on the preview's longest side: big enough to see the composition forming in a Discord
message, small enough to stay a few tens of KB (at most about 55 KB for 6 frames of pure noise,
the first steps of a model; far less once shapes form)."""
PREVIEW_COLOURS = 32


def preview_size(height: int, width: int, longest: int = PREVIEW_LONGEST_SIDE) -> tuple[int, int]:
    """``(width, height)`` of a preview of a ``width`` x ``height`` video: its aspect ratio, the
    longest side ``longest``."""
    scale = longest / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode_gif(
    frames: np.ndarray, size: tuple[int, int], frame_ms: int, colours: int = PREVIEW_COLOURS
) -> bytes:
    """Frames ``[n, h, w, 3]`` uint8 as a looping GIF of ``size`` (width, height).

    The frames are stacked into one tall picture, scaled up smoothly (latents are 8 to 32 times
    smaller than the video) and reduced to ``colours`` colours in one pass: one palette for the
    whole clip, so colours do not flicker from frame to frame, found by Pillow's fast octree
    (median cut costs about 30 times more). No dithering: dithered noise is what GIF's LZW
    compresses worst."""
    from PIL import Image

    width, height = size
    count = len(frames)
    stacked = Image.fromarray(np.ascontiguousarray(frames.reshape(-1, *frames.shape[2:])))
    palette_image = stacked.resize((width, height * count), Image.Resampling.BILINEAR).quantize(
        colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )
    pictures = [
        palette_image.crop((0, index * height, width, (index + 1) * height))
        for index in range(count)
    ]
    buffer = io.BytesIO()
    pictures[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        duration=frame_ms,
        loop=0,
        optimize=False,
    )
    return buffer.getvalue()


# --- the per-job previewer ---------------------------------------------------------------------


class LatentPreviewer:
    """Turns a step's latents into a :class:`Preview`. Built once per job by the pipeline adapter,
    which knows its family, its latent layout and the job's size; called by the step callback only
    when :class:`JobControl` says a preview is due."""

    def __init__(
        self,
        family: str,
        *,
        width: int,
        height: int,
        num_frames: int,
        fps: float,
        layout: Layout = "BCFHW",
        unpack: Callable[[Any], Any] | None = None,
        max_frames: int = PREVIEW_FRAMES,
        longest_side: int = PREVIEW_LONGEST_SIDE,
    ) -> None:
        self.family = family
        self.layout = layout
        self._unpack = unpack
        self.max_frames = max_frames
        self.size = preview_size(height, width, longest_side)
        self._video_seconds = num_frames / fps if fps > 0 else 1.0

    def __call__(self, latents: torch.Tensor, step: int) -> Preview:
        video = to_channels_first(latents.detach(), self.layout, self._unpack)
        projection = projection_for(self.family, int(video.shape[0]))
        frames = project(video, projection, self.max_frames)
        # Play at the video's own pace: the shown frames span the whole clip. GIF delays are
        # hundredths of a second and browsers slow anything under 20 ms down to 100 ms.
        frame_ms = max(40, min(500, round(self._video_seconds * 1000 / len(frames))))
        data = encode_gif(frames, self.size, frame_ms)
        return Preview(data=data, filename="preview.gif", step=step)


def packed_unpacker(pipe: Any, num_frames: int, height: int, width: int) -> Callable[[Any], Any]:
    """LTX-Video's ``_unpack_latents`` bound to a job's latent geometry, computed the way
    ``LTXPipeline.__call__`` computes it (frames ``(n - 1) // temporal + 1``, sides divided by the
    spatial compression), with the transformer's own patch sizes."""
    latent_frames = (num_frames - 1) // pipe.vae_temporal_compression_ratio + 1
    latent_height = height // pipe.vae_spatial_compression_ratio
    latent_width = width // pipe.vae_spatial_compression_ratio
    patch = pipe.transformer_spatial_patch_size
    patch_t = pipe.transformer_temporal_patch_size

    def unpack(latents: Any) -> Any:
        return pipe._unpack_latents(
            latents, latent_frames, latent_height, latent_width, patch, patch_t
        )

    return unpack
