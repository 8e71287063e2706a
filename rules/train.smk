# The DCSM scorer, trained from the training set's feature store of each backbone.
# --resume: a run killed mid-way continues from models/{backbone}/dcsm.pt.resume (same final weights).


rule train:
    input:
        f"stores/{{backbone}}/{config['train']['dataset']}.done",
    output:
        "models/{backbone}/dcsm.pt",
    log:
        "logs/train/{backbone}.log",
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
