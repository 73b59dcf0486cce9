"""Decoding of user files: no model code."""
