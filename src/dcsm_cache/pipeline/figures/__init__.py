"""What researchers look at: the report's figures, DCSM heatmaps of one item, a gallery, and one image scored.

    write_figures(choice_table(results), "results/default")        # plots.py: accuracy.png, gain.png
    show_item("stores/shapes-clip/shapes_spatial.zarr", 3, "item3.png", checkpoint="models/shapes-clip/dcsm.pt")
    gallery("stores/shapes-clip/shapes_spatial.zarr", "models/shapes-clip/dcsm.pt", "results/default/gallery")
    rank_captions("data/world/images/test/00001.png", ["a red circle", "a blue circle"], "shapes-clip")

plots.py (the report's figures), heatmap.py (`dcsm-cache show`: one item's maps), gallery.py (items the
cosine gets wrong and the DCSM right, and the reverse), score.py (`dcsm-cache score`: one image, any
captions). Figures are PNGs drawn with matplotlib's Agg backend (no display needed).
"""

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere below
