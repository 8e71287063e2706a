# dcsm-cache: shapes world -> tiny CLIP -> Zarr feature stores -> DCSM scorer -> results/<config name>/summary.md
#
#   snakemake --cores all                                  # the embedded default (config/config.yaml)
#   snakemake --cores all --configfile config/paper.yaml   # the paper's backbones and benchmarks
#
# Every rule's command is a `dcsm-cache` command a person can paste and run; each writes a log.
import os

from snakemake.utils import min_version, validate

min_version("8.0")

# Rule logs are files, not terminals: a progress bar line every 30 s instead of ten a second
# (tqdm ≥4.66 reads its defaults from TQDM_* variables; one set by the user wins).
os.environ.setdefault("TQDM_MININTERVAL", "30")

# A --configfile on the command line is a whole configuration (config/paper.yaml, a test config);
# without one, the embedded default is used.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# The domain study (config/domains.yaml): its `domains:` section becomes datasets, backbones and zero-shot results.
from dcsm_cache.workflow.domains import expand_domains

DOMAINS = expand_domains(config)


validate(config, os.path.join(workflow.basedir, "config", "config.schema.yaml"))

# CPU kernels (`cpu_isa`, src/dcsm_cache/isa.py): every job's `dcsm-cache` reads it from its environment.
# (A prefix replaces Snakemake's own, so its strict mode is kept here.)
shell.prefix(f"set -euo pipefail; export DCSM_CPU_ISA={config.get('cpu_isa', 'native')}; ")


# Warm starts (`warm_start`, src/dcsm_cache/workflow/warm.py): on a local run, each job's `dcsm-cache` is forked from
# one process that has imported torch and the model stack once, instead of importing them again.
from dcsm_cache.workflow import warm


onstart:
    warm.start(workflow, config)


onsuccess:
    warm.stop()


onerror:
    warm.stop()


# `snakemake --report results/report.html`: this page first, then the table, figures and gallery (rules/report.smk).
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/world.smk"
include: "rules/items.smk"
include: "rules/pretrain.smk"
include: "rules/extract.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/zeroshot.smk"
include: "rules/retrieval.smk"
include: "rules/linear_probe.smk"
include: "rules/report.smk"
include: "rules/domains.smk"


# This configuration's report, from the results whose weights and folders are on this machine (rules/common.smk).
rule all:
    input:
        PLAN.summary,
        DOMAINS.targets if DOMAINS else [],
