"""One training run: per seed, build the model, run its stages, checkpoint every epoch, score.

`train(config)` loads the labelled data once, then per seed builds the model its registry entry
names, runs the model's schedule (`daian.training.schedule`), checkpoints every epoch
(`daian.training.checkpoint`), scores the test split and writes the run folder
(`daian.run_folder`: predictions.parquet, metrics.json; seed-S/ sub-runs for several seeds).

Runs are built on `accelerate`: the same code runs on CPU, one GPU, or several processes under
`accelerate launch` (each global batch is split across processes; checkpoints and evaluation run
on the main process). `resume=True` continues after the last finished epoch and reaches the same
weights as an uninterrupted run.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from daian import run_folder as RF
from daian.data import DataBundle, load_data
from daian.training import checkpoint as C
from daian.training.checks import score_warnings
from daian.training.config import TrainConfig
from daian.training.loop import epoch_steps, evaluate, init_output_bias, predict_windows, run_epoch
from daian.training.recipe import describe, resolve_recipe
from daian.training.resume import fill_from_checkpoint, refuse_changes
from daian.training.schedule import build_stages, frozen_outside, make_scheduler

log = logging.getLogger(__name__)


def data_model_defaults(config: TrainConfig, bundle: DataBundle) -> dict:
    """Model settings the data decides unless the user sets them: what the model's config class
    asks of the labelled folder (`data_settings`; DAIAN: its levels and their edges). A model
    setting `levels` that differs from the data's is refused here, naming both."""
    from daian.models import registry

    levels = bundle.labelled.levels
    asked = config.model_settings.get("levels")
    if asked is not None and int(asked) != levels:
        raise ValueError(f"model.levels={asked} differs from the labelled data's {levels} levels "
                         f"({bundle.labelled.path}); label again with --levels {asked}")
    return registry.get(config.model).config.data_settings(levels, bundle.labelled.edges)


def _accelerator(config: TrainConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs

    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    cpu = config.device == "cpu"
    state = AcceleratorState._shared_state
    if state and state.get("_cpu", None) is not None and state.get("_cpu") != cpu:
        AcceleratorState._reset_state(reset_partial_state=True)
    # Stages train parameter subsets: under DDP the others have no gradient in a step.
    return Accelerator(cpu=cpu, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def _prepare_run_dir(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (None = fresh); refuses to overwrite a run without resume."""
    ckpt = C.find_checkpoint(run_dir)
    if ckpt is not None and not resume:
        raise FileExistsError(f"{run_dir} already holds a checkpoint; pass --resume to continue it "
                              "or choose another --run folder")
    return ckpt if resume else None


def train_seed(config: TrainConfig, seed: int, run_dir: Path, bundle: DataBundle) -> dict:
    """Train one model with one seed into `run_dir`; returns its metrics (also in metrics.json)."""
    previous = torch.are_deterministic_algorithms_enabled()
    if config.deterministic:
        # cuBLAS needs a fixed workspace for reproducible results; harmless on CPU
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(config.deterministic, warn_only=True)
    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    try:
        return _train_seed(config, seed, Path(run_dir), bundle)
    finally:
        torch.use_deterministic_algorithms(previous)


def _restore(resume_from: Path, model, model_config, accelerator, run_dir: Path) -> dict:
    """Load a checkpoint's weights, trainer state and RNG states into a freshly built run."""
    saved = C.saved_model_config(RF.read_checkpoint_config(resume_from)).to_dict()
    current = model_config.to_dict()
    if saved != current:
        changed = sorted(k for k in saved if saved[k] != current.get(k))
        name = changed[0] if changed else "?"
        raise ValueError(f"{resume_from}: --resume refused: the checkpoint's model differs from this "
                         f"configuration in {changed} (model.{name} was {saved.get(name)!r}, now "
                         f"{current.get(name)!r}); resume with the settings it was trained with")
    C.load_weights(model, resume_from)
    state = torch.load(resume_from / C.TRAINER_STATE, weights_only=True)
    rng_file = resume_from / f"rng_state_{accelerator.process_index}.pt"
    if rng_file.is_file():
        C.set_rng_state(torch.load(rng_file, weights_only=True))
    log.info("resuming %s after stage %s epoch %s", run_dir, state["stage"], state["epoch"])
    return state


def settle_config(config: TrainConfig, seed: int, bundle: DataBundle,
                  resume_from: Path | None) -> tuple[TrainConfig, dict]:
    """The run's config with every recipe field set, and the recipe record (metrics.json's
    "recipe"). Resuming, unset fields take the checkpoint's values and a changed setting is
    refused (daian.training.resume)."""
    stored = None
    if resume_from is not None:
        meta = RF.read_checkpoint_config(resume_from)
        stored = meta.get("train") or {}
        config = fill_from_checkpoint(config, stored)
    config, record = resolve_recipe(config, bundle.train_rows)
    if resume_from is not None:
        refuse_changes(resume_from, stored, meta.get("seed"), config, seed)
        if isinstance(meta.get("recipe"), dict):  # what the run chose when it started
            record = {**meta["recipe"], "settings": record["settings"]}
        else:  # a run from before recipes: its stored settings
            record = {**record, "used": "checkpoint", "reason": "resumed a run trained before "
                      "recipes were recorded: its stored settings"}
    return config, record


def registry_stages(model: str) -> bool:
    """Whether the model brings its own schedule (DAIAN's stages 1 and 2 read the stage fields)."""
    from daian.models import registry

    return registry.get(model).stages is not None


def _train_seed(config: TrainConfig, seed: int, run_dir: Path, bundle: DataBundle) -> dict:
    from accelerate.utils import set_seed

    from daian.models import build_model

    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = _accelerator(config)
    resume_from = _prepare_run_dir(run_dir, config.resume)
    accelerator.wait_for_everyone()  # every process has looked before any writes a checkpoint
    config, recipe = settle_config(config, seed, bundle, resume_from)
    set_seed(seed)
    defaults = data_model_defaults(config, bundle)
    if resume_from is not None:  # the data's settings as the run was built with them (format 1 had fewer)
        saved = C.saved_model_config(RF.read_checkpoint_config(resume_from))
        defaults = {k: getattr(saved, k) for k in defaults if hasattr(saved, k)}
    model_config = config.model_config(defaults)
    model = build_model(model_config, bundle.sizes, bundle.frozen_vectors)
    if config.init_bias:
        init_output_bias(model, bundle.base_rate)
    state = {"stage": None, "stage_index": 0, "epoch": 0, "step": 0, "partial": None, "finished": False,
             "history": [], "optimizer": None}
    if resume_from is not None:
        state = _restore(resume_from, model, model_config, accelerator, run_dir)
    if accelerator.is_main_process:  # after every refusal: the run goes ahead with this recipe
        log.info("%s seed %s: %s", RF.run_name(config.model, config.ablation), seed,
                 describe(recipe, registry_stages(config.model)))
    model = accelerator.prepare(model)
    ckpt_args = dict(model=model, config=config, seed=seed, model_config=model_config, sizes=bundle.sizes,
                     vocabs=bundle.vocabs, store_dim=int(bundle.frozen_vectors.shape[1]), accelerator=accelerator,
                     recipe=recipe)
    state = _run_stages(config, seed, run_dir, bundle, model, accelerator, state, ckpt_args)
    return _score(config, seed, run_dir, bundle, model, accelerator, state["history"], recipe)


def _run_stages(config: TrainConfig, seed: int, run_dir: Path, bundle: DataBundle, model, accelerator,
                state: dict, ckpt_args: dict) -> dict:
    """Every epoch of every stage the checkpoint in `state` has not finished, each checkpointed;
    returns the last trainer state."""
    stages = build_stages(config, accelerator.unwrap_model(model))
    names = [s.name for s in stages]
    if state["stage"] is not None and state["stage"] not in names:
        raise ValueError(f"{run_dir}: checkpoint stage {state['stage']!r} not in this schedule {names}")
    loader = bundle.train_loader(batch_size=config.batch_size, seed=seed, rank=accelerator.process_index,
                                 world_size=accelerator.num_processes, num_workers=config.num_workers,
                                 pin_memory=accelerator.device.type == "cuda", shards=config.stream_shards,
                                 buffer_rows=config.stream_buffer_rows)
    epoch_offset = 0
    for index, stage in enumerate(stages):
        done, step = 0, 0
        if state["stage"] is not None:
            saved = names.index(state["stage"])
            if index < saved or (index == saved and state["epoch"] >= stage.epochs):
                epoch_offset += stage.epochs
                continue
            if index == saved:
                done, step = state["epoch"], state.get("step") or 0
        loader.set_epoch(epoch_offset + done)  # the epoch's length, before the scheduler is built
        optimizer = accelerator.prepare_optimizer(stage.make_optimizer(config.optimizer))
        scheduler = make_scheduler(optimizer, config.lr_decay, stage.epochs * epoch_steps(loader, config.max_steps))
        if (done or step) and state.get("optimizer") is not None:
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
        for epoch in range(done, stage.epochs):
            start = step if epoch == done else 0
            loader.set_epoch(epoch_offset + epoch, start)
            desc = f"{config.model} seed {seed} {stage.name} {epoch + 1}/{stage.epochs}"

            def save_partial(steps_done: int, partial: dict, *, _epoch=epoch, _stage=stage, _index=index) -> None:
                """A mid-epoch checkpoint: `steps_done` steps of epoch `_epoch` are in the weights."""
                partial_state = {**state, "stage": _stage.name, "stage_index": _index, "epoch": _epoch,
                                 "step": steps_done, "partial": partial, "finished": False,
                                 "optimizer": optimizer.state_dict(),
                                 "scheduler": scheduler.state_dict() if scheduler is not None else None}
                C.save_checkpoint(run_dir, trainer_state=partial_state, **ckpt_args)

            with frozen_outside(model, stage, enabled=accelerator.num_processes == 1):
                stats = run_epoch(model, stage, optimizer, loader, accelerator, desc=desc,
                                  progress=config.progress, scheduler=scheduler, start_step=start,
                                  partial=state.get("partial") if start else None,
                                  checkpoint_steps=config.checkpoint_steps, on_checkpoint=save_partial,
                                  max_steps=config.max_steps)
            finished = index == len(stages) - 1 and epoch + 1 == stage.epochs
            state = {"stage": stage.name, "stage_index": index, "epoch": epoch + 1, "step": 0, "partial": None,
                     "finished": finished,
                     "history": state["history"] + [{"stage": stage.name, "epoch": epoch + 1, **stats}],
                     "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict() if scheduler is not None else None}
            C.save_checkpoint(run_dir, trainer_state=state, **ckpt_args)
            log.debug("%s: %s", desc, stats)
        epoch_offset += stage.epochs
    return state


def _score(config: TrainConfig, seed: int, run_dir: Path, bundle: DataBundle, model, accelerator,
           history: list[dict], recipe: dict) -> dict:
    """Score the test split on the main process; write predictions.parquet and metrics.json
    (with the recipe the run used and the warnings of a run that did not learn)."""
    result = {}
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        test, scores, intent = predict_windows(unwrapped, bundle.test_windows(), batch_size=config.eval_batch_size,
                                               device=accelerator.device, progress=config.progress)
        RF.write_predictions(run_dir, test.meta, scores, intent)
        metrics = evaluate(test, scores, intent)
        warnings = score_warnings(test.meta["clicked"], scores, metrics["ctr"]["auc"])
        for text in warnings:
            log.warning("warning: %s seed %s: %s", RF.run_name(config.model, config.ablation), seed, text)
        result = {"model": config.model, "ablation": config.ablation, "seed": seed, **metrics,
                  "warnings": warnings, "recipe": recipe,
                  "train": {"history": history,
                            "parameters": sum(p.numel() for p in unwrapped.parameters()),
                            "processes": accelerator.num_processes, "device": str(accelerator.device)},
                  "data": bundle.summary}
        RF.write_json(run_dir / RF.METRICS, result)
    accelerator.wait_for_everyone()
    return result


def data_arguments(config: TrainConfig) -> dict:
    """`load_data`'s arguments (vocabularies aside) as `config` sets them."""
    return dict(data=config.data, store=config.store, dataset=config.dataset,
                max_hist=config.max_hist, max_subseq=config.max_subseq, max_page=config.max_page,
                max_dt=config.max_dt, price_buckets=config.price_buckets)


def seed_tasks(config: TrainConfig) -> list[tuple[TrainConfig, int, Path]]:
    """(config, seed, run folder) per seed: RUN itself for one seed, RUN/seed-S/ for several."""
    return [(config, seed, config.run if len(config.seeds) == 1 else RF.seed_dir(config.run, seed))
            for seed in config.seeds]


def choose_stream(config: TrainConfig) -> TrainConfig:
    """`config` with `stream` on or off: auto streams once the in-memory path would hold more than
    the memory budget; a resumed run keeps the path its checkpoint was trained on."""
    if config.stream != "auto":
        return config
    if config.resume:
        for run_dir in [config.run] + [RF.seed_dir(config.run, s) for s in config.seeds]:
            ckpt = C.find_checkpoint(run_dir)
            stored = (RF.read_checkpoint_config(ckpt).get("train") or {}).get("stream") if ckpt else None
            if stored in ("on", "off"):
                return config.replace(stream=stored)
    from daian.data.stream_loading import in_memory_bytes, memory_budget

    need = in_memory_bytes(config.data, config.max_hist, config.max_subseq)
    budget = memory_budget(config.memory_budget_gb)
    streaming = need > budget
    (log.info if streaming else log.debug)(
        "data path: %s (the in-memory path would hold about %.2f GB; budget %.2f GB)",
        "streaming" if streaming else "in memory", need / 2 ** 30, budget / 2 ** 30)
    return config.replace(stream="on" if streaming else "off")


def load_bundle(config: TrainConfig):
    """Read the data of `config` (reusing a checkpoint's vocabularies when resuming): a
    `DataBundle` in memory, or a `StreamBundle` when `config.stream` is on."""
    vocabs = None
    if config.resume:
        vocabs = C.vocabularies_of([config.run] + [RF.seed_dir(config.run, s) for s in config.seeds])
    if config.stream == "on":
        from daian.data.stream_loading import load_streaming

        return load_streaming(**data_arguments(config), vocabs=vocabs, progress=config.progress)
    return load_data(**data_arguments(config), vocabs=vocabs)


def train(config: TrainConfig, bundle: DataBundle | None = None) -> dict:
    """Train `config.model` once per seed; returns the metrics (per seed and summarised when several).

    One seed writes into `config.run`; several write `config.run/seed-S/` each and a summary
    `config.run/metrics.json`.
    """
    from daian.training.summary import write_seed_summary

    config.model_config()  # fail on bad model settings before reading any data
    if bundle is None:
        config = choose_stream(config)
        bundle = load_bundle(config)
    elif config.stream == "auto":
        config = config.replace(stream="on" if bundle.streaming else "off")
    if len(config.seeds) == 1:
        return train_seed(config, config.seeds[0], config.run, bundle)
    per_seed = {seed: train_seed(config, seed, run_dir, bundle) for _, seed, run_dir in seed_tasks(config)}
    if not is_main_process():
        return {}
    return write_seed_summary(config, per_seed)


def is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def is_distributed() -> bool:
    from accelerate import PartialState

    return PartialState().num_processes > 1
