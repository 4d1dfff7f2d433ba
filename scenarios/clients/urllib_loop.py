"""A Python HTTP client with no pool: urllib.request.urlopen per request (it sends
`Connection: close` and closes once it has read the reply), paced at PORTLAB_RATE per second.
When the ports run out: `urllib.error.URLError: <urlopen error [Errno 99] Cannot assign
requested address>`. COUNT (optional) bounds the requests."""
import os
import time
import urllib.request

url = "http://%s/" % os.environ["PORTLAB_TARGET"]
rate = float(os.environ.get("PORTLAB_RATE", "50"))
count = int(os.environ.get("COUNT", "1000000"))
start = time.monotonic()
for i in range(count):
    delay = start + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    with urllib.request.urlopen(url, timeout=5) as r:
        r.read()
print("done: %d requests" % count)
