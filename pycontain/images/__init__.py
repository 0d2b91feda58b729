"""Images: references, the content and layer store, safe layer extraction, archives.

Layering, bottom up: ``reference`` (names) and ``config`` (validated config JSON) know
nothing of disk; ``unpack`` turns one layer tar into one directory; ``archive`` reads
what an image archive holds; ``store`` puts it all on disk under ``<data-root>/image``.
"""

from pycontain.images.archive import ArchivedImage, ArchivedLayer, ImageArchive
from pycontain.images.config import (
    ConfigBlob,
    Image,
    ImageConfig,
    host_architecture,
    parse_config_blob,
)
from pycontain.images.reference import Reference, is_image_id, parse_reference
from pycontain.images.store import ImageStore
from pycontain.images.unpack import UnpackedLayer, unpack_layer

__all__ = [
    "ArchivedImage",
    "ArchivedLayer",
    "ConfigBlob",
    "Image",
    "ImageArchive",
    "ImageConfig",
    "ImageStore",
    "Reference",
    "UnpackedLayer",
    "host_architecture",
    "is_image_id",
    "parse_config_blob",
    "parse_reference",
    "unpack_layer",
]
