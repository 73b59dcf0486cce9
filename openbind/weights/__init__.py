"""Checkpoints: the official format, safetensors files, downloads."""
