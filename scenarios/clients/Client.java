// A Java client with no pool, run as a single-file program: `java Client.java [MODE]`.
//
// MODE socket (default): a new java.net.Socket per request, a line sent and one read back,
// closed first by the client. When the ports run out, new Socket() throws
// `java.net.BindException: Cannot assign requested address` (uncaught: the JVM prints it
// and exits 1).
// MODE http: java.net.HttpURLConnection GET per request; with the JDK's default keep-alive
// the connections are pooled and it never runs out; with -Dhttp.keepAlive=false it opens one
// connection per request and sends `Connection: close`, so a server that honours it (nginx,
// portlab's embedded server) closes first and holds the TIME_WAIT: it does not run out.
//
// Paced at PORTLAB_RATE requests/s on an absolute schedule (no drift); PORTLAB_TARGET_HOST
// and PORTLAB_TARGET_PORT say where. COUNT (optional) bounds the requests.
import java.io.*;
import java.net.*;
import java.nio.charset.StandardCharsets;

public class Client {
    public static void main(String[] args) throws Exception {
        String host = System.getenv("PORTLAB_TARGET_HOST");
        int port = Integer.parseInt(System.getenv("PORTLAB_TARGET_PORT"));
        double rate = Double.parseDouble(System.getenv().getOrDefault("PORTLAB_RATE", "50"));
        long count = Long.parseLong(System.getenv().getOrDefault("COUNT", "1000000"));
        String mode = args.length > 0 ? args[0] : "socket";
        long start = System.nanoTime();
        for (long i = 0; i < count; i++) {
            long due = start + (long) (i * 1e9 / rate);
            long wait = due - System.nanoTime();
            if (wait > 0) {
                Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
            }
            if (mode.equals("http")) {
                HttpURLConnection c = (HttpURLConnection) new URL("http://" + host + ":" + port + "/").openConnection();
                try (InputStream in = c.getInputStream()) {
                    in.readAllBytes();
                }
            } else {
                try (Socket s = new Socket(host, port)) {
                    s.getOutputStream().write("hello\n".getBytes(StandardCharsets.US_ASCII));
                    s.getInputStream().read(new byte[64]);
                }
            }
        }
        System.out.println("done: " + count + " requests");
    }
}
