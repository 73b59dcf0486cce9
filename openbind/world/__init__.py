"""A synthetic world in which every openbind modality can be generated, paired and evaluated on a laptop.

Scenes share latent concepts (10 object classes, 4 environments, 6 activities) and each modality carries
what it physically would: images and captions, the object's sound over the environment's ambience, depth
of the same geometry, material temperatures in thermal, and head-camera videos with the wearer's IMU. The
manifests pair modalities exactly as ImageBind's training data does (image-text, image-audio, image-depth,
image-thermal, video-IMU), so alignment of never-paired modalities through images can be seen directly.

    from openbind.world import write_world
    info = write_world("world", seed=0, progress=True)
    info.manifests["audio_train"]  # world/audio_train.csv: image,audio,label,object,environment

See docs/world.md.
"""

from openbind.world.concepts import ACTIVITIES, ENVIRONMENTS, OBJECTS, Activity, Environment, ObjectClass
from openbind.world.generate import WorldInfo, write_world

__all__ = [
    "ACTIVITIES",
    "ENVIRONMENTS",
    "OBJECTS",
    "Activity",
    "Environment",
    "ObjectClass",
    "WorldInfo",
    "write_world",
]
