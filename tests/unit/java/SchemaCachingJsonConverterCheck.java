import io.cdcplatform.connect.SchemaCachingJsonConverter;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.apache.kafka.connect.data.Decimal;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.data.Timestamp;
import org.apache.kafka.connect.json.JsonConverter;

/** Run by tests/unit/test_schema_caching_converter.py: every record converts as JsonConverter converts it. */
public class SchemaCachingJsonConverterCheck {
    static int checked = 0;

    public static void main(String[] args) {
        Map<String, String> config = Map.of("schemas.enable", "true", "replace.null.with.default", "false");
        JsonConverter plain = new JsonConverter();
        plain.configure(config, false);
        SchemaCachingJsonConverter caching = new SchemaCachingJsonConverter();
        caching.configure(config, false);

        Schema row = SchemaBuilder.struct().name("shop.public.orders.Value").doc("a {doc} with \"quotes\" and \\ [brackets]")
                .field("id", Schema.INT64_SCHEMA)
                .field("label", Schema.OPTIONAL_STRING_SCHEMA)
                .field("amount", Decimal.builder(2).optional().build())
                .field("at", Timestamp.builder().optional().build())
                .field("tags", SchemaBuilder.array(Schema.STRING_SCHEMA).optional().build())
                .field("attrs", SchemaBuilder.map(Schema.STRING_SCHEMA, Schema.OPTIONAL_INT32_SCHEMA).optional().build())
                .field("blob", Schema.OPTIONAL_BYTES_SCHEMA)
                .field("qty", SchemaBuilder.int32().optional().defaultValue(7).build())
                .optional().build();
        Schema envelope = SchemaBuilder.struct().name("shop.public.orders.Envelope")
                .field("before", row).field("after", row).field("op", Schema.STRING_SCHEMA).build();
        Schema wider = SchemaBuilder.struct().name("shop.public.orders.Envelope")
                .field("before", row).field("after", row).field("op", Schema.STRING_SCHEMA)
                .field("ts_ms", Schema.OPTIONAL_INT64_SCHEMA).build();

        String[] labels = {"plain", "} { ] [ \" \\ ,\"payload\":", "ünïcødé ✓", "", null};
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < labels.length; i++) {
                Struct after = new Struct(row).put("id", (long) i).put("label", labels[i])
                        .put("amount", i == 4 ? null : new BigDecimal("-12345.6" + i))
                        .put("at", new java.util.Date(1700000000000L + i))
                        .put("tags", List.of("a", "}\"{"))
                        .put("attrs", Map.of("k", i))
                        .put("blob", new byte[] {0, 1, (byte) 255})
                        .put("qty", i == 3 ? null : i);
                Struct before = i % 2 == 0 ? null : new Struct(row).put("id", (long) i).put("qty", 1);
                Struct event = new Struct(round == 2 ? wider : envelope).put("before", before).put("after", after).put("op", "u");
                if (round == 2) {
                    event.put("ts_ms", 5L);
                }
                same(plain, caching, plain.fromConnectData("t", event.schema(), event));
            }
        }
        // forms JsonConverter reads but never writes go to it whole
        same(plain, caching, "{\"payload\":{\"id\":1},\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int64\",\"optional\":false,\"field\":\"id\"}],\"optional\":false}}".getBytes(StandardCharsets.UTF_8));
        same(plain, caching, "{\"schema\": {\"type\":\"int64\",\"optional\":false}, \"payload\": 3}".getBytes(StandardCharsets.UTF_8));
        same(plain, caching, "{\"schema\":null,\"payload\":\"x\"}".getBytes(StandardCharsets.UTF_8));
        same(plain, caching, "{\"schema\":{\"type\":\"int64\",\"optional\":false},\"payload\":3}".getBytes(StandardCharsets.UTF_8));
        same(plain, caching, "{\"schema\":{\"type\":\"int64\",\"optional\":false},\"payload\":4}".getBytes(StandardCharsets.UTF_8));
        SchemaAndValue tombstone = caching.toConnectData("t", null);
        if (tombstone.schema() != null || tombstone.value() != null) {
            throw new AssertionError("a tombstone must stay null");
        }
        System.out.println("checked " + checked + " schemas " + caching.cachedSchemas() + " hits " + caching.hits());
    }

    static void same(JsonConverter plain, JsonConverter caching, byte[] bytes) {
        SchemaAndValue expected = plain.toConnectData("t", bytes);
        SchemaAndValue actual = caching.toConnectData("t", bytes);
        if (!java.util.Objects.equals(expected.schema(), actual.schema())
                || !deepEquals(expected.value(), actual.value())) {
            throw new AssertionError("differs for " + new String(bytes, StandardCharsets.UTF_8)
                    + "\nexpected " + expected + "\nactual   " + actual);
        }
        checked++;
    }

    static boolean deepEquals(Object a, Object b) {
        if (a instanceof byte[] && b instanceof byte[]) {
            return java.util.Arrays.equals((byte[]) a, (byte[]) b);
        }
        return java.util.Objects.deepEquals(a, b);
    }
}
