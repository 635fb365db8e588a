"""memprop.rtl."""
