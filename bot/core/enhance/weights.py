"""Where the enhancers' weights come from, and reading them as plain state dicts.

A source is a local file or ``owner/repo/path/in/repo`` on the Hugging Face hub, fetched by
:func:`bot.core.pipelines.base.single_file` (``hf_hub_download``): the same cache (``HF_HOME``),
``HF_ENDPOINT`` (so a local hub serves them too) and ``HF_HUB_OFFLINE`` as the diffusion models.
Files are read with ``torch.load(weights_only=True)`` (only tensors and plain containers: a
pickle in these formats cannot run code) or ``safetensors``; a ``.zip`` is read in memory, by the
name of the member inside it, without extracting anything.

The default sources, checked on the hub (model pages and file lists, 2026):

- RIFE 4.26 ("4.26" of Practical-RIFE, hzwer, MIT): ``hzwer/RIFE``, the author's own repo, file
  ``RIFEv4.26_0921.zip`` (22,869,906 bytes, sha256 1fa9b9cd…3f760e at revision 01fdc7e9), a
  Practical-RIFE ``train_log`` folder with ``flownet.pkl`` (24,636,301 bytes: the IFNet state
  dict under ``module.`` keys, plus the training-only ``teacher`` and ``caltime`` weights, which
  are ignored as Practical-RIFE's own ``load_state_dict(..., strict=False)`` ignores them), its
  ``IFNet_HDv3.py`` and ``RIFE_HDv3.py`` (not run: :mod:`bot.core.enhance.rife` has the network).
  Practical-RIFE names 4.22.lite and later as suited to diffusion-generated video.
- Real-ESRGAN x2 and x4 (Wang et al. 2021; weights trained by ai-forever, BSD-3-Clause code):
  ``ai-forever/Real-ESRGAN``, files ``RealESRGAN_x2.pth`` (67.1 MB) and ``RealESRGAN_x4.pth``
  (67.0 MB): RRDBNet state dicts (64 features, 23 blocks; the x2 one pixel-unshuffles its input)
  that spandrel recognises as ESRGAN. The original xinntao weights are mirrored as
  ``nateraw/real-esrgan`` (``RealESRGAN_x2plus.pth``, ``RealESRGAN_x4plus.pth``) and load the same
  way, as would any other single-image model spandrel knows.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.errors import ModelLoadError, describe_failure

if TYPE_CHECKING:
    import torch

RIFE_REPO = "hzwer/RIFE"
RIFE_FILE = "RIFEv4.26_0921.zip"
RIFE_MEMBER = "flownet.pkl"
"""The weights' name inside the archive (in its ``train_log/`` folder)."""
DEFAULT_RIFE_SOURCE = f"{RIFE_REPO}/{RIFE_FILE}"

ESRGAN_REPO = "ai-forever/Real-ESRGAN"
ESRGAN_FILES = {2: "RealESRGAN_x2.pth", 4: "RealESRGAN_x4.pth"}
DEFAULT_ESRGAN_SOURCES = {scale: f"{ESRGAN_REPO}/{name}" for scale, name in ESRGAN_FILES.items()}

_NETWORK_WORDS = ("OfflineModeIsEnabled", "LocalEntryNotFoundError", "ConnectError", "Timeout")


class WeightsUnavailable(ModelLoadError):
    """The weights could not be had or read: not downloaded and no network, a wrong path, a file
    of another kind. The message is one line that names the source and the root cause."""


def weights_file(source: str) -> Path:
    """The local path of ``source``, downloading it into the hub cache on first use."""
    from bot.core.pipelines.base import single_file

    try:
        return single_file(source)
    except Exception as exc:  # the hub's errors are of many kinds; each becomes one line
        raise WeightsUnavailable(_failure(source, exc)) from exc


def load_state_dict(source: str, member: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``source`` (``member`` names the file inside a ``.zip``), on the CPU."""
    path = weights_file(source)
    try:
        state = _read(path, member)
    except Exception as exc:  # zip, pickle and safetensors errors: a broken or foreign file
        raise WeightsUnavailable(_failure(source, exc)) from exc
    return _unwrap(state, source)


def _read(path: Path, member: str | None) -> Any:
    import torch

    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            name = _member(archive, member or RIFE_MEMBER, path)
            data = archive.read(name)
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def _member(archive: zipfile.ZipFile, wanted: str, path: Path) -> str:
    """The member whose file name is ``wanted``, wherever it sits; macOS's ``__MACOSX/`` shadow
    copies (the RIFE archive has them) are not weights."""
    found = [
        name
        for name in archive.namelist()
        if Path(name).name == wanted and not name.startswith("__MACOSX/")
    ]
    if len(found) != 1:
        raise ValueError(
            f"{path.name} holds {len(found)} files named {wanted} (expected one): not a "
            "Practical-RIFE model archive"
        )
    return found[0]


def _unwrap(state: Any, source: str) -> dict[str, torch.Tensor]:
    """Training checkpoints nest the weights (``params_ema``, ``params``, ``state_dict``)."""
    import torch

    for key in ("params_ema", "params", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsUnavailable(f"{source} holds no state dict of tensors")
    return dict(state)


def _failure(source: str, exc: BaseException) -> str:
    text = f"could not load weights from {source}: {describe_failure(exc)}"
    if any(word in text for word in _NETWORK_WORDS):
        text += " The first use downloads them from the Hugging Face hub: check the network."
    return text
