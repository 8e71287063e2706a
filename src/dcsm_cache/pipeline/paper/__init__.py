"""The paper reproduction (`paper_compat`): the DCSM reference evaluation from the cache, quirks included.

    ds = apply_reference_captions(load_benchmark("whatsUp_A", "data"), "whatsUp_A", dcsm=True)
    write_manifest(ds, "manifests/whatsUp_A+paper.json")   # then extract --set text_padding=reference, then:
    evaluate("stores/vit-b-16/whatsUp_A+paper.zarr", "dcsm-paper", EvalConfig(checkpoint="dcsm_obja_ckpt.pt"))

captions.py (the reference's caption rewrites and prefixes), suffix.py (the name suffix of its
captions), padding.py (its text padding, the one leaf extraction imports), scorer.py (its CNN,
functional rows, standardisation and checkpoint), and table.py (the paper's eight columns and
reported numbers).

What still differs from the reference (docs/benchmarks.md sections 0-1):
- pad columns: the reference pads every caption to 30 tokens with the EOS id and runs HF CLIP with
  those keys masked, projecting every position; a default store holds tokens only up to its longest
  caption and open_clip's pads. A store extracted with `text_padding: reference` has the
  reference's pad columns, and its EOS in column 29 for captions longer than 28 BPE tokens;
- the store keeps tokens in float16 (cosines off by ~1e-3), the reference is fp32 (TF32 convs on GPU);
- images go through open_clip's preprocessing, not `CLIPImageProcessor` (same resize/crop/normalise).

Names are re-exported lazily, so importing the padding leaf does not load the rest.
"""

from importlib import import_module

_WHERE = {
    "apply_reference_captions": "captions",
    "reference_caption": "captions",
    "SUFFIX": "suffix",
    "caption_prefix": "captions",
    "rewrite": "captions",
    "LOADER_REWRITES": "captions",
    "DCSM_REWRITES": "captions",
    "REFERENCE_PAD_ID": "padding",
    "TEXT_SEQ": "padding",
    "reference_text_tokens": "padding",
    "IMG_SEQ": "scorer",
    "REFERENCE_WORDS": "scorer",
    "VARIANTS": "scorer",
    "CrossModalConvNetwork": "scorer",
    "ReferenceScorer": "scorer",
    "column_sources": "scorer",
    "load_reference_checkpoint": "scorer",
    "reference_maps": "scorer",
    "score_items": "scorer",
    "standardise_items": "scorer",
    "COLUMNS": "table",
    "REPORTED": "table",
    "column_scores": "table",
    "paper_table": "table",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
