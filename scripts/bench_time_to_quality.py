"""Time to quality: wall-clock minutes for a recipe to reach a score, against a baseline checkout
measured in the same run.

    git worktree add /tmp/baseline <commit>    # the code to compare against
    python scripts/bench_time_to_quality.py --data data/hard --out runs/ttq \\
        --baseline_repo /tmp/baseline [--seeds 42 43] [--epochs 28] [--lanes 2] \\
        [--target 0.822] [--recipe "<fit.py arguments of both>"]
        [-- <extra fit.py arguments of this checkout's recipe>]

Each seed trains the quickstart recipe (``configs/quickstart.yaml`` of each checkout, then
``--recipe``'s arguments, e.g. ``"--config configs/conformer_cpu.yaml"``, a path read in each
checkout, ``--epochs`` epochs) twice: with the baseline checkout's code (its own
``scripts/fit.py``) and with this checkout's, plus the extra arguments. Runs go ``--lanes`` at a time, each lane with
``cores / lanes`` threads, the baseline and this checkout side by side so that both see the same
load. A callback (``scripts/epoch_clock.py``, standalone so that it runs in either checkout)
records each epoch's wall-clock and validation scores. Printed: each run's curve (score against
minutes), and per recipe the minutes until the validation score first reaches the target (the
baseline's mean final score unless ``--target`` is given), their mean over the seeds, and the
ratio. Runs already finished in ``--out`` are read back, not trained again.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def train(repo: Path, run: Path, seed: int, epochs: int, data: str, extra: list[str], threads: int):
    """One fit of ``repo``'s quickstart recipe into ``run``; returns its epoch rows."""
    clock = run / "epochs.jsonl"
    done = run / "done"
    if done.exists():
        return [json.loads(line) for line in clock.read_text().splitlines()]
    run.mkdir(parents=True, exist_ok=True)
    clock.unlink(missing_ok=True)
    cmd = [
        sys.executable, str(repo / "scripts" / "fit.py"),
        "--config", str(repo / "configs" / "quickstart.yaml"),
        "--data.data_dir", data, "--trainer.max_epochs", str(epochs),
        "--trainer.default_root_dir", str(run), "--trainer.enable_progress_bar", "false",
        "--trainer.callbacks+=epoch_clock.EpochClock", *extra,
        "--seed_everything", str(seed),
    ]  # fmt: skip
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(repo), str(HERE)]),
        "EPOCH_CLOCK_FILE": str(clock),
        "OMP_NUM_THREADS": str(threads),
    }
    with open(run / "fit.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=repo, env=env)
    done.touch()
    return [json.loads(line) for line in clock.read_text().splitlines()]


def minutes_to(rows: list[dict], target: float, metric: str) -> float | None:
    """Minutes until ``metric`` first reaches ``target`` (None: never)."""
    for row in rows:
        if row.get(metric, -1.0) >= target:
            return row["seconds"] / 60
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the hard benchmark's dataset root")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--baseline_repo", required=True, type=Path, help="a checkout to compare to")
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 43])
    p.add_argument("--epochs", type=int, default=28)
    p.add_argument("--lanes", type=int, default=2)
    p.add_argument("--target", type=float, default=None)
    p.add_argument("--metric", default="val/score")
    p.add_argument("--recipe", default="", help="fit.py arguments of both checkouts' runs")
    args, extra = p.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if not (args.baseline_repo / "scripts" / "fit.py").is_file():
        sys.exit(f"--baseline_repo {args.baseline_repo}: no scripts/fit.py there")
    threads = max(1, (os.cpu_count() or 1) // args.lanes)
    recipe = shlex.split(args.recipe)
    data = str(Path(args.data).resolve())
    jobs = {
        (name, seed): (repo, args.out / f"{name}-{seed}", seed, args.epochs, data, more, threads)
        for seed in args.seeds
        for name, repo, more in (("baseline", args.baseline_repo.resolve(), recipe),
                                 ("this", ROOT, [*recipe, *extra]))
    }  # fmt: skip
    with ThreadPoolExecutor(args.lanes) as pool:
        futures = {key: pool.submit(train, *job) for key, job in jobs.items()}
        curves = {key: f.result() for key, f in futures.items()}
    (args.out / "curves.json").write_text(
        json.dumps({f"{n}-{s}": rows for (n, s), rows in curves.items()}, indent=1)
    )
    finals = {
        name: [curves[(name, s)][-1][args.metric] for s in args.seeds]
        for name in ("baseline", "this")
    }
    target = args.target if args.target is not None else sum(finals["baseline"]) / len(args.seeds)
    print(f"{args.metric} against wall-clock minutes ({args.epochs} epochs, {args.lanes} lanes):")
    for (name, seed), rows in curves.items():
        points = ", ".join(f"{r['seconds'] / 60:.1f}:{r[args.metric]:.3f}" for r in rows)
        print(f"  {name} seed {seed}: {points}")
    print(f"minutes to reach {target:.3f}:")
    reached = {}
    for name in ("baseline", "this"):
        times = [minutes_to(curves[(name, s)], target, args.metric) for s in args.seeds]
        reached[name] = times
        shown = " / ".join("never" if t is None else f"{t:.1f}" for t in times)
        mean_final = sum(finals[name]) / len(args.seeds)
        print(f"  {name}: {shown} (final {args.metric} mean {mean_final:.3f})")
    if all(t is not None for ts in reached.values() for t in ts):
        base, this = (sum(reached[n]) / len(args.seeds) for n in ("baseline", "this"))
        print(f"this / baseline time to quality: {this / base:.2f}")


if __name__ == "__main__":
    main()
