# One Zarr feature store per (backbone, dataset), shared by every configuration that names both. The store is a folder Snakemake must not delete
# on a rerun (finished parts are kept), so each rule's output is a marker file beside it.


rule extract:
    input:
        manifest="manifests/{dataset}.json",
        weights=lambda wc: backbone_weights(wc.backbone),
    output:
        touch("stores/{backbone}/{dataset}.done"),
    log:
        "logs/extract/{backbone}/{dataset}.log",
    conda:
        "../environment.yml"
    threads: workflow.cores
    params:
        model=lambda wc: backbone_model(wc.backbone),
        store=lambda wc: store(wc.backbone, wc.dataset),
        device=config["extract"]["device"],
        settings=lambda wc: sets(
            {**config["extract"].get("settings", {}), **dataset_cfg(wc.dataset).get("extract", {})}
        ),
        code=code_fingerprint("extract"),
    shell:
        "dcsm-cache extract --items {input.manifest} --backbone {params.model} --out {params.store} --overwrite "
        "--device {params.device} {params.settings} > {log} 2>&1"
