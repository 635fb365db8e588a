"""memprop.boards: board tops (engine + host link + UART), YoWASP builds, the host side of the
link and weight images. See docs/hostlink.md."""
