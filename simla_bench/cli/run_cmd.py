"""``simla-bench run``: pretrain each objective set, run every task, print the
leaderboard.  Finished cells are kept and reused; an interrupted run resumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
from rich.markup import escape

from simla_bench.cli.common import console, err_console, warn_plugin_problems, writable_dir, writable_file


def _load_cfg(config, ablate, matrix_file, objectives, tasks, seeds, world, out, data_fraction, steps, device,
              checkpoint=None, checkpoint_format=None, no_pretrain=False, controls=None):
    from simla_bench.config import CONFIG_DIR, apply_overrides, load_config, load_yaml, parse_config
    from simla_bench.errors import ConfigError

    if (ablate or matrix_file) and objectives:
        raise ConfigError("--objectives and --ablate/--matrix both choose the rows", hint="give only one of them")
    if ablate and config is None and not matrix_file:
        # the whole packaged ablation experiment: its rows, controls, columns and output folder
        cfg = load_config(CONFIG_DIR / "ablation.yaml")
    else:
        cfg = load_config(config)
    if matrix_file or (ablate and config is not None):  # another file's rows on this experiment
        mpath = Path(matrix_file) if matrix_file else CONFIG_DIR / "ablation.yaml"
        mdata = load_yaml(mpath)
        rows = mdata if isinstance(mdata, list) else mdata.get("matrix")
        if not rows:
            raise ConfigError(f"{mpath}: no 'matrix:' list of rows", hint="see configs/ablation.yaml for the format")
        data = cfg.model_dump()
        data["matrix"] = rows
        if isinstance(mdata, dict) and out is None and mdata.get("output_dir") and config is None:
            data["output_dir"] = mdata["output_dir"]
        cfg = parse_config(data, str(mpath))
    return apply_overrides(cfg, objectives=objectives, tasks=tasks, seeds=seeds, out=out, world=world,
                           data_fractions=data_fraction, steps=steps, device=device, checkpoint=checkpoint,
                           checkpoint_format=checkpoint_format, no_pretrain=no_pretrain, controls=controls)


def apply_model_option(cfg, spec: str, *, rows_given: bool, steps: int | None):
    """``--model NAME[:PATH]``: the experiment's model becomes ``NAME`` (its options
    kept when it is the config's model, else none), ``PATH`` going into the option the
    recipe names in ``path_option`` (the hf_* models: ``path``).  A model read from a
    PATH with no ``--objectives``/``--steps``/``--ablate``/``--matrix`` is evaluated as
    loaded: ``pretrain.steps`` 0 and one row named ``NAME:<folder name>``."""
    from simla_bench.config import parse_config
    from simla_bench.errors import ConfigError
    from simla_bench.registry import get_registry

    name, sep, path = spec.partition(":")
    name = name.strip()
    if not name:
        raise ConfigError("--model names no model", hint="give NAME or NAME:PATH, e.g. --model hf_blip:/path/to/blip")
    recipe = get_registry().load("model", name)  # an unknown name: one line with did-you-mean
    data = cfg.model_dump()
    options = dict(data["model"].get("options") or {}) if name == data["model"].get("name") else {}
    if sep:
        option = getattr(recipe, "path_option", None)
        if not option:
            raise ConfigError(f"--model {name}:PATH: model '{name}' takes no PATH",
                              hint=f"give --model {name} and set its options in the config's model: section"
                                   + (" (a checkpoint: --checkpoint FILE)" if name == "vlp" else ""))
        if not path.strip():
            raise ConfigError(f"--model {name}: the PATH after ':' is empty", hint=f"--model {name}:/path/to/model")
        local = Path(path).expanduser()
        options[option] = str(local.resolve()) if local.exists() else path
    data["model"] = {"name": name, "options": options}
    if sep and not rows_given and steps is None:
        data["pretrain"]["steps"] = 0
        data["matrix"] = [{"name": f"{name}:{Path(path).name or path}", "objectives": []}]
    return parse_config(data, "command line")


@click.command("run")
@click.option("--objectives", help="Comma-separated objective set for one row, e.g. itc,xmm,psl.")
@click.option("--tasks", help="Comma-separated tasks (columns), e.g. retrieval,vqa.")
@click.option("--seeds", help="Comma-separated seeds, e.g. 0,1,2; each row is repeated per seed.")
@click.option("--world", type=click.Choice(["tiny", "small", "base"]), help="Built-in world preset.")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="Experiment YAML (default: configs/default.yaml).")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default: the config's output_dir).")
@click.option("--ablate", is_flag=True, help="Run the objective ablation rows of configs/ablation.yaml.")
@click.option("--matrix", "matrix_file", type=click.Path(dir_okay=False), help="YAML file with a 'matrix:' list of rows.")
@click.option("--data-fraction", "data_fraction", help="Sweep pretraining data, e.g. 0.1,0.25,1.0.")
@click.option("--steps", type=click.IntRange(0), help="Pretraining steps (overrides pretrain.steps).")
@click.option("--device", help="auto, cpu, cuda, cuda:N or mps (default: the config's, auto).")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="Load this full-model checkpoint (a released ALBEF/SIMLA .pth or one a run wrote) into the "
                   "model before pretraining/evaluation (model.options.checkpoint).")
@click.option("--checkpoint-format", type=click.Choice(["auto", "simla_bench", "albef", "simla"]),
              help="Key layout of --checkpoint (default auto: detected from its keys).")
@click.option("--model", "model_spec", metavar="NAME[:PATH]",
              help="The model to run (`simla-bench list models`): e.g. hf_blip:/path/to/blip, a local "
                   "save_pretrained directory (docs/models.md). With a PATH and no --objectives/--steps it is "
                   "evaluated as loaded, one row named after it.")
@click.option("--no-pretrain", is_flag=True,
              help="Evaluate the model as built/loaded: pretrain.steps 0 and one row named after the checkpoint.")
@click.option("--controls/--no-controls", default=None,
              help="Add the control rows (default: the config's controls:, off): 'none (control)', the model "
                   "with no pretraining, and 'shuffled (control)', the experiment's objectives on pairs whose "
                   "captions are shuffled among the images; the report then marks the columns whose best row "
                   "does not beat 'none' beyond noise.")
@click.option("--force", is_flag=True, help="Recompute every row's cells (and pretraining) even if finished.")
@click.option("--force-row", "force_rows", metavar="ROW", multiple=True,
              help="Recompute only this row's cells and pretraining (its label as the leaderboard shows it); "
                   "repeat for several rows.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display; warnings and the leaderboard only.")
@click.option("--log-jsonl", type=click.Path(dir_okay=False), help="Append run events to this JSON-lines file.")
@click.option("--baseline", metavar="ROW", help="Row to compare against in the final leaderboard.")
@click.option("--executor", type=click.Choice(["local", "slurm", "submitit_local"]),
              help="Where rows run: here (local), one Slurm job per row and seed (slurm, options under "
                   "executor.slurm in the config), or local submitit subprocesses (submitit_local).")
@click.option("--nproc-per-node", type=click.IntRange(1), default=1, show_default=True,
              help="Run under torchrun with N processes on this machine (gloo on CPU, NCCL on GPUs); "
                   "rank 0 writes the results.")
def run_command(objectives, tasks, seeds, world, config, out, ablate, matrix_file, data_fraction, steps, device,
                checkpoint, checkpoint_format, model_spec, no_pretrain, controls, force, force_rows, quiet, log_jsonl,
                baseline, executor, nproc_per_node):
    """Pretrain each objective set, score it on every task, print the leaderboard.

    With no options this runs configs/default.yaml on the built-in world
    (generated on first use).  Rerunning the same command recomputes nothing
    that is finished; an interrupted run resumes from its last checkpoint.

    \b
    Examples:
      simla-bench run
      simla-bench run --objectives itc,xmm,psl --world tiny --steps 50
      simla-bench run --ablate --seeds 0,1,2 --baseline itc
      simla-bench run --ablate --seeds 0,1,2 --controls
      simla-bench run --ablate --force-row itc --force-row "itm+itc"
      simla-bench run --objectives itc,itm --data-fraction 0.1,0.25,1.0
      simla-bench run --ablate --executor slurm --config my_cluster.yaml
      simla-bench run --nproc-per-node 2 --steps 100
      simla-bench run --config configs/eval/albef_flickr30k.yaml --checkpoint flickr30k.pth --no-pretrain
      simla-bench run --model hf_blip:/path/to/blip --tasks retrieval
    """
    if nproc_per_node > 1 and "LOCAL_RANK" not in os.environ:
        raise SystemExit(_relaunch_under_torchrun(nproc_per_node, click.get_current_context()))
    from simla_bench.cli.report_cmd import render_report
    from simla_bench.errors import ConfigError
    from simla_bench.devices import check_device
    from simla_bench.registry import get_registry
    from simla_bench.runner.executors import make_executor
    from simla_bench.runner.matrix import MatrixRunner
    from simla_bench.runner.pipeline import get_pipeline
    from simla_bench.runner.matrix import dist_rank
    from simla_bench.runner.progress import make_progress

    cfg = _load_cfg(config, ablate, matrix_file, objectives, tasks, seeds, world, out, data_fraction, steps, device,
                    checkpoint, checkpoint_format, no_pretrain, controls)
    if model_spec:
        cfg = apply_model_option(cfg, model_spec, rows_given=bool(objectives or ablate or matrix_file),
                                 steps=steps)
    # before any work: a device this machine lacks (jobs of another machine: the name only), an output
    # path that cannot be written
    check_device(cfg.device, available=(executor or cfg.executor.kind) != "slurm")
    writable_dir(cfg.output_dir, "the run directory", "--out (or output_dir:)")
    if log_jsonl:
        writable_file(log_jsonl, "the --log-jsonl file", "--log-jsonl")
        os.environ["SIMLA_BENCH_JSONL"] = str(Path(log_jsonl).resolve())
    registry = get_registry()
    warn_plugin_problems(registry)
    main_rank = dist_rank()[0] == 0
    progress = make_progress(quiet or not main_rank)
    if force and force_rows:
        raise ConfigError("--force recomputes every row; --force-row only the rows it names", hint="give one of them")
    try:
        runner = MatrixRunner(cfg, registry, get_pipeline(), cfg.output_dir, progress=progress,
                              force=list(force_rows) if force_rows else force,
                              executor=make_executor(executor or cfg.executor.kind, cfg.executor.slurm))
        result = runner.run()
    finally:
        progress.close()
    if not main_rank:
        raise SystemExit(1 if result.failures else 0)
    if result.records:
        render_report(result.records, baseline=baseline, title=f"leaderboard: {cfg.output_dir}")
    for line in cfg.left_out_tasks():  # columns the config keeps out of this run, and why
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if not quiet:
        err_console.print(f"{result.computed} cells computed, {result.cached} reused; records in {result.run_dir}/cells",
                          highlight=False, markup=False)
    for failure in result.failures:
        err_console.print(f"[bold red]failed:[/] {escape(str(failure))}", highlight=False, soft_wrap=True)
    if result.failures:
        raise SystemExit(1)


def torchrun_argv(nproc: int, ctx: click.Context) -> list[str]:
    """The same ``run`` command, rebuilt from its parsed options, under torchrun."""
    args = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name == "nproc_per_node":
            continue
        value = ctx.params.get(param.name)
        if param.is_flag:
            if value:
                args.append(param.opts[0])
            elif value is not None and param.secondary_opts:  # --no-controls: an explicit off
                args.append(param.secondary_opts[0])
        elif param.multiple:
            for item in value or ():
                args += [param.opts[0], str(item)]
        elif value is not None:
            args += [param.opts[0], str(value)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "simla_bench", "run", *args]


def _relaunch_under_torchrun(nproc: int, ctx: click.Context) -> int:
    argv = torchrun_argv(nproc, ctx)
    err_console.print(f"starting {nproc} processes: {' '.join(argv[2:])}", highlight=False, soft_wrap=True,
                      markup=False)
    return subprocess.call(argv)


COMMANDS = [run_command]
