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
