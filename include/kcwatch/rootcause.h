/* rootcause.h: a Java stack trace -> a short root-cause key.
 *
 * Two tasks that failed for the same reason carry traces that differ in
 * offsets, partitions, hosts, ports, timestamps and ids. The key keeps what
 * names the reason and drops what varies between occurrences:
 *
 *   - the deepest "Caused by:" of the main chain (the first line when there is
 *     none): its exception class and the first line of its message;
 *   - in the message, timestamps become <ts>, URLs scheme://<host>,
 *     host:port pairs (host, host/ip, /ip, [ipv6]) <host>:<port>, IPv4
 *     addresses <ip>, UUIDs <id>, hex ids (0x..., or 6+ hex digits mixing
 *     letters and digits) <hex>, and every other number N; the message of an
 *     UnknownHostException starts with the host, which becomes <host>;
 *   - the top application frames: the first KCW_ROOTCAUSE_FRAMES frames, in
 *     the deepest section that has any, whose method is not from java.,
 *     javax., jdk., sun., com.sun. or org.apache.kafka.connect.runtime.,
 *     without file and line (they move between builds).
 *
 * Form: "Class: message" then " @ frame, frame" when frames were found, e.g.
 * "org.apache.kafka.common.errors.TimeoutException: Expiring N record(s) for
 * orders-N:N ms has passed since batch creation @ com.acme.OrdersSink.put".
 *
 * Work is bounded: only the first KCW_ROOTCAUSE_MAX_INPUT bytes and
 * KCW_ROOTCAUSE_MAX_LINES lines are read, the message is cut to
 * KCW_ROOTCAUSE_MAX_MESSAGE bytes before its patterns run, and the key is at
 * most KCW_ROOTCAUSE_MAX_KEY bytes (cut on a UTF-8 boundary). The patterns
 * are PCRE2, compiled once per kcw_rootcause_t. Nothing here keeps state
 * between calls or does I/O. */
#ifndef KCWATCH_ROOTCAUSE_H
#define KCWATCH_ROOTCAUSE_H

#include <stddef.h>

#define KCW_ROOTCAUSE_MAX_INPUT (256u * 1024u)
#define KCW_ROOTCAUSE_MAX_LINES 4096u
#define KCW_ROOTCAUSE_MAX_MESSAGE 512u
#define KCW_ROOTCAUSE_MAX_KEY 512u
#define KCW_ROOTCAUSE_FRAMES 2u

typedef struct kcw_rootcause kcw_rootcause_t;

/* The compiled patterns. NULL on allocation failure. */
kcw_rootcause_t *kcw_rootcause_new(void);
void kcw_rootcause_free(kcw_rootcause_t *rc);

/* *out = the key of trace (malloc'd, the caller frees), or NULL when trace is
 * NULL or holds nothing but blanks. 0 or -ENOMEM. */
int kcw_rootcause_key(const kcw_rootcause_t *rc, const char *trace, char **out);

#endif
