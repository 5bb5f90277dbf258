import struct


def decode_header(data):
    fin = bool(data[0] >> 7)
    opcode = data[0] & 0x0F
    masked = bool(data[1] >> 7)
    length = data[1] & 0x7F
    pos = 2
    if length == 126:
        length = struct.unpack(">H", data[2:4])[0]
        pos = 4
    elif length == 127:
        length = struct.unpack(">Q", data[2:10])[0]
        pos = 10
    mask_key = None
    if masked:
        mask_key = bytes(data[pos : pos + 4])
        pos += 4
    return {
        "fin": fin,
        "opcode": opcode,
        "masked": masked,
        "length": length,
        "mask_key": mask_key,
        "header_len": pos,
    }
