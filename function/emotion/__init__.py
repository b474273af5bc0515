"""Facial emotion classification service: bytes -> image -> tensor -> probabilities -> JSON."""
