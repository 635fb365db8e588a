// MULT18X18D (ECP5 sysDSP 18 x 18 multiplier): a behavioural model for simulation (memprop).
//
// yosys ships this cell only as a black box (share/lattice/cells_bb_ecp5.v). memprop instantiates
// it (rtl/dsp.py, hw.dsp = "mult18x18d") with its input and output registers, so RTL and
// gate-level simulations of such a design need a model. This one implements what the engine
// uses, after Lattice's sysDSP usage guide (TN1267) and nextpnr's ECP5 packer:
//
// * P = A x B, 36 bits, signed or unsigned per operand (SIGNEDA / SIGNEDB), SIGNEDP their OR;
// * each of REG_INPUTA_CLK, REG_INPUTB_CLK, REG_PIPELINE_CLK, REG_OUTPUT_CLK is "NONE" (no
//   register) or "CLK0": a register on CLK0's rising edge, enabled by CE0, cleared by RST0
//   (RESETMODE "SYNC": at the edge; "ASYNC": at once). SIGNEDA / SIGNEDB travel with their
//   operand's input register. REG_*_CE / REG_*_RST must be CE0 / RST0;
// * ROA / ROB are the (registered) operands; registers start at 0 (GSR at configuration).
//
// Not modelled (the simulation stops with a message when a cell asks for them): CLK1..3,
// the C input registers, the shift chains (SOURCEA / SOURCEB = 1, SRIA / SRIB, SROA / SROB are 0),
// cascading to an ALU54B, HIGHSPEED_CLK, MULT_BYPASS and clock dividers other than "ENABLED".
module MULT18X18D(
	input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0, B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0, C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0, SRIA17, SRIA16, SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8, SRIA7, SRIA6, SRIA5, SRIA4, SRIA3, SRIA2, SRIA1, SRIA0, SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9, SRIB8, SRIB7, SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0,
	output SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9, SROA8, SROA7, SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0, SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8, SROB7, SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0, ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9, ROA8, ROA7, ROA6, ROA5, ROA4, ROA3, ROA2, ROA1, ROA0, ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5, ROB4, ROB3, ROB2, ROB1, ROB0, ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8, ROC7, ROC6, ROC5, ROC4, ROC3, ROC2, ROC1, ROC0, P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0, SIGNEDP
);
	parameter REG_INPUTA_CLK = "NONE";
	parameter REG_INPUTA_CE = "CE0";
	parameter REG_INPUTA_RST = "RST0";
	parameter REG_INPUTB_CLK = "NONE";
	parameter REG_INPUTB_CE = "CE0";
	parameter REG_INPUTB_RST = "RST0";
	parameter REG_INPUTC_CLK = "NONE";
	parameter REG_INPUTC_CE = "CE0";
	parameter REG_INPUTC_RST = "RST0";
	parameter REG_PIPELINE_CLK = "NONE";
	parameter REG_PIPELINE_CE = "CE0";
	parameter REG_PIPELINE_RST = "RST0";
	parameter REG_OUTPUT_CLK = "NONE";
	parameter REG_OUTPUT_CE = "CE0";
	parameter REG_OUTPUT_RST = "RST0";
	parameter CLK0_DIV = "ENABLED";
	parameter CLK1_DIV = "ENABLED";
	parameter CLK2_DIV = "ENABLED";
	parameter CLK3_DIV = "ENABLED";
	parameter HIGHSPEED_CLK = "NONE";
	parameter GSR = "ENABLED";
	parameter CAS_MATCH_REG = "FALSE";
	parameter SOURCEB_MODE = "B_SHIFT";
	parameter MULT_BYPASS = "DISABLED";
	parameter RESETMODE = "SYNC";

	localparam IN_A = REG_INPUTA_CLK == "CLK0";
	localparam IN_B = REG_INPUTB_CLK == "CLK0";
	localparam PIPE = REG_PIPELINE_CLK == "CLK0";
	localparam OUT = REG_OUTPUT_CLK == "CLK0";
	localparam ASYNC = RESETMODE == "ASYNC";

	initial begin
		if ((REG_INPUTA_CLK != "NONE" && !IN_A) || (REG_INPUTB_CLK != "NONE" && !IN_B)
				|| (REG_PIPELINE_CLK != "NONE" && !PIPE) || (REG_OUTPUT_CLK != "NONE" && !OUT)
				|| REG_INPUTC_CLK != "NONE" || REG_INPUTA_CE != "CE0" || REG_INPUTB_CE != "CE0"
				|| REG_PIPELINE_CE != "CE0" || REG_OUTPUT_CE != "CE0" || REG_INPUTA_RST != "RST0"
				|| REG_INPUTB_RST != "RST0" || REG_PIPELINE_RST != "RST0" || REG_OUTPUT_RST != "RST0"
				|| HIGHSPEED_CLK != "NONE" || MULT_BYPASS != "DISABLED" || CLK0_DIV != "ENABLED"
				|| (RESETMODE != "SYNC" && !ASYNC)) begin
			$display("MULT18X18D (memprop model): unsupported configuration");
			$finish;
		end
	end

	wire [17:0] a_in = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
	wire [17:0] b_in = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
	reg [17:0] a_q = 18'd0, b_q = 18'd0;
	reg sa_q = 1'b0, sb_q = 1'b0;
	reg [35:0] pipe_q = 36'd0, out_q = 36'd0;

	wire [17:0] a = IN_A ? a_q : a_in;
	wire [17:0] b = IN_B ? b_q : b_in;
	wire sa = IN_A ? sa_q : SIGNEDA;
	wire sb = IN_B ? sb_q : SIGNEDB;
	wire signed [36:0] a_ext = {{19{sa & a[17]}}, a};
	wire signed [36:0] b_ext = {{19{sb & b[17]}}, b};
	wire signed [73:0] full = a_ext * b_ext;
	wire [35:0] product = full[35:0];
	wire [35:0] piped = PIPE ? pipe_q : product;
	wire [35:0] p = OUT ? out_q : piped;

	generate
		if (ASYNC) begin : async_regs
			always @(posedge CLK0 or posedge RST0)
				if (RST0) begin
					a_q <= 18'd0; b_q <= 18'd0; sa_q <= 1'b0; sb_q <= 1'b0; pipe_q <= 36'd0; out_q <= 36'd0;
				end else if (CE0) begin
					a_q <= a_in; b_q <= b_in; sa_q <= SIGNEDA; sb_q <= SIGNEDB; pipe_q <= product; out_q <= piped;
				end
		end else begin : sync_regs
			always @(posedge CLK0)
				if (RST0) begin
					a_q <= 18'd0; b_q <= 18'd0; sa_q <= 1'b0; sb_q <= 1'b0; pipe_q <= 36'd0; out_q <= 36'd0;
				end else if (CE0) begin
					a_q <= a_in; b_q <= b_in; sa_q <= SIGNEDA; sb_q <= SIGNEDB; pipe_q <= product; out_q <= piped;
				end
		end
	endgenerate

	assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;
	assign SIGNEDP = sa | sb;
	assign {ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9, ROA8, ROA7, ROA6, ROA5, ROA4, ROA3, ROA2, ROA1, ROA0} = a;
	assign {ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9, ROB8, ROB7, ROB6, ROB5, ROB4, ROB3, ROB2, ROB1, ROB0} = b;
	assign {ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9, ROC8, ROC7, ROC6, ROC5, ROC4, ROC3, ROC2, ROC1, ROC0} = 18'd0;
	assign {SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9, SROA8, SROA7, SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0} = 18'd0;
	assign {SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9, SROB8, SROB7, SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0} = 18'd0;
endmodule
