/* test_rootcause.c: root-cause keys of real Connect task traces.
 *
 * The traces are what Connect workers put in a FAILED task's status
 * (connect-rest.md §3.2: Throwable.printStackTrace output), with the messages
 * Kafka, Connect and common connectors throw. Same cause -> same key whatever
 * the offsets, partitions, hosts, ports, ids and times; different cause ->
 * different key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kcwatch/rootcause.h"

static int setup(void **state)
{
    *state = kcw_rootcause_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    kcw_rootcause_free(*state);
    return 0;
}

static char *key_of(void **state, const char *trace)
{
    char *k = NULL;
    assert_int_equal(kcw_rootcause_key(*state, trace, &k), 0);
    return k;
}

static void expect_key(void **state, const char *trace, const char *want)
{
    char *k = key_of(state, trace);
    assert_non_null(k);
    assert_string_equal(k, want);
    free(k);
}

static void expect_same(void **state, const char *a, const char *b)
{
    char *ka = key_of(state, a), *kb = key_of(state, b);
    assert_non_null(ka);
    assert_non_null(kb);
    assert_string_equal(ka, kb);
    free(ka);
    free(kb);
}

static void expect_differ(void **state, const char *a, const char *b)
{
    char *ka = key_of(state, a), *kb = key_of(state, b);
    assert_non_null(ka);
    assert_non_null(kb);
    if (strcmp(ka, kb) == 0)
        fail_msg("both keys are \"%s\"", ka);
    free(ka);
    free(kb);
}

#define SOURCE_TOP                                                                                  \
    "org.apache.kafka.connect.errors.ConnectException: Unrecoverable exception from producer send " \
    "callback\n"                                                                                    \
    "\tat org.apache.kafka.connect.runtime.WorkerSourceTask.maybeThrowProducerSendException("      \
    "WorkerSourceTask.java:312)\n"                                                                  \
    "\tat org.apache.kafka.connect.runtime.WorkerSourceTask.sendRecords(WorkerSourceTask.java:365)\n" \
    "\tat org.apache.kafka.connect.runtime.WorkerTask.doRun(WorkerTask.java:196)\n"                  \
    "\tat java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1128)\n" \
    "\tat java.base/java.lang.Thread.run(Thread.java:829)\n"

#define SINK_TOP                                                                                    \
    "org.apache.kafka.connect.errors.ConnectException: Exiting WorkerSinkTask due to unrecoverable " \
    "exception.\n"                                                                                  \
    "\tat org.apache.kafka.connect.runtime.WorkerSinkTask.deliverMessages(WorkerSinkTask.java:614)\n" \
    "\tat org.apache.kafka.connect.runtime.WorkerSinkTask.poll(WorkerSinkTask.java:329)\n"           \
    "\tat org.apache.kafka.connect.runtime.WorkerTask.doRun(WorkerTask.java:189)\n"                  \
    "\tat java.base/java.lang.Thread.run(Thread.java:833)\n"

/* connect-rest.md §3.2's example record */
static void test_doc_example(void **state)
{
    expect_key(state,
               "org.apache.kafka.connect.errors.ConnectException: sink write failed\n"
               "\tat com.acme.OrdersSinkTask.put(OrdersSinkTask.java:88)\n\t...",
               "org.apache.kafka.connect.errors.ConnectException: sink write failed @ "
               "com.acme.OrdersSinkTask.put");
}

/* Sender's batch expiry: counts, partitions and elapsed ms vary per task. */
static void test_timeouts(void **state)
{
    const char *expiry_a = SOURCE_TOP
        "Caused by: org.apache.kafka.common.errors.TimeoutException: Expiring 12 record(s) for "
        "orders-3:120005 ms has passed since batch creation\n";
    const char *expiry_b = SOURCE_TOP
        "Caused by: org.apache.kafka.common.errors.TimeoutException: Expiring 1 record(s) for "
        "orders-17:120391 ms has passed since batch creation\n";
    const char *metadata = SOURCE_TOP
        "Caused by: org.apache.kafka.common.errors.TimeoutException: Topic orders not present in "
        "metadata after 60000 ms.\n";
    const char *position = SINK_TOP
        "Caused by: org.apache.kafka.common.errors.TimeoutException: Timeout of 60000ms expired "
        "before the position for partition orders-0 could be determined\n";
    expect_key(state, expiry_a,
               "org.apache.kafka.common.errors.TimeoutException: Expiring N record(s) for "
               "orders-N:N ms has passed since batch creation");
    expect_same(state, expiry_a, expiry_b);
    expect_differ(state, expiry_a, metadata);
    expect_differ(state, metadata, position);
    expect_key(state, position,
               "org.apache.kafka.common.errors.TimeoutException: Timeout of Nms expired before "
               "the position for partition orders-N could be determined");
}

static void test_authorization(void **state)
{
    const char *topic = SOURCE_TOP
        "Caused by: org.apache.kafka.common.errors.TopicAuthorizationException: Not authorized to "
        "access topics: [orders]\n";
    const char *group = SINK_TOP
        "Caused by: org.apache.kafka.common.errors.GroupAuthorizationException: Not authorized to "
        "access group: connect-orders-sink\n";
    const char *sasl = SINK_TOP
        "Caused by: org.apache.kafka.common.errors.SaslAuthenticationException: Authentication "
        "failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512\n";
    expect_differ(state, topic, group);
    expect_differ(state, group, sasl);
    expect_key(state, topic,
               "org.apache.kafka.common.errors.TopicAuthorizationException: Not authorized to "
               "access topics: [orders]");
    /* a number after '-' becomes N (partitions print that way), so the
     * mechanism reads SCRAM-SHA-N: the same for every task that hits it */
    expect_key(state, sasl,
               "org.apache.kafka.common.errors.SaslAuthenticationException: Authentication failed "
               "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-N");
}

#define TOLERANCE                                                                                   \
    "org.apache.kafka.connect.errors.ConnectException: Tolerance exceeded in error handler\n"       \
    "\tat org.apache.kafka.connect.runtime.errors.RetryWithToleranceOperator.execAndHandleError("   \
    "RetryWithToleranceOperator.java:206)\n"                                                        \
    "\tat org.apache.kafka.connect.runtime.WorkerSinkTask.convertAndTransformRecord("              \
    "WorkerSinkTask.java:496)\n"                                                                    \
    "\tat java.base/java.lang.Thread.run(Thread.java:829)\n"

/* Poison records: converters' and the consumer's deserialization errors. */
static void test_serialization(void **state)
{
    const char *json = TOLERANCE
        "Caused by: org.apache.kafka.connect.errors.DataException: Converting byte[] to Kafka "
        "Connect data failed due to serialization error: \n"
        "\tat org.apache.kafka.connect.json.JsonConverter.toConnectData(JsonConverter.java:324)\n"
        "\tat org.apache.kafka.connect.runtime.WorkerSinkTask.lambda$convertAndTransformRecord$3("
        "WorkerSinkTask.java:496)\n"
        "\t... 13 more\n"
        "Caused by: org.apache.kafka.common.errors.SerializationException: "
        "com.fasterxml.jackson.core.JsonParseException: Unrecognized token 'abc': was expecting "
        "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')\n"
        " at [Source: (byte[])\"abc\"; line: 1, column: 4]\n"
        "Caused by: com.fasterxml.jackson.core.JsonParseException: Unrecognized token 'abc': was "
        "expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')\n"
        " at [Source: (byte[])\"abc\"; line: 1, column: 4]\n"
        "\tat com.fasterxml.jackson.core.JsonParser._constructError(JsonParser.java:2391)\n"
        "\tat com.fasterxml.jackson.core.base.ParserMinimalBase._reportError("
        "ParserMinimalBase.java:745)\n"
        "\tat com.fasterxml.jackson.core.json.UTF8StreamJsonParser._reportInvalidToken("
        "UTF8StreamJsonParser.java:3635)\n"
        "\t... 17 more\n";
    const char *avro_a = TOLERANCE
        "Caused by: org.apache.kafka.connect.errors.DataException: Failed to deserialize data for "
        "topic orders to Avro: \n"
        "\tat io.confluent.connect.avro.AvroConverter.toConnectData(AvroConverter.java:148)\n"
        "\t... 13 more\n"
        "Caused by: org.apache.kafka.common.errors.SerializationException: Unknown magic byte!\n"
        "\tat io.confluent.kafka.serializers.AbstractKafkaSchemaSerDe.getByteBuffer("
        "AbstractKafkaSchemaSerDe.java:250)\n"
        "\tat io.confluent.kafka.serializers.AbstractKafkaAvroDeserializer$DeserializationContext."
        "<init>(AbstractKafkaAvroDeserializer.java:322)\n"
        "\t... 15 more\n";
    /* the same poison on another worker build: other line numbers */
    const char *avro_b = TOLERANCE
        "Caused by: org.apache.kafka.connect.errors.DataException: Failed to deserialize data for "
        "topic orders to Avro: \n"
        "\tat io.confluent.connect.avro.AvroConverter.toConnectData(AvroConverter.java:154)\n"
        "Caused by: org.apache.kafka.common.errors.SerializationException: Unknown magic byte!\n"
        "\tat io.confluent.kafka.serializers.AbstractKafkaSchemaSerDe.getByteBuffer("
        "AbstractKafkaSchemaSerDe.java:600)\n"
        "\tat io.confluent.kafka.serializers.AbstractKafkaAvroDeserializer$DeserializationContext."
        "<init>(AbstractKafkaAvroDeserializer.java:401)\n";
    const char *record_a = SINK_TOP
        "Caused by: org.apache.kafka.common.errors.RecordDeserializationException: Error "
        "deserializing key/value for partition orders-2 at offset 8812. If needed, please seek past "
        "the record to continue consumption.\n"
        "\tat org.apache.kafka.clients.consumer.internals.CompletedFetch.parseRecord("
        "CompletedFetch.java:331)\n";
    const char *record_b = SINK_TOP
        "Caused by: org.apache.kafka.common.errors.RecordDeserializationException: Error "
        "deserializing key/value for partition orders-5 at offset 17. If needed, please seek past "
        "the record to continue consumption.\n"
        "\tat org.apache.kafka.clients.consumer.internals.CompletedFetch.parseRecord("
        "CompletedFetch.java:309)\n";
    expect_key(state, avro_a,
               "org.apache.kafka.common.errors.SerializationException: Unknown magic byte! @ "
               "io.confluent.kafka.serializers.AbstractKafkaSchemaSerDe.getByteBuffer, "
               "io.confluent.kafka.serializers.AbstractKafkaAvroDeserializer$DeserializationContext."
               "<init>");
    expect_same(state, avro_a, avro_b);
    expect_same(state, record_a, record_b);
    expect_differ(state, json, avro_a);
    expect_differ(state, avro_a, record_a);
    expect_key(state, json,
               "com.fasterxml.jackson.core.JsonParseException: Unrecognized token 'abc': was "
               "expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false') @ "
               "com.fasterxml.jackson.core.JsonParser._constructError, "
               "com.fasterxml.jackson.core.base.ParserMinimalBase._reportError");
}

static void test_class_not_found(void **state)
{
    const char *event = SINK_TOP
        "Caused by: java.lang.NoClassDefFoundError: com/acme/orders/OrderEvent\n"
        "\tat com.acme.orders.OrderMapper.map(OrderMapper.java:31)\n"
        "\tat com.acme.orders.OrdersSinkTask.put(OrdersSinkTask.java:88)\n"
        "Caused by: java.lang.ClassNotFoundException: com.acme.orders.OrderEvent\n"
        "\tat java.base/jdk.internal.loader.BuiltinClassLoader.loadClass(BuiltinClassLoader.java:641)\n"
        "\tat org.apache.kafka.connect.runtime.isolation.PluginClassLoader.loadClass("
        "PluginClassLoader.java:136)\n"
        "\tat java.base/java.lang.ClassLoader.loadClass(ClassLoader.java:525)\n"
        "\t... 12 more\n";
    const char *event_v2 = SINK_TOP
        "Caused by: java.lang.NoClassDefFoundError: com/acme/orders/v2/OrderEvent\n"
        "\tat com.acme.orders.OrderMapper.map(OrderMapper.java:35)\n"
        "Caused by: java.lang.ClassNotFoundException: com.acme.orders.v2.OrderEvent\n"
        "\tat java.base/jdk.internal.loader.BuiltinClassLoader.loadClass(BuiltinClassLoader.java:641)\n";
    expect_key(state, event,
               "java.lang.ClassNotFoundException: com.acme.orders.OrderEvent @ "
               "com.acme.orders.OrderMapper.map, com.acme.orders.OrdersSinkTask.put");
    expect_differ(state, event, event_v2);
}

static void test_connection_refused(void **state)
{
    const char *pg_a = SINK_TOP
        "Caused by: org.postgresql.util.PSQLException: Connection to db-1.prod.acme.net:5432 "
        "refused. Check that the hostname and port are correct and that the postmaster is "
        "accepting TCP/IP connections.\n"
        "\tat org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl("
        "ConnectionFactoryImpl.java:319)\n"
        "\tat io.confluent.connect.jdbc.util.CachedConnectionProvider.getConnection("
        "CachedConnectionProvider.java:59)\n";
    const char *pg_b = SINK_TOP
        "Caused by: org.postgresql.util.PSQLException: Connection to 10.20.3.4:6432 refused. Check "
        "that the hostname and port are correct and that the postmaster is accepting TCP/IP "
        "connections.\n"
        "\tat org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl("
        "ConnectionFactoryImpl.java:303)\n"
        "\tat io.confluent.connect.jdbc.util.CachedConnectionProvider.getConnection("
        "CachedConnectionProvider.java:59)\n";
    const char *registry_a = TOLERANCE
        "Caused by: java.net.ConnectException: Failed to connect to schema-registry/10.0.0.9:8081\n"
        "\tat io.confluent.kafka.schemaregistry.client.rest.RestService.sendHttpRequest("
        "RestService.java:268)\n";
    const char *registry_b = TOLERANCE
        "Caused by: java.net.ConnectException: Failed to connect to localhost/127.0.0.1:18081\n"
        "\tat io.confluent.kafka.schemaregistry.client.rest.RestService.sendHttpRequest("
        "RestService.java:268)\n";
    const char *es_a = SINK_TOP
        "Caused by: org.apache.http.conn.HttpHostConnectException: Connect to es-1.internal:9200 "
        "[es-1.internal/10.0.0.5] failed: Connection refused\n"
        "\tat io.confluent.connect.elasticsearch.ElasticsearchClient.bulk(ElasticsearchClient.java:411)\n";
    const char *es_b = SINK_TOP
        "Caused by: org.apache.http.conn.HttpHostConnectException: Connect to [fe80::1]:9201 "
        "[es-9/192.168.7.40] failed: Connection refused\n"
        "\tat io.confluent.connect.elasticsearch.ElasticsearchClient.bulk(ElasticsearchClient.java:420)\n";
    const char *url_a = SINK_TOP
        "Caused by: java.io.IOException: Server returned HTTP response code: 503 for URL: "
        "https://user@api-7.acme.io:8443/v1/orders\n"
        "\tat com.acme.http.HttpSinkTask.post(HttpSinkTask.java:57)\n";
    const char *url_b = SINK_TOP
        "Caused by: java.io.IOException: Server returned HTTP response code: 503 for URL: "
        "https://10.1.1.1/v1/orders\n"
        "\tat com.acme.http.HttpSinkTask.post(HttpSinkTask.java:61)\n";
    expect_key(state, pg_a,
               "org.postgresql.util.PSQLException: Connection to <host>:<port> refused. Check "
               "that the hostname and port are correct and that the postmaster is accepting "
               "TCP/IP connections. @ org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl, "
               "io.confluent.connect.jdbc.util.CachedConnectionProvider.getConnection");
    expect_same(state, pg_a, pg_b);
    expect_same(state, registry_a, registry_b);
    expect_same(state, es_a, es_b);
    expect_same(state, url_a, url_b);
    expect_differ(state, pg_a, registry_a);
    expect_differ(state, registry_a, es_a);
    expect_key(state, es_a,
               "org.apache.http.conn.HttpHostConnectException: Connect to <host>:<port> [<host>] "
               "failed: Connection refused @ "
               "io.confluent.connect.elasticsearch.ElasticsearchClient.bulk");
}

static void test_hosts_ids_times(void **state)
{
    expect_same(state,
                "java.net.UnknownHostException: kafka-3.internal: Name or service not known\n"
                "\tat java.base/java.net.Inet6AddressImpl.lookupAllHostAddr(Native Method)\n",
                "java.net.UnknownHostException: broker7.prod.acme.com: Name or service not known\n"
                "\tat java.base/java.net.Inet6AddressImpl.lookupAllHostAddr(Native Method)\n");
    expect_key(state, "java.net.UnknownHostException: kafka-3.internal: Name or service not known",
               "java.net.UnknownHostException: <host>: Name or service not known");
    expect_key(state,
               "org.apache.kafka.common.errors.UnknownTopicIdException: Topic id "
               "4f2a3b1c-9d8e-4f7a-a1b2-c3d4e5f60718 does not exist at 2026-11-30T20:04:45.123Z",
               "org.apache.kafka.common.errors.UnknownTopicIdException: Topic id <id> does not "
               "exist at <ts>");
    expect_key(state, "com.acme.ZkException: Session 0x1000a2b3c4d0001 expired, digest deadbeef42",
               "com.acme.ZkException: Session <hex> expired, digest <hex>");
    expect_same(state,
                "org.apache.kafka.common.errors.ProducerFencedException: There is a newer producer "
                "with the same transactionalId which fences the current one. epoch 17",
                "org.apache.kafka.common.errors.ProducerFencedException: There is a newer producer "
                "with the same transactionalId which fences the current one. epoch 21");
}

/* Frames of suppressed exceptions and continuation lines are not ours; a
 * lambda's hidden class names no method; a trace without "Caused by" is its
 * own root cause; text that is no exception is kept as it is. */
static void test_shapes(void **state)
{
    expect_key(state,
               "java.lang.IllegalStateException: closed\n"
               "\tat java.base/java.lang.Thread.run(Thread.java:829)\n"
               "\tSuppressed: java.io.IOException: flush 12 failed\n"
               "\t\tat com.acme.Flusher.flush(Flusher.java:9)\n"
               "Caused by: com.acme.SinkException: buffer full\n"
               "\tat com.acme.Buffer$$Lambda$1234/0x0000000800c4b840.accept(Unknown Source)\n"
               "\tat app//com.acme.Buffer.add(Buffer.java:44)\n",
               "com.acme.SinkException: buffer full @ com.acme.Buffer.add");
    expect_key(state, "java.lang.NullPointerException\n\tat com.acme.A.b(A.java:1)\n",
               "java.lang.NullPointerException @ com.acme.A.b");
    expect_key(state, "\n  \nboom after 3 tries\n", "boom after N tries");
    char *k = key_of(state, NULL);
    assert_null(k);
    k = key_of(state, " \n\t\n");
    assert_null(k);
}

/* Work stays bounded: the input, its lines and the key have caps. */
static void test_bounds(void **state)
{
    size_t big = 8u * 1024 * 1024;
    char *trace = malloc(big + 1);
    assert_non_null(trace);
    const char head[] = "org.apache.kafka.connect.errors.ConnectException: outer\n";
    const char frame[] = "\tat org.apache.kafka.connect.runtime.WorkerTask.doRun(WorkerTask.java:1)\n";
    size_t n = 0;
    memcpy(trace, head, sizeof(head) - 1);
    n += sizeof(head) - 1;
    while (n + sizeof(frame) < big - 128) {
        memcpy(trace + n, frame, sizeof(frame) - 1);
        n += sizeof(frame) - 1;
    }
    /* past both caps: never read */
    n += (size_t)snprintf(trace + n, big + 1 - n, "Caused by: com.acme.Deep: hidden\n");
    trace[n] = '\0';
    clock_t t0 = clock();
    expect_key(state, trace, "org.apache.kafka.connect.errors.ConnectException: outer");
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    if (secs > 2.0)
        fail_msg("an 8 MB trace took %.2f s of CPU", secs);

    /* the line cap alone: 5000 short lines, then the cause */
    n = (size_t)snprintf(trace, big, "com.acme.Top: top\n");
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(trace + n, big - n, "x\n");
    snprintf(trace + n, big - n, "Caused by: com.acme.Deep: hidden\n");
    expect_key(state, trace, "com.acme.Top: top");

    /* a long message with multi-byte characters: cut whole, within the cap */
    n = (size_t)snprintf(trace, big, "com.acme.Top: ");
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(trace + n, big - n, "\xc3\xa9");
    char *k = key_of(state, trace);
    assert_non_null(k);
    size_t len = strlen(k);
    assert_true(len <= KCW_ROOTCAUSE_MAX_KEY);
    assert_true(len > 200);
    assert_int_equal((unsigned char)k[len - 1], 0xa9); /* ends after a whole é */
    free(k);
    free(trace);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_doc_example, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorization, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serialization, setup, teardown),
        cmocka_unit_test_setup_teardown(test_class_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hosts_ids_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
