"""open_clip behind dcsm-cache's one import: transformers only when a Hugging Face text tower is built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tiny_families

BUILD = r"""
import sys
from dcsm_cache._openclip import open_clip
open_clip.add_model_config(sys.argv[1])  # the tiny configs tiny_families wrote (a RoBERTa text tower among them)
before = "transformers" in sys.modules
model = open_clip.create_model(sys.argv[2], pretrained_text=False)
print(before, "transformers" in sys.modules, type(getattr(model, "text", None)).__name__)
"""


def build(name: str, configs: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-c", BUILD, str(configs), name], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_transformers_is_imported_when_a_hugging_face_text_tower_is_built_and_not_before(tmp_path):
    assert tiny_families.register(tmp_path)  # (transformers writes the tiny RoBERTa config here, not there)
    assert build("dcsmtest-vit", tmp_path) == ["False", "False", "NoneType"]
    assert build("dcsmtest-hf-mean", tmp_path) == ["False", "True", "HFTextEncoder"]
