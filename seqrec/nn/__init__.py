"""Reusable blocks shared by models (importable from model files: no training code)."""
