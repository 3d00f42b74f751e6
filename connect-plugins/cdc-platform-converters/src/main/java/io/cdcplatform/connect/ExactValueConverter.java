/*
 * cdc-platform: a Debezium custom converter that carries every value of the types it claims
 * exactly, or applies the pipeline's documented substitution rule.
 *
 * Why it exists: Kafka's JsonConverter cannot carry NaN, Infinity or -0.0 (they come back as 0),
 * and several Debezium default mappings lose information (PostgreSQL infinite dates, time
 * '24:00:00', MySQL BIGINT UNSIGNED above 2^63, BIT(n), MariaDB UUID, TIME beyond a day). This
 * converter turns those columns into text (or bytes, or a small integer) in a form the target
 * database parses back to the same value. The Python side (cdc_platform/schema/rules.py) applies
 * the same rules in the full load; the integration tests compare both paths value by value.
 *
 * Configuration (prefix "<name>." in the connector config):
 *   target = postgresql | mysql | mariadb   the sink's database kind; decides the text forms and
 *                                           which values the target cannot hold (they become NULL)
 *          | s3                             PostgreSQL's text forms, every value kept (NUL inside
 *                                           MySQL text too): the Python S3 writer applies its rules
 */
package io.cdcplatform.connect;

import java.math.BigDecimal;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.time.Year;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.temporal.ChronoField;
import java.util.BitSet;
import java.util.Locale;
import java.util.Properties;

import org.apache.kafka.connect.data.Schema;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.apache.kafka.connect.data.SchemaBuilder;

import io.debezium.spi.converter.CustomConverter;
import io.debezium.spi.converter.RelationalColumn;

public class ExactValueConverter implements CustomConverter<SchemaBuilder, RelationalColumn> {

    private static final Logger LOGGER = LoggerFactory.getLogger(ExactValueConverter.class);

    /** PostgreSQL's +/-infinity timestamps as pgjdbc hands them to Debezium (PGStatement constants). */
    static final long PG_POSITIVE_INFINITY = 9223372036825200000L;
    static final long PG_NEGATIVE_INFINITY = -9223372036832400000L;
    /** PostgreSQL dates run from 4713 BC (ISO year -4712); Debezium's infinities land far below. */
    static final int PG_MIN_ISO_YEAR = -4712;

    private boolean targetPostgres;
    /** S3 (Parquet) target: PostgreSQL's text forms, and text keeps its NUL characters */
    private boolean keepNul;

    @Override
    public void configure(Properties props) {
        String target = props.getProperty("target", "").toLowerCase(Locale.ROOT);
        switch (target) {
            case "postgresql":
                targetPostgres = true;
                break;
            case "s3":
                targetPostgres = true;
                keepNul = true;
                break;
            case "mysql":
            case "mariadb":
                targetPostgres = false;
                break;
            default:
                throw new IllegalArgumentException("ExactValueConverter: 'target' must be postgresql, mysql, mariadb or s3, got '" + target + "'");
        }
    }

    @Override
    public void converterFor(RelationalColumn column, ConverterRegistration<SchemaBuilder> registration) {
        String type = column.typeName();
        if (type == null) {
            return;
        }
        // PostgreSQL reports lower-case type names, MySQL/MariaDB upper-case ones.
        boolean pg = !type.equals(type.toUpperCase(Locale.ROOT));
        if (pg) {
            pgColumn(type, column, guarded(registration, column));
        }
        else {
            mysqlColumn(type.toUpperCase(Locale.ROOT), column, guarded(registration, column));
        }
    }

    /**
     * Debezium also passes a column's default value through the converter, in Debezium's own
     * converted form (epoch days for a date, the text of an expression for DEFAULT now()), while row
     * values always have the driver's type (every one is covered by the fidelity test). A value of
     * another type is therefore a default: it becomes the schema's default as text (or none) and is
     * logged, instead of stopping the connector. Schema defaults never fill row values: Debezium
     * emits every column of every row.
     */
    private static ConverterRegistration<SchemaBuilder> guarded(ConverterRegistration<SchemaBuilder> inner,
                                                                RelationalColumn column) {
        return (schema, converter) -> {
            boolean text = schema.type() == Schema.Type.STRING;
            inner.register(schema, value -> {
                try {
                    return converter.convert(value);
                }
                catch (ClassCastException | IllegalArgumentException | ArithmeticException e) {
                    LOGGER.warn("ExactValueConverter: column {} ({}): a value of {} is not a row value of this type; "
                            + "taken as the column's default", column.name(), column.typeName(), value.getClass().getName());
                    return text ? value.toString() : null;
                }
            });
        };
    }

    // -- PostgreSQL sources -------------------------------------------------------------------
    private void pgColumn(String type, RelationalColumn column, ConverterRegistration<SchemaBuilder> registration) {
        switch (type) {
            case "float8":
            case "float4":
                registration.register(text(), v -> v == null ? null : floating((Number) v));
                break;
            case "numeric":
                int[] bounds = mysqlDecimalBounds(column);
                registration.register(text(), v -> v == null ? null : pgNumeric(v, bounds));
                break;
            case "date":
                registration.register(text(), v -> v == null ? null : pgDate((LocalDate) v));
                break;
            case "timestamp":
                registration.register(text(), v -> v == null ? null : pgTimestamp(v));
                break;
            case "timestamptz":
                registration.register(text(), v -> v == null ? null : pgTimestamptz(v));
                break;
            case "bpchar":
                if (!targetPostgres) {
                    // PostgreSQL's padding is not part of a char(n) value (char::text drops it); a
                    // MySQL VARCHAR, which holds char(n > 255), would keep it
                    registration.register(text(), v -> v == null ? null : Texts.stripTrailingSpaces(v.toString()));
                }
                break;
            case "time":
                // pgoutput's own text ("24:00:00" included), which both targets parse
                registration.register(text(), v -> v == null ? null : v.toString());
                break;
            case "interval":
                registration.register(text(), v -> v == null ? null : Intervals.iso8601(v));
                break;
            default:
                break;
        }
    }

    private String floating(Number n) {
        double d = n.doubleValue();
        if (Double.isNaN(d)) {
            return targetPostgres ? "NaN" : null;
        }
        if (Double.isInfinite(d)) {
            return targetPostgres ? (d > 0 ? "Infinity" : "-Infinity") : null;
        }
        if (d == 0.0) {
            // BigDecimal has no negative zero; MySQL/MariaDB store none (the documented -0 -> 0 rule)
            return targetPostgres && Double.doubleToRawLongBits(d) != 0L ? "-0" : "0";
        }
        if (n instanceof Float) {
            // the exact binary value; the target rounds it back to the same float
            return new BigDecimal(d).toString();
        }
        return Double.toString(d);
    }

    /** The DECIMAL(P,S) the column becomes on MySQL/MariaDB (types.py mysql_decimal_bounds). */
    private static int[] mysqlDecimalBounds(RelationalColumn column) {
        int precision = column.length().orElse(0);
        if (precision <= 0 || precision > 1000) { // an unbounded numeric reports 0 or 131089
            return new int[]{ 65, 30 };
        }
        return new int[]{ Math.min(precision, 65), Math.min(column.scale().orElse(0), 30) };
    }

    private String pgNumeric(Object v, int[] bounds) {
        String s = v.toString();
        switch (s) {
            case "NAN":
                return targetPostgres ? "NaN" : null;
            case "POSITIVE_INFINITY":
                return targetPostgres ? "Infinity" : null;
            case "NEGATIVE_INFINITY":
                return targetPostgres ? "-Infinity" : null;
            default:
                BigDecimal value = new BigDecimal(s);
                if (!targetPostgres) {
                    BigDecimal trimmed = value.stripTrailingZeros();
                    int fraction = Math.max(trimmed.scale(), 0);
                    int integerDigits = trimmed.signum() == 0 ? 0 : trimmed.precision() - trimmed.scale();
                    if (fraction > bounds[1] || integerDigits > bounds[0] - bounds[1]) {
                        return null; // it would be rounded or refused by the target DECIMAL
                    }
                }
                return value.toPlainString();
        }
    }

    private String pgDate(LocalDate date) {
        if (date.getYear() < PG_MIN_ISO_YEAR) {
            // Debezium's day counts for +/-infinity overflow to the same far-away year; the later
            // day of the two is +infinity (INT_MAX wraps to one day below INT_MIN)
            if (!targetPostgres) {
                return null;
            }
            return date.getDayOfMonth() % 2 == 1 ? "infinity" : "-infinity";
        }
        if (!targetPostgres && !mysqlRange(date.getYear())) {
            return null;
        }
        return Dates.date(date, targetPostgres);
    }

    private String pgTimestamp(Object v) {
        Instant instant = (Instant) v;
        long micros = instant.getEpochSecond() * 1_000_000L + instant.getNano() / 1_000;
        if (instant.getEpochSecond() > 0 && micros == PG_POSITIVE_INFINITY) {
            return targetPostgres ? "infinity" : null;
        }
        if (instant.getEpochSecond() < 0 && micros == PG_NEGATIVE_INFINITY) {
            return targetPostgres ? "-infinity" : null;
        }
        LocalDateTime local = LocalDateTime.ofInstant(instant, ZoneOffset.UTC);
        if (!targetPostgres && !mysqlRange(local.getYear())) {
            return null;
        }
        return Dates.dateTime(local, targetPostgres, false);
    }

    private String pgTimestamptz(Object v) {
        OffsetDateTime odt = v instanceof OffsetDateTime ? (OffsetDateTime) v : ((ZonedDateTime) v).toOffsetDateTime();
        long millis = odt.toInstant().toEpochMilli();
        if (millis == PG_POSITIVE_INFINITY) {
            return targetPostgres ? "infinity" : null;
        }
        if (millis == PG_NEGATIVE_INFINITY) {
            return targetPostgres ? "-infinity" : null;
        }
        LocalDateTime utc = odt.withOffsetSameInstant(ZoneOffset.UTC).toLocalDateTime();
        if (!targetPostgres && !mysqlRange(utc.getYear())) {
            return null;
        }
        return Dates.dateTime(utc, targetPostgres, targetPostgres);
    }

    // -- MySQL / MariaDB sources --------------------------------------------------------------
    private void mysqlColumn(String type, RelationalColumn column, ConverterRegistration<SchemaBuilder> registration) {
        switch (type) {
            case "FLOAT":
                registration.register(text(), v -> v == null ? null : new BigDecimal(((Number) v).doubleValue()).toString());
                break;
            case "BIGINT UNSIGNED":
                registration.register(text(), v -> v == null ? null : Long.toUnsignedString(((Number) v).longValue()));
                break;
            case "DATE":
                // zero dates arrive as null from Debezium's binlog reader: the documented NULL rule
                registration.register(text(), v -> v == null ? null : mysqlDate((LocalDate) v));
                break;
            case "DATETIME":
                registration.register(text(), v -> v == null ? null : mysqlDateTime((LocalDateTime) v));
                break;
            case "TIMESTAMP":
                registration.register(text(), v -> v == null ? null : mysqlTimestamp(v));
                break;
            case "TIME":
                registration.register(text(), v -> v == null ? null : Dates.duration((Duration) v));
                break;
            case "YEAR":
                // the binlog stores YEAR as year-1900, so the zero year '0000' arrives as 1900,
                // which is not a valid YEAR value otherwise (1901..2155)
                registration.register(SchemaBuilder.int16().optional(), v -> {
                    if (v == null) {
                        return null;
                    }
                    int year = v instanceof Year ? ((Year) v).getValue() : ((Number) v).intValue();
                    return (short) (year == 1900 ? 0 : year);
                });
                break;
            case "BIT":
                int bits = column.length().orElse(1);
                if (bits == 1) {
                    registration.register(SchemaBuilder.bool().optional(), v -> v == null ? null : ((BitSet) v).get(0));
                }
                else if (targetPostgres) {
                    registration.register(text(), v -> v == null ? null : Bits.text((BitSet) v, bits));
                }
                else {
                    registration.register(SchemaBuilder.bytes().optional(), v -> v == null ? null : Bits.bigEndian((BitSet) v, bits));
                }
                break;
            case "UUID":
                registration.register(text(), v -> v == null ? null : Bits.uuid((byte[]) v));
                break;
            case "VARCHAR":
            case "CHAR":
            case "TINYTEXT":
            case "TEXT":
            case "MEDIUMTEXT":
            case "LONGTEXT":
                if (targetPostgres && !keepNul) { // PostgreSQL text cannot hold NUL: the documented rule drops it
                    Charset charset = Texts.charset(column);
                    registration.register(text(), v -> v == null ? null : Texts.decode(v, charset).replace("\0", ""));
                }
                break;
            default:
                break;
        }
    }

    // A year 0 counts as a zero-in-date value, like a zero month or day: NULL on every target,
    // the same as the full load (cdc_platform/schema/rules.py).
    private String mysqlDate(LocalDate date) {
        return date.getYear() == 0 ? null : Dates.date(date, false);
    }

    private String mysqlDateTime(LocalDateTime value) {
        return value.getYear() == 0 ? null : Dates.dateTime(value, false, false);
    }

    private String mysqlTimestamp(Object v) {
        Instant instant = v instanceof ZonedDateTime ? ((ZonedDateTime) v).toInstant() : ((OffsetDateTime) v).toInstant();
        if (instant.getEpochSecond() == 0 && instant.getNano() == 0) {
            // TIMESTAMP's smallest real value is 1970-01-01 00:00:01 UTC: epoch 0 is the zero timestamp
            return null;
        }
        LocalDateTime utc = LocalDateTime.ofInstant(instant, ZoneOffset.UTC);
        return Dates.dateTime(utc, false, targetPostgres);
    }

    private static boolean mysqlRange(int year) {
        return year >= 1 && year <= 9999;
    }

    private static SchemaBuilder text() {
        return SchemaBuilder.string().optional();
    }

    /** Date and time text in the forms PostgreSQL and MySQL both parse. */
    static final class Dates {
        static String date(LocalDate d, boolean bcSuffix) {
            int year = d.getYear();
            String body = String.format(Locale.ROOT, "%04d-%02d-%02d", bcSuffix && year <= 0 ? 1 - year : year,
                    d.getMonthValue(), d.getDayOfMonth());
            return bcSuffix && year <= 0 ? body + " BC" : body;
        }

        static String dateTime(LocalDateTime t, boolean bcSuffix, boolean utcOffset) {
            int year = t.getYear();
            String body = String.format(Locale.ROOT, "%04d-%02d-%02d %02d:%02d:%02d.%06d",
                    bcSuffix && year <= 0 ? 1 - year : year, t.getMonthValue(), t.getDayOfMonth(),
                    t.getHour(), t.getMinute(), t.getSecond(), t.get(ChronoField.MICRO_OF_SECOND));
            if (utcOffset) {
                body += "+00";
            }
            return bcSuffix && year <= 0 ? body + " BC" : body;
        }

        /** MySQL TIME as [-]H:MM:SS.ffffff: beyond a day and negative, as MySQL and PostgreSQL's interval parse it. */
        static String duration(Duration d) {
            boolean negative = d.isNegative();
            Duration abs = d.abs();
            long totalMicros = abs.getSeconds() * 1_000_000L + abs.getNano() / 1_000;
            long hours = totalMicros / 3_600_000_000L;
            long minutes = totalMicros / 60_000_000L % 60;
            long seconds = totalMicros / 1_000_000L % 60;
            long micros = totalMicros % 1_000_000L;
            return String.format(Locale.ROOT, "%s%02d:%02d:%02d.%06d", negative ? "-" : "", hours, minutes, seconds, micros);
        }
    }

    /** Text of MySQL columns, which reaches a converter as the binlog's raw bytes. */
    static final class Texts {
        static Charset charset(RelationalColumn column) {
            String name = column.charsetName();
            if (name == null) {
                return StandardCharsets.UTF_8; // the platform's targets and MariaDB's default: utf8mb4
            }
            switch (name.toLowerCase(Locale.ROOT)) {
                case "utf8mb4":
                case "utf8mb3":
                case "utf8":
                    return StandardCharsets.UTF_8;
                case "latin1":
                    return Charset.forName("windows-1252"); // MySQL's latin1 is cp1252
                case "ascii":
                    return StandardCharsets.US_ASCII;
                case "ucs2":
                case "utf16":
                    return StandardCharsets.UTF_16BE;
                case "utf16le":
                    return StandardCharsets.UTF_16LE;
                case "utf32":
                    return Charset.forName("UTF-32BE");
                default:
                    try {
                        return Charset.forName(name);
                    }
                    catch (RuntimeException e) {
                        throw new IllegalArgumentException("ExactValueConverter: column " + column.name()
                                + " uses MySQL character set " + name + ", which has no Java decoder here", e);
                    }
            }
        }

        static String decode(Object value, Charset charset) {
            return value instanceof byte[] ? new String((byte[]) value, charset) : value.toString();
        }

        static String stripTrailingSpaces(String value) {
            int end = value.length();
            while (end > 0 && value.charAt(end - 1) == ' ') {
                end--;
            }
            return value.substring(0, end);
        }
    }

    /** BIT(n) and UUID bytes. */
    static final class Bits {
        static String text(BitSet set, int bits) {
            StringBuilder out = new StringBuilder(bits);
            for (int i = bits - 1; i >= 0; i--) {
                out.append(set.get(i) ? '1' : '0');
            }
            return out.toString();
        }

        static byte[] bigEndian(BitSet set, int bits) {
            byte[] out = new byte[(bits + 7) / 8];
            for (int i = 0; i < bits; i++) {
                if (set.get(i)) {
                    out[out.length - 1 - i / 8] |= (byte) (1 << (i % 8));
                }
            }
            return out;
        }

        /** The binlog drops a BINARY(16)'s trailing zero bytes; put them back. */
        static String uuid(byte[] raw) {
            byte[] b = new byte[16];
            System.arraycopy(raw, 0, b, 0, Math.min(raw.length, 16));
            StringBuilder hex = new StringBuilder(36);
            for (int i = 0; i < 16; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10) {
                    hex.append('-');
                }
                hex.append(String.format(Locale.ROOT, "%02x", b[i] & 0xff));
            }
            return hex.toString();
        }
    }
}
