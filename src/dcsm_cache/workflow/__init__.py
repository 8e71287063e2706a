"""What the Snakemake workflow asks of the package, cheap to import (no torch, numpy or open_clip).

    from dcsm_cache.workflow import code_fingerprint, plan, set_flags
    PLAN = plan(config)                      # rules/common.smk: the results this machine can make

plan.py (which results a config can make here, and what is missing for the others), params.py (the
`--set` flags of a rule, from settings in one canonical form), recipes.py (the DCSM scorers a config
trains, each from its datasets' stores), worlds.py (the worlds a config draws and the benchmark folders
it exports from them), code.py (a fingerprint of the source files each stage runs, so that a changed
package reruns what it computes), imports.py (those files, found by following the imports of the stage's
commands).
"""

from .code import STAGES, code_fingerprint, items_fingerprint, stage_modules
from .params import canonical, canonical_json, set_flags
from .plan import PROBE, TASKS, Missing, Plan, plan, probe_shots, probe_task, result_path, strict_flag, summary_path
from .recipes import Recipe, recipes
from .worlds import Worlds

__all__ = [
    "PROBE",
    "STAGES",
    "TASKS",
    "Missing",
    "Plan",
    "Recipe",
    "Worlds",
    "canonical",
    "canonical_json",
    "code_fingerprint",
    "items_fingerprint",
    "plan",
    "probe_shots",
    "probe_task",
    "recipes",
    "result_path",
    "set_flags",
    "stage_modules",
    "strict_flag",
    "summary_path",
]
