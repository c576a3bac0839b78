"""The training loop: plain PyTorch, no framework.

Reproducibility: the batch at global step s is a function of (seed, s) alone, the model's own sampling
uses the global torch RNG, and both the RNG state and the step are checkpointed, so a run resumed from any
checkpoint continues exactly as the uninterrupted run would have.

A GAN (objective="gan", setae.models.gan) takes, per step, one discriminator step on a real batch and as
many generated sets, then one generator step, each with its own AdamW (β = (0, 0.99), the same learning-rate
schedule); both optimisers are checkpointed. Its validation figures are generation metrics (MMD / COV /
1-NNA against GAN_VAL_SETS validation sets), not reconstructions.
"""

from __future__ import annotations

import json
import math
import resource
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from setae.datasets.batch import SetBatch
from setae.datasets.pairs import encoder_view
from setae.errors import SetaeError
from setae.evaluation.evaluate import dataset_items, evaluate, source_items
from setae.evaluation.generation import generation_metrics
from setae.fileio import write_json, write_text
from setae.models import SetGAN, build_model
from setae.models.autoencoder import SetAutoencoder
from setae.rng import preserved, rng_state, set_rng_state
from setae.training.checkpoint import (
    find_checkpoint,
    load_training_state,
    load_weights,
    read_meta,
    resolve_device,
    save_checkpoint,
)
from setae.training.config import Config, TrainConfig, config_from_dict
from setae.training.data import make_datasets, ospa_cutoff_of, resolve_from_data, training_split
from setae.training.distributed import Distributed
from setae.versions import versions


def batch_indices(
    num_items: int, batch_size: int, seed: int, step: int, sizes=None, bucket_batches: int = 0
) -> torch.Tensor:
    """Indices of the batch at global `step`: epoch e visits a permutation drawn from (seed, e).

    With `bucket_batches` = W > 0 and the items' `sizes` [num_items], each run of W consecutive batches of
    the permutation is re-cut after sorting its items by size, and the W batches are visited in an order
    drawn from (seed, e, run): sets of similar size share a batch (less padding), every item is still
    visited once per epoch, and the batch of a step does not depend on earlier steps (resumable)."""
    per_epoch = num_items // batch_size
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    if bucket_batches <= 0:
        return order[position * batch_size : (position + 1) * batch_size]
    run, within = divmod(position, bucket_batches)
    first = run * bucket_batches
    count = min(bucket_batches, per_epoch - first)
    members = order[first * batch_size : (first + count) * batch_size]
    members = members[torch.argsort(torch.as_tensor(sizes)[members], stable=True)]
    shuffle = torch.Generator().manual_seed((seed * 100_003 + epoch) * 1_000_003 + run)
    chosen = int(torch.randperm(count, generator=shuffle)[within])
    return members[chosen * batch_size : (chosen + 1) * batch_size]


GAN_VAL_SETS = 100  # validation sets (and as many samples) of a GAN's generation metrics during training
GAN_BETAS = (0.0, 0.99)  # Adam's β of both players (Karras et al., 2020)


def gan_validation(model: SetGAN, val_sets: list, seed: int, ospa_cutoff: float) -> dict[str, float]:
    """Generation metrics of as many samples as the first GAN_VAL_SETS validation sets (and their sizes)."""
    references = val_sets[:GAN_VAL_SETS]
    with preserved():
        samples = model.sample(len(references), seed=seed)
    out = generation_metrics(samples, references, ospa_cutoff)
    out["sample_size_mean"] = sum(len(s) for s in samples) / len(samples)
    return out


def lr_factor(step: int, t: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to `min_lr_ratio` at the last step."""
    if step < t.lr_warmup_steps:
        return (step + 1) / t.lr_warmup_steps
    progress = (step - t.lr_warmup_steps) / max(1, t.steps - t.lr_warmup_steps)
    return t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def beta_at(step: int, t: TrainConfig) -> float:
    """KL weight: linear warm-up from 0 to `beta` over `kl_warmup_steps`."""
    return t.beta * min(1.0, step / t.kl_warmup_steps) if t.kl_warmup_steps > 0 else t.beta


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _step_of(line: str) -> float:
    """The step of a log line; a line cut short by a killed process counts as past every checkpoint."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


class RunLog:
    """RUN/log.jsonl: one JSON object per line (training records and evaluations), append-only; with
    `tensorboard`, every number also goes to RUN/tensorboard as a scalar `train/<name>` or `val/<name>`."""

    def __init__(self, path: Path, resume_step: int | None, tensorboard: bool = False):
        self.path = path
        self.board = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.board = SummaryWriter(str(path.parent / "tensorboard"), purge_step=resume_step)
        if resume_step is not None and path.exists():  # drop records past the checkpoint we resume from
            kept = [line for line in path.read_text().splitlines() if _step_of(line) <= resume_step]
            write_text(path, "".join(line + "\n" for line in kept))
        elif resume_step is None:
            path.unlink(missing_ok=True)

    def write(self, record: dict) -> None:
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise SetaeError(f"{self.path}: cannot write ({e.strerror})") from None
        if self.board is not None:
            split = record.get("split", "train")
            for name, value in record.items():
                if name != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                    self.board.add_scalar(f"{split}/{name}", value, record["step"])

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def saved_config(run_dir: str | Path) -> Config:
    """The config stored with a run's checkpoint."""
    checkpoint = find_checkpoint(run_dir)
    return config_from_dict(read_meta(checkpoint)["config"], str(checkpoint / "meta.json"))


def train(config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True) -> SetAutoencoder:
    """Train from scratch into `run_dir`, or continue its checkpoint when `resume` (the model config must be
    the saved one; the training config may differ, e.g. more steps). Returns the model in eval mode.

    Under torchrun each of the N processes trains on its slice of a global batch of N·batch_size sets
    (DistributedDataParallel averages the gradients); only rank 0 logs, evaluates and writes checkpoints.
    """
    run_dir = Path(run_dir)
    t = config.train
    checkpoint = None
    if resume:
        checkpoint = find_checkpoint(run_dir)
        if saved_config(run_dir).model != config.model:
            raise SetaeError(
                f"{checkpoint}: cannot resume with a different model config; drop the model flags"
            )
    elif (run_dir / "checkpoint").exists():
        raise SetaeError(
            f"{run_dir}: already holds a run; pass --resume to continue it or choose another --run-dir"
        )
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    resolve_device(t.device)  # a clear error for a device this build does not have
    ctx = Distributed.from_env(t.device)
    device = ctx.device
    torch.manual_seed(t.seed + ctx.rank)
    full = training_split(config)
    if not resume:
        if t.data not in ("mnist", "synthetic"):  # the data decide the point dimension
            config.model.point_dim = full.dim
        derived = resolve_from_data(config, full)
        if derived and ctx.is_main:
            print(f"{Path(t.data).name}: {len(full)} sets of {full.dim}-d points; " + ", ".join(derived))
    train_set, val_set = make_datasets(config, full)
    needs_labels = config.model.conditional or config.model.adversary != "none"
    if needs_labels and not 0 <= full.labels.min() <= full.labels.max() < config.model.num_classes:
        who = "a conditional model" if config.model.conditional else "the label adversary"
        raise SetaeError(
            f"{t.data}: {who} needs a label in 0..{config.model.num_classes - 1} for every set; labels range "
            f"over {full.labels.min()}..{full.labels.max()} (-1: none; set --num-classes)"
        )
    val_sets, val_labels = dataset_items(val_set, t.eval_sets)
    val_sources = source_items(val_set, t.eval_sets)  # pairs: the input sets of the targets val_sets
    if t.batch_size * ctx.world_size > len(train_set):
        raise SetaeError(
            f"config: train.batch_size={t.batch_size} × {ctx.world_size} process(es) exceeds the "
            f"{len(train_set)} training sets"
        )
    calibration_size = min(64, len(train_set))
    calibration = [  # fixed training batches for the code standardisation's inference statistics
        train_set.batch(batch_indices(len(train_set), calibration_size, t.seed + 1, k)) for k in range(16)
    ]
    gan = config.model.objective == "gan"
    if gan and (ctx.world_size > 1 or t.compile):
        raise SetaeError(
            "objective='gan' trains in one process without torch.compile (no torchrun, --compile)"
        )
    model = build_model(config.model)
    if checkpoint is None and (config.model.normalize or config.model.decoder == "pointprocess"):
        moments = train_set.point_moments(len(train_set))
        model.set_point_moments(*(torch.from_numpy(m).float() for m in moments))
    if checkpoint is None and gan:
        model.set_size_distribution(torch.from_numpy(train_set.sizes.copy()))
    model = model.to(device)

    def make_optimizer(parameters, betas=(0.9, 0.999)):
        if t.optimizer == "sgd":
            return torch.optim.SGD(parameters, lr=t.lr, momentum=0.9)
        return torch.optim.AdamW(parameters, lr=t.lr, betas=betas, weight_decay=0.0)

    # A GAN's `optimizer` is the generator's, `optimizer_d` the discriminator's; with a label adversary,
    # `optimizer_d` is its classifier's and `optimizer` the autoencoder's.
    adversarial = not gan and config.model.adversary != "none"
    if adversarial and t.adversary_steps > 1 and ctx.world_size > 1:
        raise SetaeError("train.adversary_steps > 1 trains in one process (no torchrun)")
    if gan:
        parameters, parameters_d = list(model.generator_parameters()), list(model.discriminator_parameters())
    elif adversarial:
        parameters_d = list(model.adversary.parameters())
        parameters = [p for name, p in model.named_parameters() if not name.startswith("adversary.")]
    else:
        parameters = list(model.parameters())
    optimizer = make_optimizer(parameters, *([GAN_BETAS] * gan))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, t))
    if gan or adversarial:
        optimizer_d = make_optimizer(parameters_d, *([GAN_BETAS] * gan))
        scheduler_d = torch.optim.lr_scheduler.LambdaLR(optimizer_d, lambda s: lr_factor(s, t))
    start_step = 0
    if checkpoint is not None:
        load_weights(model, checkpoint / "model.safetensors")
        state = load_training_state(checkpoint)
        if len(state["rng"]) != ctx.world_size:
            raise SetaeError(
                f"{checkpoint}: written by {len(state['rng'])} process(es); resume it with as many, "
                f"not {ctx.world_size}"
            )
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if gan or adversarial:
            optimizer_d.load_state_dict(state["optimizer_d"])
            scheduler_d.load_state_dict(state["scheduler_d"])
        set_rng_state(state["rng"][ctx.rank], device)
        start_step = int(state["step"])
    net = model
    if ctx.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if t.compile:
        net = torch.compile(net)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=t.precision == "bf16")
    log = None
    if ctx.is_main:
        write_json(
            run_dir / "config.json", {**config.to_dict(), "versions": versions(), "processes": ctx.world_size}
        )
        log = RunLog(run_dir / "log.jsonl", start_step if resume else None, t.tensorboard)

    def save(step: int, final: bool = False) -> None:
        rng_states = ctx.gather({k: v.cpu() for k, v in rng_state(device).items()})
        if not gan:
            with preserved():  # calibration may draw random numbers (encoder_shuffle)
                model.calibrate_latent_norm([b.to(device) for b in calibration])
        if final and ctx.is_main and hasattr(model, "point_refiner"):
            # batches continuing the training's sequence, so a resumed run refits on the same ones
            count = step // 5 if t.refine_steps is None else t.refine_steps
            batches = (
                train_set.batch(batch_indices(len(train_set), t.batch_size, t.seed, step + k)).to(device)
                for k in range(count)
            )
            with preserved():  # from a fresh start each time, so a resumed run ends the same
                torch.manual_seed(t.seed)
                model.point_refiner.reset_parameters()
                model.fit_point_refiner(batches, seed=t.seed)
        if final and ctx.is_main and hasattr(model, "fitted_prior"):
            count = min(t.prior_fit_sets, len(train_set))
            if count >= config.model.prior_components:
                fit = train_set.subset(0, count)
                model.fit_prior(*dataset_items(encoder_view(fit)), seed=t.seed)
        if ctx.is_main:
            state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng_states,
                "step": step,
            }
            if gan or adversarial:
                state.update(optimizer_d=optimizer_d.state_dict(), scheduler_d=scheduler_d.state_dict())
            save_checkpoint(run_dir, model, config, step, state)

    def player_step(loss, step: int, *players) -> None:
        """One backward pass of `loss`, then a step of each (optimizer, scheduler or None, parameters)."""
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss became {float(loss)} at step {step}; lower train.lr")
        for opt, _, _ in players:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt, sched, params in players:
            torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
            opt.step()
            if sched is not None:
                sched.step()

    def gan_step(batch: SetBatch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One discriminator step, then one generator step; (L_D + R1, every term [B])."""
        with autocast:
            terms = model.discriminator_terms(batch)
        loss = (terms["d_objective"] + terms["r1"]).mean()
        player_step(loss, step, (optimizer_d, scheduler_d, parameters_d))
        with autocast:
            terms.update(model.generator_terms(len(batch)))
        player_step(terms["g_objective"].mean(), step, (optimizer, scheduler, parameters))
        return loss, terms

    def autoencoder_step(batch: SetBatch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step of the autoencoder and, with a label adversary, `adversary_steps` of its classifier:
        the first shares the autoencoder's backward pass (under DDP every gradient is reduced in one
        pass), the others are taken on the same batch's codes."""
        with autocast:
            terms = net(batch, "chamfer" if step < t.chamfer_warmup_steps else None)
        loss = (terms["recon"] + t.size_weight * terms["size"] + beta_at(step, t) * terms["kl"]).mean()
        # Terms of the batch's codes, not of each set; the prior adversary's critic and its opponent reach
        # disjoint parameters (setae.nn.prior_adversary), so one step trains both.
        for regularizer in ("prior_mmd", "aggregate_kl", "prior_critic", "prior_fool"):
            if regularizer in terms:
                loss = loss + terms[regularizer].mean()
        if not adversarial:
            player_step(loss, step, (optimizer, scheduler, parameters))
            return loss, terms
        code = terms.pop("code")  # the terms' gradients reach only their own side (setae.nn.adversary)
        loss = loss + terms["adversary"].mean() + terms["confusion"].mean()
        player_step(loss, step, (optimizer, scheduler, parameters), (optimizer_d, None, parameters_d))
        for _ in range(t.adversary_steps - 1):
            player_step(
                model.adversary.cross_entropy(code, batch.labels).mean(),
                step,
                (optimizer_d, None, parameters_d),
            )
        scheduler_d.step()
        return loss, terms

    model.train()
    started = time.perf_counter()
    window_sets, window_seconds, total_sets, total_seconds = 0, 0.0, 0, 0.0
    bar = tqdm(
        range(start_step, t.steps),
        initial=start_step,
        total=t.steps,
        dynamic_ncols=True,
        desc="train",
        disable=not (progress and ctx.is_main),
    )
    done = start_step
    for step in bar:
        step_started = time.perf_counter()
        idx = batch_indices(
            len(train_set), t.batch_size * ctx.world_size, t.seed, step, train_set.sizes, t.bucket_batches
        )
        batch: SetBatch = train_set.batch(idx[ctx.rank * t.batch_size : (ctx.rank + 1) * t.batch_size])
        batch = batch.to(device)
        loss, terms = (gan_step if gan else autoencoder_step)(batch, step)
        seconds = time.perf_counter() - step_started
        sets = len(batch) * ctx.world_size
        window_sets, window_seconds = window_sets + sets, window_seconds + seconds
        total_sets, total_seconds = total_sets + sets, total_seconds + seconds
        done = step + 1
        if done % t.log_every == 0 or done == t.steps:
            names = [*([] if gan else ["loss"]), *terms]  # a GAN's terms are objectives: no "loss"
            values = [*([] if gan else [loss]), *(v.mean() for v in terms.values())]
            means = ctx.mean(torch.stack(values).float()).tolist()
            record = {
                "step": done,
                **dict(zip(names, means, strict=True)),
                **({} if gan else {"beta": beta_at(step, t)}),
                "lr": scheduler.get_last_lr()[0],
                "sets_per_s": window_sets / window_seconds,
                "elapsed_s": time.perf_counter() - started,
            }
            if log is not None:
                log.write(record)
            if gan:
                shown = {"d_obj": f"{record['d_objective']:.3f}", "g_obj": f"{record['g_objective']:.3f}"}
            else:
                shown = {"loss": f"{record['loss']:.1f}", "dist": f"{record['distance']:.5f}"}
            bar.set_postfix(**shown, sets_s=f"{record['sets_per_s']:.0f}")
            window_sets, window_seconds = 0, 0.0
        if (done % t.eval_every == 0 or done == t.steps) and ctx.is_main and gan:
            metrics = gan_validation(model, val_sets, t.seed, ospa_cutoff_of(config))
            log.write({"step": done, "split": "val", **metrics})
            bar.write(f"step {done}: val gen_mmd {metrics['gen_mmd']:.5f} gen_1nna {metrics['gen_1nna']:.3f}")
        elif (done % t.eval_every == 0 or done == t.steps) and ctx.is_main:
            model.calibrate_latent_norm([b.to(device) for b in calibration])
            metrics = evaluate(
                model,
                val_sets,
                seed=t.seed,
                labels=val_labels,
                ospa_cutoff=t.ospa_cutoff,
                sources=val_sources,
            )
            model.train()
            log.write({"step": done, "split": "val", **metrics})
            bar.write(f"step {done}: val chamfer {metrics['chamfer']:.5f} size_mae {metrics['size_mae']:.2f}")
        out_of_time = ctx.any(t.max_minutes > 0 and time.perf_counter() - started > 60 * t.max_minutes)
        if done % t.checkpoint_every == 0 or done == t.steps or out_of_time:
            save(done, final=done == t.steps or out_of_time)
        if out_of_time:
            bar.write(f"stopping at step {done}: train.max_minutes={t.max_minutes} reached")
            break
    bar.close()
    if log is not None:
        log.close()
    if ctx.is_main and total_sets:  # a resumed run that was already finished keeps its summary
        summary = {
            "step": done,
            "processes": ctx.world_size,
            "train_seconds": time.perf_counter() - started,
            "sets_per_s": total_sets / total_seconds if total_seconds else 0.0,
            "peak_memory_mb": peak_memory_mb(device),
            "device": str(device),
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        write_json(run_dir / "train_summary.json", summary)
    ctx.close()
    return model.eval()
