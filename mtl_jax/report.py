"""Pieces of the evaluation report: markdown tables, per-class scores from a confusion matrix, confusion plots."""

import numpy as np


def cell(value) -> str:
  if isinstance(value, (int, np.integer)):
    return str(value)
  return f"{value:.4f}" if np.isfinite(value) else "n/a"


def md_table(header: list[str], rows: list[list]) -> list[str]:
  """A markdown table: text in the first column, numbers (4 decimals, n/a for NaN) in the others."""
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
  return lines + ["| " + " | ".join([str(r[0]), *(cell(v) for v in r[1:])]) + " |" for r in rows]


def per_class(cm: np.ndarray, names: tuple[str, ...]) -> dict[str, dict[str, float]]:
  """{class: {precision, recall, f1, support}} from a confusion matrix (rows true); 0 for a ratio 0/0 (as
  scikit-learn's classification_report with zero_division=0). Every class is listed, present or not."""
  tp, support, predicted = np.diag(cm).astype(float), cm.sum(1), cm.sum(0)
  div = lambda a, b: np.divide(a, b, out=np.zeros(len(a)), where=b > 0)
  precision, recall, f1 = div(tp, predicted), div(tp, support), div(2 * tp, support + predicted)
  return {name: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                 "support": int(support[k])} for k, name in enumerate(names)}


def scores_table(first: str, scores: dict[str, dict[str, float]]) -> list[str]:
  """Precision, recall, F1 and support per class, type or tag."""
  rows = [[name, s["precision"], s["recall"], s["f1"], s["support"]] for name, s in scores.items()]
  return md_table([first, "precision", "recall", "f1", "support"], rows)


def confusion_file(task: str) -> str:
  return f"confusion_{task}.png"


def plot_confusion(cm: np.ndarray, labels: tuple[str, ...], title: str, path: str) -> None:
  """Counts and row-normalised shares side by side (rows true, columns predicted), written as a PNG. Uses the Agg
  canvas directly, so no pyplot state or global backend is touched."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  k, slanted = len(labels), max(map(len, labels)) > 4  # long class names are slanted under the x axis
  side = max(3.2, 0.55 * k + 1.6)
  fig = Figure(figsize=(2 * side + 0.6, side + 0.9), layout="constrained")
  FigureCanvasAgg(fig)
  totals = cm.sum(axis=1, keepdims=True)
  shares = np.divide(cm, totals, out=np.zeros(cm.shape), where=totals > 0)
  for ax, values, name in zip(fig.subplots(1, 2), (cm, shares), ("counts", "row-normalised (recall)")):
    scale = values.max() if values.max() > 0 else 1
    ax.imshow(values, cmap="Blues", vmin=0, vmax=scale)
    for i in range(k):
      for j in range(k):
        text = f"{values[i, j]:d}" if values is cm else f"{values[i, j]:.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=9,
                color="white" if values[i, j] > 0.6 * scale else "black")
    ax.set_xticks(range(k), labels, rotation=45 if slanted else 0, ha="right" if slanted else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(name, fontsize=10)
  fig.suptitle(title)
  fig.savefig(path, dpi=100)
