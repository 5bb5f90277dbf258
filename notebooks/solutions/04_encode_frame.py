# Exercise 2: build a server-to-client WebSocket text frame once.
import struct


def encode_frame(text):
    """One unmasked text frame (RFC 6455 5.2) holding ``text``.

    Byte 0: FIN (0x80) | opcode 1 (text) = 0x81. Byte 1: the MASK bit is 0
    (servers never mask) and the payload length: below 126 it fits in 7 bits;
    up to 65535 it is 126 followed by 2 bytes; above, 127 followed by 8 bytes,
    big-endian. The length counts UTF-8 bytes, not characters.
    """
    data = text.encode("utf-8")
    n = len(data)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n <= 0xFFFF:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + data
