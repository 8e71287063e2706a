# One Zarr feature store per (backbone, dataset), shared by every configuration that names both. Its
# extraction is `nparts` jobs (config `extract: nparts:`, or the dataset's own `extract: nparts:`), each
# filling one chunk-aligned part and declaring the resources it needs; one local rule gathers them. The
# store is a folder Snakemake must not delete on a rerun (finished parts are kept), so each job's output
# is a marker file beside it: a killed part leaves none and is redone on rerun, the others are not touched.


rule extract_part:
    input:
        manifest="manifests/{dataset}.json",
        weights=lambda wc: backbone_weights(wc.backbone),
    output:
        touch("stores/{backbone}/{dataset}.parts/{part}-of-{nparts}.done"),
    log:
        "logs/extract/{backbone}/{dataset}.{part}-of-{nparts}.log",
    conda:
        "../environment.yml"
    threads: lambda wc: extraction_of(wc).threads or workflow.cores  # config `extract: threads:` (0: every core)
    resources:
        gpu=lambda wc: extraction_of(wc).resources["gpu"],
        mem_mb=lambda wc: extraction_of(wc).resources["mem_mb"],
        runtime=lambda wc: extraction_of(wc).resources["runtime"],
    params:
        model=lambda wc: backbone_model(wc.backbone),
        store=lambda wc: store(wc.backbone, wc.dataset),
        device=config["extract"]["device"],
        settings=lambda wc: sets(extraction_of(wc).settings),
        code=code_fingerprint("extract"),
    shell:
        "dcsm-cache extract --items {input.manifest} --backbone {params.model} --out {params.store} --overwrite "
        "--part {wildcards.part} --nparts {wildcards.nparts} --device {params.device} {params.settings} > {log} 2>&1"


rule extract:
    input:
        lambda wc: extraction_of(wc).markers(wc.backbone, wc.dataset),
    output:
        touch("stores/{backbone}/{dataset}.done"),
    log:
        "logs/extract/{backbone}/{dataset}.log",
    localrule: True
    conda:
        "../environment.yml"
    params:
        store=lambda wc: store(wc.backbone, wc.dataset),
    shell:
        "dcsm-cache parts {params.store} > {log} 2>&1"
