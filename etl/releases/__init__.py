"""Releases: the results folder and publishing (registry), the quality gate, the manifest, the model card, retention, the headline numbers in words."""
