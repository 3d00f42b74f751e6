package io.cdcplatform.connect;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import io.debezium.connector.jdbc.JdbcSinkConnectorTask;

/**
 * Debezium's JDBC sink task, restarted in place when its connection to the target is lost.
 *
 * <p>Debezium's task catches a failed batch, remembers it, and fails the task on the next
 * {@code put}. Its flush retries cover a connection that fails during the write itself, but not one
 * that fails while it rolls back, reads the table's columns or opens the session; and its session is
 * opened once, at start. So a target restart of a few seconds left the task FAILED until someone
 * restarted it (issue 34: within a second of PostgreSQL's fast shutdown).
 *
 * <p>Here a batch that failed because the connection went away is handed back to Kafka Connect as a
 * {@link RetriableException}: Connect pauses the partitions and delivers the same records again
 * after {@value #BACKOFF_MS} ms, and the commit position never passes them (Connect advances it only
 * after a successful {@code put}). Before that redelivery the inner task is stopped and started
 * again with the same configuration, which gives it a new session factory and connection pool.
 * While the target stays away the start itself fails; that is retried the same way. After
 * {@code cdc.platform.sink.reconnect.window.ms} (default 5 minutes) of failing, the failure is
 * raised and the task goes FAILED, for the platform's health sensor to see and alert on.
 *
 * <p>Any other failure (a value the target refuses, a missing table) goes through unchanged.
 *
 * <p>Tombstones (records without a value: the one Debezium's source writes after each delete, for
 * Kafka's log compaction) never reach the inner task. The delete itself arrives as its change
 * event; the tombstone would be a second delete of the key, and a record whose value schema differs
 * from the table's, which ends the reduction buffer's batch: with 10 % deletes, batches of about ten
 * records and half the drain rate (issue 35). They are dropped here rather than by a Connect
 * transform, because Debezium's task commits only the offsets of records it saw: a partition whose
 * newest record is a filtered tombstone would show one change waiting forever (a false lag, and a
 * false stall). Here a successful {@code put} counts every record it was given as written.
 */
public class ResilientJdbcSinkTask extends SinkTask {

    static final String WINDOW_CONFIG = "cdc.platform.sink.reconnect.window.ms";
    static final long DEFAULT_WINDOW_MS = 300_000L;
    static final long BACKOFF_MS = 2_000L;

    private static final Logger LOGGER = LoggerFactory.getLogger(ResilientJdbcSinkTask.class);

    private final Set<TopicPartition> assigned = new HashSet<>();
    /** per partition, the offset after the newest record of a put that succeeded, tombstones included */
    private final Map<TopicPartition, Long> written = new HashMap<>();
    private Map<String, String> props;
    private long windowMs = DEFAULT_WINDOW_MS;
    private JdbcSinkConnectorTask inner;
    private long failingSince = -1L;
    private int reconnects;

    @Override
    public String version() {
        return new JdbcSinkConnectorTask().version();
    }

    @Override
    public void start(Map<String, String> props) {
        this.props = new HashMap<>(props);
        String window = this.props.remove(WINDOW_CONFIG);
        if (window != null) {
            windowMs = Long.parseLong(window.trim());
        }
        inner = newInner();
    }

    private JdbcSinkConnectorTask newInner() {
        JdbcSinkConnectorTask task = new JdbcSinkConnectorTask();
        task.initialize(context);
        task.start(props);
        if (!assigned.isEmpty()) {
            task.open(new HashSet<>(assigned));
        }
        return task;
    }

    @Override
    public void put(Collection<SinkRecord> records) {
        if (inner == null) {
            reconnect(null);
        }
        List<SinkRecord> changes = new ArrayList<>(records.size());
        for (SinkRecord record : records) {
            if (record.value() != null) {
                changes.add(record);
            }
        }
        Throwable failure;
        try {
            inner.put(changes);
            failure = inner.getLastProcessingException();
        }
        catch (ConnectException e) {
            failure = e;
        }
        if (failure == null) {
            if (failingSince >= 0) {
                LOGGER.info("The target answers again after {} reconnect(s); the held batch is written", reconnects);
            }
            failingSince = -1L;
            reconnects = 0;
            markWritten(records);
            return;
        }
        if (!ConnectionLoss.isConnectionLoss(failure)) {
            throw failure instanceof ConnectException ce ? ce : new ConnectException("JDBC sink connector failure", failure);
        }
        reconnect(failure);
    }

    private void markWritten(Collection<SinkRecord> records) {
        for (SinkRecord record : records) {
            TopicPartition partition = new TopicPartition(record.originalTopic(), record.originalKafkaPartition());
            written.merge(partition, record.originalKafkaOffset() + 1L, Math::max);
        }
    }

    /** Start a fresh inner task, then ask Connect to deliver the same records again. */
    private void reconnect(Throwable cause) {
        long now = System.currentTimeMillis();
        if (failingSince < 0) {
            failingSince = now;
        }
        if (now - failingSince > windowMs) {
            throw new ConnectException("The target stayed unreachable for more than " + windowMs / 1000
                    + " s; giving the failure to the platform's health sensor", cause);
        }
        stopInner();
        reconnects++;
        try {
            inner = newInner();
            if (cause != null) {
                LOGGER.warn("Lost the connection to the target ({}); reconnected, the batch will be written again", describe(cause));
            }
            else {
                LOGGER.info("Reconnected to the target; the held batch will be written again");
            }
        }
        catch (RuntimeException e) {
            inner = null;
            if (!ConnectionLoss.isConnectionLoss(e)) {
                throw e;
            }
            LOGGER.warn("The target is still unreachable ({}); retrying in {} ms", describe(e), BACKOFF_MS);
        }
        context.timeout(BACKOFF_MS);
        throw new RetriableException("the target's connection was lost; the batch is retried", cause);
    }

    private static String describe(Throwable failure) {
        Throwable root = failure;
        while (root != null && root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return root == null ? "no cause" : root.getClass().getSimpleName() + ": " + root.getMessage();
    }

    private void stopInner() {
        if (inner != null) {
            try {
                inner.stop();
            }
            catch (RuntimeException e) {
                LOGGER.debug("Stopping the failed inner task", e);
            }
            inner = null;
        }
    }

    @Override
    public void open(Collection<TopicPartition> partitions) {
        assigned.addAll(partitions);
        if (inner != null) {
            inner.open(partitions);
        }
    }

    @Override
    public void close(Collection<TopicPartition> partitions) {
        assigned.removeAll(partitions);
        partitions.forEach(written::remove);
        if (inner != null) {
            inner.close(partitions);
        }
    }

    @Override
    public Map<TopicPartition, OffsetAndMetadata> preCommit(Map<TopicPartition, OffsetAndMetadata> currentOffsets) {
        if (inner == null) {
            // nothing written since the last successful put: commit where Connect stands, which is
            // before any batch that is waiting to be written again
            Map<TopicPartition, OffsetAndMetadata> kept = new HashMap<>();
            for (TopicPartition partition : assigned) {
                if (currentOffsets.containsKey(partition)) {
                    kept.put(partition, currentOffsets.get(partition));
                }
            }
            return kept;
        }
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>(inner.preCommit(currentOffsets));
        // the inner task saw no tombstone: where the newest records were tombstones, its offset stops
        // before them although the put that carried them succeeded
        for (Map.Entry<TopicPartition, OffsetAndMetadata> entry : offsets.entrySet()) {
            Long after = written.get(entry.getKey());
            if (after != null && entry.getValue() != null && after > entry.getValue().offset()) {
                entry.setValue(new OffsetAndMetadata(after));
            }
        }
        return offsets;
    }

    @Override
    public void stop() {
        stopInner();
    }
}
