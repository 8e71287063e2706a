"""Train the DCSM scorer from a feature store: the backbone never runs again.

    train("stores/shapes-clip/shapes_train.zarr", "models/shapes-clip/dcsm.pt", TrainConfig(steps=2000))
    train(["stores/b/dcsm_train_spatial.zarr", "stores/b/dcsm_train_colour.zarr"], "models/b/dcsm-synth.pt", cfg)

Each batch takes B images (whole chunks at random, shuffled within a buffer; `data.py`: the
store in memory when it fits) with their candidate captions: the positive and the item's hard
negatives. Every image is scored against all B positives and its own hard negatives; the loss
(`loss.py`) is cross-entropy image→caption over those, plus caption→image over the B positives
(both directions). Identical positives of two images are masked, as they are not negatives. Items
with an opposite image (the shapes world's, the paper's
training sets) add the image-side term (`pairs.py`): each image and its opposite against both their
captions, both directions, weighted by `pair_weight`; `loss="reference"` trains with the DCSM
reference's recipe alone (its loss per source and version, Adam at a fixed `lr`). Items of a
validation subset (`VAL_SUBSETS`: "val", and "heldout_val", the shapes world's scenes with held-out
combos) are never trained on; each subset is scored every `eval_every` steps (`validate.py`) and
recorded in the history as `<subset>_accuracy`. A store with cached
augmented views (`extract --set views=K`) gives each image one of its K views per step
(`views=True`, the default; `data.py`). The checkpoint holds the
scorer's weights, its config and what it was trained on.

Several stores (one backbone's, e.g. the paper's three training sources): each step takes one batch
from every store, an epoch ends with the shortest store's (the reference's `MultipleDatasets`), and
the step's loss is the stores' losses summed under `loss="reference"` (its gradients over sources
summed, then divided by 3 in `pairs.reference_step`), their mean otherwise. One store trains exactly
as before.

Reproducible and resumable: on the CPU training runs with deterministic kernels on a fixed number of
threads (`threads`, recorded), so the same store and config give the same weights, bit for bit; on
CUDA `deterministic=True` sets PyTorch's documented determinism switches (slower). Every
`checkpoint_every` steps the model, optimiser, scheduler, RNG states and data position go to
`OUT.resume` (atomically, `resume.py`); `resume=True` (`train --resume`) continues from it, replaying the
interrupted epoch's data order without training on it, and ends with the weights an uninterrupted
run would have. The file is removed when training ends. The settings are `TrainConfig` (`config.py`,
re-exported here).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
import torch.utils.deterministic

from ... import faults
from ...cores import cpu_cores
from ...errors import BadInputError
from ...progress import tqdm
from ..dcsm import CachedDataset, DCSMScorer, save_scorer
from ..device import resolve_device
from .config import TrainConfig
from .data import TrainBatches, on_device
from .loss import batch_loss
from .resume import checkpoint_meta, load_resume, one_or_list, resume_path, run_key, save_resume
from .validate import validate_all

__all__ = ["VAL_SUBSETS", "TrainConfig", "deterministic_setup", "train"]

log = logging.getLogger(__name__)
VAL_SUBSETS = ("val", "heldout_val")  # scored during training, never trained on


def _group_items(data: CachedDataset, subset: str | None) -> dict[int, list[int]]:
    """image row -> item indices, of valid images: those of validation subset `subset`, or (None) the
    items trained on, which are those of no validation subset."""
    valid = data.valid
    by_image: dict[int, list[int]] = {}
    for i, it in enumerate(data.dataset.items):
        if (it.subset == subset if subset else it.subset not in VAL_SUBSETS) and valid[it.image]:
            by_image.setdefault(it.image, []).append(i)
    return by_image


def deterministic_setup(cfg: TrainConfig, device: torch.device) -> int:
    """Seed, fix the thread count and ask for deterministic kernels; the thread count used."""
    torch.manual_seed(cfg.seed)
    threads = cfg.threads or min(4, cpu_cores())
    torch.set_num_threads(threads)
    if device.type == "cuda" and cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # PyTorch's reproducibility notes
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(device.type != "cuda" or cfg.deterministic, warn_only=True)
    # Deterministic mode also fills every new tensor with NaN, so that a kernel reading memory it
    # never wrote shows up; none here does (the same weights, bit for bit, is tested), and the fills
    # were a sixth of a CPU step (~14,000 a minute of small tensors).
    torch.utils.deterministic.fill_uninitialized_memory = False
    return threads


def _open_sources(stores: list, cfg: TrainConfig, items: str | None) -> list[tuple]:
    """(path, data, train items, {validation subset: its items}) per store; the stores must come from one backbone."""
    sources = []
    for store in stores:
        data = CachedDataset.open(store, text_len=cfg.text_len, items=items)
        train_items = _group_items(data, None)
        val_items = {v: g for v in VAL_SUBSETS if (g := _group_items(data, v))}
        if not train_items:
            raise BadInputError(f"{store}: no training items with readable images")
        ks = {len(data.dataset.items[i].candidates) for v in train_items.values() for i in v}
        if len(ks) != 1 or ks == {1}:
            raise BadInputError(
                f"{store}: training needs items with the same number (>1) of candidates, found {sorted(ks)}"
            )
        first = sources[0][1] if sources else data
        if (data.store.attrs["backbone_id"], data.n_tokens) != (first.store.attrs["backbone_id"], first.n_tokens):
            raise BadInputError(
                f"{store}: extracted with {data.store.attrs['backbone']!r}, but {stores[0]} with "
                f"{first.store.attrs['backbone']!r}: a scorer trains on one backbone's stores"
            )
        sources.append((store, data, train_items, val_items))
    return sources


def train(
    store: str | os.PathLike | list, out: str | os.PathLike, cfg: TrainConfig = TrainConfig(), items: str | None = None
) -> dict:
    """Train on one store, or on several of one backbone (a list: see the module docstring)."""
    stores = list(store) if isinstance(store, (list, tuple)) else [store]
    if not stores:
        raise BadInputError("train: no store given")
    device = resolve_device(cfg.device)
    threads = deterministic_setup(cfg, device)
    rng = np.random.default_rng(cfg.seed)
    sources = _open_sources(stores, cfg, items)
    datas = [s[1] for s in sources]
    data = datas[0]
    scorer = DCSMScorer(cfg.scorer, data.n_tokens, cfg.text_len, len(data.fr_words)).to(device)
    params = [p for p in scorer.parameters() if p.requires_grad]
    reference = cfg.loss == "reference"
    if reference:  # the reference's Adam at a fixed learning rate
        opt = torch.optim.Adam(params, lr=cfg.lr)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if reference or cfg.steps < 10:  # (OneCycleLR divides by zero on a warm-up under 2 steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    else:
        warm = max(0.05, 2.5 / cfg.steps)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=warm)
    gen = torch.Generator().manual_seed(cfg.seed)  # the reference's random permutations
    step, losses, history, replay_to = 0, [], [], 0
    key = run_key(cfg, datas)
    state = load_resume(out, key) if cfg.resume else None
    if state is not None:  # back to the start of the interrupted epoch; its data order is replayed to `step`
        scorer.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        gen.set_state(state["perm_rng"])
        rng.bit_generator.state = state["epoch_rng"]
        step, replay_to, losses = state["epoch_start"], state["step"], state["losses"]
        # rebuilt with this module's key strings, so the scorer file pickles to the same bytes
        history = [{str(k): type(v)(v) for k, v in h.items()} for h in state["history"]]
        log.warning("%s: resuming at step %d of %d", resume_path(out), replay_to, cfg.steps)
    batches, batch = [], 0
    for _, d, train_items, _ in sources:
        batch = min(cfg.batch_size, sum(len(v) for v in train_items.values()))
        batches.append(  # (reads the store)
            TrainBatches(d, train_items, batch, cfg.buffer_chunks, cfg.reader, device, cfg.views, cfg.seed)
        )
    datas = [on_device(d, device) for d in datas]
    val_sets = {v: [(d, s[3][v]) for d, s in zip(datas, sources) if v in s[3]] for v in VAL_SUBSETS}
    val_sets = {v: sets for v, sets in val_sets.items() if sets}
    bar = tqdm(total=cfg.steps, initial=replay_to, desc="train", disable=not cfg.progress)
    while step < cfg.steps:
        epoch_start, epoch_rng = step, rng.bit_generator.state
        for bs in zip(*(b.epoch(rng, step) for b in batches)):  # one batch per store; the shortest store ends the epoch
            if step < replay_to:  # trained on before the interruption
                step += 1
                continue
            scorer.train()
            terms = [batch_loss(scorer, d, b, cfg, device, gen, path) for d, b, path in zip(datas, bs, stores)]
            loss = terms[0] if len(terms) == 1 else (sum(terms) if reference else sum(terms) / len(terms))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", refresh=False)
            if val_sets and (step % cfg.eval_every == 0 or step == cfg.steps):
                history.append(
                    {
                        "step": step,
                        **{f"{v}_accuracy": validate_all(scorer, sets, device) for v, sets in val_sets.items()},
                    }
                )
                log.info("step %d: %s", step, ", ".join(f"{k} {v:.3f}" for k, v in history[-1].items() if k != "step"))
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                save_resume(
                    out,
                    key,
                    {
                        "step": step,
                        "epoch_start": epoch_start,
                        "epoch_rng": epoch_rng,
                        "torch_rng": torch.get_rng_state(),
                        "perm_rng": gen.get_state(),
                        "model": scorer.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "losses": losses,
                        "history": history,
                    },
                )
            faults.point("train.step")
            if step >= cfg.steps:
                break
        if step == epoch_start:
            raise BadInputError(
                f"{', '.join(map(str, stores))}: no buffer of {cfg.buffer_chunks} chunks holds a batch of "
                f"{batch} items; raise buffer_chunks"
            )
    bar.close()
    summary = {"steps": step, "final_loss": float(np.mean(losses[-50:])), "history": history, "threads": threads}
    if max(b.views for b in batches) > 1:  # (a one-view run's file is what it always was)
        summary["views"] = one_or_list([b.views for b in batches])
    save_scorer(scorer, checkpoint_meta(datas, cfg, summary), out)
    resume = resume_path(out)
    for left in [resume, *resume.parent.glob(f".{resume.name}.*.tmp")]:  # (a write a kill cut short)
        left.unlink(missing_ok=True)
    return summary
