"""openbind: ImageBind, whole. One embedding space for images/video, text, audio, depth, thermal and IMU.

    import openbind
    model = openbind.create_model("imagebind_huge", pretrained="imagebind_huge")
    emb = model.embed(text=["a dog barking"], vision=["dog.jpg"], audio=["bark.wav"])
    emb["audio"] @ emb["text"].T
"""

from openbind import preprocess
from openbind.config import ModelConfig
from openbind.model.config import EncoderConfig
from openbind.errors import CheckpointError, OpenBindInputError
from openbind.factory import create_model, get_model_config, list_models
from openbind.model.imagebind import ImageBind
from openbind.modalities.text.tokenizer import tokenize
from openbind.weights.official import load_official_state_dict

__all__ = [
    "CheckpointError",
    "EncoderConfig",
    "ImageBind",
    "ModelConfig",
    "OpenBindInputError",
    "create_model",
    "get_model_config",
    "list_models",
    "load_official_state_dict",
    "preprocess",
    "tokenize",
]
__version__ = "0.1.0"
