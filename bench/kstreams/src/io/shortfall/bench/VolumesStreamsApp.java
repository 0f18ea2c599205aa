// The Kafka Streams reference for bench/kafka_bench.sh: the volume job of
// `shortfall run`, written the way a Kafka Streams user would write it, so
// the benchmark can compare shortfall with Kafka Streams on the same records.
//
// Per input record (shipments.events.v1, customs.events.v1; values as
// `shortfall gen --to-kafka` writes them):
//   1. decode the ShipmentEvent / CustomsEvent (binary protobuf);
//   2. validate it with the rules of operators/event_normalizer.cc, in the
//      same order (id, event time, event code or customs status, corridor,
//      goods lines), with the same reference data (ISO countries, CBP port
//      codes or UN/LOCODEs, UN/ECE units and their canonical units, the
//      default USD rate table, the 1 h future-timestamp skew, the per-line
//      limits);
//   3. reject an actual event older than its input partition's largest
//      actual event time minus 6 h as late (operators/watermark.h; the
//      largest time is kept per task in a persistent key-value store per
//      input topic);
//   4. bad and late records go to the DLQ topic with their original key,
//      value and headers plus a "shortfall.dlq.reason" header;
//   5. a counting shipment event (actual TRANSPORT ARRI at facility BOCR or
//      none) adds, per catalog group of its goods lines (the longest HS
//      prefix of each group decides, catalog/README.md), one shipment and
//      the group's goods lines, quantity per canonical unit, gross weight
//      and USD value; a customs event counts one declaration per group under
//      its status; goods outside the catalog count as "unclassified";
//   6. each contribution is keyed "<group> <corridor>" and "<group> *" (the
//      group's total), stamped with the event time as its record timestamp,
//      and sent through a repartition topic (<application.id>-volumes-
//      repartition), one record each: Kafka Streams combines records only
//      after the hop, in the aggregations' record cache (shortfall sums
//      contributions per series and hour before the hop and keys the hop
//      by group, docs/runtime.md);
//   7. aggregated into 1 h tumbling event-time windows (RocksDB window store
//      "volumes", retention 7 d like shortfall's longest rolling window, or
//      the grace period plus 1 h if longer) and into all-time totals per
//      series (RocksDB key-value store "totals"). Both stores are
//      changelogged, the Kafka Streams default.
// Window grace: --grace-hours, default 6 like shortfall's allowed lateness.
// On a backlog that is too short for Kafka Streams: its stream time is per
// repartition task, and the upstream tasks feeding one run weeks of event
// time apart, so most contributions would be dropped as late (the summary
// line counts them); bench/kafka_bench.sh passes a grace as long as the
// backlog and fails if any contribution is dropped.
// Amounts are the fixed-point integers of operators/volume.h (thousandths,
// grams, 1/10,000 USD), rounded once per goods line, so sums are exact and
// comparable with shortfall's to the last digit.
//
// Not done here, that shortfall does (so the comparison favours Kafka
// Streams): the detectors and alerts, rolling windows, per-goods-code log
// unit prices, Prometheus metrics, JSON-encoded values (a JSON value is
// "unparseable" here) and the content-type header. The catalog's first four
// fields must be unquoted (they are in every valid catalog that does not
// quote a group name or a digit string).
//
// End: "until idle", like `shortfall run --until-idle`: the main thread
// checks every 250 ms that the instance is RUNNING, that the main
// consumers report a fetch lag (records-lag metric) of 0 for every
// partition of both input topics and of the repartition topic, and that no
// record was processed since the previous check; after 4 such checks in a
// row (1 s) it reads the totals store, writes them as CSV (the format of
// `shortfall run --totals-csv`) and closes Kafka Streams, which commits.
//
// Settings: Kafka Streams' defaults except num.stream.threads (--threads,
// default 2) and auto.offset.reset=earliest; commit.interval.ms is Kafka
// Streams' default (30 s at_least_once, 100 ms exactly_once_v2) unless
// --commit-interval-ms is given. Printed on stderr at start.
//
// Usage: VolumesStreamsApp --bootstrap HOST:PORT --application-id ID
//          --state-dir DIR --guarantee at_least_once|exactly_once_v2
//          --catalog FILE [--threads N] [--commit-interval-ms MS]
//          [--grace-hours H] [--partitions N] [--dlq-topic T]
//          [--totals-csv FILE] [--timeout-s S]
// (--partitions: of each input topic, default 8; --dlq-topic default
// <application-id>-dlq, which must exist; --timeout-s default 3600.)
package io.shortfall.bench;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Timestamp;
import io.shortfall.v1.Corridor;
import io.shortfall.v1.CustomsEvent;
import io.shortfall.v1.EventClass;
import io.shortfall.v1.EventClassifier;
import io.shortfall.v1.GoodsLine;
import io.shortfall.v1.ShipmentEvent;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.api.ContextualProcessor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.WindowStore;

public final class VolumesStreamsApp {
  static final String SHIPMENTS = "shipments.events.v1";
  static final String CUSTOMS = "customs.events.v1";
  static final long HOUR_MS = 3_600_000L;
  static final long ALLOWED_LATENESS_MS = 6 * HOUR_MS;
  static final long MAX_FUTURE_SKEW_MS = HOUR_MS;
  static final long EARLIEST_VALID_MS = 946_684_800_000L;  // 2000-01-01
  static final long LATEST_VALID_MS = 4_102_444_800_000L;  // 2100-01-01

  // ------------------------------------------------------------ catalog --

  /** catalog/README.md semantics: per group, the longest matching prefix decides. */
  static final class Catalog {
    final List<String> groups;  // sorted: index = group id; then "unclassified"
    final int unclassified;
    private final Map<Integer, long[]> rules2017 = new HashMap<>();  // key -> {include, exclude}
    private final Map<Integer, long[]> rules2022 = new HashMap<>();
    private int lengths2017;
    private int lengths2022;

    Catalog(Path path) throws IOException {
      List<String[]> rows = new ArrayList<>();
      boolean header = false;
      for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
        line = line.replace("\uFEFF", "").strip();
        if (line.isEmpty() || line.startsWith("#")) continue;
        if (!header) {
          if (!line.equals("group,hs_prefix,hs_revision,rule,note")) {
            throw new IOException(path + ": unexpected header '" + line + "'");
          }
          header = true;
          continue;
        }
        String[] f = line.split(",", 5);
        if (f.length < 4 || !f[1].matches("[0-9]{2,6}")) throw new IOException(path + ": bad row '" + line + "'");
        rows.add(f);
      }
      Set<String> names = new java.util.TreeSet<>();
      for (String[] f : rows) names.add(f[0]);
      groups = new ArrayList<>(names);
      unclassified = groups.size();
      if (unclassified > 63) throw new IOException(path + ": more than 63 groups");
      for (String[] f : rows) {
        long bit = 1L << groups.indexOf(f[0]);
        int key = prefixKey(f[1].length(), Integer.parseInt(f[1]));
        int slot = f[3].equals("include") ? 0 : 1;
        if (!f[3].equals("include") && !f[3].equals("exclude")) throw new IOException(path + ": bad rule " + f[3]);
        if (f[2].equals("2017") || f[2].equals("any")) {
          rules2017.computeIfAbsent(key, k -> new long[2])[slot] |= bit;
          lengths2017 |= 1 << f[1].length();
        }
        if (f[2].equals("2022") || f[2].equals("any")) {
          rules2022.computeIfAbsent(key, k -> new long[2])[slot] |= bit;
          lengths2022 |= 1 << f[1].length();
        }
      }
    }

    static int prefixKey(int length, int value) { return (length << 20) | value; }

    private static long classifyUnder(Map<Integer, long[]> rules, int lengths, int hs6) {
      long decided = 0, result = 0;
      int divisor = 1;
      for (int length = 6; length >= 2; --length, divisor *= 10) {
        if (((lengths >> length) & 1) == 0) continue;
        long[] at = rules.get(prefixKey(length, hs6 / divisor));
        if (at == null) continue;
        result |= at[0] & ~decided;
        decided |= at[0] | at[1];
      }
      return result;
    }

    /** revision: 2017, 2022, or anything else = unspecified (2022, then 2017 if no group). */
    long classify(int hs6, int revision) {
      if (revision == 2017) return classifyUnder(rules2017, lengths2017, hs6);
      long as2022 = classifyUnder(rules2022, lengths2022, hs6);
      if (revision == 2022 || as2022 != 0) return as2022;
      return classifyUnder(rules2017, lengths2017, hs6);
    }

    String name(int group) { return group == unclassified ? "unclassified" : groups.get(group); }
  }

  /** A memo in front of Catalog.classify, paged by HS chapter; one per task. */
  static final class Classifier {
    private final Catalog catalog;
    private final long[][] pages = new long[300][];

    Classifier(Catalog catalog) { this.catalog = catalog; }

    long classify(int hs6, int revision) {
      int slot = revision == 2017 ? 1 : revision == 2022 ? 2 : 0;
      int page = slot * 100 + hs6 / 10_000;
      long[] p = pages[page];
      if (p == null) {
        p = pages[page] = new long[10_000];
        Arrays.fill(p, -1L);  // never a mask: at most 63 groups
      }
      long mask = p[hs6 % 10_000];
      if (mask == -1L) mask = p[hs6 % 10_000] = catalog.classify(hs6, revision);
      return mask;
    }
  }

  // ----------------------------------------------------- reference data --

  static final Set<String> COUNTRIES = new HashSet<>(Arrays.asList((
      "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ "
    + "BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM "
    + "DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS "
    + "GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN "
    + "KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ "
    + "MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM "
    + "PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV "
    + "SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI "
    + "VN VU WF WS YE YT ZA ZM ZW").split(" ")));

  // Canonical units, in operators::Unit order: kg, pcs, pairs, l, m3.
  static final String[] UNIT_NAMES = {"kg", "pcs", "pairs", "l", "m3"};
  static final Map<String, double[]> UNITS = new HashMap<>();  // code -> {unit index, factor}
  static final Map<String, Double> USD_RATES = new HashMap<>();
  static final String[] CUSTOMS_NAMES = {
      "unspecified", "filed", "accepted", "hold", "hold_released", "exam_selected", "released", "refused"};
  static final Set<String> TRANSPORT_CODES = Set.of("ARRI", "DEPA");
  static final Set<String> EQUIPMENT_CODES = Set.of("LOAD", "DISC", "GTIN", "GTOT", "STUF", "STRP",
      "PICK", "DROP", "INSP", "RSEA", "RMVD", "AVPU", "AVDO", "CUSS", "CUSI", "CUSR", "WAYP");
  static final Set<String> SHIPMENT_CODES = Set.of("RECE", "DRFT", "PENA", "PENU", "PENC", "REJE",
      "APPR", "ISSU", "SURR", "SUBM", "VOID", "CONF", "REQS", "CMPL", "HOLD", "RELS", "CANC");

  static {
    Object[][] units = {{"KGM", 0, 1.0}, {"GRM", 0, 0.001}, {"LBR", 0, 0.45359237}, {"TNE", 0, 1000.0},
        {"NAR", 1, 1.0}, {"PCE", 1, 1.0}, {"C62", 1, 1.0}, {"H87", 1, 1.0}, {"DZN", 1, 12.0},
        {"PR", 2, 1.0}, {"NPR", 2, 1.0}, {"LTR", 3, 1.0}, {"MLT", 3, 0.001}, {"MTQ", 4, 1.0},
        {"FTQ", 4, 0.028316846592}};
    for (Object[] u : units) {
      UNITS.put((String) u[0], new double[] {(Integer) u[1], (Double) u[2]});
    }
    Object[][] rates = {{"USD", 1.0}, {"MXN", 0.055}, {"CAD", 0.73}, {"EUR", 1.08}, {"GBP", 1.27},
        {"CNY", 0.14}, {"JPY", 0.0067}, {"KRW", 0.00074}, {"TWD", 0.031}, {"CHF", 1.12}};
    for (Object[] r : rates) USD_RATES.put((String) r[0], (Double) r[1]);
  }

  static boolean isPortCode(String code) {
    if (code.length() == 4) return code.chars().allMatch(c -> c >= '0' && c <= '9');
    if (code.length() == 5) {
      if (!COUNTRIES.contains(code.substring(0, 2))) return false;
      return code.substring(2).chars().allMatch(c -> (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '9'));
    }
    return false;
  }

  /** First six digits of a 6-to-10-digit HS code (dots ignored), or -1. */
  static int parseHs6(String code) {
    int hs6 = 0, digits = 0;
    for (int i = 0; i < code.length(); ++i) {
      char c = code.charAt(i);
      if (c == '.') continue;
      if (c < '0' || c > '9') return -1;
      if (digits < 6) hs6 = hs6 * 10 + (c - '0');
      ++digits;
    }
    return digits >= 6 && digits <= 10 ? hs6 : -1;
  }

  /** operators/event_decoder.h TimestampToMs: null when out of protobuf's range. */
  static Long toMs(Timestamp ts) {
    if (ts.getSeconds() < -62_135_596_800L || ts.getSeconds() > 253_402_300_799L || ts.getNanos() < 0
        || ts.getNanos() >= 1_000_000_000) {
      return null;
    }
    return ts.getSeconds() * 1000 + ts.getNanos() / 1_000_000;
  }

  // ------------------------------------------------------------- volume --

  /** operators/volume.h VolumeDelta without the unit prices: fixed-point sums. */
  static final class Volume {
    static final int FIELDS = 2 + 5 + 2 + 7;  // shipments, lines, quantity[5], weight, value, customs[1..7]
    final long[] f = new long[FIELDS];

    Volume add(Volume o) {
      for (int i = 0; i < FIELDS; ++i) f[i] += o.f[i];
      return this;
    }

    void csv(StringBuilder out) {
      out.append(f[0]).append(',').append(f[1]).append(',').append(fixed(f[7], 1000)).append(',')
          .append(fixed(f[8], 10000));
      for (int u = 0; u < 5; ++u) out.append(',').append(fixed(f[2 + u], 1000));
      for (int s = 0; s < 7; ++s) out.append(',').append(f[9 + s]);
    }

    static String fixed(long v, long scale) {  // pipeline/totals_csv.cc FormatFixed, v >= 0 here
      int digits = Long.toString(scale).length() - 1;
      String fraction = Long.toString(Math.abs(v % scale));
      return (v < 0 ? "-" : "") + Math.abs(v / scale) + "." + "0".repeat(digits - fraction.length()) + fraction;
    }
  }

  /** Compact serde: a 16-bit mask of the non-zero fields, then each as a varint. */
  static final class VolumeSerde implements Serde<Volume>, Serializer<Volume>, Deserializer<Volume> {
    @Override
    public byte[] serialize(String topic, Volume v) {
      if (v == null) return null;
      ByteBuffer b = ByteBuffer.allocate(2 + Volume.FIELDS * 10);
      int mask = 0;
      for (int i = 0; i < Volume.FIELDS; ++i) if (v.f[i] != 0) mask |= 1 << i;
      b.putShort((short) mask);
      for (int i = 0; i < Volume.FIELDS; ++i) {
        long x = v.f[i];
        if (x == 0) continue;
        while ((x & ~0x7FL) != 0) {
          b.put((byte) ((x & 0x7F) | 0x80));
          x >>>= 7;
        }
        b.put((byte) x);
      }
      return Arrays.copyOf(b.array(), b.position());
    }

    @Override
    public Volume deserialize(String topic, byte[] data) {
      if (data == null) return null;
      Volume v = new Volume();
      ByteBuffer b = ByteBuffer.wrap(data);
      int mask = b.getShort() & 0xFFFF;
      for (int i = 0; i < Volume.FIELDS; ++i) {
        if ((mask & (1 << i)) == 0) continue;
        long x = 0;
        for (int shift = 0; ; shift += 7) {
          byte y = b.get();
          x |= (long) (y & 0x7F) << shift;
          if (y >= 0) break;
        }
        v.f[i] = x;
      }
      return v;
    }

    @Override public Serializer<Volume> serializer() { return this; }
    @Override public Deserializer<Volume> deserializer() { return this; }
    @Override public void configure(Map<String, ?> configs, boolean isKey) {}
    @Override public void close() {}
  }

  /** What stage one forwards: a contribution, or a dead letter (the original value). */
  static final class Routed {
    final Volume volume;
    final byte[] dead;

    Routed(Volume volume, byte[] dead) { this.volume = volume; this.dead = dead; }
  }

  // ---------------------------------------------------------- stage one --

  // Dead letters by reason, for the summary line.
  static final Map<String, LongAdder> DEAD_LETTERS = new ConcurrentHashMap<>();

  static final class Invalid extends Exception {
    private static final long serialVersionUID = 1L;

    Invalid(String reason) { super(reason, null, false, false); }
  }

  /** Decode, validate, lateness, classify; one instance per task and input topic. */
  static final class Normalizer extends ContextualProcessor<byte[], byte[], String, Routed> {
    private final boolean customs;
    private final Catalog catalog;
    private final String storeName;
    private Classifier classifier;
    private KeyValueStore<Integer, Long> watermarkStore;
    private long maxEventTime = Long.MIN_VALUE;  // of this task's input partition
    private int partition;
    // Scratch per record: each group's contribution, and the goods lines.
    private final Volume[] perGroup;
    private int[] lineUnit = new int[8];
    private long[] lineMask = new long[8];
    private long[] lineQuantity = new long[8];
    private long[] lineWeight = new long[8];
    private long[] lineValue = new long[8];

    Normalizer(boolean customs, Catalog catalog) {
      this.customs = customs;
      this.catalog = catalog;
      this.storeName = customs ? "customs-watermarks" : "shipments-watermarks";
      this.perGroup = new Volume[catalog.unclassified + 1];
    }

    @Override
    public void init(ProcessorContext<String, Routed> context) {
      super.init(context);
      classifier = new Classifier(catalog);
      watermarkStore = context.getStateStore(storeName);
      partition = context.taskId().partition();  // a task reads one partition of each input topic
      Long stored = watermarkStore.get(partition);
      maxEventTime = stored == null ? Long.MIN_VALUE : stored;
    }

    @Override
    public void process(Record<byte[], byte[]> record) {
      try {
        if (customs) processCustoms(record); else processShipment(record);
      } catch (Invalid bad) {
        DEAD_LETTERS.computeIfAbsent(bad.getMessage(), k -> new LongAdder()).increment();
        RecordHeaders headers = new RecordHeaders(record.headers().toArray());
        headers.add("shortfall.dlq.reason", bad.getMessage().getBytes(StandardCharsets.UTF_8));
        String key = record.key() == null ? null : new String(record.key(), StandardCharsets.UTF_8);
        context().forward(new Record<>(key, new Routed(null, record.value()), record.timestamp(), headers));
      }
    }

    private long checkTime(boolean has, Timestamp eventTime, boolean hasPublish, Timestamp publishTime,
                           boolean checkFuture, long recordTime) throws Invalid {
      if (!has) throw new Invalid("missing_event_time");
      Long t = toMs(eventTime);
      if (t == null || t < EARLIEST_VALID_MS || t >= LATEST_VALID_MS) throw new Invalid("absurd_timestamp");
      if (checkFuture) {
        Long publish = hasPublish ? toMs(publishTime) : null;
        long pub = publish == null ? 0 : publish;
        if (pub > 0 && t > pub + MAX_FUTURE_SKEW_MS) throw new Invalid("future_timestamp");
        if (recordTime > 0 && t > recordTime + MAX_FUTURE_SKEW_MS) throw new Invalid("future_timestamp");
      }
      return t;
    }

    private static String corridor(Corridor c) throws Invalid {
      if (!COUNTRIES.contains(c.getOriginCountry()) || !COUNTRIES.contains(c.getDestinationCountry())) {
        throw new Invalid("unknown_country");
      }
      if (!isPortCode(c.getPortOfEntry())) throw new Invalid("malformed_port");
      return c.getOriginCountry() + "-" + c.getDestinationCountry() + "-" + c.getPortOfEntry();
    }

    /** Checks and converts the goods lines into line*[]; returns their count. */
    private int goods(List<GoodsLine> goods) throws Invalid {
      if (goods.size() > lineMask.length) {
        int size = goods.size();
        lineUnit = new int[size];
        lineMask = new long[size];
        lineQuantity = new long[size];
        lineWeight = new long[size];
        lineValue = new long[size];
      }
      int n = 0;
      for (GoodsLine g : goods) {
        if (g.getHsCode().isEmpty()) throw new Invalid("missing_hs_code");
        int hs6 = parseHs6(g.getHsCode());
        if (hs6 < 0) throw new Invalid("malformed_hs_code");
        double[] unit = UNITS.get(g.getUnit());
        if (unit == null) throw new Invalid("unknown_unit");
        double q = g.getQuantity(), w = g.getGrossWeightKg(), v = g.getDeclaredValue();
        if (!Double.isFinite(q) || !Double.isFinite(w) || !Double.isFinite(v)) throw new Invalid("absurd_quantity");
        if (q <= 0) throw new Invalid("negative_quantity");
        if (w < 0 || v < 0) throw new Invalid("negative_quantity");
        double rate = 0;
        if (!g.getCurrency().isEmpty() || v > 0) {
          Double r = USD_RATES.get(g.getCurrency());
          if (r == null) throw new Invalid("unknown_currency");
          rate = r;
        }
        double usd = v * rate;
        if (q > 1e9 || w > 1e9 || usd > 1e11) throw new Invalid("absurd_quantity");
        lineMask[n] = classifier.classify(hs6, g.getHsVersionValue());
        lineUnit[n] = (int) unit[0];
        lineQuantity[n] = Math.round(q * unit[1] * 1000.0);
        lineWeight[n] = Math.round(w * 1000.0);
        lineValue[n] = Math.round(usd * 10000.0);
        ++n;
      }
      return n;
    }

    private void admit(long eventTime) throws Invalid {
      if (maxEventTime != Long.MIN_VALUE && eventTime < maxEventTime - ALLOWED_LATENESS_MS) {
        throw new Invalid("late");
      }
      if (eventTime > maxEventTime) {
        maxEventTime = eventTime;
        watermarkStore.put(partition, eventTime);
      }
    }

    private void processShipment(Record<byte[], byte[]> record) throws Invalid {
      ShipmentEvent e;
      try {
        e = ShipmentEvent.parseFrom(record.value() == null ? new byte[0] : record.value());
      } catch (InvalidProtocolBufferException x) {
        throw new Invalid("unparseable");
      }
      if (e.getShipmentId().isEmpty()) throw new Invalid("missing_id");
      boolean actual = e.getEventClassifier() == EventClassifier.EVENT_CLASSIFIER_ACTUAL;
      long t = checkTime(e.hasEventTime(), e.getEventTime(), e.hasPublishTime(), e.getPublishTime(), actual,
          record.timestamp());
      Set<String> codes = switch (e.getEventClassValue()) {
        case EventClass.EVENT_CLASS_TRANSPORT_VALUE -> TRANSPORT_CODES;
        case EventClass.EVENT_CLASS_EQUIPMENT_VALUE -> EQUIPMENT_CODES;
        case EventClass.EVENT_CLASS_SHIPMENT_VALUE -> SHIPMENT_CODES;
        default -> Set.of();
      };
      if (!codes.contains(e.getEventTypeCode())) throw new Invalid("unknown_event_code");
      String corridor = corridor(e.getCorridor());
      int n = goods(e.getGoodsList());
      boolean counts = actual && e.getEventClass() == EventClass.EVENT_CLASS_TRANSPORT
          && e.getEventTypeCode().equals("ARRI")
          && (e.getFacilityType().isEmpty() || e.getFacilityType().equals("BOCR"));
      if (counts && n == 0) throw new Invalid("no_goods");
      if (actual) admit(t);
      if (!counts) return;
      Arrays.fill(perGroup, null);
      for (int i = 0; i < n; ++i) {
        long mask = lineMask[i];
        if (mask == 0) mask = 1L << catalog.unclassified;
        for (; mask != 0; mask &= mask - 1) {
          int g = Long.numberOfTrailingZeros(mask);
          Volume v = perGroup[g];
          if (v == null) {
            v = perGroup[g] = new Volume();
            v.f[0] = 1;
          }
          v.f[1] += 1;
          v.f[2 + lineUnit[i]] += lineQuantity[i];
          v.f[7] += lineWeight[i];
          v.f[8] += lineValue[i];
        }
      }
      emit(corridor, t);
    }

    private void processCustoms(Record<byte[], byte[]> record) throws Invalid {
      CustomsEvent e;
      try {
        e = CustomsEvent.parseFrom(record.value() == null ? new byte[0] : record.value());
      } catch (InvalidProtocolBufferException x) {
        throw new Invalid("unparseable");
      }
      if (e.getDeclarationId().isEmpty()) throw new Invalid("missing_id");
      long t = checkTime(e.hasEventTime(), e.getEventTime(), e.hasPublishTime(), e.getPublishTime(), true,
          record.timestamp());
      int status = e.getStatusValue();
      if (status <= 0 || status >= 8) throw new Invalid("unknown_customs_status");
      String corridor = corridor(e.getCorridor());
      int n = goods(e.getGoodsList());
      if (n == 0) throw new Invalid("no_goods");
      admit(t);
      long all = 0;
      for (int i = 0; i < n; ++i) all |= lineMask[i] == 0 ? 1L << catalog.unclassified : lineMask[i];
      Arrays.fill(perGroup, null);
      for (; all != 0; all &= all - 1) {
        Volume v = perGroup[Long.numberOfTrailingZeros(all)] = new Volume();
        v.f[9 + status - 1] = 1;
      }
      emit(corridor, t);
    }

    /** Each group's contribution to its (group, corridor) series and to the group's total. */
    private void emit(String corridor, long eventTime) {
      for (int g = 0; g < perGroup.length; ++g) {
        Volume v = perGroup[g];
        if (v == null) continue;
        String name = catalog.name(g);
        Routed r = new Routed(v, null);
        context().forward(new Record<>(name + " " + corridor, r, eventTime, new RecordHeaders()));
        context().forward(new Record<>(name + " *", r, eventTime, new RecordHeaders()));
      }
    }
  }

  // ----------------------------------------------------------- topology --

  static StreamsBuilder topology(Catalog catalog, String dlqTopic, Duration grace) {
    StreamsBuilder builder = new StreamsBuilder();
    for (String store : List.of("shipments-watermarks", "customs-watermarks")) {
      builder.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(store),
          Serdes.Integer(), Serdes.Long()).withCachingEnabled());
    }
    Consumed<byte[], byte[]> raw = Consumed.with(Serdes.ByteArray(), Serdes.ByteArray());
    KStream<String, Routed> shipments = builder.stream(SHIPMENTS, raw)
        .process(() -> new Normalizer(false, catalog), Named.as("normalize-shipments"), "shipments-watermarks");
    KStream<String, Routed> customs = builder.stream(CUSTOMS, raw)
        .process(() -> new Normalizer(true, catalog), Named.as("normalize-customs"), "customs-watermarks");
    Map<String, KStream<String, Routed>> routes = shipments.merge(customs).split(Named.as("route-"))
        .branch((k, r) -> r.dead != null, Branched.as("dlq"))
        .defaultBranch(Branched.as("volumes"));
    routes.get("route-dlq").mapValues(r -> r.dead)
        .to(dlqTopic, Produced.with(Serdes.String(), Serdes.ByteArray()));

    VolumeSerde volumeSerde = new VolumeSerde();
    KGroupedStream<String, Volume> series = routes.get("route-volumes").mapValues(r -> r.volume)
        .repartition(Repartitioned.with(Serdes.String(), (Serde<Volume>) volumeSerde).withName("volumes"))
        .groupByKey(Grouped.with(Serdes.String(), volumeSerde));
    Duration size = Duration.ofHours(1);
    Duration retention = Duration.ofDays(7).compareTo(size.plus(grace)) >= 0 ? Duration.ofDays(7) : size.plus(grace);
    series.windowedBy(TimeWindows.ofSizeAndGrace(size, grace))
        .aggregate(Volume::new, (key, v, agg) -> agg.add(v),
            Materialized.<String, Volume, WindowStore<Bytes, byte[]>>as("volumes")
                .withKeySerde(Serdes.String()).withValueSerde(volumeSerde).withRetention(retention));
    series.aggregate(Volume::new, (key, v, agg) -> agg.add(v),
        Materialized.<String, Volume, KeyValueStore<Bytes, byte[]>>as("totals")
            .withKeySerde(Serdes.String()).withValueSerde(volumeSerde));
    return builder;
  }

  // --------------------------------------------------------------- main --

  static double metricSum(KafkaStreams streams, String group, String name) {
    double sum = 0;
    for (Map.Entry<MetricName, ? extends Metric> m : streams.metrics().entrySet()) {
      if (m.getKey().group().equals(group) && m.getKey().name().equals(name)) {
        Object v = m.getValue().metricValue();
        if (v instanceof Number x && !Double.isNaN(x.doubleValue())) sum += x.doubleValue();
      }
    }
    return sum;
  }

  /** Partitions whose main consumer reports lag 0, and whether any reports more. */
  static int caughtUpPartitions(KafkaStreams streams, Set<String> topics, boolean[] anyLag) {
    Set<String> zero = new HashSet<>();
    for (Map.Entry<MetricName, ? extends Metric> m : streams.metrics().entrySet()) {
      MetricName n = m.getKey();
      if (!n.group().equals("consumer-fetch-manager-metrics") || !n.name().equals("records-lag")) continue;
      String client = n.tags().getOrDefault("client-id", "");
      if (client.contains("restore-consumer")) continue;
      String topic = n.tags().get("topic");
      if (topic == null || !topics.contains(topic)) continue;
      Object v = m.getValue().metricValue();
      if (!(v instanceof Number x) || Double.isNaN(x.doubleValue())) continue;
      if (x.doubleValue() > 0) anyLag[0] = true;
      else zero.add(topic + "/" + n.tags().get("partition"));
    }
    return zero.size();
  }

  public static void main(String[] argv) throws Exception {
    Map<String, String> a = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) {
      if (!argv[i].startsWith("--")) throw new IllegalArgumentException("unexpected argument " + argv[i]);
      a.put(argv[i].substring(2), argv[i + 1]);
    }
    for (String k : List.of("bootstrap", "application-id", "state-dir", "guarantee", "catalog")) {
      if (!a.containsKey(k)) {
        System.err.println("usage: VolumesStreamsApp --bootstrap HOST:PORT --application-id ID --state-dir DIR"
            + " --guarantee at_least_once|exactly_once_v2 --catalog FILE [--threads N]"
            + " [--commit-interval-ms MS] [--grace-hours H] [--partitions N] [--dlq-topic T] [--totals-csv FILE]"
            + " [--timeout-s S]");
        System.exit(2);
      }
    }
    String appId = a.get("application-id");
    Catalog catalog = new Catalog(Path.of(a.get("catalog")));
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
    p.put(StreamsConfig.STATE_DIR_CONFIG, a.get("state-dir"));
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, a.get("guarantee"));
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, a.getOrDefault("threads", "2"));
    if (a.containsKey("commit-interval-ms")) p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, a.get("commit-interval-ms"));
    p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

    KafkaStreams streams = new KafkaStreams(topology(catalog, a.getOrDefault("dlq-topic", appId + "-dlq"),
        Duration.ofHours(Long.parseLong(a.getOrDefault("grace-hours", "6")))).build(), p);
    StreamsConfig effective = new StreamsConfig(p);
    System.err.printf("kstreams: %s, num.stream.threads=%s, commit.interval.ms=%s, statestore.cache.max.bytes=%s,"
            + " replication.factor=%s, other settings Kafka Streams defaults%n",
        a.get("guarantee"), effective.getInt(StreamsConfig.NUM_STREAM_THREADS_CONFIG),
        effective.getLong(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG),
        effective.getLong(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG),
        effective.getInt(StreamsConfig.REPLICATION_FACTOR_CONFIG));
    final Throwable[] failure = {null};
    streams.setUncaughtExceptionHandler(e -> {
      failure[0] = e;
      return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse
          .SHUTDOWN_CLIENT;
    });
    streams.start();

    int partitions = Integer.parseInt(a.getOrDefault("partitions", "8"));
    Set<String> topics = Set.of(SHIPMENTS, CUSTOMS, appId + "-volumes-repartition");
    int expected = 3 * partitions;  // the repartition topic has as many as the inputs
    long deadline = System.nanoTime() + Long.parseLong(a.getOrDefault("timeout-s", "3600")) * 1_000_000_000L;
    double lastProcessed = -1;
    int quiet = 0;
    while (quiet < 4) {
      Thread.sleep(250);
      if (failure[0] != null || streams.state() == KafkaStreams.State.ERROR
          || streams.state() == KafkaStreams.State.NOT_RUNNING || System.nanoTime() > deadline) {
        System.err.println("kstreams: failed or timed out in state " + streams.state() + ": " + failure[0]);
        streams.close(Duration.ofSeconds(30));
        System.exit(1);
      }
      double processed = metricSum(streams, "stream-thread-metrics", "process-total");
      boolean[] anyLag = {false};
      int caughtUp = caughtUpPartitions(streams, topics, anyLag);
      boolean idle = streams.state() == KafkaStreams.State.RUNNING && !anyLag[0] && caughtUp >= expected
          && processed == lastProcessed;
      quiet = idle ? quiet + 1 : 0;
      lastProcessed = processed;
    }

    // The totals, read from the stores before closing (RUNNING is required).
    TreeMap<String, Volume> totals = new TreeMap<>();
    ReadOnlyKeyValueStore<String, Volume> store = streams.store(
        StoreQueryParameters.fromNameAndType("totals", QueryableStoreTypes.keyValueStore()));
    try (KeyValueIterator<String, Volume> it = store.all()) {
      while (it.hasNext()) {
        KeyValue<String, Volume> kv = it.next();
        totals.put(kv.key, kv.value);
      }
    }
    double processed = metricSum(streams, "stream-thread-metrics", "process-total");
    double dropped = metricSum(streams, "stream-task-metrics", "dropped-records-total");
    long closeStart = System.nanoTime();
    boolean closed = streams.close(Duration.ofSeconds(60));
    System.err.printf("kstreams: idle; %.0f records processed (input and repartition records), dead letters %s,"
            + " %.0f dropped by Kafka Streams (window grace or bad timestamps), %d series in the totals store,"
            + " closed %s in %.1f s%n",
        processed, new TreeMap<>(DEAD_LETTERS), dropped, totals.size(), closed ? "cleanly" : "NOT cleanly",
        (System.nanoTime() - closeStart) / 1e9);
    if (a.containsKey("totals-csv")) {
      StringBuilder out = new StringBuilder("group,corridor,shipments,goods_lines,gross_weight_kg,declared_value_usd");
      for (String u : UNIT_NAMES) out.append(",quantity_").append(u);
      for (int s = 1; s < 8; ++s) out.append(",customs_").append(CUSTOMS_NAMES[s]);
      out.append('\n');
      for (Map.Entry<String, Volume> e : totals.entrySet()) {
        out.append(e.getKey().replace(' ', ',')).append(',');
        e.getValue().csv(out);
        out.append('\n');
      }
      try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(Path.of(a.get("totals-csv"))))) {
        w.print(out);
      }
    }
    System.exit(closed && failure[0] == null ? 0 : 1);
  }
}
