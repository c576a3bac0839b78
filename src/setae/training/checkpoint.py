"""Checkpoints: weights in safetensors, optimizer and RNG state as plain tensors, config and step as JSON.

A checkpoint is a folder `RUN/checkpoint/` with

    model.safetensors   the model's state dict (no pickle)
    state.pt            optimizer, scheduler and RNG states, read with torch.load(weights_only=True)
    meta.json           format tag, setae/torch versions, step, and the full run config

It is written to `RUN/checkpoint.tmp/` first and swapped in by renames, so a process killed at any moment
leaves either the previous checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from setae.errors import SetaeError
from setae.fileio import write_bytes, write_json
from setae.models import SetGAN, build_model
from setae.models.autoencoder import CHECKPOINT_FORMAT, SetAutoencoder
from setae.training.config import Config, config_from_dict
from setae.versions import __version__, versions

FORMAT = CHECKPOINT_FORMAT
CHECKPOINT = "checkpoint"


def save_checkpoint(run_dir: Path, model: SetAutoencoder, config: Config, step: int, state: dict) -> Path:
    """Write RUN/checkpoint atomically; `state` holds optimizer/scheduler/RNG state (tensors and numbers)."""
    final, tmp, old = (run_dir / CHECKPOINT, run_dir / f"{CHECKPOINT}.tmp", run_dir / f"{CHECKPOINT}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    try:
        # Serialised in memory and written by Python, so a full disk is an OSError like any other.
        write_bytes(tmp / "model.safetensors", save(weights))
        state_bytes = io.BytesIO()
        torch.save(state, state_bytes)
        write_bytes(tmp / "state.pt", state_bytes.getvalue())
        meta = {"format": FORMAT, "step": step, "config": config.to_dict(), **versions()}
        write_json(tmp / "meta.json", meta)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the previous checkpoint stays as it was
        raise
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(path: str | Path) -> Path:
    """A run folder, a checkpoint folder or its model.safetensors -> the checkpoint folder."""
    given = Path(path)
    folder = given.parent if given.is_file() else given
    for candidate in (folder / CHECKPOINT, folder / f"{CHECKPOINT}.old", folder):
        if (candidate / "meta.json").is_file():
            return candidate
    if not given.exists():
        raise SetaeError(f"{given}: no such run folder or checkpoint")
    raise SetaeError(f"{given}: not a setae run or checkpoint (expected {folder / CHECKPOINT / 'meta.json'})")


def read_meta(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SetaeError(f"{path}: unreadable checkpoint metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise SetaeError(f"{path}: checkpoint format {found!r} is not {FORMAT!r} (another tool or version)")
    written_by = str(meta.get("setae", "0"))
    if _version_tuple(written_by) > _version_tuple(__version__):
        raise SetaeError(
            f"{path}: written by setae {written_by}; this is setae {__version__}, please upgrade"
        )
    return meta


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[SetAutoencoder, Config, dict[str, Any], Path]:
    """-> (model on `device` in eval mode, its run config, meta.json contents, checkpoint folder). A folder
    written by `SetAutoencoder.save` has no training config: the defaults stand in."""
    checkpoint = find_checkpoint(path)
    meta = read_meta(checkpoint)
    config = config_from_dict(meta["config"], str(checkpoint / "meta.json"))
    model = build_model(config.model)
    load_weights(model, checkpoint / "model.safetensors")
    return model.to(resolve_device(device)).eval(), config, meta, checkpoint


def load_weights(model: SetAutoencoder, path: Path) -> None:
    try:
        weights = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise SetaeError(f"{path}: cannot read weights ({e})") from None
    expected = model.state_dict()
    missing, unexpected = set(expected) - set(weights), set(weights) - set(expected)
    if missing or unexpected:
        names = sorted(missing)[:3] + sorted(unexpected)[:3]
        raise SetaeError(f"{path}: weights do not fit this model (mismatched tensors: {', '.join(names)})")
    for name, tensor in weights.items():
        if tensor.shape != expected[name].shape:
            raise SetaeError(
                f"{path}: tensor {name} has shape {tuple(tensor.shape)}; the model expects "
                f"{tuple(expected[name].shape)}"
            )
    model.load_state_dict(weights)


def load_training_state(checkpoint: Path) -> dict:
    path = checkpoint / "state.pt"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt file; all mean the same to the user
        raise SetaeError(
            f"{path}: cannot read training state ({type(e).__name__}: {e})".splitlines()[0]
        ) from None


def load(path: str | Path, device: str | torch.device = "cpu") -> SetAutoencoder | SetGAN:
    """`setae.load`: a run folder, checkpoint or `model.save` folder -> the model on `device` in eval mode
    (a SetGAN for a run with objective="gan")."""
    return load_checkpoint(path, device)[0]


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:N', 'mps' -> a device this build can use."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise SetaeError(f"--device {device!r}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise SetaeError(
            f"--device {device}: this PyTorch build has no CUDA device available; use cpu or auto"
        )
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise SetaeError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise SetaeError(f"--device {device}: MPS is not available here")
    if chosen.type not in ("cpu", "cuda", "mps"):
        raise SetaeError(f"--device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    return chosen
