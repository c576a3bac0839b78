"""Run configuration: the model's architecture (`ModelConfig`) plus how to train it (`TrainConfig`).

A configuration comes from a preset, then an optional TOML or JSON file with `[model]` and `[train]`
tables, then command-line overrides, in that order. Unknown keys and wrong types are errors.
"""

from __future__ import annotations

import json
import re
import tomllib
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from setae.errors import SetaeError
from setae.models.config import ModelConfig

DATASETS = ("mnist", "synthetic", "mnist-strokes", "mnist-skeleton", "mnist-completion")
COMPLETIONS = ("top-half", "random-30")  # setae.datasets.pairs
DATA_SUFFIXES = (".npz", ".csv", ".parquet")


@dataclass
class TrainConfig:
    """How a model is trained: data, optimisation, schedule of evaluation and checkpoints."""

    # mnist, synthetic, mnist-strokes (stroke-3 sequences), mnist-skeleton (the strokes' points as sets), or a
    # .npz/.csv/.parquet file or folder of sets (setae.datasets.pointfile); mnist-completion, or an .npz
    # of input/target pairs: set-to-set training (setae.datasets.pairs)
    data: str = "mnist"
    completion: str = "top-half"  # mnist-completion: the input, top-half or random-30 of the digit
    data_root: str = ""
    test_data: str = ""  # a file of test sets; "": MNIST's test digits, or a held-out part of `data`
    val_size: int | None = None  # None: a tenth of the sets, at most 5,000
    split_seed: int = 0  # your own data without a test file: the seed of the random test/validation split
    batch_size: int = 64
    bucket_batches: int = 0  # > 0: sets of similar size batched together within runs of this many batches
    steps: int = 16_000
    optimizer: str = "adamw"  # adamw, or sgd (momentum 0.9)
    lr: float = 1e-3
    lr_warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    grad_clip: float = 1e4
    beta: float = 0.1
    size_weight: float = 1.0
    kl_warmup_steps: int = 1000
    chamfer_warmup_steps: int = 1000  # train with the Chamfer loss for this many steps, then with model.loss
    adversary_steps: int = 1  # model.adversary: the label classifier's steps per training step
    prior_fit_sets: int = 20_000  # VAE: training sets whose codes the fitted prior is fitted to at the end
    refine_steps: int | None = None  # batches of model.point_refiner's fit at the end; None: steps / 5
    seed: int = 0
    log_every: int = 50
    eval_every: int = 1000
    eval_sets: int = 500
    ospa_cutoff: float | None = None  # OSPA's cut-off c in data units; None: a tenth of the data's extent
    checkpoint_every: int = 1000
    max_minutes: float = 0.0
    threads: int = 0
    device: str = "auto"  # auto (CUDA when available), cpu, cuda, cuda:1, ...
    precision: str = "fp32"  # fp32, or bf16 (autocast; for GPUs)
    compile: bool = False  # torch.compile the model (for GPUs)
    tensorboard: bool = True  # also log every record to RUN/tensorboard (SummaryWriter)

    def validate(self) -> None:
        """Every field in its allowed range (one place for all of them); a SetaeError names the first
        that is not."""
        positive = ("batch_size", "log_every", "eval_every", "eval_sets", "checkpoint_every")
        positive += ("adversary_steps",)
        for name in positive:
            if getattr(self, name) < 1:
                raise SetaeError(f"config: train.{name} must be >= 1, got {getattr(self, name)}")
        non_negative = ("bucket_batches", "lr_warmup_steps", "kl_warmup_steps", "chamfer_warmup_steps")
        non_negative += ("prior_fit_sets", "seed", "split_seed", "threads", "max_minutes", "beta")
        non_negative += ("size_weight", "steps")
        if self.refine_steps is not None and self.refine_steps < 0:
            raise SetaeError(f"config: train.refine_steps must be >= 0, got {self.refine_steps}")
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise SetaeError(f"config: train.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise SetaeError(f"config: train.{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise SetaeError(f"config: train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.val_size is not None and self.val_size < 1:
            raise SetaeError(
                f"config: train.val_size must be >= 1, got {self.val_size} (leave it out: a tenth)"
            )
        if self.ospa_cutoff is not None and not self.ospa_cutoff > 0:
            raise SetaeError(f"config: train.ospa_cutoff must be > 0, got {self.ospa_cutoff}")
        for name, value, allowed in (
            ("optimizer", self.optimizer, ("adamw", "sgd")),
            ("precision", self.precision, ("fp32", "bf16")),
            ("completion", self.completion, COMPLETIONS),
        ):
            if value not in allowed:
                raise SetaeError(f"config: train.{name}={value!r} is not one of {', '.join(allowed)}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise SetaeError(
                f"config: train.device={self.device!r} is not one of auto, cpu, cuda, cuda:N, mps"
            )


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {"model": asdict(self.model), "train": asdict(self.train)}


# Presets: overrides of the defaults above. `demo` is the default model (Deep Sets + MLP VAE, Hungarian
# after a Chamfer warm-up, a point refiner fitted after training) trained for 10-16 minutes on 2 CPU cores,
# stopped at 20 whatever the machine; `blog` is the source blog's Set Transformer + TSPN VAE with its best
# settings at the same budget; `long` is the default family scaled up for a GPU or a night on CPU (486 sets/s
# on 2 cores: 7.3 hours; no point refiner); `gan` is the adversarial set generator; `tiny` is for smoke tests.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "demo": {"model": {"point_refiner": 64}, "train": {"max_minutes": 20.0}},
    "blog": {
        "model": {
            "encoder": "settransformer",
            "decoder": "tspn",
            "encoder_layers": 2,
            "decoder_layers": 3,
            "point_refiner": 64,
        },
        "train": {
            "steps": 3000,
            "eval_every": 500,
            "checkpoint_every": 500,
            "max_minutes": 20.0,
        },
    },
    # The adversarial set generator (setae.models.gan): TSPN generator, Deep Sets (max-pool) discriminator,
    # non-saturating loss with a light R1 penalty: chosen by measurement (benchmarks/results/gan.md).
    "gan": {
        "model": {
            "objective": "gan",
            "encoder": "deepsets",
            "decoder": "tspn",
            "encoder_layers": 2,
            "decoder_layers": 2,
            "gan_loss": "nonsaturating",
            "gan_r1": 0.01,
        },
        "train": {
            "batch_size": 32,
            "lr": 1e-3,
            "lr_warmup_steps": 20,
            "steps": 6000,
            "eval_every": 1000,
            "checkpoint_every": 500,
            "max_minutes": 20.0,
        },
    },
    "long": {
        "model": {"encoder_dim": 256, "decoder_dim": 256, "encoder_layers": 3, "decoder_layers": 4},
        "train": {
            "steps": 100_000,
            "batch_size": 128,
            "kl_warmup_steps": 10_000,
            "eval_every": 5000,
            "eval_sets": 2000,
            "checkpoint_every": 2000,
        },
    },
    # The sequence autoencoder of MNIST pen strokes (setae.datasets.mnist_strokes): bidirectional GRU encoder,
    # autoregressive mixture-density decoder.
    "strokes": {
        "model": {
            "point_dim": 3,
            "max_size": 100,
            "encoder": "rnn",
            "encoder_order": "input",
            "encoder_bidirectional": True,
            "encoder_dim": 128,
            "decoder": "strokes",
            "decoder_dim": 256,
            "latent_scale_learned": False,
            "stroke_input_dropout": 0.3,
        },
        # 14,000 steps: 79 min on one CPU thread; validation Chamfer still falls at the end (2.6 → 2.4 px²)
        "train": {"data": "mnist-strokes", "steps": 14_000, "eval_every": 2000},
    },
    "tiny": {
        "model": {
            "encoder_dim": 32,
            "decoder_dim": 32,
            "latent_dim": 8,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "encoder_inducing": 4,
            "decoder_inducing": 4,
            "max_size": 32,
        },
        "train": {
            "data": "synthetic",
            "val_size": 64,
            "batch_size": 16,
            "steps": 40,
            "eval_every": 20,
            "eval_sets": 32,
            "checkpoint_every": 10,
            "log_every": 5,
            "kl_warmup_steps": 10,
        },
    },
}


def _field_type(cls: type, name: str) -> tuple[type, bool]:
    """(the field's type, whether it may be None) from the dataclass's annotations."""
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return (args[0], True) if args else (hint, False)


def _coerce(section: str, name: str, value: Any, cls: type, source: str) -> Any:
    """Check `value` against the field's type; strings from the command line are parsed, and "auto" (or
    null) leaves an optional field to be derived from the data."""
    kind, optional = _field_type(cls, name)
    if optional and (value is None or value == "auto"):
        return None
    if isinstance(value, str) and kind is not str:
        try:
            value = {"true": True, "false": False}[value.lower()] if kind is bool else kind(value)
        except (ValueError, KeyError):
            expected = "true or false" if kind is bool else f"a valid {kind.__name__}"
            raise SetaeError(f"{source}: {section}.{name}={value!r} is not {expected}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise SetaeError(
            f"{source}: {section}.{name} must be {kind.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def apply_overrides(config: Config, overrides: dict[str, dict[str, Any]], source: str) -> Config:
    """Set fields from {"model": {...}, "train": {...}}; unknown sections/keys and wrong types raise."""
    for section, values in overrides.items():
        if section not in ("model", "train"):
            raise SetaeError(f"{source}: unknown section [{section}]; expected [model] and [train]")
        target = getattr(config, section)
        known = {f.name for f in fields(target)}
        for name, value in values.items():
            if name not in known:
                raise SetaeError(
                    f"{source}: unknown key {section}.{name}; known keys: {', '.join(sorted(known))}"
                )
            setattr(target, name, _coerce(section, name, value, type(target), source))
    return config


def read_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SetaeError(f"{path}: cannot read config file ({e.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise SetaeError(
            f"{path}: not a valid {'JSON' if path.suffix == '.json' else 'TOML'} file: {e}"
        ) from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise SetaeError(f"{path}: expected tables [model] and/or [train]")
    return data


def resolve_config(
    preset: str = "demo",
    file: str | Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    base: Config | None = None,
) -> Config:
    """preset (or `base`, e.g. a run's saved config), then `file`, then `overrides`."""
    if base is not None:
        config = base
    elif preset not in PRESETS:
        raise SetaeError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    else:
        config = apply_overrides(Config(), PRESETS[preset], f"preset {preset}")
    if file is not None:
        config = apply_overrides(config, read_config_file(file), str(file))
    if overrides:
        config = apply_overrides(config, overrides, "command line")
    data = config.train.data
    if data not in DATASETS and not (data.endswith(DATA_SUFFIXES) or Path(data).is_dir()):
        raise SetaeError(
            f"config: train.data={data!r} is neither one of {', '.join(DATASETS)} nor a "
            f"{'/'.join(DATA_SUFFIXES)} file or a dataset folder"
        )
    config.train.validate()
    config.model.validate()
    return config


def config_from_dict(data: dict[str, dict[str, Any]], source: str) -> Config:
    return apply_overrides(Config(), data, source)
