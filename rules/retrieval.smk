# Image-text retrieval on a Karpathy split (COCO 5k, Flickr30k 1k): one result per (backbone, dataset)
# under results/<config name>/, recall at k in both directions from the pooled embeddings.


rule retrieval:
    input:
        "stores/{backbone}/{dataset}.done",
    output:
        f"results/{NAME}/{{backbone}}/{{dataset}}/retrieval.json",
    log:
        f"logs/{NAME}/retrieval/{{backbone}}/{{dataset}}.log",
    conda:
        "../environment.yml"
    params:
        store=lambda wc: store(wc.backbone, wc.dataset),
        settings=lambda wc: task_settings("retrieval", wc),
        code=code_fingerprint("retrieval"),
    shell:
        "dcsm-cache retrieval --store {params.store} --out {output} --backbone-name {wildcards.backbone} {params.settings} > {log} 2>&1"
