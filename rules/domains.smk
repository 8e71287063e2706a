# The domain-generalisation study (config/domains.yaml, workflow/domains.py): the rendered domains, then per
# mixture the existing items -> pretrain -> extract -> zeroshot rules (backbone domains-<mixture>), then here
# the Figure-2 table and, from the cache alone, CKA, UMAP and store statistics per {mixture}.

if DOMAINS:

    wildcard_constraints:
        mixture="|".join(DOMAINS.mixtures),
        features="pooled|tokens",

    rule domains_world:
        output:
            f"{DOMAINS.root}/domains.json",
        log:
            "logs/domains/world.log",
        conda:
            "../environment.yml"
        params:
            root=lambda wc, output: os.path.dirname(output[0]),
            settings=sets(config["domains"].get("settings")),
            code=code_fingerprint("domains"),
        shell:
            "dcsm-cache domains world --out {params.root} {params.settings} > {log} 2>&1"

    rule domains_table:
        input:
            world=f"{DOMAINS.root}/domains.json",
            results=[DOMAINS.zeroshot(m) for m in DOMAINS.mixtures],
        output:
            multiext(f"{DOMAINS.out}/figure2", ".md", ".csv", ".png"),
        log:
            f"logs/{NAME}/domains/table.log",
        conda:
            "../environment.yml"
        params:
            out=lambda wc, output: os.path.splitext(output[0])[0],
            root=lambda wc, input: os.path.dirname(input.world),
            pairs=" ".join(f"--result {m}={DOMAINS.zeroshot(m)}" for m in DOMAINS.mixtures),
            test=f"--test-domain {DOMAINS.test_domain} --test-classes {','.join(DOMAINS.test_classes)}",
            code=code_fingerprint("domains_table"),
        shell:
            "dcsm-cache domains table --root {params.root} {params.test} {params.pairs} --out {params.out} "
            "> {log} 2>&1"

    rule domains_cka_mixtures:
        input:
            [f"stores/domains-{m}/domains_eval.done" for m in DOMAINS.mixtures],
        output:
            csv=f"{DOMAINS.out}/cka-mixtures-{{features}}.csv",
            png=f"{DOMAINS.out}/cka-mixtures-{{features}}.png",
        log:
            f"logs/{NAME}/domains/cka-mixtures-{{features}}.log",
        conda:
            "../environment.yml"
        params:
            stores=" ".join(DOMAINS.store(m) for m in DOMAINS.mixtures),
            labels=",".join(DOMAINS.mixtures),
            settings=sets(config["domains"].get("analysis")),
            code=code_fingerprint("analyze"),
        shell:
            "dcsm-cache analyze cka {params.stores} --labels {params.labels} --features {wildcards.features} "
            "--out {output.csv} --png {output.png} {params.settings} > {log} 2>&1"

    rule domains_cka_domains:
        input:
            "stores/domains-{mixture}/domains_eval.done",
        output:
            csv=f"{DOMAINS.out}/cka-domains-{{mixture}}-{{features}}.csv",
            png=f"{DOMAINS.out}/cka-domains-{{mixture}}-{{features}}.png",
        log:
            f"logs/{NAME}/domains/cka-domains-{{mixture}}-{{features}}.log",
        conda:
            "../environment.yml"
        params:
            store=lambda wc: DOMAINS.store(wc.mixture),
            settings=sets(config["domains"].get("analysis")),
            code=code_fingerprint("analyze"),
        shell:
            "dcsm-cache analyze cka {params.store} --across domains --features {wildcards.features} "
            "--out {output.csv} --png {output.png} {params.settings} > {log} 2>&1"

    rule domains_umap:
        input:
            "stores/domains-{mixture}/domains_eval.done",
        output:
            f"{DOMAINS.out}/umap-{{mixture}}-{{features}}.png",
        log:
            f"logs/{NAME}/domains/umap-{{mixture}}-{{features}}.log",
        conda:
            "../environment.yml"
        params:
            store=lambda wc: DOMAINS.store(wc.mixture),
            settings=sets(config["domains"].get("analysis")),
            code=code_fingerprint("analyze"),
        shell:
            "dcsm-cache analyze umap {params.store} --features {wildcards.features} --out {output} "
            "{params.settings} > {log} 2>&1"

    rule domains_stats:
        input:
            "stores/domains-{mixture}/domains_eval.done",
        output:
            f"{DOMAINS.out}/stats-{{mixture}}.json",
        log:
            f"logs/{NAME}/domains/stats-{{mixture}}.log",
        conda:
            "../environment.yml"
        params:
            store=lambda wc: DOMAINS.store(wc.mixture),
            settings=sets(config["domains"].get("analysis")),
            code=code_fingerprint("analyze"),
        shell:
            "dcsm-cache stats {params.store} --out {output} {params.settings} > {log} 2>&1"
