package io.cdcplatform.connect;

import java.lang.reflect.Method;
import java.util.Locale;

/**
 * PostgreSQL intervals as ISO 8601 text, written exactly as PostgreSQL does with
 * intervalstyle = 'iso_8601' (EncodeInterval in src/backend/utils/adt/datetime.c), so the full
 * load (which reads PostgreSQL's own output) and CDC produce the same text, and PostgreSQL parses
 * it back to the same interval.
 *
 * The value is pgjdbc's PGInterval, read through reflection: the converter must not depend on the
 * JDBC driver's classes at compile time (each Debezium plugin ships its own copy).
 */
final class Intervals {
    private Intervals() {
    }

    static String iso8601(Object interval) {
        int years = (Integer) call(interval, "getYears");
        int months = (Integer) call(interval, "getMonths");
        int days = (Integer) call(interval, "getDays");
        int hours = (Integer) call(interval, "getHours");
        int minutes = (Integer) call(interval, "getMinutes");
        int wholeSeconds = (Integer) call(interval, "getWholeSeconds");
        int micros = (Integer) call(interval, "getMicroSeconds");
        if (years == 0 && months == 0 && days == 0 && hours == 0 && minutes == 0 && wholeSeconds == 0 && micros == 0) {
            return "PT0S";
        }
        StringBuilder out = new StringBuilder("P");
        if (years != 0) {
            out.append(years).append('Y');
        }
        if (months != 0) {
            out.append(months).append('M');
        }
        if (days != 0) {
            out.append(days).append('D');
        }
        if (hours != 0 || minutes != 0 || wholeSeconds != 0 || micros != 0) {
            out.append('T');
            if (hours != 0) {
                out.append(hours).append('H');
            }
            if (minutes != 0) {
                out.append(minutes).append('M');
            }
            if (wholeSeconds != 0 || micros != 0) {
                out.append(seconds(wholeSeconds, micros)).append('S');
            }
        }
        return out.toString();
    }

    /** AppendSeconds: the fraction with trailing zeros trimmed, the sign once in front. */
    private static String seconds(int whole, int micros) {
        if (micros == 0) {
            return Integer.toString(whole);
        }
        boolean negative = whole < 0 || micros < 0;
        String fraction = String.format(Locale.ROOT, "%06d", Math.abs(micros)).replaceAll("0+$", "");
        return (negative ? "-" : "") + Math.abs(whole) + "." + fraction;
    }

    private static Object call(Object target, String method) {
        try {
            Method m = target.getClass().getMethod(method);
            return m.invoke(target);
        }
        catch (ReflectiveOperationException e) {
            throw new IllegalStateException("ExactValueConverter: interval value of " + target.getClass() + " has no " + method, e);
        }
    }
}
