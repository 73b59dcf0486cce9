"""The model: shared transformer trunk, per-modality encoders, and the multi-modality ImageBind."""
