"""Protocols on the wire, by hand: raw HTTP views, WebSocket frames, a counting relay."""
