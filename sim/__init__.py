"""memprop.sim."""
