// Odd-even transposition sort of eight 8-bit values, registered in and out.  The compare-and-
// swap is a Verilog function called from a generate loop, so Yosys names its nets with '/',
// '$', '[' and '.' (e.g. `\stage[3].pair[1].cas$func$src/0_sort8.v:12$7.$result [9]`): the
// design that keeps every ECO honest about working on objects instead of names.
module sort8 (
  input  wire        clk,
  input  wire [63:0] din,
  output reg  [63:0] dout
);
  function [15:0] cas(input [7:0] a, input [7:0] b);
    cas = (a > b) ? {a, b} : {b, a};
  endfunction

  reg [63:0] r;
  always @(posedge clk) r <= din;

  wire [63:0] lane [0:8];
  assign lane[0] = r;

  genvar k, p;
  generate
    for (k = 0; k < 8; k = k + 1) begin : stage
      for (p = 0; p < 4; p = p + 1) begin : pair
        if (k % 2 == 0) begin : even
          wire [15:0] s = cas(lane[k][16*p +: 8], lane[k][16*p + 8 +: 8]);
          assign lane[k + 1][16*p +: 16] = s;
        end else if (p < 3) begin : odd
          wire [15:0] s = cas(lane[k][16*p + 8 +: 8], lane[k][16*p + 16 +: 8]);
          assign lane[k + 1][16*p + 8 +: 16] = s;
        end
      end
      if (k % 2 == 1) begin : ends
        assign lane[k + 1][7:0] = lane[k][7:0];
        assign lane[k + 1][63:56] = lane[k][63:56];
      end
    end
  endgenerate

  always @(posedge clk) dout <= lane[8];
endmodule
