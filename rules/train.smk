# The DCSM scorer, trained from the training set's feature store of each backbone.
# --resume: a run killed mid-way continues from models/{backbone}/dcsm.pt.resume (same final weights).


if TRAINED in RECIPES:  # the default recipe, `train: dataset:`

    rule train:
        input:
            f"stores/{{backbone}}/{config['train']['dataset']}.done",
        output:
            "models/{backbone}/dcsm.pt",
        log:
            "logs/train/{backbone}.log",
        # first when ready: the gallery waits on it, the zero-shot and cosine evaluations can go later
        priority: 1
        conda:
            "../environment.yml"
        threads: workflow.cores
        params:
            store=lambda wc: store(wc.backbone, config["train"]["dataset"]),
            settings=sets(config["train"].get("settings")),
            device=config["train"]["device"],
            code=code_fingerprint("train"),
        shell:
            "dcsm-cache train --store {params.store} --out {output} --device {params.device} --resume "
            "{params.settings} > {log} 2>&1"


# A recipe of `train: recipes:` (dcsm_cache/workflow/recipes.py): its datasets' stores together, one batch of
# each per step; the scorer is named by the recipe in results and the report.
rule train_recipe:
    input:
        lambda wc: [f"stores/{wc.backbone}/{d}.done" for d in RECIPES[wc.recipe].datasets],
    output:
        "models/{backbone}/{recipe}.pt",
    log:
        "logs/train/{backbone}/{recipe}.log",
    conda:
        "../environment.yml"
    threads: workflow.cores
    params:
        stores=recipe_stores,
        settings=lambda wc: sets(RECIPES[wc.recipe].settings),
        device=config["train"]["device"],
        code=code_fingerprint("train"),
    shell:
        "dcsm-cache train {params.stores} --out {output} --device {params.device} --resume "
        "{params.settings} > {log} 2>&1"
