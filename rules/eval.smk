# One result per (backbone, benchmark, scorer), under results/<config name>/. A benchmark's `settings` are
# this rule's params, so editing them reruns that benchmark's evaluations and the report, nothing else;
# so does a change to the evaluation code (`code`, the fingerprint of the modules that score).


rule evaluate:
    input:
        store="stores/{backbone}/{benchmark}.done",
        scorer=scorer_checkpoint,
    output:
        f"results/{NAME}/{{backbone}}/{{benchmark}}/{{scorer}}.json",
    log:
        f"logs/{NAME}/eval/{{backbone}}/{{benchmark}}/{{scorer}}.log",
    conda:
        "../environment.yml"
    params:
        store=lambda wc: store(wc.backbone, wc.benchmark),
        checkpoint=scorer_flags,
        settings=lambda wc: sets(config["evaluate"]["benchmarks"][wc.benchmark].get("settings")),
        code=code_fingerprint("evaluate"),
    shell:
        "dcsm-cache eval --store {params.store} --scorer {wildcards.scorer} {params.checkpoint} "
        "--out {output} --backbone-name {wildcards.backbone} {params.settings} > {log} 2>&1"


# A recipe's scorer (rule `train_recipe`) on a benchmark that names it among its scorers: the DCSM scorer,
# its result named by the recipe.
rule evaluate_recipe:
    input:
        store="stores/{backbone}/{benchmark}.done",
        scorer=lambda wc: RECIPES[wc.recipe].checkpoint(wc.backbone),
    output:
        f"results/{NAME}/{{backbone}}/{{benchmark}}/{{recipe}}.json",
    log:
        f"logs/{NAME}/eval/{{backbone}}/{{benchmark}}/{{recipe}}.log",
    conda:
        "../environment.yml"
    params:
        store=lambda wc: store(wc.backbone, wc.benchmark),
        settings=lambda wc: sets(config["evaluate"]["benchmarks"][wc.benchmark].get("settings")),
        scorer=TRAINED,
        code=code_fingerprint("evaluate"),
    shell:
        "dcsm-cache eval --store {params.store} --scorer {params.scorer} --checkpoint {input.scorer} "
        "--scorer-name {wildcards.recipe} --out {output} --backbone-name {wildcards.backbone} {params.settings} "
        "> {log} 2>&1"
