"""The shapes-world CLIP, for the world's users: re-exported from where it is registered (`tokens/shapes_clip.py`).

    from dcsm_cache.pipeline.world import tinyclip      # registers shapes-clip and shapes-clip-tiny with open_clip
    model = open_clip.create_model("shapes-clip")

The trunk and the model configs are registered by `tokens/shapes_clip.py`, which naming any backbone
imports; this module is the world's name for it.
"""

from ..tokens.shapes_clip import ShapesConvNet, dcsm_shapes_convnet, dcsm_shapes_convnet_tiny

__all__ = ["ShapesConvNet", "dcsm_shapes_convnet", "dcsm_shapes_convnet_tiny"]
