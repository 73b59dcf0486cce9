"""The paper's claims as commands, on the built-in world: `quickstart` (emergent zero-shot, never-paired
retrieval and embedding arithmetic after align + bind), `scaling` (a stronger image encoder lifts every bound
modality) and `fewshot` (probes on bound embeddings against encoders trained from scratch)."""
