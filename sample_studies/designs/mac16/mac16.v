// 16x16 multiply-accumulate with a 40-bit accumulator: one deep arithmetic cone.
module mac16 (
    input  wire        clk,
    input  wire        rst,
    input  wire        en,
    input  wire [15:0] a,
    input  wire [15:0] b,
    output reg  [39:0] acc
);
    reg [15:0] ra, rb;
    always @(posedge clk) begin
        ra <= a;
        rb <= b;
        if (rst)
            acc <= 40'd0;
        else if (en)
            acc <= acc + ra * rb;
    end
endmodule
