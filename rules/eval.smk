# One result per (backbone, benchmark, scorer). A benchmark's `settings` are this rule's params, so
# editing them reruns that benchmark's evaluations and the report, nothing else.


def scorer_checkpoint(wc):
    """dcsm: the scorer this workflow trains; dcsm-paper: the reference checkpoint the backbone names."""
    if wc.scorer == "dcsm":
        return [f"models/{wc.backbone}/dcsm.pt"]
    if wc.scorer == "dcsm-paper":
        return [config["backbones"][wc.backbone]["dcsm_paper"]]
    return []


def scorer_flags(wc):
    return " ".join(f"--checkpoint {c}" for c in scorer_checkpoint(wc))


rule evaluate:
    input:
        store="stores/{backbone}/{benchmark}.done",
        scorer=scorer_checkpoint,
    output:
        "results/{backbone}/{benchmark}/{scorer}.json",
    params:
        store=lambda wc: store(wc.backbone, wc.benchmark),
        checkpoint=scorer_flags,
        settings=lambda wc: sets(config["evaluate"]["benchmarks"][wc.benchmark].get("settings")),
    log:
        "logs/eval/{backbone}/{benchmark}/{scorer}.log",
    shell:
        "dcsm-cache eval --store {params.store} --scorer {wildcards.scorer} {params.checkpoint} "
        "--out {output} {params.settings} > {log} 2>&1"
