# The shapes world, the item manifests of every dataset, and the backbones this workflow pretrains.


rule world:
    output:
        f"{config['world']['root']}/world.json",
    params:
        settings=sets(config["world"].get("settings")),
        root=config["world"]["root"],
    log:
        "logs/world.log",
    shell:
        "dcsm-cache world --out {params.root} {params.settings} > {log} 2>&1"


rule items:
    input:
        lambda wc: world_marker(wc.dataset) + dataset_file(wc.dataset),
    output:
        "manifests/{dataset}.json",
    params:
        benchmark=lambda wc: dataset_cfg(wc.dataset).get("benchmark", wc.dataset),
        root=lambda wc: dataset_cfg(wc.dataset)["root"],
        compat=lambda wc: (f"--paper-compat {dataset_cfg(wc.dataset)['paper_compat']}"
                           if dataset_cfg(wc.dataset).get("paper_compat") else ""),
        settings=lambda wc: sets(dataset_cfg(wc.dataset).get("options")),
    log:
        "logs/items/{dataset}.log",
    shell:
        "dcsm-cache items {params.benchmark} --root {params.root} --out {output} {params.compat} {params.settings} "
        "> {log} 2>&1"


rule pretrain:
    input:
        lambda wc: f"manifests/{config['pretrain'][wc.backbone]['dataset']}.json",
    output:
        "models/{backbone}.pt",
    params:
        settings=lambda wc: sets({"arch": config["pretrain"][wc.backbone]["arch"],
                                  **config["pretrain"][wc.backbone].get("settings", {})}),
    threads: workflow.cores
    log:
        "logs/pretrain/{backbone}.log",
    shell:
        "dcsm-cache pretrain --items {input} --out {output} {params.settings} > {log} 2>&1"
