// CRC-32 (poly 0x04C11DB7) over 64 data bits per cycle, plus a running XOR checksum:
// wide XOR trees where every state flop fans out to dozens of gates.
module crc64 (
    input  wire        clk,
    input  wire        rst,
    input  wire        valid,
    input  wire [63:0] data,
    output reg  [31:0] crc,
    output reg  [31:0] check
);
    function [31:0] next_crc(input [31:0] c, input [63:0] d);
        integer i;
        reg [31:0] x;
        begin
            x = c;
            for (i = 63; i >= 0; i = i - 1)
                x = {x[30:0], 1'b0} ^ ((x[31] ^ d[i]) ? 32'h04C11DB7 : 32'h0);
            next_crc = x;
        end
    endfunction
    reg [63:0] rd;
    reg        rv;
    always @(posedge clk) begin
        rd <= data;
        rv <= valid;
        if (rst) begin
            crc <= 32'hFFFFFFFF;
            check <= 32'h0;
        end else if (rv) begin
            crc <= next_crc(crc, rd);
            check <= check ^ rd[63:32] ^ rd[31:0] ^ {crc[15:0], crc[31:16]};
        end
    end
endmodule
