"""Which caption the retrieval captioner returns, and the baselines it is judged against."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medai.core.baselines import compare, verdict
from medai.reporting.captioning.caption_metrics import preprocess
from medai.reporting.captioning.caption_select import (
    baselines,
    best_constant,
    expected_overlap,
    rouge_l_matrix,
    select,
    tokens,
)
from medai.reporting.captioning.caption_tuning import nested_comparison, repeated_group_splits

WORDS = [
    "left",
    "right",
    "pleural",
    "effusion",
    "consolidation",
    "lobe",
    "upper",
    "lower",
    "opacity",
    "bilateral",
    "ground",
    "glass",
    "2",
    "mm",
    "nodule",
]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(WORDS), min_size=0, max_size=12), min_size=2, max_size=5))
def test_rouge_matrix_equals_the_rouge_score_package(texts):
    from rouge_score import rouge_scorer

    texts = [" ".join(t) for t in texts]
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    m = rouge_l_matrix(tokens(texts), tokens(texts))
    for i, a in enumerate(texts):
        for j, b in enumerate(texts):
            want = scorer.score(preprocess(b), preprocess(a))["rougeL"].fmeasure
            assert m[i, j] == pytest.approx(want, abs=1e-9)


def test_the_caption_the_neighbours_share_wins_over_the_nearest_odd_one():
    caps = [
        "zebra crossing at night",
        "small left pleural effusion",
        "left pleural effusion with basal atelectasis",
        "moderate left pleural effusion",
    ]
    sims = np.array([0.95, 0.9, 0.89, 0.88])
    pick = expected_overlap(caps, sims, temperature=0.1, self_credit=0.0)
    assert "effusion" in caps[pick]
    # at a very low temperature with full self credit it is the nearest neighbour's caption
    assert expected_overlap(caps, sims, temperature=0.001, self_credit=1.0) == 0
    assert select("expected-overlap", ["only one"], np.array([0.3]), 0.1) == 0
    with pytest.raises(ValueError, match="expected-overlap, consensus"):
        select("vote", caps, sims, 0.1)


def test_a_caption_repeated_under_many_images_is_one_piece_of_evidence():
    # five images of one case share a caption; three single cases agree with each other
    caps = ["covid pneumonia case report figure"] * 5 + [
        "bilateral lower lobe consolidation",
        "bilateral lower lobe opacities",
        "lower lobe consolidation bilateral",
    ]
    sims = np.full(len(caps), 0.9)
    assert "lower lobe" in caps[expected_overlap(caps, sims, 1.0, self_credit=0.2)]


def test_baselines_on_a_split_and_the_oracle_is_a_ceiling():
    rng = np.random.default_rng(0)
    train = [
        "right upper lobe consolidation",
        "left pleural effusion",
        "normal chest radiograph",
        "right upper lobe pneumonia",
    ]
    test = ["right upper lobe consolidation and effusion", "normal chest"]
    f_tr = rng.normal(size=(4, 8))
    f_te = f_tr[[0, 2]] + 0.01 * rng.normal(size=(2, 8))
    out = baselines(train, f_tr, test, f_te)
    assert out["baseline: best constant caption"] == [best_constant(train)] * 2
    assert out["baseline: nearest neighbour's caption"] == [train[0], train[2]]
    util = rouge_l_matrix(tokens(test), tokens(train))
    for name, preds in out.items():
        got = [util[i, train.index(p)] for i, p in enumerate(preds)]
        assert all(g <= util[i].max() + 1e-12 for i, g in enumerate(got)), name
    assert out["ceiling: oracle (best training caption per image)"] == [train[0], train[2]]


def test_repeated_splits_never_straddle_a_caption_group_and_nested_is_paired():
    caps = [f"caption {i // 2} words {i % 3}" for i in range(40)]
    keys = [c.lower() for c in caps]
    for tr, te in repeated_group_splits(caps, 5):
        assert not {keys[i] for i in tr} & {keys[i] for i in te}
    feats = np.random.default_rng(1).normal(size=(40, 6))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    out = nested_comparison(feats, caps, k=10, repeats=4, inner=2)
    assert out["splits"] == 4
    means = out["rouge_l_mean"]
    assert means["oracle"] >= max(means["model"], means["constant"], means["nearest"])
    lo, hi = out["vs_nearest"]["ci95"]
    assert lo <= out["vs_nearest"]["mean_difference"] <= hi


def test_compare_names_what_a_model_does_not_beat_and_ignores_ceilings():
    systems = {
        "m": {"f1": 0.8, "acc": 0.9},
        "baseline: svm": {"f1": 0.82, "acc": 0.91},
        "baseline: constant": {"f1": 0.3},
        "ceiling: oracle": {"f1": 0.99},
    }
    table = compare("m", systems, "f1", on="validation", also=("acc",))
    assert table["beats"] == {"baseline: svm": False, "baseline: constant": True}
    assert not table["beats_baselines"] and table["table"]["baseline: constant"]["acc"] is None
    assert verdict(table) == "does NOT beat baseline: svm on f1 (validation)"
    lower = compare(
        "m", {"m": {"ece": 0.02}, "baseline: x": {"ece": 0.2}}, "ece", "test", lower_is_better=True
    )
    assert lower["beats_baselines"] and verdict(lower).startswith("beats every baseline")
    with pytest.raises(ValueError, match="not among"):
        compare("nope", systems, "f1", "x")
    json.dumps(table)  # goes into a card as it is


def test_saved_selection_round_trips_and_old_indexes_keep_their_vote(tmp_path):
    from medai.core.model_dir import ModelCard, load, save_card
    from medai.reporting.captioning.captioner import (
        CAPTIONS_FILE,
        ImageEmbedder,
        RetrievalCaptioner,
    )

    rng = np.random.default_rng(3)
    pixels = [rng.integers(0, 255, (48, 48)).astype(np.uint8) for _ in range(4)]
    emb = ImageEmbedder()
    cap = RetrievalCaptioner.fit(
        pixels,
        ["a b c", "b c d", "c d e", "d e f"],
        list("wxyz"),
        emb,
        k=3,
        temperature=0.2,
        self_credit=0.4,
    )
    cap.save(tmp_path)
    save_card(tmp_path, ModelCard(task="caption", model_type="retrieval", labels=[]))
    again = load(tmp_path)
    assert (again.selection, again.temperature, again.self_credit) == ("expected-overlap", 0.2, 0.4)
    assert [r["caption"] for r in again.caption_pixels(pixels)] == [
        r["caption"] for r in cap.caption_pixels(pixels)
    ]
    meta = json.loads((tmp_path / CAPTIONS_FILE).read_text())
    for key in ("selection", "temperature", "self_credit"):
        meta.pop(key)
    (tmp_path / CAPTIONS_FILE).write_text(json.dumps(meta))
    save_card(tmp_path, ModelCard(task="caption", model_type="retrieval", labels=[]))
    assert load(tmp_path).selection == "consensus"
    with pytest.raises(ValueError, match="self credit"):
        RetrievalCaptioner(cap.features, cap.captions, cap.ids, emb, self_credit=2.0)


def test_a_paired_interval_across_zero_is_a_tie_and_needs_a_reason_to_stay_default():
    systems = {"m": {"f1": 0.90}, "baseline: svm": {"f1": 0.89}, "baseline: const": {"f1": 0.3}}
    table = compare(
        "m",
        systems,
        "f1",
        "validation",
        paired={"baseline: svm": [-0.007, 0.009], "baseline: const": [0.5, 0.7]},
        kept_because="calibrated",
    )
    assert table["outcomes"] == {"baseline: svm": "ties", "baseline: const": "beats"}
    assert not table["beats_baselines"] and table["kept_because"] == "calibrated"
    assert verdict(table).startswith("ties baseline: svm on f1")
    worse = compare("m", systems, "f1", "x", paired={"baseline: svm": [-0.03, -0.01]})
    assert worse["outcomes"]["baseline: svm"] == "loses"
    assert verdict(worse).startswith("does NOT beat baseline: svm")
    nan = compare("m", {"m": {"f1": float("nan")}, "baseline: b": {"f1": 0.2}}, "f1", "x")
    assert nan["table"]["m"]["f1"] is None and nan["outcomes"]["baseline: b"] == "unmeasured"
    json.loads(json.dumps(nan, allow_nan=False))  # a card never holds NaN


def test_cases_group_by_publication_as_well_as_by_caption(tmp_path):
    from PIL import Image

    from medai.reporting.captioning.captions import group_split, read_pairs

    rows = ["file,caption,doi"]
    for i, (caption, doi) in enumerate(
        [
            ("day one film", "10.1/a"),
            ("day five film", "10.1/a"),
            ("other case", "10.1/b"),
            ("other case", ""),
            ("third case", ""),
        ]
    ):
        Image.fromarray(np.full((32, 32), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{caption},{doi}")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    ds = read_pairs(tmp_path / "pairs.csv")
    groups = [r.group for r in ds.records]
    assert groups[0] == groups[1] and groups[2] == groups[3] and len(set(groups)) == 3
    for seed in range(5):
        train, test = group_split(ds, test_frac=0.34, seed=seed)
        assert not {groups[i] for i in train} & {groups[i] for i in test}


def test_the_nested_interval_is_wider_than_the_naive_one():
    caps = [f"caption {i // 2} words {i % 3} {'x ' * (i % 4)}" for i in range(60)]
    feats = np.random.default_rng(2).normal(size=(60, 6))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    out = nested_comparison(feats, caps, k=10, repeats=6, inner=2)
    lo, hi = out["vs_nearest"]["ci95"]
    assert "Nadeau" in out["vs_nearest"]["interval"] and hi > lo
    fixed = nested_comparison(
        feats,
        caps,
        k=10,
        repeats=3,
        fixed={"temperature": 0.1, "self_credit": 0.4, "image_weight": 1.0},
    )
    assert fixed["repeats_inner"] == 0
    assert nested_comparison(feats[:2], ["a", "a"], k=2, repeats=3) == {
        "splits": 0,
        "repeats_inner": 5,
        "held_fixed": {},
    }


@pytest.mark.parametrize("floor", [None, 1.5])
def test_a_draft_says_when_its_captioner_declined_the_image(tmp_path, floor):
    from PIL import Image

    from medai.core.model_dir import ModelCard, save_card
    from medai.reporting.captioning.captioner import ImageEmbedder, RetrievalCaptioner
    from medai.reporting.drafter import Drafter

    rng = np.random.default_rng(5)
    pixels = [rng.integers(0, 255, (48, 48)).astype(np.uint8) for _ in range(3)]
    cap = RetrievalCaptioner.fit(
        pixels,
        ["left effusion", "right effusion", "clear lungs"],
        list("abc"),
        ImageEmbedder(),
        min_similarity=floor,
    )
    cap.save(tmp_path / "cap")
    save_card(tmp_path / "cap", ModelCard(task="caption", model_type="retrieval", labels=[]))
    Image.fromarray(pixels[0]).save(tmp_path / "film.png")
    findings = [{"label": "Effusion", "probability": 0.9, "threshold": 0.5}]
    draft = Drafter(caption_model=tmp_path / "cap", embeddings=False).draft(
        (tmp_path / "film.png").read_bytes(), findings
    )
    if floor is None:
        assert draft.caption and draft.caption_note
        assert not any("no automatic caption" in w for w in draft.warnings)
    else:  # no image reaches a similarity of 1.5: the captioner declines, and the draft says so
        assert draft.caption is None
        assert any(
            w.startswith("no automatic caption: unlike every indexed image") for w in draft.warnings
        )


CLUSTER_CAPTIONS = [
    "left lower lobe consolidation",
    "bilateral ground glass opacity",
    "right pleural effusion",
    "normal chest radiograph",
]


def _clustered(informative: bool, per: int = 12, seed: int = 0):
    """Images in four look-alike clusters, one caption family each (``informative``: the
    image says which), with small wording variations and one case per image."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 16))
    feats, caps = [], []
    for c, base in enumerate(CLUSTER_CAPTIONS):
        for i in range(per):
            f = (centres[c] if informative else rng.normal(size=16)) + 0.3 * rng.normal(size=16)
            feats.append(f / np.linalg.norm(f))
            caps.append(f"{base} {['seen', 'noted', 'present', 'shown'][i % 4]} {i}")
    return np.array(feats), caps


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8), min_size=2, max_size=7),
    st.floats(0.01, 5.0),
    st.sampled_from([0.0, 0.2, 1.0]),
)
def test_candidate_scores_equal_the_weighted_overlap_written_out(texts, temperature, credit):
    from medai.reporting.captioning.caption_select import candidate_scores, softmax_weights

    caps = [" ".join(t) for t in texts]
    keys = [c.lower() for c in caps]
    sims = np.linspace(0.9, 0.5, len(caps))
    util = rouge_l_matrix(tokens(caps), tokens(caps))
    got = candidate_scores(keys, keys, util, sims, (temperature,), (credit,))[0, :, 0]
    w = softmax_weights(sims, temperature) / np.array([keys.count(k) for k in keys])
    w /= w.sum()
    for i in range(len(caps)):
        want = sum(w[j] * (credit if keys[i] == keys[j] else util[i, j]) for j in range(len(caps)))
        assert got[i] == pytest.approx(want, abs=1e-12)


def test_image_weight_zero_is_the_best_constant_and_one_lets_the_neighbours_decide():
    from medai.reporting.captioning.caption_select import (
        index_prior,
        prior_candidates,
        shrunk_choice,
    )

    feats, caps = _clustered(informative=True)
    keys, toks = [c.lower() for c in caps], tokens(caps)
    prior = index_prior(toks)
    top_prior = prior_candidates(prior, keys)
    assert caps[top_prior[0]] == best_constant(caps)
    assert len({keys[i] for i in top_prior}) == len(top_prior) == 5
    query = feats[3]  # a "left lower lobe" image
    sims = feats @ query
    top = np.argsort(-sims)[:10]
    picks = shrunk_choice(top, sims[top], keys, toks, prior, top_prior, (0.1,), (0.0,), (0.0, 1.0))
    assert caps[picks[0, 0, 0]] == best_constant(caps)
    assert caps[picks[1, 0, 0]].startswith("left lower lobe consolidation")


@pytest.mark.parametrize("informative", [True, False])
def test_the_image_weight_is_chosen_on_held_out_cases(informative):
    """Where images tell the caption family, the neighbours get weight and the captioner
    beats the constant caption on held-out cases; where they do not, it shrinks towards the
    constant instead of doing worse than it."""
    from medai.reporting.captioning.caption_tuning import choose_selection

    feats, caps = _clustered(informative)
    chosen, table = choose_selection(feats, caps, k=10, repeats=6)
    assert table["splits"] == 6 and len(table["rouge_l"]) == 5 * 4 * 8
    out = nested_comparison(feats, caps, k=10, repeats=6, inner=3)
    means = out["rouge_l_mean"]
    if informative:
        assert chosen["image_weight"] > 0
        assert out["vs_constant"]["ci95"][0] > 0
    else:  # no worse than one fixed sentence (the neighbours alone were, before)
        assert means["model"] >= means["constant"] - 0.01


def test_a_saved_image_weight_and_its_prior_round_trip(tmp_path):
    from medai.core.model_dir import ModelCard, load, save_card
    from medai.reporting.captioning.captioner import (
        CAPTIONS_FILE,
        INDEX_FILE,
        ImageEmbedder,
        RetrievalCaptioner,
    )

    rng = np.random.default_rng(5)
    pixels = [rng.integers(0, 255, (48, 48)).astype(np.uint8) for _ in range(5)]
    caps = ["a b c", "b c d", "a b c d", "x y", "q"]
    cap = RetrievalCaptioner.fit(
        pixels,
        caps,
        list("vwxyz"),
        ImageEmbedder(),
        k=3,
        temperature=0.2,
        self_credit=0.4,
        image_weight=0.0,
    )
    assert {r["caption"] for r in cap.caption_pixels(pixels)} == {best_constant(caps)}
    cap.save(tmp_path)
    save_card(tmp_path, ModelCard(task="caption", model_type="retrieval", labels=[]))
    again = load(tmp_path)
    assert again.image_weight == 0.0
    np.testing.assert_allclose(again.prior, cap.prior, atol=1e-6)
    meta = json.loads((tmp_path / CAPTIONS_FILE).read_text())
    meta.pop("image_weight")
    (tmp_path / CAPTIONS_FILE).write_text(json.dumps(meta))
    with np.load(tmp_path / INDEX_FILE) as z:
        np.savez_compressed(tmp_path / INDEX_FILE, features=z["features"])
    save_card(tmp_path, ModelCard(task="caption", model_type="retrieval", labels=[]))
    old = load(tmp_path)  # an index saved before the image weight: neighbours alone
    assert old.image_weight == 1.0 and len(old.prior) == len(caps)
    with pytest.raises(ValueError, match="image weight"):
        RetrievalCaptioner(cap.features, caps, cap.ids, ImageEmbedder(), image_weight=1.5)
