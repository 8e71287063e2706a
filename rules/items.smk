# The item manifest of every dataset, read from its folder in its native layout.


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
        compat=lambda wc: (
            f"--paper-compat {dataset_cfg(wc.dataset)['paper_compat']}"
            if dataset_cfg(wc.dataset).get("paper_compat")
            else ""
        ),
        settings=lambda wc: sets(dataset_cfg(wc.dataset).get("options")),
    shell:
        "dcsm-cache items {params.benchmark} --root {params.root} --out {output} {params.compat} {params.settings} "
        "> {log} 2>&1"
