"""Streaming SAM 2: the model, its memory bank, prompts, seeding policy, pointer input and weights."""
