package io.cdcplatform.connect;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.json.JsonConverter;

/**
 * Kafka's JsonConverter for the sink side, which reads each distinct schema once.
 *
 * <p>Every record on a pipeline's topics carries its schema beside its values, four to seven times
 * the bytes of the values on the demo's topics. JsonConverter parses the whole envelope into a
 * Jackson tree for every record and then hashes and compares the schema's tree to find it in its
 * cache: 40 % of the sink task's time in a catch-up (issue 35, bench/README.md). The records of
 * one table share a handful of schemas, byte for byte, since one JsonConverter wrote them all. This converter finds
 * the schema's bytes with one scan, looks them up, and on a hit hands JsonConverter only the values
 * under a stub schema, answering its schema lookup with the cached schema. Values are still
 * converted by JsonConverter's own code, so every value means what it meant before.
 *
 * <p>Anything not in the exact compact form JsonConverter writes ({@code {"schema":{...},
 * "payload":...}}) goes to JsonConverter whole. A converter instance belongs to one task, whose
 * thread alone calls it; the methods are synchronized all the same, so a shared instance stays
 * correct.
 */
public class SchemaCachingJsonConverter extends JsonConverter {

    private static final byte[] PREFIX = "{\"schema\":".getBytes(StandardCharsets.UTF_8);
    private static final byte[] PAYLOAD = ",\"payload\":".getBytes(StandardCharsets.UTF_8);
    private static final byte[] STUB = "{\"schema\":{},\"payload\":".getBytes(StandardCharsets.UTF_8);
    private static final int MAX_SCHEMAS = 1000;

    private final Map<SchemaBytes, Schema> schemas = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<SchemaBytes, Schema> eldest) {
            return size() > MAX_SCHEMAS;
        }
    };

    /** The schema to answer JsonConverter's lookup with while it converts a stub envelope. */
    private Schema pending;
    private long hits;

    @Override
    public synchronized SchemaAndValue toConnectData(String topic, byte[] value) {
        int end = value == null ? -1 : schemaEnd(value);
        if (end < 0) {
            return super.toConnectData(topic, value);
        }
        SchemaBytes key = new SchemaBytes(value, PREFIX.length, end);
        Schema schema = schemas.get(key);
        if (schema == null) {
            SchemaAndValue whole = super.toConnectData(topic, value);
            if (whole.schema() != null) {
                schemas.put(key.copy(), whole.schema());
            }
            return whole;
        }
        int from = end + PAYLOAD.length;
        byte[] stub = new byte[STUB.length + value.length - from];
        System.arraycopy(STUB, 0, stub, 0, STUB.length);
        System.arraycopy(value, from, stub, STUB.length, value.length - from);
        pending = schema;
        hits++;
        try {
            return super.toConnectData(topic, stub);
        } finally {
            pending = null;
        }
    }

    @Override
    public synchronized Schema asConnectSchema(JsonNode jsonSchema) {
        Schema known = pending;
        return known != null ? known : super.asConnectSchema(jsonSchema);
    }

    /** Schemas held, and records converted from a held schema (tests/unit/test_schema_caching_converter.py). */
    public synchronized int cachedSchemas() {
        return schemas.size();
    }

    public synchronized long hits() {
        return hits;
    }

    /**
     * The index just past the schema object of {@code {"schema":{...},"payload":...}}, or -1 when
     * the record is in any other form. Strings are skipped with their escapes, so braces inside
     * names or defaults do not count.
     */
    static int schemaEnd(byte[] value) {
        if (value.length < PREFIX.length + PAYLOAD.length + 3
                || !Arrays.equals(value, 0, PREFIX.length, PREFIX, 0, PREFIX.length)
                || value[PREFIX.length] != '{'
                || value[value.length - 1] != '}') {
            return -1;
        }
        int depth = 0;
        boolean inString = false;
        for (int i = PREFIX.length; i < value.length; i++) {
            byte b = value[i];
            if (inString) {
                if (b == '\\') {
                    i++;
                } else if (b == '"') {
                    inString = false;
                }
            } else if (b == '"') {
                inString = true;
            } else if (b == '{' || b == '[') {
                depth++;
            } else if (b == '}' || b == ']') {
                depth--;
                if (depth == 0) {
                    int end = i + 1;
                    boolean payloadFollows = end + PAYLOAD.length < value.length
                            && Arrays.equals(value, end, end + PAYLOAD.length, PAYLOAD, 0, PAYLOAD.length);
                    return payloadFollows ? end : -1;
                }
            }
        }
        return -1;
    }

    /** A range of bytes compared by content, its hash computed once. */
    private static final class SchemaBytes {
        private final byte[] bytes;
        private final int from;
        private final int to;
        private final int hash;

        SchemaBytes(byte[] bytes, int from, int to) {
            this.bytes = bytes;
            this.from = from;
            this.to = to;
            // every 7th byte and the length: a converter holds a few schemas, and equals compares
            // every byte, so a rare collision costs one comparison, not a wrong schema
            int h = to - from;
            for (int i = from; i < to; i += 7) {
                h = 31 * h + bytes[i];
            }
            this.hash = h;
        }

        SchemaBytes copy() {
            return new SchemaBytes(Arrays.copyOfRange(bytes, from, to), 0, to - from);
        }

        @Override
        public int hashCode() {
            return hash;
        }

        @Override
        public boolean equals(Object other) {
            if (!(other instanceof SchemaBytes)) {
                return false;
            }
            SchemaBytes that = (SchemaBytes) other;
            return hash == that.hash && Arrays.equals(bytes, from, to, that.bytes, that.from, that.to);
        }
    }
}
