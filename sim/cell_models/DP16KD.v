// DP16KD (ECP5 sysMEM block RAM): a behavioural model for gate-level simulation (memprop).
//
// yosys ships this cell only as a black box (share/ecp5/cells_sim.v), so without a model every
// block RAM of an ECP5 netlist reads as 0 (Verilator) or z (Icarus). This model implements the
// contract yosys' block-RAM mapping relies on (share/lattice/brams_16kd.txt, brams_map_16kd.v,
// and the memory_libmap rules in yosys' passes/memory/memlib.md):
//
// * 18 Kbit: 1024 words of 18 bits, INITVAL_xx holding words 16*xx .. 16*xx+15 in 20-bit slots
//   (18 bits used);
// * per-port data widths 1, 2, 4, 9, 18 and 36; ADx13..ADx0 counts in units of the narrowest
//   width and a wider port ignores its low bits (x18: ADx13..4, x36: ADx13..5). A 36-bit word is
//   two 18-bit words (even address low), an 18-bit word two 9-bit halves (bits 8:0, 17:9), and a
//   1-, 2- or 4-bit word sits in the low 8 bits of its half (x4: bits 3:0 or 7:4). Data on DIx /
//   DOx from bit 0 up;
// * x18 writes take ADx0 / ADx1 as the byte enables of bits 8:0 / 17:9 (with WEx);
// * x36 is the pseudo-dual-port use (yosys' PDPW16KD): port A writes {DIB, DIA} with the byte
//   enables ADA3..ADA0, port B reads onto {DOB, DOA};
// * CEx gates reads and writes, CSx2..0 must equal CSDECODE_x;
// * while a port writes, WRITEMODE_x decides its read data: NORMAL keeps it, WRITETHROUGH shows
//   the new word, READBEFOREWRITE the old one;
// * RSTx clears the read data, at the clock edge ahead of CEx (RESETMODE "SYNC") or at once
//   ("ASYNC"); read data starts at 0; REGMODE_x "OUTREG" adds the output register (OCEx).
//
// * a port reading bits that the other port writes at the same clock edge reads x in those bits
//   (the hardware does not define them; this assumes both ports on one clock).
//
// Not modelled: GSR, the pin inversions other than CLKAMUX / CLKBMUX = "INV", and two writes to
// one word at one edge (the later one wins). A configuration outside this stops the simulation
// with a message.
module DP16KD(
	input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
	input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
	input CEA, OCEA, CLKA, WEA, RSTA,
	input CSA2, CSA1, CSA0,
	output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,

	input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
	input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
	input CEB, OCEB, CLKB, WEB, RSTB,
	input CSB2, CSB1, CSB0,
	output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
	parameter DATA_WIDTH_A = 18;
	parameter DATA_WIDTH_B = 18;
	parameter REGMODE_A = "NOREG";
	parameter REGMODE_B = "NOREG";
	parameter RESETMODE = "SYNC";
	parameter ASYNC_RESET_RELEASE = "SYNC";
	parameter CSDECODE_A = "0b000";
	parameter CSDECODE_B = "0b000";
	parameter WRITEMODE_A = "NORMAL";
	parameter WRITEMODE_B = "NORMAL";
	parameter CLKAMUX = "CLKA";
	parameter CLKBMUX = "CLKB";
	parameter DIA17MUX = "DIA17";
	parameter DIA16MUX = "DIA16";
	parameter DIA15MUX = "DIA15";
	parameter DIA14MUX = "DIA14";
	parameter DIA13MUX = "DIA13";
	parameter DIA12MUX = "DIA12";
	parameter DIA11MUX = "DIA11";
	parameter DIA10MUX = "DIA10";
	parameter DIA9MUX = "DIA9";
	parameter DIA8MUX = "DIA8";
	parameter DIA7MUX = "DIA7";
	parameter DIA6MUX = "DIA6";
	parameter DIA5MUX = "DIA5";
	parameter DIA4MUX = "DIA4";
	parameter DIA3MUX = "DIA3";
	parameter DIA2MUX = "DIA2";
	parameter DIA1MUX = "DIA1";
	parameter DIA0MUX = "DIA0";
	parameter ADA13MUX = "ADA13";
	parameter ADA12MUX = "ADA12";
	parameter ADA11MUX = "ADA11";
	parameter ADA10MUX = "ADA10";
	parameter ADA9MUX = "ADA9";
	parameter ADA8MUX = "ADA8";
	parameter ADA7MUX = "ADA7";
	parameter ADA6MUX = "ADA6";
	parameter ADA5MUX = "ADA5";
	parameter ADA4MUX = "ADA4";
	parameter ADA3MUX = "ADA3";
	parameter ADA2MUX = "ADA2";
	parameter ADA1MUX = "ADA1";
	parameter ADA0MUX = "ADA0";
	parameter CEAMUX = "CEA";
	parameter OCEAMUX = "OCEA";
	parameter WEAMUX = "WEA";
	parameter RSTAMUX = "RSTA";
	parameter CSA2MUX = "CSA2";
	parameter CSA1MUX = "CSA1";
	parameter CSA0MUX = "CSA0";
	parameter DOA17MUX = "DOA17";
	parameter DOA16MUX = "DOA16";
	parameter DOA15MUX = "DOA15";
	parameter DOA14MUX = "DOA14";
	parameter DOA13MUX = "DOA13";
	parameter DOA12MUX = "DOA12";
	parameter DOA11MUX = "DOA11";
	parameter DOA10MUX = "DOA10";
	parameter DOA9MUX = "DOA9";
	parameter DOA8MUX = "DOA8";
	parameter DOA7MUX = "DOA7";
	parameter DOA6MUX = "DOA6";
	parameter DOA5MUX = "DOA5";
	parameter DOA4MUX = "DOA4";
	parameter DOA3MUX = "DOA3";
	parameter DOA2MUX = "DOA2";
	parameter DOA1MUX = "DOA1";
	parameter DOA0MUX = "DOA0";
	parameter DIB17MUX = "DIB17";
	parameter DIB16MUX = "DIB16";
	parameter DIB15MUX = "DIB15";
	parameter DIB14MUX = "DIB14";
	parameter DIB13MUX = "DIB13";
	parameter DIB12MUX = "DIB12";
	parameter DIB11MUX = "DIB11";
	parameter DIB10MUX = "DIB10";
	parameter DIB9MUX = "DIB9";
	parameter DIB8MUX = "DIB8";
	parameter DIB7MUX = "DIB7";
	parameter DIB6MUX = "DIB6";
	parameter DIB5MUX = "DIB5";
	parameter DIB4MUX = "DIB4";
	parameter DIB3MUX = "DIB3";
	parameter DIB2MUX = "DIB2";
	parameter DIB1MUX = "DIB1";
	parameter DIB0MUX = "DIB0";
	parameter ADB13MUX = "ADB13";
	parameter ADB12MUX = "ADB12";
	parameter ADB11MUX = "ADB11";
	parameter ADB10MUX = "ADB10";
	parameter ADB9MUX = "ADB9";
	parameter ADB8MUX = "ADB8";
	parameter ADB7MUX = "ADB7";
	parameter ADB6MUX = "ADB6";
	parameter ADB5MUX = "ADB5";
	parameter ADB4MUX = "ADB4";
	parameter ADB3MUX = "ADB3";
	parameter ADB2MUX = "ADB2";
	parameter ADB1MUX = "ADB1";
	parameter ADB0MUX = "ADB0";
	parameter CEBMUX = "CEB";
	parameter OCEBMUX = "OCEB";
	parameter WEBMUX = "WEB";
	parameter RSTBMUX = "RSTB";
	parameter CSB2MUX = "CSB2";
	parameter CSB1MUX = "CSB1";
	parameter CSB0MUX = "CSB0";
	parameter DOB17MUX = "DOB17";
	parameter DOB16MUX = "DOB16";
	parameter DOB15MUX = "DOB15";
	parameter DOB14MUX = "DOB14";
	parameter DOB13MUX = "DOB13";
	parameter DOB12MUX = "DOB12";
	parameter DOB11MUX = "DOB11";
	parameter DOB10MUX = "DOB10";
	parameter DOB9MUX = "DOB9";
	parameter DOB8MUX = "DOB8";
	parameter DOB7MUX = "DOB7";
	parameter DOB6MUX = "DOB6";
	parameter DOB5MUX = "DOB5";
	parameter DOB4MUX = "DOB4";
	parameter DOB3MUX = "DOB3";
	parameter DOB2MUX = "DOB2";
	parameter DOB1MUX = "DOB1";
	parameter DOB0MUX = "DOB0";
	parameter WID = 0;
	parameter GSR = "ENABLED";
	parameter INIT_DATA = "STATIC";
	parameter [319:0] INITVAL_00 = 320'h0;
	parameter [319:0] INITVAL_01 = 320'h0;
	parameter [319:0] INITVAL_02 = 320'h0;
	parameter [319:0] INITVAL_03 = 320'h0;
	parameter [319:0] INITVAL_04 = 320'h0;
	parameter [319:0] INITVAL_05 = 320'h0;
	parameter [319:0] INITVAL_06 = 320'h0;
	parameter [319:0] INITVAL_07 = 320'h0;
	parameter [319:0] INITVAL_08 = 320'h0;
	parameter [319:0] INITVAL_09 = 320'h0;
	parameter [319:0] INITVAL_0A = 320'h0;
	parameter [319:0] INITVAL_0B = 320'h0;
	parameter [319:0] INITVAL_0C = 320'h0;
	parameter [319:0] INITVAL_0D = 320'h0;
	parameter [319:0] INITVAL_0E = 320'h0;
	parameter [319:0] INITVAL_0F = 320'h0;
	parameter [319:0] INITVAL_10 = 320'h0;
	parameter [319:0] INITVAL_11 = 320'h0;
	parameter [319:0] INITVAL_12 = 320'h0;
	parameter [319:0] INITVAL_13 = 320'h0;
	parameter [319:0] INITVAL_14 = 320'h0;
	parameter [319:0] INITVAL_15 = 320'h0;
	parameter [319:0] INITVAL_16 = 320'h0;
	parameter [319:0] INITVAL_17 = 320'h0;
	parameter [319:0] INITVAL_18 = 320'h0;
	parameter [319:0] INITVAL_19 = 320'h0;
	parameter [319:0] INITVAL_1A = 320'h0;
	parameter [319:0] INITVAL_1B = 320'h0;
	parameter [319:0] INITVAL_1C = 320'h0;
	parameter [319:0] INITVAL_1D = 320'h0;
	parameter [319:0] INITVAL_1E = 320'h0;
	parameter [319:0] INITVAL_1F = 320'h0;
	parameter [319:0] INITVAL_20 = 320'h0;
	parameter [319:0] INITVAL_21 = 320'h0;
	parameter [319:0] INITVAL_22 = 320'h0;
	parameter [319:0] INITVAL_23 = 320'h0;
	parameter [319:0] INITVAL_24 = 320'h0;
	parameter [319:0] INITVAL_25 = 320'h0;
	parameter [319:0] INITVAL_26 = 320'h0;
	parameter [319:0] INITVAL_27 = 320'h0;
	parameter [319:0] INITVAL_28 = 320'h0;
	parameter [319:0] INITVAL_29 = 320'h0;
	parameter [319:0] INITVAL_2A = 320'h0;
	parameter [319:0] INITVAL_2B = 320'h0;
	parameter [319:0] INITVAL_2C = 320'h0;
	parameter [319:0] INITVAL_2D = 320'h0;
	parameter [319:0] INITVAL_2E = 320'h0;
	parameter [319:0] INITVAL_2F = 320'h0;
	parameter [319:0] INITVAL_30 = 320'h0;
	parameter [319:0] INITVAL_31 = 320'h0;
	parameter [319:0] INITVAL_32 = 320'h0;
	parameter [319:0] INITVAL_33 = 320'h0;
	parameter [319:0] INITVAL_34 = 320'h0;
	parameter [319:0] INITVAL_35 = 320'h0;
	parameter [319:0] INITVAL_36 = 320'h0;
	parameter [319:0] INITVAL_37 = 320'h0;
	parameter [319:0] INITVAL_38 = 320'h0;
	parameter [319:0] INITVAL_39 = 320'h0;
	parameter [319:0] INITVAL_3A = 320'h0;
	parameter [319:0] INITVAL_3B = 320'h0;
	parameter [319:0] INITVAL_3C = 320'h0;
	parameter [319:0] INITVAL_3D = 320'h0;
	parameter [319:0] INITVAL_3E = 320'h0;
	parameter [319:0] INITVAL_3F = 320'h0;

	localparam [20479:0] INITVAL = {
		INITVAL_3F, INITVAL_3E, INITVAL_3D, INITVAL_3C, INITVAL_3B, INITVAL_3A, INITVAL_39, INITVAL_38,
		INITVAL_37, INITVAL_36, INITVAL_35, INITVAL_34, INITVAL_33, INITVAL_32, INITVAL_31, INITVAL_30,
		INITVAL_2F, INITVAL_2E, INITVAL_2D, INITVAL_2C, INITVAL_2B, INITVAL_2A, INITVAL_29, INITVAL_28,
		INITVAL_27, INITVAL_26, INITVAL_25, INITVAL_24, INITVAL_23, INITVAL_22, INITVAL_21, INITVAL_20,
		INITVAL_1F, INITVAL_1E, INITVAL_1D, INITVAL_1C, INITVAL_1B, INITVAL_1A, INITVAL_19, INITVAL_18,
		INITVAL_17, INITVAL_16, INITVAL_15, INITVAL_14, INITVAL_13, INITVAL_12, INITVAL_11, INITVAL_10,
		INITVAL_0F, INITVAL_0E, INITVAL_0D, INITVAL_0C, INITVAL_0B, INITVAL_0A, INITVAL_09, INITVAL_08,
		INITVAL_07, INITVAL_06, INITVAL_05, INITVAL_04, INITVAL_03, INITVAL_02, INITVAL_01, INITVAL_00};

	// 512 rows of 36 bits: the 18-bit word k is row k / 2, bits 18 * (k % 2) and up
	reg [35:0] mem [0:511];
	integer i;
	initial
		for (i = 0; i < 512; i = i + 1)
			mem[i] = {INITVAL[(2 * i + 1) * 20 +: 18], INITVAL[2 * i * 20 +: 18]};

	wire [17:0] di_a = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
	wire [17:0] di_b = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};

	// ---- the two ports (DP16KD_port below), and the array writes ----
	wire [8:0] word_A, word_B;
	wire [35:0] new_A, new_B, wmask_A, wmask_B, out_A, out_B;
	wire [35:0] collide_A, collide_B;   // the bits of a port's row that the other port writes at this edge
	wire go_A, go_B, clk_A, clk_B;
	wire [35:0] old_A = mem[word_A];
	wire [35:0] old_B = mem[word_B];

	DP16KD_port #(.DATA_WIDTH(DATA_WIDTH_A), .REGMODE(REGMODE_A), .WRITEMODE(WRITEMODE_A), .RESETMODE(RESETMODE),
	              .CSDECODE(CSDECODE_A), .CLKMUX(CLKAMUX), .NAME("A")) port_A (
		.ad({ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0}),
		.di(DATA_WIDTH_A == 36 ? {di_b, di_a} : {18'd0, di_a}), .ce(CEA), .oce(OCEA), .clk_pin(CLKA), .we(WEA),
		.rst(RSTA), .cs({CSA2, CSA1, CSA0}), .old(old_A), .collide(collide_A),
		.word(word_A), .new_word(new_A), .wmask(wmask_A), .go(go_A), .clk(clk_A), .out(out_A));
	DP16KD_port #(.DATA_WIDTH(DATA_WIDTH_B), .REGMODE(REGMODE_B), .WRITEMODE(WRITEMODE_B), .RESETMODE(RESETMODE),
	              .CSDECODE(CSDECODE_B), .CLKMUX(CLKBMUX), .NAME("B")) port_B (
		.ad({ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0}),
		.di(DATA_WIDTH_B == 36 ? {di_b, di_a} : {18'd0, di_b}), .ce(CEB), .oce(OCEB), .clk_pin(CLKB), .we(WEB),
		.rst(RSTB), .cs({CSB2, CSB1, CSB0}), .old(old_B), .collide(collide_B),
		.word(word_B), .new_word(new_B), .wmask(wmask_B), .go(go_B), .clk(clk_B), .out(out_B));

	always @(posedge clk_A)
		if (go_A && WEA)
			mem[word_A] <= new_A;
	always @(posedge clk_B)
		if (go_B && WEB)
			mem[word_B] <= new_B;

	// a port reading bits that the other port writes at the same edge reads x there (one clock
	// assumed: the other port's inputs at this port's edge are the ones it samples)
	assign collide_A = go_B && WEB && word_B == word_A ? wmask_B : 36'd0;
	assign collide_B = go_A && WEA && word_A == word_B ? wmask_A : 36'd0;

	// x36 (pseudo-dual-port): port B's 36-bit read uses both output buses
	assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = DATA_WIDTH_B == 36 ? out_B[17:0] : out_A[17:0];
	assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = DATA_WIDTH_B == 36 ? out_B[35:18] : out_B[17:0];

	// x36 is write-only on port A and read-only on port B
	always @(posedge clk_A)
		if (DATA_WIDTH_A == 36 && go_A && !WEA) begin
			$display("DP16KD model (%m): port A reads at 36 bits (not modelled: x36 writes on A, reads on B)");
			$finish;
		end
	always @(posedge clk_B)
		if ((DATA_WIDTH_A == 36 || DATA_WIDTH_B == 36) && go_B && WEB) begin
			$display("DP16KD model (%m): port B writes while a port is 36 bits wide (not modelled: x36 writes on A, reads on B)");
			$finish;
		end
endmodule

// One port of the DP16KD model: its address decode, write mask and merged row, read latch and
// output register (the array and its writes are the parent's).
module DP16KD_port #(
	parameter DATA_WIDTH = 18,
	parameter REGMODE = "NOREG",
	parameter WRITEMODE = "NORMAL",
	parameter RESETMODE = "SYNC",
	parameter CSDECODE = "0b000",
	parameter CLKMUX = "CLK",
	parameter NAME = "A"
) (
	input [13:0] ad,
	input [35:0] di,
	input ce, oce, clk_pin, we, rst,
	input [2:0] cs,
	input [35:0] old,          // the row at `word`
	input [35:0] collide,      // its bits that the other port writes at this edge
	output [8:0] word,
	output [35:0] new_word,
	output [35:0] wmask,
	output go,
	output clk,
	output [35:0] out
);
	localparam [2:0] CS = CSDECODE == "0b001" ? 3'd1 : CSDECODE == "0b010" ? 3'd2 :
	                      CSDECODE == "0b011" ? 3'd3 : CSDECODE == "0b100" ? 3'd4 :
	                      CSDECODE == "0b101" ? 3'd5 : CSDECODE == "0b110" ? 3'd6 :
	                      CSDECODE == "0b111" ? 3'd7 : 3'd0;
	localparam [2:0] LOW = DATA_WIDTH == 1 ? 3'd7 : DATA_WIDTH == 2 ? 3'd6 : DATA_WIDTH == 4 ? 3'd4 : 3'd0;
	localparam [35:0] ONES = DATA_WIDTH >= 36 ? {36{1'b1}} : (36'd1 << DATA_WIDTH) - 36'd1;
	assign word = ad[13:5];
	// the port's word in the 36-bit row: which 18-bit half (AD4), 9-bit half (AD3), narrow word (AD2..0)
	wire [5:0] lsb = DATA_WIDTH == 36 ? 6'd0 :
	                 (ad[4] ? 6'd18 : 6'd0) + (DATA_WIDTH == 18 ? 6'd0 :
	                 (ad[3] ? 6'd9 : 6'd0) + {3'd0, ad[2:0] & LOW});
	wire [35:0] reads = ONES << lsb;
	assign wmask = DATA_WIDTH == 36 ? {{9{ad[3]}}, {9{ad[2]}}, {9{ad[1]}}, {9{ad[0]}}} :
	               DATA_WIDTH == 18 ? {18'd0, {9{ad[1]}}, {9{ad[0]}}} << lsb : reads;
	assign new_word = (old & ~wmask) | (((di & ONES) << lsb) & wmask);
	assign go = ce && cs == CS;
	assign clk = CLKMUX == "INV" ? ~clk_pin : clk_pin;
	wire arst = RESETMODE == "ASYNC" && rst;
	wire srst = RESETMODE != "ASYNC" && rst;
	reg [35:0] latch = 36'd0, outreg = 36'd0;

	always @(posedge clk, posedge arst)
		if (arst || srst) begin
			latch <= 36'd0;
			outreg <= 36'd0;
		end else begin
			if (go && !we)
				latch <= (((old & ~collide) | ({36{1'bx}} & collide)) >> lsb) & ONES;
			else if (go && WRITEMODE == "WRITETHROUGH")
				latch <= (new_word >> lsb) & ONES;
			else if (go && WRITEMODE == "READBEFOREWRITE")
				latch <= (old >> lsb) & ONES;
			if (oce)
				outreg <= latch;
		end

	assign out = REGMODE == "OUTREG" ? outreg : latch;

	initial
		if (!(DATA_WIDTH == 1 || DATA_WIDTH == 2 || DATA_WIDTH == 4 || DATA_WIDTH == 9 || DATA_WIDTH == 18
		      || DATA_WIDTH == 36)
		    || !(REGMODE == "NOREG" || REGMODE == "OUTREG")
		    || !(WRITEMODE == "NORMAL" || WRITEMODE == "WRITETHROUGH" || WRITEMODE == "READBEFOREWRITE")
		    || !(RESETMODE == "SYNC" || RESETMODE == "ASYNC")
		    || (CS == 3'd0 && CSDECODE != "0b000")) begin
			$display("DP16KD model (%m): port %0s configuration not modelled (DATA_WIDTH_%0s %0d, REGMODE_%0s %0s, WRITEMODE_%0s %0s, RESETMODE %0s, CSDECODE_%0s %0s)",
			         NAME, NAME, DATA_WIDTH, NAME, REGMODE, NAME, WRITEMODE, RESETMODE, NAME, CSDECODE);
			$finish;
		end
endmodule
