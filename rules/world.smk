# The shapes world: images, scenes and probe sets, generated here (nothing is downloaded).


rule world:
    output:
        f"{config['world']['root']}/world.json",
    log:
        "logs/world.log",
    conda:
        "../environment.yml"
    threads: min(5, workflow.cores)  # one process per split
    params:
        settings=sets(config["world"].get("settings")),
        root=lambda wc, output: os.path.dirname(output[0]),
        code=code_fingerprint("world"),
    shell:
        "dcsm-cache world --out {params.root} --workers {threads} {params.settings} > {log} 2>&1"


# More worlds than the default's (`worlds:` folder -> settings): the same kind of scenes drawn otherwise.
rule world_more:
    output:
        "{root}/world.json",
    log:
        "logs/world/{root}.log",
    wildcard_constraints:
        root=name_pattern(WORLDS.extra),
    conda:
        "../environment.yml"
    threads: min(5, workflow.cores)
    params:
        settings=lambda wc: sets(WORLDS.extra[wc.root]),
        code=code_fingerprint("world"),
    shell:
        "dcsm-cache world --out {wildcards.root} --workers {threads} {params.settings} > {log} 2>&1"


# A world's probe sets in What'sUp's, CLEVR-bind's and SugarCREPE's own layouts (`exports:` folder -> world),
# read back by those benchmarks' loaders (rules/items.smk).
rule export_world:
    input:
        lambda wc: f"{WORLDS.exports[wc.out]}/world.json",
    output:
        "{out}/export.json",
    log:
        "logs/export/{out}.log",
    wildcard_constraints:
        out=name_pattern(WORLDS.exports),
    conda:
        "../environment.yml"
    params:
        world=lambda wc: WORLDS.exports[wc.out],
        code=code_fingerprint("export"),
    shell:
        "dcsm-cache export-world --world {params.world} --out {wildcards.out} > {log} 2>&1"
