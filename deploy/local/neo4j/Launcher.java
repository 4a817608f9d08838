import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.configuration.ssl.ClientAuth;
import org.neo4j.configuration.ssl.SslPolicyConfig;
import org.neo4j.configuration.ssl.SslPolicyScope;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.io.ByteUnit;

/**
 * Runs an embedded Neo4j community server for local development and tests, so that no
 * Neo4j distribution (nor Docker) is needed: deploy/local/neo4j.sh resolves the jars
 * with Maven and starts this class.
 *
 * Usage: java Launcher <home-dir>   (or env NEO4J_DATA_DIR)
 * Env:   NEO4J_BOLT_PORT  Bolt port on 127.0.0.1, default 7687
 *        NEO4J_AUTH       "none" (default) or "neo4j/<password>"
 *        NEO4J_PASSWORD_FILE  a file holding the password of the user neo4j: authentication on
 *                         (wins over NEO4J_AUTH; keeps the password off the command line and env)
 *        NEO4J_PAGECACHE  page cache size, e.g. "512m" (default) or "2g"
 *        NEO4J_TLS_DIR    a folder with private.key (PKCS#8 PEM) and public.crt: Bolt with TLS
 *                         only (bolt+s://); unset: Bolt without TLS
 *
 * Prints "neo4j ready: bolt://..." once Bolt accepts queries; SIGTERM stops it cleanly.
 */
public final class Launcher {
    private static final String HOST = "127.0.0.1";

    public static void main(String[] args) throws InterruptedException {
        String home = args.length > 0 ? args[0] : env("NEO4J_DATA_DIR", "");
        if (home.isBlank()) {
            fail("usage: Launcher <home-dir> (or set NEO4J_DATA_DIR)");
        }
        int port = Integer.parseInt(env("NEO4J_BOLT_PORT", "7687"));
        String auth = env("NEO4J_AUTH", "none");
        String passwordFile = env("NEO4J_PASSWORD_FILE", "");
        String password = null;
        if (!passwordFile.isBlank()) {
            try {
                password = Files.readString(Path.of(passwordFile)).strip();
            } catch (IOException e) {
                fail("cannot read NEO4J_PASSWORD_FILE " + passwordFile + ": " + e);
            }
            if (password == null || password.isEmpty()) {
                fail("NEO4J_PASSWORD_FILE " + passwordFile + " is empty");
            }
        } else if (auth.startsWith("neo4j/")) {
            password = auth.substring("neo4j/".length());
        } else if (!auth.equals("none")) {
            fail("NEO4J_AUTH must be 'none' or 'neo4j/<password>'");
        }

        DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(Path.of(home).toAbsolutePath());
        String tlsDir = env("NEO4J_TLS_DIR", "");
        if (!tlsDir.isBlank()) {
            Path dir = Path.of(tlsDir).toAbsolutePath();
            SslPolicyConfig bolt = SslPolicyConfig.forScope(SslPolicyScope.BOLT);
            builder.setConfig(bolt.enabled, true)
                    .setConfig(bolt.base_directory, dir)
                    .setConfig(bolt.private_key, dir.resolve("private.key"))
                    .setConfig(bolt.public_certificate, dir.resolve("public.crt"))
                    .setConfig(bolt.client_auth, ClientAuth.NONE)
                    .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.REQUIRED);
        }
        DatabaseManagementService dbms = builder
                // Only Bolt, and only on loopback: nothing listens on other interfaces.
                .setConfig(GraphDatabaseSettings.default_listen_address, new SocketAddress(HOST))
                .setConfig(GraphDatabaseSettings.default_advertised_address, new SocketAddress(HOST))
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress(HOST, port))
                .setConfig(BoltConnector.advertised_address, new SocketAddress(HOST, port))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, password != null)
                // Sized for dev and CI machines; the store files of a million events (two
                // generations during a rebuild) fit in the default, so writes do not wait on reads.
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.parse(env("NEO4J_PAGECACHE", "512m")))
                .setConfig(GraphDatabaseSettings.keep_logical_logs, "2 files")
                .setConfig(GraphDatabaseSettings.logical_log_rotation_threshold, ByteUnit.mebiBytes(16))
                .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                // Bolt's Netty event loops otherwise idle through a quiet period on shutdown
                // (twice, after the stores are already flushed); a local stop needs none.
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                // No anonymous usage reports from developer machines and CI.
                .setConfig(GraphDatabaseSettings.udc_enabled, false)
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("neo4j stopping");
            dbms.shutdown();
            System.out.println("neo4j stopped");
            stopped.countDown();
        }, "neo4j-shutdown"));

        try {
            if (password != null) {
                setPassword(dbms, password);
            }
        } catch (RuntimeException e) {
            System.err.println("neo4j launcher: could not set the password: " + e.getMessage());
            System.exit(1); // runs the shutdown hook
        }
        System.out.println("neo4j ready: " + (tlsDir.isBlank() ? "bolt://" : "bolt+s://") + HOST + ":" + port
                + " (auth " + (password == null ? "none" : "neo4j") + ")");
        stopped.await();
    }

    /**
     * Embedded mode has no `neo4j-admin dbms set-initial-password`, so the password of the
     * built-in user is set through the system database, before anyone is told we are ready.
     */
    private static void setPassword(DatabaseManagementService dbms, String password) {
        try {
            dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED", Map.of("password", password));
        } catch (RuntimeException e) {
            // A restart with an unchanged password: Neo4j refuses to "change" it to itself.
            if (!String.valueOf(e.getMessage()).contains("Old password and new password cannot be the same")) {
                throw e;
            }
        }
    }

    private static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isBlank() ? fallback : value;
    }

    private static void fail(String message) {
        System.err.println("neo4j launcher: " + message);
        System.exit(2);
    }
}
