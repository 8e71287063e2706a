# Every result of this configuration merged into results/<config name>/: summary.md with a CSV, a JSON and an
# HTML page beside it (the choice benchmarks' table, the paper's columns, zero-shot, retrieval and linear-probe
# tables), the figures, and per backbone with a trained scorer a gallery of heatmaps. Table, figures and gallery
# are marked for Snakemake's report: `snakemake --report results/report.html` (report/*.rst hold the captions).


rule gallery:
    input:
        stores=lambda wc: [f"stores/{wc.backbone}/{b}.done" for b in sorted(GALLERY[wc.backbone])],
        scorer="models/{backbone}/dcsm.pt",
    output:
        report(
            directory(f"results/{NAME}/gallery-{{backbone}}"),
            patterns=["{name}.png"],
            caption="../report/gallery.rst",
            category="Gallery",
            subcategory="{backbone}",
        ),
    log:
        f"logs/{NAME}/gallery/{{backbone}}.log",
    priority: 1  # the longest job after training: started before the evaluations that run beside it
    conda:
        "../environment.yml"
    params:
        stores=gallery_flags,
        per_kind=config["report"]["gallery_per_kind"],
        code=code_fingerprint("gallery"),
    shell:
        "dcsm-cache gallery {params.stores} --checkpoint {input.scorer} --per-kind {params.per_kind} --out {output} "
        "> {log} 2>&1"


rule report:
    input:
        results=PLAN.targets,
        gallery=[f"results/{NAME}/gallery-{b}" for b in sorted(GALLERY)],
    output:
        md=PLAN.summary,
        csv=PLAN.summary.replace(".md", ".csv"),
        json=PLAN.summary.replace(".md", ".json"),
        html=report(PLAN.summary.replace(".md", ".html"), caption="../report/table.rst", category="Table"),
        accuracy=report(
            os.path.join(os.path.dirname(PLAN.summary), "accuracy.png"),
            caption="../report/accuracy.rst",
            category="Figures",
        ),
        gain=report(
            os.path.join(os.path.dirname(PLAN.summary), "gain.png"),
            caption="../report/gain.rst",
            category="Figures",
        ),
        shots=report(
            os.path.join(os.path.dirname(PLAN.summary), "shots.png"),
            caption="../report/shots.rst",
            category="Figures",
        ),
    log:
        f"logs/{NAME}/report.log",
    conda:
        "../environment.yml"
    params:
        gallery=lambda wc, input: " ".join(f"--gallery {g}" for g in input.gallery),
        code=code_fingerprint("report"),
    shell:
        "dcsm-cache report {input.results} --out {output.md} {params.gallery} > {log} 2>&1"
