"""A Python HTTP/1.0 client with no pool: http.client made to speak HTTP/1.0 (as old
clients and proxies do), one connection per request, paced at PORTLAB_RATE per second.
HTTP/1.0 without keep-alive asks the server to close after its reply. COUNT (optional)
bounds the requests."""
import http.client
import os
import time

http.client.HTTPConnection._http_vsn = 10
http.client.HTTPConnection._http_vsn_str = "HTTP/1.0"

host = os.environ["PORTLAB_TARGET_HOST"]
port = int(os.environ["PORTLAB_TARGET_PORT"])
rate = float(os.environ.get("PORTLAB_RATE", "50"))
count = int(os.environ.get("COUNT", "1000000"))
start = time.monotonic()
for i in range(count):
    delay = start + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("GET", "/")
    reply = conn.getresponse()
    reply.read()
    conn.close()
print("done: %d requests" % count)
