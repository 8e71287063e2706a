# The DCSM scorer, trained from the training set's feature store of each backbone.


rule train:
    input:
        f"stores/{{backbone}}/{config['train']['dataset']}.done",
    output:
        "models/{backbone}/dcsm.pt",
    params:
        store=lambda wc: store(wc.backbone, config["train"]["dataset"]),
        settings=sets(config["train"].get("settings")),
    threads: workflow.cores
    log:
        "logs/train/{backbone}.log",
    shell:
        "dcsm-cache train --store {params.store} --out {output} --device {config[train][device]} "
        "{params.settings} > {log} 2>&1"
