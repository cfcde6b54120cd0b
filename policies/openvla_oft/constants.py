"""OpenVLA-OFT's fixed numbers: token ids, chunking, file names, the Llama defaults of its config.

Sources (``../shared/reference/realscale.md`` section 1): ``prismatic/vla/constants.py`` (LIBERO
values; never chosen from ``sys.argv`` here), ``modeling_prismatic.py``, transformers 4.40.1
``LlamaConfig`` (the base that ``config.json``'s ``text_config`` is a diff over).
"""

from __future__ import annotations

NUM_ACTIONS_CHUNK = 8
ACTION_DIM = 7
PROPRIO_DIM = 8
NUM_ACTION_TOKENS = NUM_ACTIONS_CHUNK * ACTION_DIM  # 56 placeholder tokens

BOS_ID = 1
STOP_ID = 2  # appended after the placeholders
PLACEHOLDER_ID = 1  # value of the action placeholder ids (their embeddings are zeroed)
SPACE_ID = 29871  # "▁": appended to the prompt when it does not end with it
PAD_ID = 32000
VOCAB_SIZE = 32064  # Llama-2's 32000 + 64 (pad_to_multiple_of)
ACTION_TOKEN_BEGIN_IDX = 31743

PROMPT = "In: What action should the robot take to {instruction}?\nOut:"

# transformers 4.40.1 LlamaConfig defaults: every field absent from ``text_config`` takes these.
LLAMA_DEFAULTS = {
    "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": None, "hidden_act": "silu", "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "rope_scaling": None, "attention_bias": False,
    "tie_word_embeddings": False, "pad_token_id": None, "bos_token_id": 1, "eos_token_id": 2,
}

# Files of a checkpoint directory (finetune.py::save_training_checkpoint).
CONFIG_FILE = "config.json"
INDEX_FILE = "model.safetensors.index.json"
STATS_FILE = "dataset_statistics.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
TOKENIZER_FILE = "tokenizer.json"
ACTION_HEAD_PREFIX = "action_head--"
PROPRIO_PREFIX = "proprio_projector--"
AUX_PREFIXES = (ACTION_HEAD_PREFIX, PROPRIO_PREFIX)  # OFT's auxiliary .pt files, beside the shards
