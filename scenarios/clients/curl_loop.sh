#!/bin/sh
# A shell loop of curl, one process and one connection per request, as fast as it goes
# (process start-up caps it near 26/s here, whatever PORTLAB_RATE asks: portlab measures the
# rate, it does not trust the requested one). curl closes first; when the ports run out it
# prints `curl: (7) Failed to connect ... Couldn't connect to server` and the loop stops.
while curl -sS -o /dev/null "http://$PORTLAB_TARGET/"; do :; done
