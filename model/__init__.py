"""memprop.model."""
