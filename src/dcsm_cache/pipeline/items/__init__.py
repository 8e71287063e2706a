"""The item form and its manifest: every dataset becomes images, deduplicated captions and items.

    b = DatasetBuilder("whatsup_a", root="data/whatsup")
    b.add("controlled_images/mug_above_table.jpeg", ["A mug above a table", "A mug below a table"])
    ds = b.build(); write_manifest(ds, "manifests/whatsup_a.json")

form.py (ImageRef, Item, Dataset, DatasetBuilder), manifest.py (the manifest file and its fingerprint),
images.py (opening an item's image). A benchmark loader, the shapes world and a user's own folder
all produce a `Dataset`; extraction, training and evaluation only ever see this form.
"""

from .form import METRICS, Dataset, DatasetBuilder, ImageRef, Item
from .images import image_size, jpeg_bytes, open_image
from .manifest import MANIFEST_SCHEMA, fingerprint, manifest_fingerprint, read_manifest, write_manifest

__all__ = [
    "MANIFEST_SCHEMA",
    "METRICS",
    "Dataset",
    "DatasetBuilder",
    "ImageRef",
    "Item",
    "fingerprint",
    "image_size",
    "jpeg_bytes",
    "manifest_fingerprint",
    "open_image",
    "read_manifest",
    "write_manifest",
]
