def sse_encode(seq, event_type, data):
    """One Server-Sent Events block: id, type, one data: line per line, blank line."""
    lines = [f"id: {seq}", f"event: {event_type}"]
    lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"
