"""BLIP's image-text matching head as a baseline scorer: re-run on the images, since ITM is not cacheable.

    scores = itm_item_scores(data, items, device="cpu", batch_size=64)   # one array of K values per item

ITM reads every image state through cross-attention, so a store of ITC tokens cannot give it: the
`blip-itm` scorer loads the store's own backbone (which must be a BLIP one, and the same weights the
store was extracted with), opens each item's image and scores each candidate caption with the ITM
head's match probability, as BLIP ranks captions.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import ConfigError, StoreMismatchError
from ..dcsm import CachedDataset
from ..items import open_image

__all__ = ["itm_item_scores"]


@torch.no_grad()
def itm_item_scores(data: CachedDataset, items: list, device, batch_size: int) -> list[np.ndarray]:
    from ..tokens import load_backbone
    from ..tokens.blip import BlipCLIP, itm_scores

    attrs = data.store.attrs
    bb = load_backbone(attrs["backbone"], device)
    if not isinstance(bb.model, BlipCLIP):
        raise ConfigError(
            f"scorer blip-itm needs a BLIP backbone, but {data.store.path} was extracted with "
            f"{attrs['backbone']!r}: score it with cosine, maxsim or dcsm, or extract with blip@folder"
        )
    if bb.identity_key != attrs["backbone_id"]:
        raise StoreMismatchError(
            f"{attrs['backbone']!r} now loads other weights or settings (id {bb.identity_key}) than "
            f"{data.store.path} was extracted with (id {attrs['backbone_id']}): re-extract the store"
        )
    ds = data.dataset
    out = []
    for it in items:
        pixels = bb.preprocess(open_image(ds, it.image)).unsqueeze(0).to(bb.device)
        ids = bb.tokenizer([ds.captions[c] for c in it.candidates]).to(bb.device)
        scores = [itm_scores(bb.model, pixels.expand(len(chunk), -1, -1, -1), chunk) for chunk in ids.split(batch_size)]
        out.append(torch.cat(scores).cpu().numpy())
    return out
