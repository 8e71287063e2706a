# Zero-shot classification of a prompt-table dataset (image folders, DomainNet, the shapes world's objects):
# one result per (backbone, dataset) under results/<config name>/, top-k from the pooled embeddings.


rule zeroshot:
    input:
        "stores/{backbone}/{dataset}.done",
    output:
        f"results/{NAME}/{{backbone}}/{{dataset}}/zeroshot.json",
    log:
        f"logs/{NAME}/zeroshot/{{backbone}}/{{dataset}}.log",
    conda:
        "../environment.yml"
    params:
        store=lambda wc: store(wc.backbone, wc.dataset),
        settings=lambda wc: task_settings("zeroshot", wc),
        code=code_fingerprint("zeroshot"),
    shell:
        "dcsm-cache zeroshot --store {params.store} --out {output} --backbone-name {wildcards.backbone} {params.settings} > {log} 2>&1"
