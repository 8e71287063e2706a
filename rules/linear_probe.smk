# Linear probes, the CLIP paper's second protocol: a logistic regression on the frozen image features of a
# classification set's train split, scored on its test split, from the two stores. One result per (backbone, test
# dataset, shots) under results/<config name>/: `linear_probe-full` on the whole train split, `linear_probe-Kshot`
# on K images a class per seed, averaged (config `linear_probe:`). The same test set's zero-shot is its baseline.


rule linear_probe:
    input:
        train=lambda wc: f"stores/{wc.backbone}/{probe_train(wc.dataset)}.done",
        test="stores/{backbone}/{dataset}.done",
    output:
        f"results/{NAME}/{{backbone}}/{{dataset}}/linear_probe-{{shots}}.json",
    log:
        f"logs/{NAME}/linear_probe/{{backbone}}/{{dataset}}-{{shots}}.log",
    conda:
        "../environment.yml"
    params:
        train=lambda wc: store(wc.backbone, probe_train(wc.dataset)),
        test=lambda wc: store(wc.backbone, wc.dataset),
        shots=probe_flags,
        settings=lambda wc: task_settings("linear_probe", wc),
        code=code_fingerprint("linear_probe"),
    shell:
        "dcsm-cache linear-probe --train {params.train} --test {params.test} --out {output} "
        "--backbone-name {wildcards.backbone} {params.shots} {params.settings} > {log} 2>&1"
