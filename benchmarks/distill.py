"""Distillation on real IMDB, measured so that it can tell its recipes apart. The bundled MiniLM
(6 layers, 384 wide, 12 heads) fine-tuned on a few thousand labelled reviews is the teacher, once
per teacher seed; each teacher's students train, once per student seed, with each recipe:

- a 3-layer and a 2-layer student cut from the teacher (its layers the uniform map names), and a
  2-layer student of another width and head count (256 wide, 4 heads), from random weights;
- labels only; + the teacher's logits; + unlabelled reviews of IMDB's unsup split that the teacher
  labels; + TinyBERT's hidden-state and attention-score losses (cut students); + MiniLM's loss
  (the student of another width, which the attention-score loss cannot teach), each of the last
  two in a first stage of its own (one epoch), the labels and logits after it.

Every recipe trains `--epochs` epochs over its texts; those that add unlabelled reviews take more
steps, so each student also trains on the labels alone for as many steps (the equal-steps
control). A seed changes the data order and the student's start (and the teacher's own, through
its seed), and every model predicts the same test reviews. Each
comparison with the labels-only student is paired on those texts and runs, with a 95% bootstrap
interval; the teacher's pass over the training texts is timed, and prediction throughput is
measured against the teacher's on the same texts. Every run is this project's own `train.py fit`
(in this process) with configs/imdb/distilbert.yaml and configs/overlays/distill.yaml.

    python benchmarks/distill.py                # ../shared/data/imdb, 2-core CPU: about 80 minutes
    python benchmarks/distill.py --quick        # dry run on a few dozen reviews, about 3 minutes
    python benchmarks/distill.py --summarise benchmarks/measured/distill-imdb-....json   # the tables again
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the loaders fork worker processes

import json
import time
from pathlib import Path

from benchmarks.common import RESULTS, cpu_name, layers_of, parser, table, write_report
from benchmarks.distill_data import draw
from benchmarks.distill_runs import RECIPES, fit, keep_export, recipe_args, score, speeds, test_data
from benchmarks.distill_stats import summary
from benchmarks.random_models import save_random_model
from core.console import quiet_console
from core.errors import UserError, exit_on_user_error
from lightning_modules.distill_student import uniform_map

PLAN = {"3-layer": ["labels", "control", "logits", "unlabelled", "tinybert"],
        "2-layer": ["labels", "control", "unlabelled"],
        "narrow": ["labels", "control", "unlabelled", "minilm"]}
LIVE = ("tinybert", "minilm")  # recipes whose teacher runs on every step (its time is in the fit's)
NAMES = {"3-layer": "3 of 6 layers, cut", "2-layer": "2 of 6 layers, cut",
         "narrow": "2 layers, 256 wide, 4 heads, random start"}
QUICK = {"train": 48, "test": 32, "unlabelled": 48, "teachers": 1, "seeds": 2, "teacher_epochs": 1,
         "epochs": 2, "max_length": 64, "batch_size": 16}


def parse_args():
    options = parser(__doc__, None, data_dir="../shared/data/imdb", max_length=128, batch_size=32)
    options.add_argument("--train", type=int, default=1000, help="labelled training reviews")
    options.add_argument("--test", type=int, default=1000, help="test reviews, the same for every model")
    options.add_argument("--unlabelled", type=int, default=1000,
                         help="unsup reviews the teacher labels; a multiple of --train")
    options.add_argument("--epochs", type=int, default=3, help="of every student run but the control")
    options.add_argument("--teachers", type=int, default=2, help="teacher seeds")
    options.add_argument("--seeds", type=int, default=1, help="student seeds per teacher")
    options.add_argument("--teacher_epochs", type=int, default=3)
    options.add_argument("--learning_rate", type=float, default=1e-4, help="of the teacher and cut students")
    options.add_argument("--narrow_learning_rate", type=float, default=5e-4,
                         help="of the student from random weights")
    options.add_argument("--precision", default="32-true", help="of every run: 16-mixed on a GPU")
    options.add_argument("--students", nargs="+", default=list(PLAN), choices=list(PLAN))
    options.add_argument("--cache_dir", default=".cache/tokenized")
    options.add_argument("--workdir", default=".cache/distill-benchmark",
                         help="the drawn data, the teachers and the runs (kept for --resume)")
    options.add_argument("--resume", action="store_true", help="skip the runs the JSON already holds")
    options.add_argument("--summarise", metavar="JSON", help="print the tables of a finished run's JSON")
    options.add_argument("--quick", action="store_true", help="dry run: a few dozen reviews, one teacher")
    args = options.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    if args.unlabelled % args.train:
        raise UserError(f"--unlabelled {args.unlabelled} is not a multiple of --train {args.train}: "
                        "the equal-steps control would need a fraction of an epoch")
    args.out = args.out or str(RESULTS / f"distill-imdb{'-quick' if args.quick else ''}.json")
    return args


def student_args(student: str, teacher_dir: str, workdir: Path, seed: int, args) -> list[str]:
    """The backbone of a student: the teacher's layers it keeps, or random weights of seed `seed`."""
    if student == "narrow":
        start = save_random_model("narrow", workdir / f"narrow-start-{seed}", seed=seed)
        return ["--model.backbone", str(start), "--model.learning_rate", str(args.narrow_learning_rate)]
    cut = uniform_map(int(student[0]), layers_of(teacher_dir))
    return ["--model.backbone", teacher_dir, "--model.keep_layers", str(cut),
            "--model.learning_rate", str(args.learning_rate)]


def measure(args, report: dict, save) -> None:
    """Every teacher and run the JSON lacks, each saved as soon as it is scored."""
    workdir = Path(args.workdir)
    drawn = draw(Path(args.data_dir), workdir, args.train, args.test, args.unlabelled)
    report["test_labels"] = drawn["test_labels"]
    done = {r["name"] for r in report["runs"]}
    control_epochs = args.epochs * (1 + args.unlabelled // args.train)
    dm = None
    for t in range(1, args.teachers + 1):
        teacher_dir = workdir / f"teacher{t}"
        if str(t) not in report["teachers"] or not teacher_dir.is_dir():
            run = fit(args, drawn["data_dir"], workdir, f"teacher{t}", t, "--model.backbone", "minilm",
                      "--model.learning_rate", str(args.learning_rate),
                      "--trainer.max_epochs", str(args.teacher_epochs))
            keep_export(run, teacher_dir)
            dm = dm or test_data(args, drawn["data_dir"], str(teacher_dir))
            report["teachers"][str(t)] = {"seed": t, "fit_s": run["fit_s"], "steps": run["steps"],
                                          **score(teacher_dir, dm)}
            save()
        dm = dm or test_data(args, drawn["data_dir"], str(teacher_dir))
        for seed in (100 * t + s for s in range(1, args.seeds + 1)):
            for student in args.students:
                for recipe in PLAN[student]:
                    name = f"{student}-{recipe}-teacher{t}-seed{seed}"
                    if name in done:
                        continue
                    run = fit(args, drawn["data_dir"], workdir, name, seed,
                              *student_args(student, str(teacher_dir), workdir, seed, args),
                              *recipe_args(recipe, str(teacher_dir), drawn["unlabelled"], args.epochs,
                                           control_epochs))
                    export = keep_export(run, workdir / f"student-{student}")
                    found = score(export, dm)
                    report["runs"].append({"name": name, "student": student, "recipe": recipe, "teacher": t,
                                           "seed": seed, "replicate": f"{t}-{seed}",
                                           **{k: v for k, v in run.items() if k != "folder"}, **found})
                    print(f"{name}: fit {run['fit_s']} s, {run['steps']} steps", flush=True)
                    save()
    models = {"teacher": workdir / "teacher1", **{s: workdir / f"student-{s}" for s in args.students}}
    report["speed"] = speeds(models, dm)


def print_tables(report: dict) -> None:
    rows = summary(report["runs"], report["teachers"], report["test_labels"])
    speed = report.get("speed", {})
    teacher_speed = speed.get("teacher", {}).get("texts_per_s")
    teachers = [t["fit_s"] for t in report["teachers"].values()]

    def interval(value, scale=100, unit=""):
        point, low, high = value
        return f"{scale * point:+.1f}{unit} [{scale * low:+.1f}, {scale * high:+.1f}]"

    lines = [["teacher (MiniLM, 6 layers)", "-", f"{100 * rows[0]['teacher_accuracy']:.1f}", "-", "-",
              f"{sum(teachers) / len(teachers):.0f}", "-",
              f"{teacher_speed:.0f} (1.00x)" if teacher_speed else "-"]] if rows else []
    for row in rows:
        point, low, high = row["accuracy"]
        rate = speed.get(row["student"], {}).get("texts_per_s")
        lines.append([f"{NAMES[row['student']]}", RECIPES[row["recipe"]],
                      f"{100 * point:.1f} [{100 * low:.1f}, {100 * high:.1f}]",
                      interval(row["gain"], unit=" pts") if "gain" in row else "-",
                      interval(row["gap_recovered"], unit="%") if "gap_recovered" in row else "-",
                      f"{row['fit_s']:.0f}",
                      row["teacher_pass_s"] or ("in fit" if row["recipe"] in LIVE else "-"),
                      f"{rate:.0f} ({rate / teacher_speed:.2f}x)" if rate and teacher_speed else "-"])
    print(table(["student", "recipe", "test acc % [95% CI]", "vs labels only", "gap recovered",
                 "fit (s)", "teacher pass (s)", "predict texts/s (vs teacher)"], lines))
    print()
    print(table(["student", "what is added", "to", "test acc points [95% CI]"],
                [[NAMES[row["student"]], RECIPES[row["recipe"]].removeprefix("+ logits, + unlabelled, "),
                  RECIPES[row["added_to"]], interval(row["added"], unit=" pts")]
                 for row in rows if "added" in row]))
    runs = {row["runs"] for row in rows}
    print(f"\n{report['train']:,} labelled reviews, {report['unlabelled']:,} unlabelled, "
          f"{report['test']:,} test, "
          f"{report['max_length']} tokens, batch {report['batch_size']}, {report['precision']}, "
          f"{report['epochs']} epochs a student run (the control "
          f"{report['epochs'] * (1 + report['unlabelled'] // report['train'])}); "
          f"{report['teachers_n']} teacher(s) x "
          f"{report['seeds']} student seed(s) = {', '.join(map(str, sorted(runs)))} paired run(s) a row; "
          f"CPU: {report['cpu']}")


def main() -> None:
    args = parse_args()
    if args.summarise:
        print_tables(json.loads(Path(args.summarise).read_text()))
        return
    quiet_console()
    started = time.perf_counter()
    report = {**{k: v for k, v in vars(args).items() if k not in ("out", "teachers", "resume", "summarise")},
              "teachers_n": args.teachers, "cpu": cpu_name(), "teachers": {}, "runs": []}
    if args.resume and Path(args.out).is_file():
        previous = json.loads(Path(args.out).read_text())
        report.update(teachers=previous["teachers"], runs=previous["runs"])

    def save():
        report["minutes"] = round((time.perf_counter() - started) / 60, 1)
        write_report(args.out, report)

    measure(args, report, save)
    save()
    print()
    print_tables(report)


if __name__ == "__main__":
    exit_on_user_error(main)
