// A Node.js client with no pool: a new net.connect() per request, a line sent, one read
// back, closed first (end()), paced at PORTLAB_RATE per second on an absolute schedule.
// When the ports run out the error event carries `connect EADDRNOTAVAIL 127.0.0.1:PORT -
// Local (0.0.0.0:0)`; it is thrown, Node prints it and exits 1.
const net = require("net");
const host = process.env.PORTLAB_TARGET_HOST;
const port = Number(process.env.PORTLAB_TARGET_PORT);
const rate = Number(process.env.PORTLAB_RATE || "50");
const start = Date.now();
let i = 0;
function next() {
  const s = net.connect({ host, port }, () => s.write("hello\n"));
  s.once("data", () => s.end());
  s.on("error", (e) => {
    throw e;
  });
  s.on("close", () => {
    i += 1;
    setTimeout(next, Math.max(0, start + (i * 1000) / rate - Date.now()));
  });
}
next();
