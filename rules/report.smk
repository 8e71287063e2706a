# Every result of this configuration merged into results/<config name>/summary.md (and a CSV beside it):
# the choice benchmarks' table, the paper's columns, a zero-shot table and a retrieval table.


rule report:
    input:
        PLAN.targets,
    output:
        md=PLAN.summary,
        csv=PLAN.summary.replace(".md", ".csv"),
    log:
        f"logs/{NAME}/report.log",
    conda:
        "../environment.yml"
    params:
        code=code_fingerprint("report"),
    shell:
        "dcsm-cache report {input} --out {output.md} > {log} 2>&1"
