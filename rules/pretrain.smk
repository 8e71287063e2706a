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
    # settings.threads (a small model's pretraining: 1, so that two run side by side), else every core
    threads: lambda wc: config["pretrain"][wc.backbone].get("settings", {}).get("threads") or workflow.cores
    params:
        settings=lambda wc: sets(
            {"arch": config["pretrain"][wc.backbone]["arch"], **config["pretrain"][wc.backbone].get("settings", {})}
        ),
        code=code_fingerprint("pretrain"),
    shell:
        "dcsm-cache pretrain --items {input} --out {output} {params.settings} > {log} 2>&1"
