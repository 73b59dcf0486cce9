"""The paper's claims as commands, on the built-in world: `quickstart` (emergent zero-shot, never-paired
retrieval and embedding arithmetic after align + bind)."""
