"""Token extraction: backbone names, loading and checkpoints, and one adapter module per tower family.

    bb = load_backbone("ViT-B-16-quickgelu.openai", device="cuda")
    tokens, pooled = token_encoder(bb.model).image(pixels)

names.py (parse a backbone name), hub.py (registry weights and hub tokenizers in the Hugging Face cache), checkpoints.py
(local files, read safely), backbones.py (load), loaded.py (a loaded backbone and its identity), shapes_clip.py
(the shapes-world CLIP, registered with open_clip), encoder.py (the dispatcher), and the families: vit.py,
timm_trunk.py, attnpool.py, text.py, blip.py (adapters.py holds what they share).
"""

from .backbones import Backbone, activation, identity_key, load_backbone
from .checkpoints import Checkpoint, load_into, read_checkpoint, read_state_dict, sha256_file, to_open_clip_keys
from .encoder import IMAGE_ADAPTERS, TEXT_ADAPTERS, TokenEncoder, text_tower, token_encoder
from .hub import text_files_missing, weights_cached
from .names import BackboneSpec, parse_backbone

__all__ = [
    "IMAGE_ADAPTERS",
    "TEXT_ADAPTERS",
    "Backbone",
    "BackboneSpec",
    "Checkpoint",
    "TokenEncoder",
    "activation",
    "identity_key",
    "load_backbone",
    "load_into",
    "parse_backbone",
    "read_checkpoint",
    "read_state_dict",
    "sha256_file",
    "text_files_missing",
    "text_tower",
    "to_open_clip_keys",
    "token_encoder",
    "weights_cached",
]
