"""The report's statistics and alert rules (spark_jobs/monitoring.py), checked against hand-worked
values and independent implementations (SciPy, the plain ONNX reference of tests/unit/test_nlp.py)."""
import json
import math
from collections import Counter

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from spark_jobs import monitoring as M
from spark_jobs import report
from spark_jobs.settings import PROJECT_ROOT, load
from tests.conftest import CORPUS, MODEL_DIR, TWEETS, need


def test_psi_by_hand():
    # baseline median 5.5 splits it 50/50; the current sample falls 3/4 below, 1/4 above
    baseline, current = list(range(1, 11)), [1, 2, 3, 9]
    expected = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert M.psi(baseline, current, bins=2) == pytest.approx(expected)


def test_psi_is_near_zero_for_the_same_population_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    same = M.psi(rng.normal(size=2000), rng.normal(size=2000))
    shifted = M.psi(rng.normal(size=2000), rng.normal(0.5, size=2000))
    assert same < 0.02 and 0.2 < shifted < 0.5  # a half-sigma shift is a "significant" PSI
    rng_base, out_of_range = rng.uniform(0, 1, 500), rng.uniform(2, 3, 500)
    assert M.psi(rng_base, out_of_range) > 5  # all in the top bin, every other bin emptied


def test_psi_uses_fewer_bins_for_small_samples_so_noise_stays_under_the_warning():
    assert M.psi_bins(10_000, 5_000) == 10 and M.psi_bins(300, 290) == 5 and M.psi_bins(40, 40) == 3
    rng = np.random.default_rng(2)
    noise = [M.psi(rng.lognormal(5, 0.6, 290), rng.lognormal(5, 0.6, 290)) for _ in range(200)]
    assert np.percentile(noise, 90) < 0.1


def test_psi_refuses_an_empty_sample():
    with pytest.raises(ValueError, match="non-empty"):
        M.psi([], [1.0])


def test_js_distance_matches_scipy():
    p, q = {"negative": 10, "neutral": 5, "positive": 85}, {"negative": 40, "positive": 55, "other": 5}
    keys = ["negative", "neutral", "positive", "other"]
    want = jensenshannon([p.get(k, 0) for k in keys], [q.get(k, 0) for k in keys], base=2)
    assert M.js_distance(p, q) == pytest.approx(want)
    assert M.js_distance(p, p) == 0 and M.js_distance({"a": 1}, {"b": 1}) == pytest.approx(1)


def test_token_statistics():
    train = M.token_counts(["The dress fits well.", "Lovely dress, it's soft"])
    day = M.token_counts(["@united my flight is late", "the dress"])
    assert train["dress"] == 2 and "it's" in train and M.tokens("@United 2x FLIGHT!") == ["united", "x", "flight"]
    assert M.oov_rate(day, train) == pytest.approx(5 / 7)  # united, my, flight, is, late
    assert M.unseen_tokens(day, train, 2) == [("flight", 1), ("is", 1)]   # one count each: alphabetical
    assert M.token_js_distance(train, train) == 0
    assert M.token_js_distance(train, day) > M.token_js_distance(train, M.token_counts(["the dress fits"]))


def test_token_statistics_do_not_depend_on_the_order_of_the_texts():
    """The report's texts come in whatever order the warehouse returns them; ties at the cut of the
    baseline's top tokens, or among the unseen ones, must not follow that order."""
    words = [a + b for a in "abcde" for b in "xyz"]   # tokens are letters only
    base = [f"{w} {w} common" for w in words] + [f"{w}{w}" for w in words]
    day = ["common"] * 5 + ["ax ay"] * 5 + [f"new{w}" for w in words]   # ax, ay: tied with every word at the cut
    forward, backward = M.token_counts(base), M.token_counts(base[::-1])
    assert list(forward) != list(backward)   # the same counts, met in another order
    assert M.token_js_distance(forward, M.token_counts(day), top=10) == \
        M.token_js_distance(backward, M.token_counts(day[::-1]), top=10)
    assert M.unseen_tokens(M.token_counts(day), forward, 5) == M.unseen_tokens(M.token_counts(day[::-1]), backward, 5)


def test_token_counts_in_joined_chunks_are_the_counts_text_by_text():
    """No token spans two texts of a chunk (joined by newlines), wherever the chunks are cut."""
    texts = ["Don't", "it's SOFT", None, "", "rock'n'roll", "'quoted'", "end'", "'start", "Straße ΣΟΦΙΑ café",
             "a\nb", "x" * 50, "tail's"] * 5
    by_text = Counter()
    for t in texts:
        by_text.update(M.tokens(t))
    assert by_text["end"] == 5 and by_text["start"] == 5 and "end'" not in by_text
    for chunk in (1, 2, 7, 1_000):
        assert M.token_counts(texts, chunk=chunk) == by_text
    assert M.token_counts(iter(texts)) == by_text and M.token_counts([]) == Counter()


def test_token_counts_are_the_counts_text_by_text_on_the_real_corpora():
    import pandas as pd

    for path, column in ((CORPUS, "Review Text"), (TWEETS, "text")):  # reviews; tweets with @handles, emoji, URLs
        need(path)
        texts = pd.read_csv(path, usecols=[column])[column].tolist()
        by_text = Counter()
        for t in texts:
            by_text.update(M.tokens(t if isinstance(t, str) else None))
        assert M.token_counts(t if isinstance(t, str) else None for t in texts) == by_text


def test_token_js_folds_rare_words_into_one_bucket():
    base = Counter({"dress": 50, "fit": 30, "rare1": 1})
    # only the baseline's top 2 tokens keep their own bin: unseen words all land in <other>
    a, b = Counter({"dress": 5, "fit": 3, "x": 2}), Counter({"dress": 5, "fit": 3, "y": 1, "z": 1})
    assert M.token_js_distance(base, a, top=2) == pytest.approx(M.token_js_distance(base, b, top=2))


def test_cosine_distance_and_centroid():
    assert M.cosine_distance([1, 0], [0, 2]) == pytest.approx(1)
    c = M.centroid(np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert np.allclose(c, [math.sqrt(0.5)] * 2)


def test_sentence_embedder_matches_the_reference_and_keeps_the_order():
    need(MODEL_DIR)
    from tests.unit.test_nlp import reference_embeddings

    texts = ["Runs small, order a size up.", "ok", "Gorgeous colour and the fabric is soft, I wear it every week.",
             "Terrible.", "@united lost my bag again"]
    got = M.SentenceEmbedder(str(MODEL_DIR)).embed(texts, batch_size=2)  # sorted by length inside
    cos = (got * reference_embeddings(texts, MODEL_DIR)).sum(1)
    assert got.shape == (5, 384) and cos.min() > 0.9999, cos


def test_sentence_embedder_names_a_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="embeddings_model_dir=.*model.onnx is missing"):
        M.SentenceEmbedder(str(tmp_path))


def test_cost_per_million_texts_from_the_pricing_file():
    pricing = json.loads((PROJECT_ROOT / "emr" / "pricing.json").read_text())
    profiles = json.loads((PROJECT_ROOT / "emr" / "profiles.json").read_text())
    per_hour = M.cluster_dollars_per_hour(pricing, profiles["gpu"]["InstanceGroups"])
    primary, core = pricing["instances"]["m5.xlarge"], pricing["instances"]["g5.2xlarge"]   # 1 primary, 2 GPU cores
    assert per_hour == pytest.approx(primary["ec2"] + primary["emr"] + 2 * (core["ec2"] + core["emr"]))
    assert M.dollars_per_million(3.6, 1000) == pytest.approx(1.0)  # 1,000 s at $3.60/h
    with pytest.raises(ValueError, match="no price for instance type p9.huge"):
        M.cluster_dollars_per_hour(pricing, [{"InstanceType": "p9.huge", "InstanceCount": 1}])


def rule_set(**overrides):
    return M.rules(report.thresholds_of(load(env={}, **overrides)))


def test_the_worst_crossed_threshold_gives_the_severity():
    rules = rule_set()  # psi 0.1 / 0.2, challenger agreement warns below 0.8
    alerts = M.evaluate({"psi_confidence": 0.15, "psi_text_length": 0.9, "oov_rate": 0.1,
                         "challenger_agreement": 0.7, "token_js": None, "label_js": float("nan")}, rules)
    got = {a.metric: a.severity for a in alerts}
    assert got == {"psi_confidence": "warning", "psi_text_length": "critical", "challenger_agreement": "warning"}
    assert M.worst(alerts) == "critical" and M.worst([]) == "ok"
    assert next(a for a in alerts if a.metric == "psi_text_length").message == "PSI of text length 0.9 > 0.2"
    assert "challenger agreement 0.7 < 0.8" in [a.message for a in alerts]


def test_thresholds_come_from_the_settings():
    rules = {r.metric: r for r in rule_set(psi_critical=0.5, oov_rate_warning=0.01)}
    assert rules["psi_confidence"].critical == 0.5 and rules["oov_rate"].warning == 0.01
    env = load(env={"NLP_EMBEDDING_DISTANCE_CRITICAL": "0.3"})
    assert report.thresholds_of(env)["embedding_distance_critical"] == 0.3


def test_each_threshold_alerts_past_it_and_not_on_it():
    """Every rule of the report: a value on a threshold raises nothing new, the next value past it does."""
    rules = rule_set()
    assert {r.metric for r in rules} >= {"quarantine_share", "psi_confidence", "macro_f1_drop", "run_seconds",
                                         "emr_dollars_per_million_texts", "challenger_agreement"}
    for rule in rules:
        past = (lambda x: x + 1e-9) if rule.direction == "above" else (lambda x: x - 1e-9)
        severity = lambda value: [a.severity for a in M.evaluate({rule.metric: value}, [rule])]  # noqa: E731
        assert severity(rule.warning) == [], rule
        assert severity(past(rule.warning)) == ["warning"], rule
        if rule.critical is not None:
            assert severity(rule.critical) == ["warning"], rule
            assert severity(past(rule.critical)) == ["critical"], rule


def test_profile_price_is_the_launchers_and_the_reports():
    pricing = json.loads((PROJECT_ROOT / "emr" / "pricing.json").read_text())
    profiles = json.loads((PROJECT_ROOT / "emr" / "profiles.json").read_text())
    per_hour, hours = M.profile_price(pricing, profiles, "cpu")
    assert per_hour == M.cluster_dollars_per_hour(pricing, profiles["cpu"]["InstanceGroups"])
    assert hours == pricing["estimated_run_hours"]["cpu"]
    with pytest.raises(KeyError):
        M.profile_price(pricing, profiles, "tpu")
