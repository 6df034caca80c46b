// 8x8 multiply-accumulate into a 20-bit register: about 470 OSU018 cells, small enough to
// place and route in a few seconds (the post-route tests and sample use it).
module mac8 (
    input  wire        clk,
    input  wire        rst,
    input  wire [7:0]  a,
    input  wire [7:0]  b,
    output reg  [19:0] acc
);
  always @(posedge clk)
    if (rst) acc <= 20'd0;
    else     acc <= acc + a * b;
endmodule
