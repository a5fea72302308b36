"""Caption metrics: preprocessing, perfect and disjoint captions, hand-checkable values."""

import math

import pytest

from medai.reporting.caption_metrics import caption_scores, cider_d, preprocess


def test_imageclef_preprocessing():
    assert preprocess("Chest X-ray, 2 views: 3.5 cm Nodule!") == \
        "chest x ray number views number cm nodule"


def test_identical_captions_score_top_and_disjoint_score_zero():
    refs = ["small left pleural effusion", "no acute cardiopulmonary disease",
            "right upper lobe consolidation"]
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

    from medai.reporting.caption_metrics import bertscore

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "small", "left", "pleural", "effusion", "no",
             "acute", "disease", "zebra"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")
    fast.save_pretrained(tmp_path)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32)).save_pretrained(tmp_path)
    same = bertscore(["small left pleural effusion"], ["small left pleural effusion"],
                     str(tmp_path))
    assert same["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)
    other = bertscore(["zebra"], ["no acute disease"], str(tmp_path))
    assert other["bertscore_f1"] < same["bertscore_f1"]
