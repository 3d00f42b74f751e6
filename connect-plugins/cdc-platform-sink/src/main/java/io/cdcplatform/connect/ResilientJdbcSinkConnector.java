package io.cdcplatform.connect;

import org.apache.kafka.connect.connector.Task;

import io.debezium.connector.jdbc.JdbcSinkConnector;

/**
 * Debezium's JDBC sink, whose tasks ride out a target that goes away for a while.
 *
 * <p>Everything but the task class is Debezium's: configuration, validation, task configs. The task
 * ({@link ResilientJdbcSinkTask}) wraps Debezium's own and turns a lost connection into a retry of
 * the same batch instead of a FAILED task.
 */
public class ResilientJdbcSinkConnector extends JdbcSinkConnector {

    @Override
    public Class<? extends Task> taskClass() {
        return ResilientJdbcSinkTask.class;
    }
}
