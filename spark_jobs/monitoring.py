"""Statistics and alert rules of the monitoring report (notebooks/monitoring_report.ipynb).

Pure functions over numbers and texts: no Spark, no files, so the report's kernel stays light and
every figure it prints can be unit-tested. The one exception, `SentenceEmbedder`, runs the
all-MiniLM-L6-v2 ONNX model with plain ONNX Runtime on a small sample of texts.

Conventions: PSI with quantile bins of the baseline (0.1 = moderate, 0.2 = significant shift);
Jensen-Shannon *distance* in base 2 (0 = same distribution, 1 = disjoint).
"""
from __future__ import annotations

import math
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from .vocabulary import SEVERITIES
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")
# bytes.translate table: A-Z lower-cased, a-z and ' kept, every other byte blanked
_FOLD_TO_TOKEN_BYTES = bytes(b + 32 if 65 <= b <= 90 else b if chr(b) in "abcdefghijklmnopqrstuvwxyz'" else 32
                             for b in range(256))
# The only characters outside ASCII whose lower case holds one of [a-z'] (U+0130 -> "i" and a dot, the
# Kelvin sign -> "k"): a text holding one is lower-cased by str.lower first.
_LOWER_TO_ASCII = ("\u0130", "\u212a")
_EPS = 1e-4  # stands in for an empty bin, so a bin the baseline never saw counts as a large shift


def tokens(text: str | None) -> list[str]:
    """Lower-case word tokens: letters and inner apostrophes (numbers, @handles' punctuation dropped)."""
    return _TOKEN.findall(text.lower()) if text else []


# --- distribution distances ----------------------------------------------------------------------
def psi_bins(n_baseline: int, n_current: int) -> int:
    """10 quantile bins, fewer for small samples: about 50 values per bin of the smaller sample keeps
    the PSI of two samples of one population near 0.03 (with 10 bins and 300 texts it is ~0.06,
    too close to the 0.1 warning)."""
    return int(min(10, max(3, min(n_baseline, n_current) // 50)))


def psi(baseline: Sequence[float], current: Sequence[float], bins: int | None = None) -> float:
    """Population stability index of a numeric variable, on quantile bins of the baseline
    (`bins` of them; by default as many as `psi_bins` allows)."""
    base, cur = np.asarray(baseline, dtype=float), np.asarray(current, dtype=float)
    if base.size == 0 or cur.size == 0:
        raise ValueError("psi needs a non-empty baseline and current sample")
    bins = bins or psi_bins(base.size, cur.size)
    edges = np.unique(np.quantile(base, np.linspace(0, 1, bins + 1)[1:-1]))
    b = np.bincount(np.searchsorted(edges, base, side="right"), minlength=edges.size + 1) / base.size
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1) / cur.size
    b, c = np.clip(b, _EPS, None), np.clip(c, _EPS, None)
    return float(np.sum((c - b) * np.log(c / b)))


def js_distance(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon distance (base 2) between two count or share mappings over categories."""
    keys = sorted(set(p) | set(q))
    a = np.array([float(p.get(k, 0)) for k in keys])
    b = np.array([float(q.get(k, 0)) for k in keys])
    if a.sum() <= 0 or b.sum() <= 0:
        raise ValueError("js_distance needs two non-empty distributions")
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return math.sqrt(max(0.0, (kl(a) + kl(b)) / 2))


def token_counts(texts: Iterable[str | None], chunk: int = 20_000) -> Counter:
    """Every text's `tokens`, counted without a regex call per text (a day may hold a million texts).
    A token never leaves a run of [a-z'] in the lower-cased text, and the runs are independent: so a
    chunk of texts is joined by newlines and encoded, its bytes lower-cased and every other byte
    blanked in one table lookup (UTF-8 bytes of characters outside ASCII are >= 0x80; str.lower only
    for a chunk holding one of _LOWER_TO_ASCII), split into runs and counted by Arrow, chunks on every
    core (Arrow lets go of the interpreter lock); only the distinct runs holding an apostrophe go
    through `tokens`' pattern. The same counts as `tokens` text by text (tests/report/test_monitoring.py)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def count(batch: list[str]):
        text = "\n".join(batch)
        if any(c in text for c in _LOWER_TO_ASCII):
            text = text.lower()
        blanked = text.encode("utf-8").translate(_FOLD_TO_TOKEN_BYTES)
        return pc.value_counts(pc.list_flatten(pc.split_pattern(pa.array([blanked], pa.binary()), pattern=b" ")))

    def batches():
        batch: list[str] = []
        for t in texts:
            if t:
                batch.append(t)
            if len(batch) == chunk:
                yield batch
                batch = []
        if batch:
            yield batch

    runs: Counter = Counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for found in pool.map(count, batches()):
            runs.update(dict(zip(found.field("values").to_pylist(), found.field("counts").to_pylist())))

    counts: Counter = Counter()
    for run, n in runs.items():
        if run and b"'" not in run:
            counts[run.decode("ascii")] += n
        elif run:
            for token in _TOKEN.findall(run.decode("ascii")):
                counts[token] += n
    return counts


def token_js_distance(baseline: Counter, current: Counter, top: int = 500) -> float:
    """JS distance of the token distributions over the baseline's `top` tokens plus one bucket for
    every other token: a fixed support keeps the figure comparable across sample sizes (rare words
    would otherwise make two samples of the same language look far apart)."""
    vocab = {w for w, _ in by_count(baseline)[:top]}

    def folded(counts: Counter) -> dict[str, float]:
        out = {w: float(counts.get(w, 0)) for w in vocab}
        out["<other>"] = float(sum(n for w, n in counts.items() if w not in vocab))
        return out

    return js_distance(folded(baseline), folded(current))


def oov_rate(current: Counter, vocabulary: set[str] | Mapping[str, int]) -> float:
    """Share of the current tokens (with repeats) that the training vocabulary never saw."""
    total = sum(current.values())
    if total == 0:
        raise ValueError("oov_rate needs at least one token")
    return sum(n for w, n in current.items() if w not in vocabulary) / total


def unseen_tokens(current: Counter, vocabulary: set[str] | Mapping[str, int], n: int = 10) -> list[tuple[str, int]]:
    """The most frequent tokens of the day that the training vocabulary does not know."""
    return [(w, c) for w, c in by_count(current) if w not in vocabulary][:n]


def by_count(counts: Counter) -> list[tuple[str, int]]:
    """(token, count), the most frequent first and tokens of one count in alphabetical order: unlike
    Counter.most_common, whose ties keep the order the texts came in, the same for any order of rows."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def cosine_distance(a: Sequence[float], b: Sequence[float]) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def centroid(vectors: np.ndarray) -> np.ndarray:
    """Mean of unit vectors, itself normalised: the direction a set of texts points to."""
    mean = np.asarray(vectors, dtype=float).mean(axis=0)
    return mean / np.linalg.norm(mean)


# --- sentence embeddings (the one non-pure helper) ---------------------------------------------
class SentenceEmbedder:
    """all-MiniLM-L6-v2 sentence vectors with plain ONNX Runtime: mean pooling of last_hidden_state
    over the attention mask, then L2 normalisation (as the model's pooling_config.json says)."""

    def __init__(self, model_dir: str, max_length: int = 128, threads: int = 0):
        import os

        import onnxruntime as ort
        from tokenizers import Tokenizer

        onnx, tok = os.path.join(model_dir, "model.onnx"), os.path.join(model_dir, "tokenizer.json")
        for path in (onnx, tok):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"setting embeddings_model_dir={model_dir}: {os.path.basename(path)} is missing")
        self.tokenizer = Tokenizer.from_file(tok)
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """One unit vector per text, in the order given."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch with less padding
        out = []
        for start in range(0, len(order), batch_size):
            enc = self.tokenizer.encode_batch([texts[i] for i in order[start:start + batch_size]])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        if not out:
            return np.zeros((0, 384))
        vectors = np.empty((len(texts), out[0].shape[1]))
        vectors[order] = np.vstack(out)
        return vectors


# --- cost ------------------------------------------------------------------------------------------
def cluster_dollars_per_hour(pricing: Mapping, instance_groups: Iterable[Mapping]) -> float:
    """On-demand EC2 + EMR price of a cluster per hour, from emr/pricing.json's instance prices."""
    total = 0.0
    for group in instance_groups:
        kind = group["InstanceType"]
        if kind not in pricing["instances"]:
            raise ValueError(f"pricing file has no price for instance type {kind}")
        price = pricing["instances"][kind]
        total += group["InstanceCount"] * (price["ec2"] + price["emr"])
    return total


def profile_price(pricing: Mapping, profiles: Mapping, profile: str) -> tuple[float, float]:
    """(dollars per hour, typical hours per run) of a cluster profile of emr/profiles.json; a KeyError
    names a profile the files do not have."""
    if profile not in profiles:
        raise KeyError(profile)
    return (cluster_dollars_per_hour(pricing, profiles[profile]["InstanceGroups"]),
            float(pricing["estimated_run_hours"][profile]))


def dollars_per_million(dollars_per_hour: float, texts_per_second: float) -> float:
    """What scoring one million texts costs at a throughput, on a cluster billed per hour."""
    if texts_per_second <= 0:
        raise ValueError("throughput must be positive")
    return dollars_per_hour * 1_000_000 / texts_per_second / 3600


# --- thresholds -> alerts ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """A metric crosses `warning` / `critical` when above them (or below, for direction='below')."""
    section: str
    metric: str
    description: str
    warning: float | None = None
    critical: float | None = None
    direction: str = "above"

    def crossed(self, value: float, limit: float | None) -> bool:
        if limit is None:
            return False
        return value > limit if self.direction == "above" else value < limit


@dataclass(frozen=True)
class Alert:
    severity: str
    section: str
    metric: str
    value: float
    threshold: float | None  # None for event alerts (a failed stage, a Great Expectations warning)
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def rules(t: Mapping[str, float]) -> list[Rule]:
    """The report's rules, from the thresholds (settings fields of the same names, see report.py)."""
    return [
        Rule("integrity", "batch_size_change", "batch size off the baseline median by", t["batch_size_change_warning"]),
        Rule("integrity", "quarantine_share", "quarantined share", t["quarantine_share_warning"],
             t["quarantine_share_critical"]),
        Rule("integrity", "duplicate_share", "duplicate share", t["duplicate_share_warning"]),
        Rule("outputs", "low_confidence_share", "low-confidence share", t["low_confidence_share_warning"],
             t["low_confidence_share_critical"]),
        Rule("drift", "psi_confidence", "PSI of confidence", t["psi_warning"], t["psi_critical"]),
        Rule("drift", "psi_text_length", "PSI of text length", t["psi_warning"], t["psi_critical"]),
        Rule("drift", "label_js", "JS distance of the label mix", t["label_js_warning"], t["label_js_critical"]),
        Rule("drift", "token_js", "JS distance of the tokens", t["token_js_warning"], t["token_js_critical"]),
        Rule("drift", "oov_rate", "out-of-vocabulary rate", t["oov_rate_warning"], t["oov_rate_critical"]),
        Rule("drift", "embedding_distance", "embedding distance from the training centroid",
             t["embedding_distance_warning"], t["embedding_distance_critical"]),
        Rule("quality", "macro_f1_drop", "macro-F1 below the test macro-F1 by", t["macro_f1_drop_warning"],
             t["macro_f1_drop_critical"]),
        Rule("quality", "challenger_agreement", "challenger agreement", t["challenger_agreement_warning"],
             direction="below"),
        Rule("pipeline", "run_seconds", "seconds the batch's stage runs took", t["run_seconds_warning"]),
        Rule("pipeline", "emr_dollars_per_million_texts", "EMR dollars per million texts",
             t["dollars_per_million_texts_warning"]),
    ]


def evaluate(metrics: Mapping[str, float | None], rule_list: Sequence[Rule]) -> list[Alert]:
    """One alert per rule whose metric crosses a threshold (the higher severity wins); metrics that
    could not be computed (None, e.g. no baseline yet) raise nothing."""
    alerts = []
    for rule in rule_list:
        value = metrics.get(rule.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        for severity, limit in (("critical", rule.critical), ("warning", rule.warning)):
            if rule.crossed(value, limit):
                side = ">" if rule.direction == "above" else "<"
                alerts.append(Alert(severity, rule.section, rule.metric, round(float(value), 4), limit,
                                    f"{rule.description} {value:.3g} {side} {limit:g}"))
                break
    return alerts


def worst(alerts: Iterable[Alert | Mapping]) -> str:
    """ok, warning or critical: the most severe of the alerts."""
    found = {a.severity if isinstance(a, Alert) else a["severity"] for a in alerts}
    return next((s for s in reversed(SEVERITIES) if s in found), "ok")
