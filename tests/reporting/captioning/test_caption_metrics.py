"""Caption metrics: the named normalisations (ImageCLEFmedical 2025's, medai's earlier one),
perfect and disjoint captions, hand-checkable values."""

import math

import pytest

from medai.reporting.captioning.caption_metrics import (
    NORMALISATIONS,
    NOT_COMPUTED_2025,
    caption_scores,
    cider_d,
    normalise,
    preprocess,
    rouge,
)


def test_medai_v1_normalisation_is_unchanged():
    assert (
        preprocess("Chest X-ray, 2 views: 3.5 cm Nodule!")
        == "chest x ray number views number cm nodule"
    )
    assert normalise("Chest X-ray, 2 views: 3.5 cm Nodule!", "medai-v1") == preprocess(
        "Chest X-ray, 2 views: 3.5 cm Nodule!"
    )


@pytest.mark.parametrize(
    ("text", "want"),
    [
        # lowercase; each run of digits → "number" with no space; punctuation deleted, not spaced
        ("Chest X-ray, 2 views: 3.5 cm Nodule!", "chest xray number views numbernumber cm nodule"),
        ("Axial T2-weighted MRI (arrow)", "axial tnumberweighted mri arrow"),
        ("CT 12/03/2019 shows a 10mm lesion", "ct numbernumbernumber shows a numbermm lesion"),
        # whitespace is left as it is; non-ASCII punctuation and symbols are not in the table
        ("Left  lobe – 5 × 4 cm", "left  lobe – number × number cm"),
        ("", ""),
    ],
)
def test_imageclef2025_normalisation(text, want):
    assert normalise(text, "imageclef2025") == want


def test_normalisations_are_one_named_table():
    assert set(NORMALISATIONS) == {"imageclef2025", "medai-v1"}
    with pytest.raises(ValueError, match="unknown caption normalisation"):
        normalise("x", "imageclef2019")
    with pytest.raises(ValueError, match="unknown caption normalisation"):
        caption_scores(["a"], ["a"], "imageclef2019")


def test_scores_name_their_normalisation_and_what_2025_lacks():
    old = caption_scores(["Chest X-ray"], ["chest x ray"])
    assert old["normalisation"] == "medai-v1" and "not_computed" not in old
    assert old["rouge_1"] == pytest.approx(1.0)
    new = caption_scores(["Chest X-ray"], ["chest x ray"], "imageclef2025")
    assert new["normalisation"] == "imageclef2025"
    # "xray" is one word in 2025 (two before): only "chest" matches, P 1/2, R 1/3
    assert new["rouge_1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert (
        set(new["not_computed"])
        == set(NOT_COMPUTED_2025)
        >= {
            "relevance",
            "factuality",
            "bleurt",
            "alignscore",
            "umls_concept_f1",
            "image_caption_similarity",
            "bertscore",
        }
    )


def test_imageclef2025_rouge1_by_hand():
    # per pair on the normalised text, then averaged; two empty captions score 1 (2025 rule)
    r = rouge(
        ["Small L-sided effusion", ""], [["small lsided pleural effusion"], [""]], "imageclef2025"
    )
    assert r["rouge_1"] == pytest.approx((2 * 1.0 * 0.75 / 1.75 + 1.0) / 2)
    assert rouge([""], [[""]])["rouge_1"] == 0.0  # medai-v1 kept its own rule


def test_identical_captions_score_top_and_disjoint_score_zero():
    refs = [
        "small left pleural effusion",
        "no acute cardiopulmonary disease",
        "right upper lobe consolidation",
    ]
    same = caption_scores(refs, refs)
    for key in ("bleu_1", "bleu_4", "rouge_1", "rouge_l"):
        assert same[key] == pytest.approx(1.0)
    assert same["meteor"] > 0.95 and same["cider"] > 5
    other = caption_scores(["zebra giraffe lion"] * 3, refs)
    for key in ("bleu_1", "rouge_1", "rouge_l", "meteor", "cider"):
        assert other[key] == pytest.approx(0.0, abs=1e-9)
    assert same["n"] == 3


def test_bleu1_by_hand():
    # candidate "a b c d" vs reference "a b x y z": 2 of 4 unigrams match; brevity penalty
    # exp(1 - 5/4)
    s = caption_scores(["a b c d"], ["a b x y z"])
    assert s["bleu_1"] == pytest.approx(0.5 * math.exp(1 - 5 / 4), rel=1e-6)
    assert s["rouge_1"] == pytest.approx(2 * (2 / 4) * (2 / 5) / (2 / 4 + 2 / 5))


def test_cider_rewards_informative_ngrams():
    refs = ["left pleural effusion", "right pleural effusion", "no effusion"]
    good = cider_d(["left pleural effusion", "right pleural effusion", "no effusion"], refs)
    swapped = cider_d(["right pleural effusion", "left pleural effusion", "no effusion"], refs)
    assert good > swapped > 0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no captions"):
        caption_scores([], [])
    with pytest.raises(ValueError, match="reference"):
        caption_scores(["a"], ["a", "b"])


def test_bertscore_with_a_local_tiny_model(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from medai.reporting.captioning.caption_metrics import bertscore

    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "small",
        "left",
        "pleural",
        "effusion",
        "no",
        "acute",
        "disease",
        "zebra",
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )
    fast.save_pretrained(tmp_path)
    BertModel(
        BertConfig(
            vocab_size=len(words),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
    ).save_pretrained(tmp_path)
    same = bertscore(
        ["small left pleural effusion"], ["small left pleural effusion"], str(tmp_path)
    )
    assert same["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)
    other = bertscore(["zebra"], ["no acute disease"], str(tmp_path))
    assert other["bertscore_f1"] < same["bertscore_f1"]
    # the 2025 way: normalised captions, idf weights from the references, 1 for two empties
    refs = ["small left pleural effusion", "no acute disease", ""]
    official = bertscore(
        ["Small left pleural effusion!", "zebra", ""],
        refs,
        str(tmp_path),
        normalisation="imageclef2025",
    )
    plain = bertscore(["Small left pleural effusion!", "zebra", ""], refs, str(tmp_path))
    assert official != plain
    perfect = bertscore(refs, refs, str(tmp_path), normalisation="imageclef2025")
    assert perfect["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)
