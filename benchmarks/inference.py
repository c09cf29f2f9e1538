"""Prediction speed and accuracy of a fine-tuned export, each row a whole process on the same real
test texts (`benchmarks/inference_measure.py`): `transformers.pipeline("text-classification",
batch_size=32)` (fp32, and bf16 where this CPU multiplies bf16 faster) against this project's
predict.py on PyTorch (its default, and compiled from a cold cache), ONNX Runtime fp32 and int8,
and for AG News a student of half its layers distilled from the model (docs/distill.md) on
PyTorch and int8: process time and texts per second (over the process, and over its prediction),
file size, test accuracy, agreement with the pipeline. Cases: AG News 2,000 texts at 128 tokens,
IMDB 2,000 at 128, IMDB 1,000 at 512.

    python benchmarks/inference.py           # every case (~35 min on 2 cores, exports reused)
    python benchmarks/inference.py --quick   # a dry run of every step on 64 texts (~2 min)

The model is the bundled all-MiniLM-L6-v2 fine-tuned by `train.py fit` (2,000 training texts, 128
tokens, 2 epochs, lr 5e-5, fp32) with the ONNX export added; an export found from an earlier run of the
same recipe is reused (--retrain trains anew). The student keeps half its layers (1, 3 and 5 of
MiniLM's 6) and learns from its logits on the same texts and 2,000 more it labels (the best recipe
of docs/distill.md), as many epochs, lr 1e-4.
Targets: predict.py on PyTorch at least 2x the pipeline's texts/s (its faster dtype) on AG News at
128 tokens and IMDB at 512, never slower; int8 at least 2x that, at no more than 1 point lost.
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

from pathlib import Path
from tempfile import TemporaryDirectory

from benchmarks.common import RESULTS, cpu_name, layers_of, parser, table, write_report
from benchmarks.inference_measure import measure
from core.console import quiet_console
from core.errors import exit_on_user_error
from deploy.checks import spread
from deploy.existing_export import run_test_split
from deploy.layout import classifier_labels
from lightning_modules.distill_student import uniform_map
from train import main as train

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = str(ROOT / "configs" / "overlays" / "distill.yaml")
CONFIGS = {"imdb": "configs/imdb/distilbert.yaml", "ag_news": "configs/ag_news/distilbert.yaml"}
RECIPE = {"texts": (2000, 500, 2000), "max_length": 128, "epochs": 2,
          "cases": [("ag_news", 2000, 128), ("imdb", 2000, 128), ("imdb", 1000, 512)]}
QUICK = {"texts": (64, 32, 64), "max_length": 64, "epochs": 1, "cases": [("imdb", 64, 64)]}
NAMES = {"pipeline": "transformers.pipeline (batch 32, fp32)",
         "pipeline-bf16": "transformers.pipeline (batch 32, bf16)",
         "torch": "predict.py, PyTorch (default)", "torch-compiled": "predict.py, PyTorch compiled (cold)",
         "onnx": "predict.py, ONNX Runtime fp32", "onnx-int8": "predict.py, ONNX Runtime int8",
         "student-torch": "student (half the layers), predict.py, PyTorch",
         "student-onnx-int8": "student (half the layers), predict.py, ONNX Runtime int8"}
STUDENT_ROWS = ("torch", "onnx-int8")


def fit_args(dataset: str, recipe: dict, name: str, data_dir: Path, backbone: str) -> list[str]:
    train, val, test = recipe["texts"]
    return ["fit", "--config", str(ROOT / CONFIGS[dataset]), "--model.backbone", backbone,
            "--model.learning_rate", "5e-5", "--data.data_dir", str(data_dir),
            "--data.max_length", str(recipe["max_length"]), "--data.limit_train_samples", str(train),
            "--data.limit_val_samples", str(val), "--data.limit_test_samples", str(test),
            "--trainer.max_epochs", str(recipe["epochs"]), "--trainer.logger.init_args.name", name,
            "--trainer.callbacks+=plugins.onnx_export.ONNXExport", "--trainer.precision", "32-true"]


def student_args(teacher: Path, unlabelled: int) -> list[str]:
    """A student of half the teacher's layers cut from it, taught by its logits on more texts."""
    layers = layers_of(str(teacher))
    cut = uniform_map(max(1, layers // 2), layers)
    return ["--model.backbone", str(teacher), "--model.keep_layers", str(cut), "--config", OVERLAY,
            "--model.teacher", str(teacher), "--model.learning_rate", "1e-4", "--data.unlabelled", "unused",
            "--data.limit_unlabelled_samples", str(unlabelled)]


def export_of(name: str, fit: list[str], retrain: bool) -> Path:
    """The hf_model/ of the newest run named `name` with its ONNX files; trained where none is."""
    found = sorted(Path("logs", name).glob("version_*/hf_model/onnx/checks.json"),
                   key=lambda path: int(path.parts[-4].removeprefix("version_")))
    if found and not retrain:
        print(f"{name}: reusing {found[-1].parents[1]}", flush=True)
        return found[-1].parents[1]
    cli = train(fit)
    return Path(cli.trainer.log_dir) / "hf_model"


def print_table(case: str, found: dict) -> None:
    rows = found["rows"]
    base = max(row["texts_per_s_process"] for name, row in rows.items() if name.startswith("pipeline"))
    lines = [[NAMES[name], f"{row['process_s']:.1f}", f"{row['texts_per_s_process']:.1f}",
              f"{row['texts_per_s_process'] / base:.2f}x", f"{row['texts_per_s_predicting']:.1f}",
              row["path"], f"{row['size_mb']:.1f}", f"{row['test_accuracy']:.4f}",
              f"{100 * row['same_label_as_pipeline']:.1f}%", f"{row['max_prob_diff_to_pipeline']:.1e}"]
             for name, row in rows.items()]
    print(f"\n{case}: {found['texts']:,} test texts at {found['max_length']} tokens, {found['threads']} "
          f"threads, {found['cpu']}; each row a whole process\n")
    print(table(["runtime", "process (s)", "texts/s (process)", "vs pipeline's faster",
                 "texts/s (predicting)", "path", "file (MB)", "test acc", "label = pipeline's",
                 "max prob diff"], lines))
    torch_speed = rows["torch"]["texts_per_s_process"]
    drop = 100 * (rows["torch"]["test_accuracy"] - rows["onnx-int8"]["test_accuracy"])
    print(f"\npredict.py on PyTorch {torch_speed / base:.2f}x the pipeline's faster setting (target 2x); "
          f"int8 {rows['onnx-int8']['texts_per_s_process'] / torch_speed:.2f}x PyTorch (target 2x), "
          f"{drop:.2f} points of accuracy lost (target <= 1)")


def main() -> None:
    options = parser(__doc__, None)
    options.add_argument("--quick", action="store_true", help="a dry run: 64 texts, 64 tokens, 1 epoch")
    options.add_argument("--threads", type=int, default=2, help="threads of every process")
    options.add_argument("--datasets", default="ag_news,imdb", help="comma-separated: the cases of these")
    options.add_argument("--retrain", action="store_true", help="train anew even where an export exists")
    options.add_argument("--shared_data", default=str(ROOT.parent / "shared" / "data"),
                         help="folder with imdb/ and ag_news/")
    options.add_argument("--backbone", default="minilm", help="what is fine-tuned (the bundled MiniLM)")
    options.add_argument("--students", default="ag_news",
                         help="comma-separated datasets whose model is distilled into a measured student")
    args = options.parse_args()
    quiet_console()
    recipe = QUICK if args.quick else RECIPE
    report = {"quick": args.quick, "recipe": recipe, "cpu": cpu_name(), "cases": {}}
    for dataset, count, max_length in recipe["cases"]:
        if dataset not in args.datasets.split(","):
            continue
        name = f"bench-inference{'-quick' if args.quick else ''}/{dataset}"
        data_dir = Path(args.shared_data) / dataset
        folder = export_of(name, fit_args(dataset, recipe, name, data_dir, args.backbone), args.retrain)
        all_texts, all_labels, _ = run_test_split(folder, classifier_labels(folder))
        texts, labels = spread(all_texts, all_labels, count)
        case = f"{dataset} {count} @{max_length}"
        print(f"{case}: {folder}", flush=True)
        with TemporaryDirectory() as workdir:
            found, pipeline_probs = measure(folder, texts, labels, max_length, args.threads, Path(workdir))
            if dataset in args.students.split(","):
                fit = fit_args(dataset, recipe, f"{name}-student", data_dir, args.backbone)
                student = export_of(f"{name}-student", fit + student_args(folder, recipe["texts"][0]),
                                    args.retrain)
                more, _ = measure(student, texts, labels, max_length, args.threads, Path(workdir),
                                  STUDENT_ROWS, pipeline_probs)
                found["rows"].update({f"student-{row}": more["rows"][row] for row in STUDENT_ROWS})
                found["student"] = str(student)
        report["cases"][case] = {"export": str(folder), "cpu": report["cpu"], **found}
        print_table(case, report["cases"][case])
    write_report(args.out or RESULTS / f"inference{'-quick' if args.quick else ''}.json", report)


if __name__ == "__main__":
    exit_on_user_error(main)
