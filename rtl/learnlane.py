"""One learning lane's datapath: correlation, quantisation and pulse programming.

Three small components, one job each, each with its own simulator test against the model
(tests/rtl/test_learnlane.py); the Learner (learn.py) instantiates W of each and sequences
them. Their arithmetic is docs/numerics.md section 5, with the widths of `Formats`:

* `CorrelatorLane`: C = sum over the minibatch of a_i a_j (HI set) minus a_i a_j (LO set);
  for a bias C = sum (a_i^HI - a_i^LO) << fa. One product per cycle, or (paired, wide
  learners) a sample's HI and LO products per cycle.
* `Quantiser`: the pulse count n from C: |C| * LR_MUL (shifts and adds, no multiplier), the
  configured rounding with the lane's draw, the shift (one more on the diagonal), +-P_max;
  LR_MUL and LR_SHIFT of the synapse's weight layer, the shift grown by the rate's decay.
* `PulseLane`: the pulses of one synapse or bias, one round per two cycles: potentiate-first
  device choice, the UP/DOWN table read (a synchronous ROM port outside the lane, shared
  between two lanes), c2c noise with the threshold of the device's class.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from memprop.model.numerics import CARRY_FRAC, LR_SHIFT_MAX, Formats, bitlen_signed

from . import formal
from .dsp import LATENCY as MULTIPLIER_LATENCY
from .dsp import Multiplier
from .hostmap import DECAY_BITS, DECAY_STEPS_MAX
from .learnplan import c2c_thresholds, max_learn_shift, rate_table
from .schedule import ceil_log2

#: CorrelatorLane: cycles from operands at the inputs to their product in the sum (the
#: multiplier's operand and product registers, dsp.py, then the sum).
CORRELATOR_LATENCY = MULTIPLIER_LATENCY + 1
#: Noise bits kept per draw: bit 15 (direction) and bits 31..16 (the threshold comparison).
NOISE_BITS = 17


def csd_digits(k: int) -> list[tuple[int, int]]:
    """Canonical signed digits of k > 0: [(shift, +1 or -1)], at most one non-zero digit in two."""
    digits, shift = [], 0
    while k:
        if k & 1:
            d = 2 - (k & 3)          # +1 if k = 1 mod 4, -1 if k = 3 mod 4
            digits.append((shift, d))
            k -= d
        k >>= 1
        shift += 1
    return digits


def mul_const(x: Value, k: int, width: int) -> Value:
    """x * k for a constant k >= 0 as shifts and adds (canonical signed digits): no DSP block.

    `x` is unsigned; the result is `width` bits (the caller proves it fits).
    """
    if k == 0:
        return Const(0, width)
    terms = [(x << s) if d > 0 else -(x << s) for s, d in csd_digits(k)]
    while len(terms) > 1:                      # a balanced adder tree: ceil(log2(digits)) levels
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return Value.cast(terms[0])[:width]


def learn_widths(fmt: Formats) -> dict:
    """Widths shared by the lanes and the learner."""
    a_bits = bitlen_signed(max(fmt.a_max, 1 << fmt.fa))
    corr_bits = bitlen_signed(fmt.corr_bound)
    mul_bits = max(mul.bit_length() for mul, _ in rate_table(fmt))
    tables = fmt.device
    code_bits = max(ceil_log2(tables.levels), 1)
    class_bits = ceil_log2(tables.classes)
    return {"a_bits": a_bits, "corr_bits": corr_bits, "q_bits": corr_bits + mul_bits,
            "rho_bits": max_learn_shift(fmt) + 1, "n_bits": max(fmt.max_pulses.bit_length(), 1),
            "code_bits": code_bits, "class_bits": class_bits, "devices": tables.devices,
            "entry_bits": tables.devices * (code_bits + class_bits)}


def shift_range(fmt: Formats) -> tuple[int, int]:
    """(smallest, largest) pulse shift sh of any synapse: LR_SHIFT of the rate table, up to the
    decayed cap, +1 on the diagonal."""
    return min(shift for _, shift in rate_table(fmt)), max_learn_shift(fmt) + 1


def learn_shift(m: Module, fmt: Formats, rate, diag, decay, name: str) -> Signal:
    """sh = min(LR_SHIFT_rate + e d, LR_SHIFT_MAX) + diag (docs/numerics.md section 5) for rate-table
    index `rate`, the diagonal flag and `decay` = e (None without decay; d = Formats.decay_shift)."""
    rates = rate_table(fmt)
    sh = Signal(range(shift_range(fmt)[1] + 1), name=name)
    shifts = []
    for k, (_, shift) in enumerate(rates):
        if decay is None:
            shifts.append(Const(shift, len(sh)))
            continue
        grown = Signal(range(shift + DECAY_STEPS_MAX * fmt.decay_shift + 1), name=f"{name}_grown{k}")
        m.d.comb += grown.eq(shift + decay * fmt.decay_shift)
        shifts.append(Mux(grown > LR_SHIFT_MAX, LR_SHIFT_MAX, grown))
    m.d.comb += sh.eq((Array(shifts)[rate] if len(shifts) > 1 else shifts[0]) + diag)
    return sh


def _clamped_shift(m: Module, value: Value, sh_min: int, off: Signal, span: int, p_max: int) -> Signal:
    """min(value >> (sh_min + off), p_max) for off < span: the few low bits of the shifted value
    and whether anything lies above them, each a span:1 multiplexer (not a full barrel shifter)."""
    bits = max(p_max.bit_length(), 1)
    window = Value.cast(value)[sh_min:]
    padded = Cat(window, Const(0, span + bits))
    low = Signal(bits, name="shifted_low")
    m.d.comb += low.eq(Array(padded[o:o + bits] for o in range(span))[off])
    # any bit at or above position i of the window: one OR chain from the top, shared by every off
    suffix = [Const(0, 1)] * (len(padded) + 1)
    for i in reversed(range(len(window))):
        suffix[i] = window[i] | suffix[i + 1]
    above = [suffix[o + bits] for o in range(span)]
    over = Signal(name="shifted_over")
    m.d.comb += over.eq(Array(above)[off] | (low > p_max))
    out = Signal(bits, name="shifted")
    m.d.comb += out.eq(Mux(over, p_max, low))
    return out


def align_draw(fmt: Formats, x0, drop) -> Value:
    """The top sh bits of a 32-bit draw, right-aligned (the stochastic rounding offset of a synapse
    of shift sh), for drop = sh_top - sh: one shifter for all lanes, where the draws arrive."""
    return (x0 >> (32 - shift_range(fmt)[1])) >> drop


class CorrelatorLane(wiring.Component):
    """The sum of a_row * a_col over the minibatch, pipelined: operands, product, sum.

    The caller gives the row's operand (`row_operand`: a_i, or the constant 2^fa for a bias),
    worked out once for all lanes, and `sub` for the LO set: the lane subtracts that product
    instead of adding it (so no negation sits between the central fixed-point memory and the
    lanes' input registers, a route across the die). `clear` zeroes the sum (nothing may be in
    flight); operands presented with `valid` reach the sum CORRELATOR_LATENCY edges later.

    `paired`: a sample's HI and LO operands come in the same cycle (`a_row`, `a_col` the HI set's,
    `a_row_lo`, `a_col_lo` the LO set's; no `sub`) and the sum takes HI product minus LO product,
    two multipliers, so a minibatch takes B cycles instead of 2B. C is an exact integer sum, so the
    order of its terms does not change it; the latency is the same.
    """

    def __init__(self, fmt: Formats, *, paired: bool = False, dsp: str = "inferred"):
        self.fmt = fmt
        self.paired = bool(paired)
        self.dsp = dsp                  # the multipliers' back end (rtl/dsp.py)
        w = learn_widths(fmt)
        self.a_bits, self.corr_bits = w["a_bits"], w["corr_bits"]
        a = In(signed(self.a_bits))
        ports = {"clear": In(1), "valid": In(1), "a_row": a, "a_col": a}
        ports |= {"a_row_lo": a, "a_col_lo": a} if self.paired else {"sub": In(1)}
        super().__init__(ports | {"corr": Out(signed(self.corr_bits))})

    @staticmethod
    def row_operand(fmt: Formats, a_row, bias) -> Value:
        """What the lanes multiply by: a_row, or 2^fa for a bias."""
        return Mux(bias, 1 << fmt.fa, a_row)

    def _product(self, m: Module, a_row, a_col, name: str):
        """a_row * a_col with registered operands and a registered product (one DSP block)."""
        m.submodules[name] = mul = Multiplier(self.a_bits, self.a_bits, backend=self.dsp, name=name)
        m.d.comb += [mul.a.eq(a_row), mul.b.eq(a_col)]
        return mul.p

    def elaborate(self, platform):
        m = Module()
        i_valid, p_valid = Signal(), Signal()
        m.d.sync += [i_valid.eq(self.valid), p_valid.eq(i_valid)]
        prod = self._product(m, self.a_row, self.a_col, "prod")
        if self.paired:
            prod_lo = self._product(m, self.a_row_lo, self.a_col_lo, "prod_lo")
            step = self.corr + prod - prod_lo
        else:
            i_sub, p_sub = Signal(), Signal()
            m.d.sync += [i_sub.eq(self.sub), p_sub.eq(i_sub)]
            step = Mux(p_sub, self.corr - prod, self.corr + prod)
        with m.If(self.clear):
            m.d.sync += self.corr.eq(0)
        with m.Elif(p_valid):
            m.d.sync += self.corr.eq(step)
        return m


class Quantiser(wiring.Component):
    """Pulse count n = clamp(sign(C) ((|C| LR_MUL + add) >> sh), +-P_max), in three strobed steps.

    `load` takes C, the diagonal flag and the synapse's rate (`rate`, an index into the rate
    table: learnplan.rate_table; only with per-layer rates) — |C| and the sign registered —,
    `scale` multiplies by the rate's LR_MUL and fixes the shift sh = min(LR_SHIFT + e d, 31)
    (+1 on the diagonal; e = `decay`, the host's decay steps, only when the rate decays; d =
    Formats.decay_shift), `round` adds the rounding offset (nearest: half; stochastic: the top sh
    bits of the lane's draw), shifts and clamps. The outputs hold until the next `round`.

    With one rate and no decay every constant is wired in (x LR_MUL as shifts and adds, fixed
    shifts) and `rho` is the draw's top LR_SHIFT + 1 bits. Otherwise the shift is a small
    barrel shifter over the bits of q from the smallest shift up, and `rho` is the draw's top sh
    bits, right-aligned by the learner where the draws arrive (`align_draw`, one shifter for all
    lanes): so no lane shifts its 32-bit draw.
    """

    def __init__(self, fmt: Formats, *, dsp: bool = False):
        self.fmt = fmt
        self.dsp = bool(dsp)           # x LR_MUL in a DSP block (narrow learners) or shifts and adds
        w = learn_widths(fmt)
        self.widths = w
        self.rates = rate_table(fmt)
        self.decay_shift = fmt.decay_shift
        ports = {
            "load": In(1), "scale": In(1), "round": In(1),
            "corr": In(signed(w["corr_bits"])), "diag": In(1), "rho": In(unsigned(w["rho_bits"])),
            "n_mag": Out(unsigned(w["n_bits"])), "neg": Out(1),
        }
        if len(self.rates) > 1:
            ports["rate"] = In(range(len(self.rates)))
        if self.decay_shift:
            ports["decay"] = In(DECAY_BITS)
        if self.carrying:
            # rounding "carry": the synapse's carry is taken with `carry_load` (before `round`), its
            # new one is `carry_out` (held, like n_mag, until the next round)
            ports.update(carry_load=In(1), carry_in=In(signed(CARRY_FRAC + 1)), carry_out=Out(signed(CARRY_FRAC + 1)))
        super().__init__(ports)

    @property
    def carrying(self) -> bool:
        return self.fmt.cfg.fixed.rounding == "carry"

    @staticmethod
    def constant_for(fmt: Formats) -> bool:
        """One (LR_MUL, LR_SHIFT) for every synapse and no decay: constants only."""
        return len(rate_table(fmt)) == 1 and not fmt.decay_shift

    @property
    def constant(self) -> bool:
        return self.constant_for(self.fmt)

    def elaborate(self, platform):
        m = Module()
        w, f = self.widths, self.fmt
        mag = Signal(w["corr_bits"], reset_less=self.dsp)   # a DSP register has no synchronous reset
        neg, diag = Signal(), Signal(name="diag")
        with m.If(self.load):
            m.d.sync += [neg.eq(self.corr < 0), diag.eq(self.diag)]
        if self.dsp:
            # |C| is the DSP block's input register, which shares one clock enable with the
            # block's other registers: so it samples every cycle, and `scale` must come in the
            # cycle right after `load` (the learner's schedule). A DSP with no register at all
            # would sit on an untimed pseudo-clock (nextpnr's $PACKER_GND_NET).
            m.d.sync += mag.eq(Mux(self.corr < 0, -self.corr, self.corr))
        else:
            with m.If(self.load):
                m.d.sync += mag.eq(Mux(self.corr < 0, -self.corr, self.corr))
        q = Signal(w["q_bits"])
        mode = f.cfg.fixed.rounding
        # q + the rounding offset (< 2^sh <= 2^rho_bits): one bit above the wider of the two
        total = Signal(max(w["q_bits"], w["rho_bits"]) + 1)
        pulses = Signal(len(total))
        if self.constant:
            mul, shift = self.rates[0]
            with m.If(self.scale):
                m.d.sync += q.eq(mag * mul if self.dsp else mul_const(mag, mul, w["q_bits"]))
            if mode == "truncate" or mode == "carry":
                add = Const(0, 1)
            elif mode == "nearest":
                add = Mux(diag, 1 << shift, 1 << (shift - 1))
            else:
                add = Mux(diag, self.rho, self.rho >> 1)     # the top sh bits of the draw
            m.d.comb += [total.eq(q + add), pulses.eq(Mux(diag, total >> (shift + 1), total >> shift))]
            internals = {}
            carry_shift = (shift - CARRY_FRAC, diag, 2)       # k = sh - CARRY_FRAC: k0 + diag
        else:
            rate = Signal(range(len(self.rates)))
            if len(self.rates) > 1:
                with m.If(self.load):
                    m.d.sync += rate.eq(self.rate)
            # x LR_MUL of the rate: one product per distinct multiplier, chosen by the rate
            product = Signal(w["q_bits"])
            muls = list(dict.fromkeys(mul for mul, _ in self.rates))
            which = Signal(range(len(muls)))                 # the rate's multiplier among the distinct ones
            if len(muls) > 1:
                m.d.comb += which.eq(Array(Const(muls.index(mul), len(which)) for mul, _ in self.rates)[rate])
            if self.dsp:
                m.d.comb += product.eq(mag * (Array(Const(mul, 8) for mul in muls)[which] if len(muls) > 1
                                              else muls[0]))
            else:
                products = []
                for k, mul in enumerate(muls):
                    p_k = Signal(w["q_bits"], name=f"product{k}")
                    m.d.comb += p_k.eq(mul_const(mag, mul, w["q_bits"]))
                    products.append(p_k)
                m.d.comb += product.eq(Array(products)[which] if len(muls) > 1 else products[0])
            # the shift, kept as an offset above the smallest one
            sh_min, sh_top = shift_range(f)
            sh = learn_shift(m, f, rate, diag, self.decay if self.decay_shift else None, "sh")
            off = Signal(range(sh_top - sh_min + 1))         # sh - sh_min
            with m.If(self.scale):
                m.d.sync += [q.eq(product), off.eq(sh - sh_min)]
            span = sh_top - sh_min + 1
            if mode == "stochastic":                         # rho: the draw's top sh bits (align_draw)
                m.d.comb += total.eq(q + self.rho)
                n = _clamped_shift(m, total, sh_min, off, span, f.max_pulses)
            else:
                n = _clamped_shift(m, q, sh_min, off, span, f.max_pulses)
                if mode == "nearest":                        # + the bit below sh: (q + 2^(sh-1)) >> sh
                    q_padded = Cat(q, Const(0, span))
                    half = Array(q_padded[sh_min - 1 + o] for o in range(span))[off]
                    more = Signal(len(n) + 1)
                    m.d.comb += more.eq(n + half)
                    n = Mux(more > f.max_pulses, f.max_pulses, more)
            m.d.comb += pulses.eq(n)
            internals = {"rate": rate, "off": off}
            carry_shift = (sh_min - CARRY_FRAC, off, span)   # k = sh - CARRY_FRAC: k0 + off
        if self.carrying:
            n_c, neg_c, carry_c = self._carry_round(m, q, neg, *carry_shift)
            with m.If(self.round):
                m.d.sync += [self.n_mag.eq(n_c), self.neg.eq(neg_c), self.carry_out.eq(carry_c)]
        else:
            with m.If(self.round):
                m.d.sync += [self.n_mag.eq(Mux(pulses > f.max_pulses, f.max_pulses, pulses)), self.neg.eq(neg)]
        formal.hook(self, m, mag=mag, neg=neg, diag=diag, q=q, **internals)
        return m

    def _carry_round(self, m: Module, q: Signal, neg: Value, k0: int, o: Value, span: int):
        """Truncation with carry (docs/numerics.md section 5) in sign and magnitude: |x| >> k for
        x = +-q + carry 2^k, k = k0 + o, without forming x. With ya = q >> k and b = |carry|:
        ya + b for equal signs, ya - b or b - ya - (q mod 2^k != 0) for opposite ones."""
        F, p_max = CARRY_FRAC, self.fmt.max_pulses
        assert k0 >= 0, "Formats refuses LR_SHIFT < CARRY_FRAC"
        carry = Signal(signed(F + 1))
        with m.If(self.carry_load):
            m.d.sync += carry.eq(self.carry_in)
        b, s_r = Signal(F), Signal()
        m.d.comb += [s_r.eq(carry < 0), b.eq(Mux(s_r, -carry, carry))]
        ya_bits = max(len(q) - k0, 1)
        padded = Cat(q, Const(0, span + ya_bits))
        ya = Signal(ya_bits)
        m.d.comb += ya.eq(Array(padded[k0 + i:k0 + i + ya_bits] for i in range(span))[o])
        low_any = [q[:min(k0 + i, len(q))].any() if k0 + i else Const(0, 1) for i in range(span)]
        sticky = Signal()
        m.d.comb += sticky.eq(Array(low_any)[o])
        y, sign = Signal(ya_bits + 1), Signal()
        with m.If((neg == s_r) | (b == 0)):
            m.d.comb += [y.eq(ya + b), sign.eq(neg)]
        with m.Elif(ya >= b):
            m.d.comb += [y.eq(ya - b), sign.eq(neg)]
        with m.Else():
            m.d.comb += [y.eq(b - ya - sticky), sign.eq(s_r)]
        over = Signal()
        m.d.comb += over.eq((y >> F) > p_max)
        n_out, carry_out = Signal(len(self.n_mag)), Signal(signed(F + 1))
        rem = Mux(over, (1 << F) - 1, y[:F])
        m.d.comb += [n_out.eq(Mux(over, p_max, y >> F)), carry_out.eq(Mux(sign, -rem, rem))]
        return n_out, sign, carry_out


class PulseLane(wiring.Component):
    """Programs one device entry (codes and classes of its one or two devices) pulse by pulse.

    `load` takes the entry; the pulse count (`n_mag`, `neg`, the quantiser's held outputs) is
    read in every round. A round p (shared by all lanes, `p`) takes two cycles: `phase_a` picks
    the device (potentiate-first for pairs) and presents the UP/DOWN table address {pot, class,
    code} on `table_addr`; `phase_b`, always the cycle after `phase_a`, takes the table's answer
    (`table_data`, a synchronous ROM read) and the pulse's noise (`noise`: bits 31..15 of the
    call's x0 and x1, for devices 0 and 1) and writes the new code. Rounds
    p >= |n| leave the entry unchanged. `entry_out` is the entry as programmed so far.
    """

    def __init__(self, fmt: Formats):
        self.fmt = fmt
        w = learn_widths(fmt)
        self.widths = w
        self.table_bits = 1 + w["class_bits"] + w["code_bits"]
        super().__init__({
            "load": In(1), "entry": In(w["entry_bits"]), "n_mag": In(unsigned(w["n_bits"])), "neg": In(1),
            "p": In(unsigned(w["n_bits"])), "phase_a": In(1), "phase_b": In(1),
            "table_addr": Out(self.table_bits), "table_data": In(w["code_bits"]),
            "noise": In(2 * NOISE_BITS),
            "entry_out": Out(w["entry_bits"]),
        })

    @staticmethod
    def table_image(fmt: Formats) -> list[int]:
        """The ROM behind `table_addr`: DOWN then UP tables, addressed {pot, class, code}."""
        w = learn_widths(fmt)
        tables = fmt.device
        cb, clb = w["code_bits"], w["class_bits"]
        image = [0] * (1 << (1 + clb + cb))
        for pot, table in ((0, tables.down), (1, tables.up)):
            for cls in range(tables.classes):
                for c in range(tables.levels):
                    image[(pot << (clb + cb)) | (cls << cb) | c] = int(table[cls, c])
        return image

    def elaborate(self, platform):
        m = Module()
        w, f = self.widths, self.fmt
        devices, cb, clb = w["devices"], w["code_bits"], w["class_bits"]
        top = f.device.levels - 1
        codes = [Signal(cb, name=f"code{d}") for d in range(devices)]
        classes = [Signal(max(clb, 1), name=f"class{d}") for d in range(devices)]
        n_mag, neg = self.n_mag, self.neg
        with m.If(self.load):
            at = 0
            for d in range(devices):
                m.d.sync += codes[d].eq(self.entry[at:at + cb])
                at += cb
                if clb:
                    m.d.sync += classes[d].eq(self.entry[at:at + clb])
                at += clb

        # phase a: the device that takes pulse p and the table address
        dev, pot = Signal(), Signal()
        if devices == 1:
            m.d.comb += [dev.eq(0), pot.eq(~neg)]
        else:
            primary_code = Mux(neg, codes[1], codes[0])
            # at a full code range (top = all ones) >= top is an AND of the bits, not a carry chain
            saturated = primary_code.all() if top == (1 << cb) - 1 else primary_code >= top
            m.d.comb += [dev.eq(Mux(saturated, ~neg, neg)), pot.eq(~saturated)]
        dev_code = codes[0] if devices == 1 else Mux(dev, codes[1], codes[0])
        dev_class = classes[0] if devices == 1 else Mux(dev, classes[1], classes[0])
        m.d.comb += self.table_addr.eq(Cat(dev_code, dev_class[:clb], pot) if clb else Cat(dev_code, pot))
        # registered every cycle, read in phase b, which always follows phase a: no enable, so the
        # learner's round test (all lanes' counts against p) does not fan out to every lane's flops
        active, dev_b, class_b = Signal(), Signal(), Signal(max(clb, 1))
        m.d.sync += [active.eq(self.p < n_mag), dev_b.eq(dev), class_b.eq(dev_class)]

        # phase b: the new code, with c2c noise
        stepped = Signal(cb + 1)
        thresholds = c2c_thresholds(f)
        if any(thresholds):
            word = Mux(dev_b, self.noise[NOISE_BITS:], self.noise[:NOISE_BITS])
            threshold = Signal(17)
            with m.Switch(class_b[:clb] if clb else Const(0, 1)):
                for cls, value in enumerate(thresholds):
                    with m.Case(cls):
                        m.d.comb += threshold.eq(value)
            hit = word[1:] < threshold
            up_one = word[0]
            with m.If(hit & up_one & (self.table_data < top)):
                m.d.comb += stepped.eq(self.table_data + 1)
            with m.Elif(hit & ~up_one & (self.table_data > 0)):
                m.d.comb += stepped.eq(self.table_data - 1)
            with m.Else():
                m.d.comb += stepped.eq(self.table_data)
        else:
            m.d.comb += stepped.eq(self.table_data)
        with m.If(self.phase_b & active):
            for d in range(devices):
                with m.If(dev_b == d):
                    m.d.sync += codes[d].eq(stepped)

        parts = []
        for d in range(devices):
            parts += [codes[d]] + ([classes[d][:clb]] if clb else [])
        m.d.comb += self.entry_out.eq(Cat(*parts))
        return m
