"""Model evaluation on a frozen test set: metrics, the VADER lexicon baseline, figures, comparisons.

Everything here works on small pandas frames (the test set) collected from Spark: one row per
document with `truth`, `label` (predicted), `confidence` and `score_<class>`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .vocabulary import LABELS


def metrics(df: pd.DataFrame) -> dict[str, float]:
    """accuracy, macro-F1, per-class precision/recall/F1/support and expected calibration error."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    y_true, y_pred = df["truth"].tolist(), df["label"].fillna("none").tolist()
    out = {"accuracy": accuracy_score(y_true, y_pred),
           "macro_f1": f1_score(y_true, y_pred, labels=list(LABELS), average="macro", zero_division=0)}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(LABELS), zero_division=0)
    for i, label in enumerate(LABELS):
        out.update({f"precision_{label}": p[i], f"recall_{label}": r[i], f"f1_{label}": f[i], f"support_{label}": s[i]})
    if "confidence" in df:
        out["calibration_error"] = expected_calibration_error(df["confidence"].to_numpy(),
                                                              (df["truth"] == df["label"]).to_numpy())
    return {k: float(v) for k, v in out.items()}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total / len(confidence))


def confusion(df: pd.DataFrame) -> pd.DataFrame:
    """Rows: true label, columns: predicted label."""
    from sklearn.metrics import confusion_matrix

    m = confusion_matrix(df["truth"], df["label"].fillna("none"), labels=list(LABELS))
    return pd.DataFrame(m, index=list(LABELS), columns=list(LABELS))


def confusion_figure(df: pd.DataFrame, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = confusion(df)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.imshow(m.to_numpy(), cmap="Blues")
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for (i, j), v in np.ndenumerate(m.to_numpy()):
        ax.text(j, i, str(v), ha="center", va="center", color="black" if v < m.to_numpy().max() / 2 else "white")
    fig.tight_layout()
    return fig


def vader_predictions(texts: pd.Series) -> pd.DataFrame:
    """The lexicon baseline: VADER's compound score, >= 0.05 positive, <= -0.05 negative."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()
    compound = texts.fillna("").map(lambda t: analyser.polarity_scores(t)["compound"])
    label = np.where(compound >= 0.05, "positive", np.where(compound <= -0.05, "negative", "neutral"))
    return pd.DataFrame({"label": label, "confidence": (compound.abs() + 1) / 2}, index=texts.index)


def compare(candidate: pd.DataFrame, champion: pd.DataFrame, samples: int = 10) -> dict:
    """Differential report on the same rows: metric and per-class F1 differences, and a sample of
    documents where the two models disagree, by review_id with the true label: the texts stay in the
    lake (look them up in curated), never in the registry."""
    cand, champ = metrics(candidate), metrics(champion)
    joined = candidate.set_index("review_id")[["truth", "label"]].join(
        champion.set_index("review_id")[["label"]], rsuffix="_champion", how="inner")
    differ = joined[joined["label"] != joined["label_champion"]]
    sample = differ.head(samples)
    return {
        "rows": int(len(joined)),
        "candidate": {k: round(v, 4) for k, v in cand.items()},
        "champion": {k: round(v, 4) for k, v in champ.items()},
        "difference": {k: round(cand[k] - champ[k], 4) for k in ("accuracy", "macro_f1", *[f"f1_{c}" for c in LABELS])},
        "agreement": round(1 - len(differ) / max(len(joined), 1), 4),
        "disagreements": [
            {"review_id": rid, "truth": r.truth, "candidate": r.label, "champion": r.label_champion}
            for rid, r in sample.iterrows()
        ],
    }


def report_markdown(report: dict, decision: str) -> str:
    lines = ["# Promotion report\n", f"**Decision:** {decision}\n",
             f"Same frozen test set: {report['rows']} documents; agreement {report['agreement']:.1%}.\n",
             "| metric | candidate | champion | difference |", "|---|---|---|---|"]
    for k, d in report["difference"].items():
        lines.append(f"| {k} | {report['candidate'][k]:.4f} | {report['champion'][k]:.4f} | {d:+.4f} |")
    lines += ["", "## Sample disagreements (texts: curated zone, by review_id)", "",
              "| review | truth | candidate | champion |", "|---|---|---|---|"]
    for d in report["disagreements"]:
        lines.append(f"| {d['review_id']} | {d['truth']} | {d['candidate']} | {d['champion']} |")
    return "\n".join(lines) + "\n"
