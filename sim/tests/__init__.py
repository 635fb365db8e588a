"""cocotb testbenches (run by memprop.sim.runner.run_cocotb, not collected by pytest)."""
