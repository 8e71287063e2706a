"""The reference DCSM scorer, replicated: its CNN, its functional rows and its standardisation.

    ref = load_reference_checkpoint("weights/dcsm_obja_ckpt.pt", device="cpu")   # a ReferenceScorer
    scores = ref(image_tokens, text_tokens, ref.sources(captions)[rows])          # [B, K]

Everything here follows the DCSM reference code (Raphoo/DCSM_Ideal_CLIP, `run_evals.py`,
`models_and_dataloaders.py`; docs/benchmarks.md sections 0 and 1), quirks included:
- functional rows sit at the caption's WHITESPACE word index (`caption.split(" ")`, first occurrence,
  exact case-sensitive match, words in the reference order), i.e. one column before the word's real
  token; an index >= text_seq changes nothing. `variant="insert"` is `eval_simple.py`'s version
  (insert at the index, drop the last column); `variant="none"` is "NO FUNCTIONAL ROWS";
- one mean and one unbiased std over an item's whole [K, 197, 30] map, pads and rows included;
- `CrossModalConvNetwork` with the reference's module names, so its `model_state_dict` loads.
`score_items` is the `dcsm-paper` scorer of evaluation; the default scorer (`dcsm/scorer.py`) does all three right.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import BadInputError, ConfigError, InputNotFoundError, StoreMismatchError
from ..dcsm import CachedDataset
from .suffix import SUFFIX
from .padding import TEXT_SEQ

#: The reference's special words, in its order (benchmarks.md section 1).
REFERENCE_WORDS = ("above", "below", "left", "right", "small", "big", "not", "no", "without", "but", "absent")
IMG_SEQ = 14 * 14 + 1  # ViT-B/16 at 224: CLS + 196 patches
VARIANTS = ("replace", "insert", "none")

log = logging.getLogger(__name__)


class CrossModalConvNetwork(nn.Module):
    """The reference's scorer, layer for layer (names match its state dict)."""

    def __init__(
        self, img_seq: int = IMG_SEQ, text_seq: int = TEXT_SEQ, hidden_dim: int = 128, dropout_prob: float = 0.5
    ):
        super().__init__()
        c = hidden_dim // 32
        self.conv1 = nn.Conv2d(1, c, kernel_size=(3, 3), padding=1)
        self.conv2 = nn.Conv2d(c, c, kernel_size=(3, 3), padding=1)
        self.dropout1 = nn.Dropout2d(p=dropout_prob)
        self.dropout2 = nn.Dropout2d(p=dropout_prob)
        self.dropout3 = nn.Dropout(p=dropout_prob)
        self.dropout4 = nn.Dropout(p=dropout_prob)
        self.fc1 = nn.Linear(c * text_seq * img_seq, hidden_dim)  # padding=1 keeps 197 x 30: 4*197*30 = 23640
        self.fc2 = nn.Linear(hidden_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[n_img, n_txt, img_seq, text_seq] -> [n_img, n_txt, 1]"""
        b1, b2 = x.shape[:2]
        x = x.reshape(b1 * b2, 1, x.size(2), x.size(3))
        x = self.dropout1(F.relu(self.conv1(x)))
        x = self.dropout2(F.relu(self.conv2(x)))
        x = x.view(b1 * b2, -1)
        x = self.dropout3(F.relu(self.fc1(x)))
        x = self.dropout4(self.fc2(x))
        return x.view(b1, b2, 1)


def column_sources(caption: str, words: Sequence[str], width: int = TEXT_SEQ, variant: str = "replace") -> list[int]:
    """Where each of the `width` map columns comes from: c >= 0 the similarity column c, -(j+1) row j.

    Replays the reference's torch.cat loop on column labels, word by word in list order.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"functional-row variant {variant!r} is not one of {', '.join(VARIANTS)}")
    cols = list(range(width))
    if variant == "none":
        return cols
    sent = caption.split(" ")
    for w in words:
        if w in sent:
            idx, row = sent.index(w), -(list(words).index(w) + 1)
            if variant == "replace":  # run_evals.py / train.py: cat([x[:idx], mid, x[idx+1:]])[:text_seq]
                cols = (cols[:idx] + [row] + cols[idx + 1 :])[:width]
            else:  # eval_simple.py: cat([x[:idx], mid, x[idx:-1]]); idx >= width would break its shapes
                cols = (cols[:idx] + [row] + cols[idx:-1])[:width]
    return cols


def reference_maps(
    image_tokens: torch.Tensor, text_tokens: torch.Tensor, sources: torch.Tensor, fr_vectors: torch.Tensor
) -> torch.Tensor:
    """Cosine maps with the functional rows put in, not yet standardised.

    image_tokens [B, P, D], text_tokens [B, K, L, D], sources [B, K, L] (from `column_sources`),
    fr_vectors [F, P] -> [B, K, P, L] fp32.
    """
    maps = torch.einsum("bpd,bkld->bkpl", image_tokens.float(), text_tokens.float())
    p = maps.shape[2]
    taken = torch.gather(maps, 3, sources.clamp(min=0).unsqueeze(2).expand(-1, -1, p, -1))
    rows = fr_vectors.float()[(-sources - 1).clamp(min=0)].permute(0, 1, 3, 2)  # [B, K, P, L]
    return torch.where((sources < 0).unsqueeze(2), rows, taken)


def standardise_items(maps: torch.Tensor) -> torch.Tensor:
    """`(x - x.mean()) / x.std()` per item: one mean and one unbiased std over all its K maps."""
    dims = tuple(range(1, maps.dim()))
    return (maps - maps.mean(dim=dims, keepdim=True)) / maps.std(dim=dims, keepdim=True)


class ReferenceScorer(nn.Module):
    """The reference's network plus its functional rows and special-word list."""

    def __init__(
        self,
        net: CrossModalConvNetwork,
        fr_vectors: torch.Tensor,
        words: Sequence[str] = REFERENCE_WORDS,
        variant: str = "replace",
    ):
        super().__init__()
        column_sources("", words, 1, variant)  # validates the variant
        self.net, self.words, self.variant = net, tuple(words), variant
        self.register_buffer("fr_vectors", fr_vectors.detach().float().clone())
        self.img_seq = fr_vectors.shape[1]
        self.text_seq = net.fc1.in_features // (net.conv1.out_channels * self.img_seq)
        if self.text_seq * net.conv1.out_channels * self.img_seq != net.fc1.in_features:
            raise BadInputError(
                f"fc1 takes {net.fc1.in_features} inputs, not a multiple of "
                f"{net.conv1.out_channels} channels x {self.img_seq} image tokens"
            )

    def sources(self, captions: Sequence[str]) -> torch.Tensor:
        """[M] caption texts -> [M, text_seq] column sources (long)."""
        return torch.tensor(
            np.array(
                [column_sources(c, self.words, self.text_seq, self.variant) for c in captions], dtype=np.int64
            ).reshape(len(captions), self.text_seq)
        )

    def maps(self, image_tokens, text_tokens, sources) -> torch.Tensor:
        return standardise_items(reference_maps(image_tokens, text_tokens, sources, self.fr_vectors))

    def forward(self, image_tokens: torch.Tensor, text_tokens: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """image_tokens [B, P, D], text_tokens [B, K, text_seq, D], sources [B, K, text_seq] -> scores [B, K]"""
        return self.net(self.maps(image_tokens, text_tokens, sources)).squeeze(-1)


# -- the reference's checkpoint -----------------------------------------------------------------------


class _Inert:
    """Stands in for any class a checkpoint names that is not a tensor container (the pickled HF
    tokenizer, ...): it records its arguments and state and runs none of the named class's code."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


def _safe_load(path: Path) -> dict:
    """torch.load(weights_only=True); the reference pickles whole objects beside its tensors (an
    nn.Embedding, a CLIPTokenizer), so nn.Embedding is allowed as itself and every other named class
    is loaded as `_Inert`: nothing in the file can run code."""
    allow: list = []
    if hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception as err:
            raise BadInputError(f"{path} is not a torch.save zip checkpoint ({type(err).__name__}: {err})") from err
        allow = [nn.Embedding if n == "torch.nn.modules.sparse.Embedding" else (_Inert, n) for n in names]
    allowing = getattr(torch.serialization, "safe_globals", None)
    try:
        with allowing(allow) if allowing else contextlib.nullcontext():
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise BadInputError(
            f"{path} cannot be read as a DCSM reference checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]})"
        ) from err


def _fr_weight(obj) -> torch.Tensor:
    """The functional rows: the reference saves the whole nn.Embedding; its weight or {"weight": ...} also do."""
    w = obj.weight if isinstance(obj, nn.Embedding) else obj.get("weight") if isinstance(obj, dict) else obj
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        raise BadInputError(
            f"external_logic_token_embeddings is a {type(obj).__name__}, not an nn.Embedding or a [n_words, 197] tensor"
        )
    return w.detach()


def load_reference_checkpoint(
    path: str | os.PathLike | None, device="cpu", variant: str = "replace"
) -> ReferenceScorer:
    """The reference's checkpoint as a ReferenceScorer in eval mode.

    Keys used: `model_state_dict` (loaded strictly; the reference used strict=False, which would let a
    wrong file through with random layers), `external_logic_token_embeddings` (the functional rows,
    an nn.Embedding(11, 197) or its weight), `learned_lookup` (if not None it replaces the word list).
    `clip_state_dict` is ignored: the features come from the store, extracted with the backbone named
    there. The reference's train.py optimises only the scorer, so these should be the pretrained openai
    weights (not checked here: a checkpoint with fine-tuned CLIP weights needs a store made with them).
    """
    if not path:
        raise ConfigError("scorer dcsm-paper needs --checkpoint: the DCSM reference's .pt (e.g. dcsm_obja_ckpt.pt)")
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"reference checkpoint {path} does not exist")
    ckpt = _safe_load(path)
    missing = [
        k
        for k in ("model_state_dict", "external_logic_token_embeddings")
        if not isinstance(ckpt, dict) or k not in ckpt
    ]
    if missing:
        raise BadInputError(f"{path} lacks {', '.join(missing)}: not a DCSM reference checkpoint")
    words = ckpt.get("learned_lookup")
    words = REFERENCE_WORDS if words is None else words
    if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
        raise BadInputError(f"{path}: learned_lookup should be None or a list of words, got {type(words).__name__}")
    fr = _fr_weight(ckpt["external_logic_token_embeddings"])
    state = ckpt["model_state_dict"]
    try:
        c, hidden = state["conv1.weight"].shape[0], state["fc1.weight"].shape[0]
        text_seq = state["fc1.weight"].shape[1] // (c * fr.shape[1])
        net = CrossModalConvNetwork(fr.shape[1], text_seq, hidden_dim=hidden)
        net.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError, ZeroDivisionError, AttributeError) as err:
        raise BadInputError(
            f"{path}: model_state_dict does not fit CrossModalConvNetwork "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        ) from err
    needed = max((list(words).index(w) for w in words), default=-1) + 1
    if fr.shape[0] < needed:
        raise BadInputError(
            f"{path}: external_logic_token_embeddings has shape {tuple(fr.shape)}, "
            f"needs [{needed}, {fr.shape[-1]}] for {len(words)} special words"
        )
    return ReferenceScorer(net, fr, words, variant).to(device).eval()


def _check(data: CachedDataset, scorer: ReferenceScorer) -> None:
    if data.n_tokens != scorer.img_seq:
        raise StoreMismatchError(
            f"{data.store.path} has {data.n_tokens} image tokens, the reference scorer reads "
            f"{scorer.img_seq} (ViT-B/16 at 224 with CLS): extract with ViT-B-16-quickgelu.openai"
        )
    if data.text_tokens.shape[1] != scorer.text_seq:
        raise StoreMismatchError(f"open {data.store.path} with text_len={scorer.text_seq} for the reference scorer")
    attrs = data.store.attrs
    if not any(s in data.dataset.name for s in SUFFIX.values()):
        log.warning(
            "%s: captions are not the reference's (no prefix or rewrites); write the manifest with "
            "`dcsm-cache items --paper-compat`",
            data.dataset.name,
        )
    if not str(attrs.get("backbone", "")).startswith("ViT-B-16"):
        log.warning("%s: backbone %s is not the reference's CLIP ViT-B/16", data.dataset.name, attrs.get("backbone"))
    if attrs.get("text_padding") != "reference":
        log.warning(
            "%s: pad columns are not the reference's (store width %d, open_clip pads): scores differ "
            "from the reference's wherever a caption is shorter than %d tokens",
            data.dataset.name,
            data.store.text_tokens.shape[1],
            scorer.text_seq,
        )


@torch.no_grad()
def score_items(data: CachedDataset, items: list, scorer: ReferenceScorer, device, batch_size: int) -> list[np.ndarray]:
    """Reference scores per item (one array of K values each), the scorer `dcsm-paper` of `evaluate`.

    Functional rows come from the caption TEXTS (`data.dataset.captions`), as the reference finds them.
    """
    _check(data, scorer)
    sources = scorer.sources(data.dataset.captions)
    out: list[np.ndarray | None] = [None] * len(items)
    for pos, tok, _, rows in data.item_batches(items, batch_size):
        scores = scorer(tok.to(device), data.text_tokens[rows].to(device), sources[rows].to(device))
        for j, i in enumerate(pos):
            out[i] = scores[j].float().cpu().numpy()
    return out  # type: ignore[return-value]
