"""Feature stores: the only code that knows the on-disk layout.

    store = FeatureStore.open("stores/shapes-clip/shapes_spatial.zarr")
    store.image_tokens[0:32]        # [32, P, D] float16, unit-norm rows
"""
from .feature_store import CHUNK_BYTES, SCHEMA_VERSION, FeatureStore, StoreShape, part_ranges

__all__ = ["CHUNK_BYTES", "SCHEMA_VERSION", "FeatureStore", "StoreShape", "part_ranges"]
