"""Prediction speed and accuracy of a fine-tuned export, every row on the same real test texts in
one process: `transformers.pipeline("text-classification", batch_size=32)` against this project's
predict.py on PyTorch, ONNX Runtime fp32 and ONNX Runtime int8, and a student of half its layers
distilled from the model (docs/distill.md) on PyTorch and int8: texts per second over the whole
file with 1 and 2 threads, batch-1 latency (median, 95th percentile), file size, test accuracy.

    python benchmarks/inference.py           # IMDB and AG News, 2,000 test texts each (~45 min, 2 cores)
    python benchmarks/inference.py --quick   # a dry run of every step on 64 texts (~1 min)

The model is the bundled all-MiniLM-L6-v2 fine-tuned by `train.py fit` (the recipe of docs/runs.md:
2,000 training texts, 2 epochs, lr 5e-5; 512 tokens for IMDB, 128 for AG News) with the ONNX export
added; an export found from an earlier run of the same recipe is reused (--retrain trains anew).
The student keeps half its layers (1, 3 and 5 of MiniLM's 6) and learns from its logits on the same texts and
2,000 more it labels (the best recipe of docs/distill.md), as many epochs, lr 1e-4.
Targets: predict.py on PyTorch at least 2x the pipeline's texts/s with the same predictions; int8
at least 2x predict.py's PyTorch at no more than 1 point of test accuracy lost.
"""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

from pathlib import Path
from tempfile import TemporaryDirectory

from benchmarks.common import RESULTS, machine, parser, table, write_report
from benchmarks.distill_runs import layers_of
from benchmarks.inference_measure import measure
from core.console import quiet_console
from core.errors import exit_on_user_error
from deploy.existing_export import run_test_split
from deploy.layout import classifier_labels
from lightning_modules.distill_student import uniform_map
from train import main as train

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = str(ROOT / "configs" / "overlays" / "distill.yaml")
CONFIGS = {"imdb": "configs/imdb/distilbert.yaml", "ag_news": "configs/ag_news/distilbert.yaml"}
# IMDB reviews whole (512 tokens, as deployed; their lengths vary), AG News articles fit in 128
RECIPE = {"texts": (2000, 500, 2000), "max_length": {"imdb": 512, "ag_news": 128}, "epochs": 2}
QUICK = {"texts": (64, 32, 64), "max_length": {"imdb": 64, "ag_news": 64}, "epochs": 1}
NAMES = {"pipeline": "transformers.pipeline (batch 32)", "torch": "predict.py, PyTorch",
         "torch-compiled": "predict.py, PyTorch compiled",
         "onnx": "predict.py, ONNX Runtime fp32", "onnx-int8": "predict.py, ONNX Runtime int8",
         "student-torch": "student (half the layers), predict.py, PyTorch",
         "student-onnx-int8": "student (half the layers), predict.py, ONNX Runtime int8"}
STUDENT_ROWS = ("torch", "onnx-int8")


def fit_args(dataset: str, recipe: dict, name: str, data_dir: Path, backbone: str) -> list[str]:
    train, val, test = recipe["texts"]
    return ["fit", "--config", str(ROOT / CONFIGS[dataset]), "--model.backbone", backbone,
            "--model.learning_rate", "5e-5", "--data.data_dir", str(data_dir),
            "--data.max_length", str(recipe["max_length"][dataset]), "--data.limit_train_samples", str(train),
            "--data.limit_val_samples", str(val), "--data.limit_test_samples", str(test),
            "--trainer.max_epochs", str(recipe["epochs"]), "--trainer.logger.init_args.name", name,
            "--trainer.callbacks+=plugins.onnx_export.ONNXExport"]


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


def print_table(dataset: str, folder: Path, found: dict) -> None:
    rows, threads = found["rows"], found["threads"]
    base, ours = rows["pipeline"]["texts_per_s"], rows["torch"]["texts_per_s"]
    lines = [[NAMES[name], *(f"{row['texts_per_s'][n]:.1f}" for n in threads),
              *(f"{row['texts_per_s'][n] / base[n]:.2f}x" for n in threads),
              f"{row['latency']['median_ms']:.1f} / {row['latency']['p95_ms']:.1f}", f"{row['size_mb']:.1f}",
              f"{row['test_accuracy']:.4f}", f"{100 * row['same_label_as_pipeline']:.1f}%",
              f"{row['max_prob_diff_to_pipeline']:.1e}"] for name, row in rows.items()]
    default = "compiled" if found["torch_compiled"] else "uncompiled"
    print(f"\n{dataset}: {found['texts']:,} test texts, {found['max_length']} tokens, {folder}, on "
          f"{machine()}; a compiled model's texts/s include its compiling; predict.py's default for "
          f"these texts: {default}\n")
    latency = f"batch-1 ms, median / p95 ({max(threads)} thr)"
    print(table(["runtime", *(f"texts/s ({n} thr)" for n in threads),
                 *(f"vs pipeline ({n} thr)" for n in threads), latency, "file (MB)", "test acc",
                 "label = pipeline's", "max prob diff"], lines))
    int8, drop = rows["onnx-int8"]["texts_per_s"], 100 * (rows["torch"]["test_accuracy"] -
                                                          rows["onnx-int8"]["test_accuracy"])
    for n in threads:
        fastest = max(ours[n], rows["torch-compiled"]["texts_per_s"][n])
        print(f"\n{n} thread(s): predict.py on PyTorch {ours[n] / base[n]:.2f}x the pipeline uncompiled, "
              f"{rows['torch-compiled']['texts_per_s'][n] / base[n]:.2f}x compiled (target 2x); int8 "
              f"{int8[n] / fastest:.2f}x the faster of them (target 2x)", end="")
    print(f"\nint8 test accuracy {rows['onnx-int8']['test_accuracy']:.4f} against PyTorch's "
          f"{rows['torch']['test_accuracy']:.4f}: {drop:.2f} points lost (target <= 1)")


def main() -> None:
    options = parser(__doc__, None)
    options.add_argument("--quick", action="store_true", help="a dry run: 64 texts, 64 tokens, 1 epoch")
    options.add_argument("--datasets", default="imdb,ag_news", help="comma-separated: imdb, ag_news")
    options.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    options.add_argument("--latency_texts", type=int, default=200, help="texts timed one at a time")
    options.add_argument("--retrain", action="store_true", help="train anew even where an export exists")
    options.add_argument("--shared_data", default=str(ROOT.parent / "shared" / "data"),
                         help="folder with imdb/ and ag_news/")
    options.add_argument("--backbone", default="minilm", help="what is fine-tuned (the bundled MiniLM)")
    options.add_argument("--students", default="ag_news",
                         help="comma-separated datasets whose model is distilled into a measured student")
    args = options.parse_args()
    quiet_console()
    recipe, threads = QUICK if args.quick else RECIPE, [int(n) for n in args.threads.split(",")]
    latency_texts = 10 if args.quick else args.latency_texts
    report = {"quick": args.quick, "recipe": recipe, "datasets": {}}
    for dataset in args.datasets.split(","):
        name = f"bench-inference{'-quick' if args.quick else ''}/{dataset}"
        data_dir = Path(args.shared_data) / dataset
        folder = export_of(name, fit_args(dataset, recipe, name, data_dir, args.backbone), args.retrain)
        texts, labels, _ = run_test_split(folder, classifier_labels(folder))
        with TemporaryDirectory() as workdir:
            found, pipeline_probs = measure(folder, texts, labels, threads, latency_texts, Path(workdir))
            if dataset in args.students.split(","):
                fit = fit_args(dataset, recipe, f"{name}-student", data_dir, args.backbone)
                student = export_of(f"{name}-student", fit + student_args(folder, recipe["texts"][0]),
                                    args.retrain)
                more, _ = measure(student, texts, labels, threads, latency_texts, Path(workdir), STUDENT_ROWS,
                                  pipeline_probs)
                found["rows"].update({f"student-{row}": more["rows"][row] for row in STUDENT_ROWS})
                found["student"] = str(student)
        report["datasets"][dataset] = {"export": str(folder), **found}
        print_table(dataset, folder, found)
    write_report(args.out or RESULTS / f"inference{'-quick' if args.quick else ''}.json", report)


if __name__ == "__main__":
    exit_on_user_error(main)
