"""Distillation on real AG News, measured: the bundled MiniLM fine-tuned as the teacher, students of
3 and 2 layers cut from it (each student layer a copy of the teacher layer its uniform map names),
each trained over seeds with the labels only, + the teacher's logits, + its hidden states, and +
unused training rows the teacher labels. Reports test accuracy (mean ± std over the seeds, on the
same test texts), the share of the teacher-student gap each variant recovers over labels-only
training, parameters, prediction throughput against the teacher's on the same texts, and what the
attention-score loss adds to a training step.

Every run is this project's own `train.py fit` (in this process) with configs/ag_news/distilbert.yaml
and, for the distilled variants, configs/overlays/distill.yaml, without validation or checkpoints:
each model is scored after its last epoch, then its run folder is removed.

    python benchmarks/distill.py                 # ../shared/data/ag_news, 2-core CPU: about 45 minutes
    python benchmarks/distill.py --quick         # dry run: a tiny random teacher, about 2 minutes
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the loaders fork worker processes

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, machine, parser, table, write_report
from benchmarks.distill_runs import (
    VARIANTS,
    attention_cost,
    fit,
    layers_of,
    score,
    speeds,
    student_runs,
    test_data,
)
from benchmarks.random_models import save_random_model
from core.console import quiet_console
from core.errors import exit_on_user_error

QUICK = {"train": 64, "test": 32, "unlabelled": 32, "epochs": 1, "teacher_epochs": 1, "seeds": 2,
         "students": [1], "timing_steps": 2, "log_every_n_steps": 1}


def parse_args():
    options = parser(__doc__, None, data_dir="../shared/data/ag_news", max_length=128, batch_size=32)
    options.add_argument("--train", type=int, default=2000, help="labelled training articles")
    options.add_argument("--test", type=int, default=1000, help="test articles, the same for every model")
    options.add_argument("--unlabelled", type=int, default=2000,
                         help="unused training articles the teacher labels (the unlabelled variant)")
    options.add_argument("--epochs", type=int, default=1, help="epochs of every student run")
    options.add_argument("--teacher_epochs", type=int, default=3)
    options.add_argument("--learning_rate", type=float, default=1e-4)
    options.add_argument("--precision", default="32-true", help="of every run: 16-mixed on a GPU")
    options.add_argument("--seeds", type=int, default=3)
    options.add_argument("--students", type=int, nargs="+", default=[3, 2], help="student depths, in layers")
    options.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    options.add_argument("--timing_steps", type=int, default=30,
                         help="training steps timed with and without the attention-score loss")
    options.add_argument("--log_every_n_steps", type=int, default=10,
                         help="of every run, as configs/defaults.yaml (the teacher's share is logged then)")
    options.add_argument("--cache_dir", default=".cache/tokenized")
    options.add_argument("--quick", action="store_true",
                         help="dry run: a 2-layer random teacher, a few dozen texts (checks the code path)")
    args = options.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    return args


def summary(runs: list[dict], teacher: dict) -> list[dict]:
    """Mean ± std over the seeds of each student and variant, and the share of the teacher-student
    gap of labels-only training that the variant closes."""
    rows = []
    for depth in dict.fromkeys(r["student"] for r in runs):
        group = {v: [r for r in runs if r["student"] == depth and r["variant"] == v] for v in VARIANTS}
        base = statistics.mean(r["test_accuracy"] for r in group["labels"]) if group["labels"] else None
        for variant, seeds in ((v, s) for v, s in group.items() if s):
            accs = [r["test_accuracy"] for r in seeds]
            mean = statistics.mean(accs)
            gap = teacher["test_accuracy"] - base if base is not None else None
            rows.append({"student": depth, "variant": variant, "accuracy_mean": round(mean, 4),
                         "accuracy_std": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0,
                         "gap_recovered": round((mean - base) / gap, 3) if gap else None,
                         "epoch_s": round(statistics.mean(s for r in seeds for s in r["epoch_s"]), 1),
                         "teacher_share": seeds[0]["teacher_share"], "seeds": len(seeds)})
    return rows


def percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def print_tables(rows: list[dict], teacher: dict, speed: dict, attention: dict) -> None:
    teacher_speed = next(iter(speed.values()))["texts_per_s"]
    print(table(["model", "test acc (mean ± std)", "gap recovered", "epoch (s)", "teacher's share of a step"],
                [[f"teacher ({teacher['layers']} layers)", f"{teacher['test_accuracy']:.4f}", "-",
                  round(statistics.mean(teacher["epoch_s"]), 1), "-"]]
                + [[f"{r['student']}-layer student, {VARIANTS[r['variant']]}",
                    f"{r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f}", percent(r["gap_recovered"]),
                    r["epoch_s"], percent(r["teacher_share"])] for r in rows]))
    print()
    print(table(["model", "parameters", "prediction (texts/s)", "vs teacher"],
                [[name, f"{s['params']:,}", f"{s['texts_per_s']:.1f}",
                  f"{s['texts_per_s'] / teacher_speed:.2f}x"] for name, s in speed.items()]))
    step = attention["step_s"]
    print(f"\nattention-score loss: {step['hidden']} s a step with the hidden-state loss, "
          f"{step['hidden+attention']} s with both ({100 * attention['attention_extra']:+.0f}%), "
          f"{attention['student']}-layer student, {attention['steps']} steps")


def main() -> None:
    args = parse_args()
    quiet_console()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        backbone = (str(save_random_model("tiny", workdir / "random-teacher", num_labels=4)) if args.quick
                    else "minilm")
        trained = fit(args, workdir, "teacher", 1, "--model.backbone", backbone,
                      "--trainer.max_epochs", str(args.teacher_epochs))
        teacher_dir = str(trained["folder"] / "hf_model")
        dm = test_data(args, teacher_dir)
        teacher = {**score(teacher_dir, dm, args.precision), "epoch_s": trained["epoch_s"],
                   "layers": layers_of(teacher_dir)}
        print(f"teacher: test accuracy {teacher['test_accuracy']:.4f}", flush=True)
        runs, students = student_runs(args, workdir, teacher_dir, dm)
        attention = attention_cost(args, workdir, teacher_dir, args.timing_steps)
        speed = speeds({f"teacher ({teacher['layers']} layers)": teacher_dir,
                        **{f"{depth}-layer student": folder for depth, folder in students.items()}},
                       dm, args.precision)
    rows = summary(runs, teacher)
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{'random tiny teacher (dry run)' if args.quick else 'MiniLM (all-MiniLM-L6-v2)'}, AG News: "
          f"{args.train:,} training articles, {args.test:,} test, {args.max_length} tokens, batch "
          f"{args.batch_size}, lr {args.learning_rate:g}, {args.precision}, {args.epochs} student epoch(s), "
          f"{args.seeds} seeds, on {machine()}, {minutes:.1f} min\n")
    print_tables(rows, teacher, speed, attention)
    write_report(args.out or RESULTS / f"distill-ag_news{'-quick' if args.quick else ''}.json", {
        **{k: v for k, v in vars(args).items() if k != "out"}, "minutes": round(minutes, 1),
        "teacher": teacher, "summary": rows, "speed": speed, "attention": attention, "runs": runs})


if __name__ == "__main__":
    exit_on_user_error(main)
