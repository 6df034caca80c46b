// 32-bit ALU with a barrel shifter and a registered flag path: wide, shallow, high fanout
// on the shift amount and opcode.
module alu32 (
    input  wire        clk,
    input  wire [3:0]  op,
    input  wire [31:0] x,
    input  wire [31:0] y,
    input  wire [4:0]  sh,
    output reg  [31:0] z,
    output reg         zero,
    output reg         carry
);
    reg [31:0] rx, ry;
    reg [4:0]  rsh;
    reg [3:0]  rop;
    reg [32:0] r;
    always @(*) begin
        case (rop)
            4'd0: r = {1'b0, rx} + {1'b0, ry};
            4'd1: r = {1'b0, rx} - {1'b0, ry};
            4'd2: r = {1'b0, rx & ry};
            4'd3: r = {1'b0, rx | ry};
            4'd4: r = {1'b0, rx ^ ry};
            4'd5: r = {1'b0, rx << rsh};
            4'd6: r = {1'b0, rx >> rsh};
            4'd7: r = {1'b0, $signed(rx) >>> rsh};
            4'd8: r = {1'b0, (rx << rsh) | (rx >> (6'd32 - rsh))};
            4'd9: r = {32'd0, $signed(rx) < $signed(ry)};
            4'd10: r = {1'b0, rx + (ry << rsh)};
            default: r = {1'b0, ~(rx & ry)};
        endcase
    end
    always @(posedge clk) begin
        rx <= x; ry <= y; rsh <= sh; rop <= op;
        z <= r[31:0];
        carry <= r[32];
        zero <= (r[31:0] == 32'd0);
    end
endmodule
