"""memprop.boards."""
