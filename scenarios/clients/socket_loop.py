"""A Python client with no pool: one socket.create_connection per request, paced at
PORTLAB_RATE per second (open loop on an absolute schedule), closing first. When the ports
run out it dies with the usual `OSError: [Errno 99] Cannot assign requested address`."""
import os
import socket
import time

host = os.environ["PORTLAB_TARGET_HOST"]
port = int(os.environ["PORTLAB_TARGET_PORT"])
rate = float(os.environ.get("PORTLAB_RATE", "50"))
start = time.monotonic()
i = 0
while True:
    due = start + i / rate
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    with socket.create_connection((host, port)) as s:
        s.sendall(b"hello\n")
        s.recv(64)
    i += 1
