"""Comparing models: several models (and their ablations) on the same data and seeds.

`compare(config, models, ...)` trains every (run, seed) pair, in this process or `jobs` at a time
in separate processes, and writes RUN/<name>/ per run, RUN/compare.json and RUN/compare.md.
"""
from __future__ import annotations

import os
from pathlib import Path

from tqdm.auto import tqdm

from daian import run_folder as RF
from daian.data import DataBundle, load_data
from daian.data.vocab import Vocabularies
from daian.training import checkpoint as C
from daian.training.config import TrainConfig
from daian.training.summary import comparison_rows, format_table, write_seed_summary
from daian.training.trainer import (choose_stream, data_arguments, is_distributed, is_main_process, load_bundle,
                                    seed_tasks, train, train_seed)


def _runs(config: TrainConfig, models: list[str], ablations: bool | list[str]) -> list[TrainConfig]:
    """One config per compared run: each model, then the ablations asked for."""
    from daian.models import registry

    ablated = list(models) if ablations is True else list(ablations or [])
    unknown = [m for m in ablated if m not in models]
    if unknown:
        raise ValueError(f"ablations asked for {unknown}, which are not among the compared models {models}")
    known = set().union(*(registry.get(m).config.field_names() for m in models))
    unused = sorted(set(config.model_settings) - known)
    if unused:
        raise ValueError(f"model setting(s) {unused} belong to none of the compared models {models}")
    pairs = [(m, None) for m in models]
    pairs += [(m, a) for m in models if m in ablated for a in registry.get(m).config.ablations]
    runs = [config.for_model(m, a, run=config.run / RF.run_name(m, a)) for m, a in pairs]
    for run in runs:
        run.model_config()  # fail on bad model settings before reading any data
    return runs


def compare(config: TrainConfig, models: list[str], ablations: bool | list[str] = False,
            jobs: int = 1, also: list[TrainConfig] | tuple = (), baseline: str = "din") -> dict:
    """Train several models (and their ablations) on the same data and seeds.

    `ablations`: True adds every ablation of every compared model, a list of model names adds
    those models' ablations only (e.g. ["daian"]), False none. `jobs` > 1 trains that many
    (run, seed) pairs at once in separate processes on this machine, each with `cpu_threads`
    threads (0: the machine's cores shared out); on a CPU several small single-threaded runs use
    the cores better than one run spread over them. Results equal a sequential comparison's up to
    float rounding (thread counts change reduction order). `also`: further runs (each a full
    TrainConfig with its own data, run folder and seeds) trained in the same pool, so that no
    process idles between the comparison and them; their metrics are returned under "also".

    `baseline`: the run RelaImpr is measured against (DIN, the papers' base model, by default).
    Returns the table rows (mean and std over seeds of AUC, GAUC, RelaImpr, log loss, JS).
    """
    runs = _runs(config, models, ablations)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    config = choose_stream(config)  # every compared run on the same data path
    runs = [sub.replace(stream=config.stream) for sub in runs]
    bundle = _load_bundle_for_compare(config, runs)
    if jobs == 1:
        results = {}
        for sub in runs:
            res = train(sub, bundle)
            results[sub.run.name] = res if len(config.seeds) > 1 else {"per_seed": {config.seeds[0]: res}}
        also_results = [train(extra) for extra in also]
    else:
        results, also_results = _compare_in_processes(runs, bundle, jobs, list(also))
    if not is_main_process():  # the other processes of a distributed launch hold no metrics
        return {}
    rows = comparison_rows(results, baseline)
    table = format_table(rows, baseline)
    out = {"seeds": list(config.seeds), "rows": rows, "runs": {k: str(config.run / k) for k in results}}
    RF.write_json(config.run / RF.COMPARE_JSON, out)
    (config.run / RF.COMPARE_MD).write_text(table + "\n")
    out["table"] = table
    if also:
        out["also"] = also_results
    return out


def _load_bundle_for_compare(config: TrainConfig, runs: list[TrainConfig]) -> DataBundle:
    """Like `load_bundle`, looking for a checkpoint's vocabularies in any of the compared runs."""
    if config.resume:
        for sub in runs:
            if any(C.find_checkpoint(d) is not None for d in [sub.run, *(r for _, _, r in seed_tasks(sub))]):
                return load_bundle(sub)
    return load_bundle(config.replace(resume=False))


def _compare_in_processes(runs: list[TrainConfig], bundle: DataBundle, jobs: int,
                          also: list[TrainConfig]) -> tuple[dict[str, dict], list[dict]]:
    """Train every (run, seed) pair of a comparison, and the `also` runs, in `jobs` processes."""
    tasks = [task for sub in runs for task in seed_tasks(sub)]
    for extra in also:
        extra.model_config()
        tasks += seed_tasks(extra)
    done = train_parallel(tasks, jobs, progress=runs[0].progress,
                          vocabs=bundle.vocabs if runs[0].resume else None)
    results, k = {}, 0
    for sub in runs:
        per_seed = {seed: done[k + i] for i, seed in enumerate(sub.seeds)}
        k += len(sub.seeds)
        results[sub.run.name] = write_seed_summary(sub, per_seed) if len(sub.seeds) > 1 else {"per_seed": per_seed}
    also_results = []
    for extra in also:
        per_seed = {seed: done[k + i] for i, seed in enumerate(extra.seeds)}
        k += len(extra.seeds)
        also_results.append(per_seed[extra.seeds[0]] if len(extra.seeds) == 1
                            else write_seed_summary(extra, per_seed))
    return results, also_results


def _cost(config: TrainConfig) -> float:
    from daian.models import registry

    return registry.get(config.model).cost_of(config.ablation)


def train_parallel(tasks: list[tuple[TrainConfig, int, Path]], jobs: int, *, progress: bool = True,
                   vocabs: Vocabularies | None = None) -> list[dict]:
    """Train (config, seed, run folder) tasks, `jobs` at a time in separate processes on this machine.

    Each process reads a task's data once and keeps it for the next task on the same data; it runs
    with the task's `cpu_threads`, or the machine's cores shared out among the jobs when that is 0.
    The costliest runs (the registry's `cost`) start first. Returns each task's metrics in task
    order; a task's error is raised here.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if is_distributed():
        raise ValueError("jobs > 1 runs its own processes; it does not combine with accelerate launch")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # progress bars of several processes would interleave: one bar here counts finished runs
    tasks = [(cfg.replace(cpu_threads=cfg.cpu_threads or threads, progress=False), seed, Path(run_dir))
             for cfg, seed, run_dir in tasks]
    results: list[dict | None] = [None] * len(tasks)
    # Workers ignore Ctrl-C (no traceback from each of them): this process stops them and raises
    # KeyboardInterrupt once; their checkpoints of finished epochs stay (written atomically).
    pool = cf.ProcessPoolExecutor(max_workers=max(1, min(jobs, len(tasks))), mp_context=mp.get_context("spawn"),
                                  initializer=_ignore_sigint)
    bar = tqdm(total=len(tasks), desc=f"runs ({jobs} at a time)", unit="run", disable=not progress)
    try:
        order = sorted(range(len(tasks)), key=lambda k: -_cost(tasks[k][0]))  # stable: ties keep their order
        futures = {pool.submit(_train_task, *tasks[k], vocabs): k for k in order}
        for future in cf.as_completed(futures):
            k = futures[future]
            results[k] = future.result()  # re-raises a worker's error here
            cfg, seed, _ = tasks[k]
            bar.set_postfix_str(f"{RF.run_name(cfg.model, cfg.ablation)} seed {seed}: "
                                f"AUC {results[k]['ctr']['auc']:.4f}")
            bar.update()
    except BaseException:
        _stop(pool)
        raise
    finally:
        bar.close()
    pool.shutdown()
    return results


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop(pool) -> None:
    """Cancel the queued tasks and end the running workers now (not after their runs)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


_WORKER_BUNDLE: dict = {}


def _train_task(config: TrainConfig, seed: int, run_dir: Path, vocabs: Vocabularies | None) -> dict:
    """One (run, seed) pair inside a worker process; the data is read once per process."""
    arguments = data_arguments(config)
    key = tuple((name, str(value)) for name, value in arguments.items())
    if key not in _WORKER_BUNDLE:
        if len(_WORKER_BUNDLE) >= 3:  # a few datasets stay loaded (a comparison beside a level sweep)
            _WORKER_BUNDLE.pop(next(iter(_WORKER_BUNDLE)))
        _WORKER_BUNDLE[key] = load_data(**arguments, vocabs=vocabs)
    return train_seed(config, seed, run_dir, _WORKER_BUNDLE[key])
