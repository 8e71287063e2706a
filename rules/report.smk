# Every result merged into one Markdown table and a CSV.


rule report:
    input:
        eval_targets(),
    output:
        md="results/summary.md",
        csv="results/summary.csv",
    log:
        "logs/report.log",
    conda:
        "../environment.yml"
    shell:
        "dcsm-cache report {input} --out {output.md} > {log} 2>&1"
