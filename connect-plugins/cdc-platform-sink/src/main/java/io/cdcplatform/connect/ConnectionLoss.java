package io.cdcplatform.connect;

import java.io.EOFException;
import java.net.SocketException;
import java.sql.SQLException;
import java.sql.SQLNonTransientConnectionException;
import java.sql.SQLRecoverableException;
import java.sql.SQLTransientConnectionException;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Whether a failure means "the connection to the target is gone", which a new connection can cure,
 * as opposed to a failure the data or the schema causes, which a retry would only repeat.
 *
 * <p>Found on closed connections (issue 34): PostgreSQL's driver says SQLState 08003/08006 ("This
 * connection has been closed", "An I/O error occurred"), 57P01 ("terminating connection due to
 * administrator command") and 57P03 ("the database system is starting up"); MariaDB's says 08xxx
 * through {@link SQLNonTransientConnectionException}; Hibernate wraps them in its
 * JDBCConnectionException or in a TransactionException ("Unable to rollback against JDBC
 * Connection") whose cause is one of the above.
 */
final class ConnectionLoss {

    private ConnectionLoss() {
    }

    static boolean isConnectionLoss(Throwable failure) {
        Map<Throwable, Boolean> seen = new IdentityHashMap<>();
        for (Throwable t = failure; t != null && seen.put(t, Boolean.TRUE) == null; t = t.getCause()) {
            if (t instanceof SQLTransientConnectionException || t instanceof SQLNonTransientConnectionException
                    || t instanceof SQLRecoverableException || t instanceof SocketException || t instanceof EOFException
                    || t instanceof java.net.ConnectException) {
                return true;
            }
            if (t instanceof SQLException sql && isConnectionState(sql.getSQLState())) {
                return true;
            }
            if ("org.hibernate.exception.JDBCConnectionException".equals(t.getClass().getName())) {
                return true;
            }
        }
        return false;
    }

    static boolean isConnectionState(String state) {
        return state != null && (state.startsWith("08") || state.equals("57P01") || state.equals("57P02")
                || state.equals("57P03") || state.equals("53300"));
    }
}
