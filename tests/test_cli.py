"""The command line: every command documented, thin wrappers, one-line errors and exit code 2."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dcsm_cache.cli import main

from conftest import TINY_BACKBONE


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_every_command_is_documented():
    for name, cmd in main.commands.items():
        assert cmd.help and cmd.help.strip(), name
        result = run(name, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
        for p in cmd.params:
            if p.name not in ("help",) and getattr(p, "help", None) is None and p.param_type_name == "option":
                pytest.fail(f"{name} --{p.name} has no help")  # options explain themselves


def test_items_extract_eval_report_by_hand(world, tmp_path):
    m = tmp_path / "m.json"
    r = run("items", "shapes_negation", "--root", world, "--out", m)
    assert r.exit_code == 0, r.output
    assert json.loads(m.read_text())["name"] == "shapes_negation"
    s = tmp_path / "s.zarr"
    r = run(
        "extract", "--items", m, "--backbone", TINY_BACKBONE, "--out", s, "--device", "cpu", "--set", "progress=false"
    )
    assert r.exit_code == 0 and "store complete" in r.output, r.output
    out = tmp_path / "r.json"
    r = run("eval", "--store", s, "--scorer", "cosine", "--out", out, "--device", "cpu")
    assert r.exit_code == 0 and json.loads(out.read_text())["dataset"] == "shapes_negation", r.output
    r = run("report", out, "--out", tmp_path / "summary.md")
    assert r.exit_code == 0 and (tmp_path / "summary.csv").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["items", "imagenet_xl", "--root", ".", "--out", "x.json"], "unknown benchmark 'imagenet_xl'; valid: "),
        (["items", "shapes_spatial", "--root", "no/such/world", "--out", "x.json"], "no/such/world"),
        (["extract", "--items", "m.json", "--backbone", "ViT-Q-99.openai", "--out", "s.zarr"], "unknown backbone"),
        (["train", "--store", "none.zarr", "--out", "x.pt", "--set", "stepz=3"], "unknown key stepz"),
        (["eval", "--store", "none.zarr", "--scorer", "cosine", "--out", "r.json"], "no feature store at none.zarr"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], r.output


def test_store_from_another_backbone_is_one_line(stores, tmp_path):
    import torch
    from dcsm_cache.pipeline.train import TrainConfig, train

    train(
        stores["shapes_train"],
        tmp_path / "s.pt",
        TrainConfig(steps=1, batch_size=8, device="cpu", progress=False, text_len=16),
    )
    ckpt = torch.load(tmp_path / "s.pt", weights_only=True)
    ckpt["backbone"], ckpt["backbone_id"] = "ViT-B-32.openai", "0123456789abcdef"  # other weights
    torch.save(ckpt, tmp_path / "other.pt")
    r = run(
        "eval",
        "--store",
        stores["shapes_spatial"],
        "--scorer",
        "dcsm",
        "--checkpoint",
        tmp_path / "other.pt",
        "--out",
        tmp_path / "r.json",
        "--device",
        "cpu",
    )
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "ViT-B-32.openai" in r.output
    assert not (tmp_path / "r.json").exists()


def test_train_and_eval_never_import_open_clip(stores, tmp_path):
    """Training and evaluation read the cache alone: open_clip, timm and torchvision stay unloaded."""
    import subprocess
    import sys

    probe = (
        "import sys\nfrom dcsm_cache.cli import main\nsys.argv = ['dcsm-cache', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'open_clip', 'timm', 'torchvision'})\n"
        "print('HEAVY', heavy)\n"
    )
    ckpt = tmp_path / "s.pt"
    for args in (
        [
            "train",
            "--store",
            stores["shapes_train"],
            "--out",
            ckpt,
            "--device",
            "cpu",
            "--set",
            "steps=2",
            "--set",
            "batch_size=8",
            "--set",
            "text_len=16",
            "--set",
            "progress=false",
        ],
        [
            "eval",
            "--store",
            stores["shapes_spatial"],
            "--scorer",
            "dcsm",
            "--checkpoint",
            ckpt,
            "--out",
            tmp_path / "r.json",
            "--device",
            "cpu",
        ],
    ):
        done = subprocess.run([sys.executable, "-c", probe, *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "HEAVY []" in done.stdout, done.stdout


@pytest.mark.parametrize("args, code", [(["benchmarks"], 0), (["parts", "no/such/store.zarr"], 2)])
def test_the_collector_is_frozen_at_exit_and_output_still_flushed(args, code):
    """Every command freezes the collector at exit (cli._freeze_at_exit), after its work, on success and on error."""
    import subprocess
    import sys

    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('FROZEN', gc.get_freeze_count() > 0, file=sys.stderr))\n"
        "from dcsm_cache.cli import main\nmain(sys.argv[1:], prog_name='dcsm-cache')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    assert done.returncode == code, done.stderr
    assert done.stderr.rstrip().endswith("FROZEN True"), done.stderr  # the probe, registered first, runs last
    assert ("shapes_binding" in done.stdout) if code == 0 else ("dcsm-cache: error:" in done.stderr)
