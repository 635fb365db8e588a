"""The small configs the board tests build: one definition for the real and the stand-in toolchain."""

from memprop.model.config import Config

#: A six-unit network on one MAC lane: elaborates and synthesises in seconds.
TINY = Config.for_algorithm("eqprop", network={"n": 6}, numerics="fixed", train={"batch_size": 1},
                            device={"preset": "linear-64"}, hw={"lanes": 1})
#: TINY as the iCEBreaker's own design is built, to fit the UP5K: nearest rounding needs no
#: Threefry unit (about 700 logic cells; with it the design needs 5759 of 5280).
FITS_ICE40 = TINY.replace(fixed={"rounding": "nearest"}, hw={"learn_lanes": 1})
