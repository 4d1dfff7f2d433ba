<?php
// A PHP client with no pool: file_get_contents() per request, paced at PORTLAB_RATE per
// second. PHP's http:// wrapper speaks HTTP/1.0 (without keep-alive) and reads the reply
// up to the server's close, so the server closes first. COUNT (optional) bounds the
// requests.
$url = "http://" . getenv("PORTLAB_TARGET") . "/";
$rate = floatval(getenv("PORTLAB_RATE") ?: "50");
$count = intval(getenv("COUNT") ?: "1000000");
$start = hrtime(true) / 1e9;
for ($i = 0; $i < $count; $i++) {
    $delay = $start + $i / $rate - hrtime(true) / 1e9;
    if ($delay > 0) {
        usleep((int) ($delay * 1e6));
    }
    if (file_get_contents($url) === false) {
        fwrite(STDERR, "request $i failed\n");
        exit(1);
    }
}
echo "done: $count requests\n";
