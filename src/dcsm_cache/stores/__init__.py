"""Feature stores: the only code that knows the on-disk layout.

store = FeatureStore.open("stores/shapes-clip/shapes_spatial.zarr")
store.image_tokens[0:32]        # [32, P, D] float16, unit-norm rows
export_hdf5(store.path, "shapes_spatial.h5")   # the same arrays and attributes, for HDF5 readers
"""

from .feature_store import CHUNK_BYTES, SCHEMA_VERSION, FeatureStore, StoreShape, part_ranges
from .hdf5 import export_hdf5, import_hdf5

__all__ = ["CHUNK_BYTES", "SCHEMA_VERSION", "FeatureStore", "StoreShape", "export_hdf5", "import_hdf5", "part_ranges"]
