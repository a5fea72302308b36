"""A tiny BLIP-2 (OPT language model) built from a config with random weights, saved as a
local Hugging Face directory: the BLIP-2 tests train and caption with it offline in seconds."""

import sys

import torch

from helpers.paths import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_check import SPECIAL_TOKENS, word_level_processor

WORDS = [
    "a",
    "the",
    "left",
    "right",
    "pleural",
    "effusion",
    "normal",
    "chest",
    "mass",
    "lobe",
    "upper",
    "consolidation",
    "bilateral",
    "patchy",
    "sided",
    "radiograph",
]


def make_tiny_blip2(directory):
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        OPTConfig,
    )

    vocab = [*SPECIAL_TOKENS, *WORDS]
    processor = word_level_processor(vocab, image_size=32, query_tokens=4)
    fast = processor.tokenizer
    cfg = Blip2Config(
        vision_config=Blip2VisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ).to_dict(),
        qformer_config=Blip2QFormerConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            encoder_hidden_size=32,
            vocab_size=len(vocab),
        ).to_dict(),
        text_config=OPTConfig(
            vocab_size=len(fast),
            hidden_size=32,
            num_hidden_layers=1,
            ffn_dim=64,
            num_attention_heads=2,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=2,
        ).to_dict(),
        num_query_tokens=4,
        image_token_index=fast.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(0)
    Blip2ForConditionalGeneration(cfg).save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
