# The backbones this workflow pretrains itself (the shapes-world CLIP), from a dataset's (image, caption) pairs.


rule pretrain:
    input:
        lambda wc: f"manifests/{config['pretrain'][wc.backbone]['dataset']}.json",
    output:
        "models/{backbone}.pt",
    log:
        "logs/pretrain/{backbone}.log",
    conda:
        "../environment.yml"
    threads: workflow.cores
    params:
        settings=lambda wc: sets(
            {"arch": config["pretrain"][wc.backbone]["arch"], **config["pretrain"][wc.backbone].get("settings", {})}
        ),
        code=code_fingerprint("pretrain"),
    shell:
        "dcsm-cache pretrain --items {input} --out {output} {params.settings} > {log} 2>&1"
