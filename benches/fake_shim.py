#!/usr/bin/env python3
"""Minimal shim-monitor stand-in for benches/shim.sh: answers every request on a Unix socket
with HTTP/1.1 200 and SIZE bytes of Prometheus text (sent from one preallocated 64 KiB block,
so the server costs little next to the client being measured)."""
import os
import socket
import sys

sock_path, size = sys.argv[1], int(sys.argv[2])
line = b'kata_guest_meminfo{item="active"} 1.2345678e+09\n'
block = (line * (65536 // len(line) + 1))[:65536]
head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\n\r\n" % size

if os.path.exists(sock_path):
    os.unlink(sock_path)
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sock_path)
srv.listen(16)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        try:
            conn.sendall(head)
            left = size
            while left > 0:
                n = min(left, len(block))
                conn.sendall(block[:n] if n < len(block) else block)
                left -= n
        except (BrokenPipeError, ConnectionResetError):
            pass
