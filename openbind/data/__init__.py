"""The data side: manifests (`manifest`), readers of published dataset layouts (`readers`), the per-item
pipeline for DataLoader workers (`items`) and the workers' reusable shared-memory batches (`shared_batches`).

What is specific to one modality (its transforms, its suffixes) lives with the modality and is found through
the registry; nothing here lists modalities.
"""
