# The item manifest of every dataset, read from its folder in its native layout (shared by every configuration).
# A dataset is named by its key, so results and reports show it; one read with the reference's captions is named
# BENCHMARK+paper (+paper-baseline), the names the paper's table looks for.


rule items:
    input:
        lambda wc: world_marker(wc.dataset) + dataset_file(wc.dataset),
    output:
        "manifests/{dataset}.json",
    log:
        "logs/items/{dataset}.log",
    conda:
        "../environment.yml"
    params:
        benchmark=lambda wc: dataset_cfg(wc.dataset).get("benchmark", wc.dataset),
        root=lambda wc: dataset_cfg(wc.dataset)["root"],
        naming=lambda wc: (
            f"--paper-compat {dataset_cfg(wc.dataset)['paper_compat']}"
            if dataset_cfg(wc.dataset).get("paper_compat")
            else f"--name {wc.dataset}"
        ),
        settings=lambda wc: sets(dataset_cfg(wc.dataset).get("options")),
        code=items_code,
    shell:
        "dcsm-cache items {params.benchmark} --root {params.root} --out {output} {params.naming} {params.settings} "
        "> {log} 2>&1"
